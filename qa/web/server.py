"""One FastAPI server for everything: the JSON API, the document pages, the Gradio main app at /
and the widget at /widget (both mounted with gr.mount_gradio_app), and the embed headers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import gradio as gr
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.answering import QuestionError, plain_text
from qa.cli import answer_json, hit_json
from qa.config import Settings
from qa.retrieval import Filters
from qa.web.guard import RequestGuard
from qa.web.library import AdminError, CorpusAdmin, FeedbackLog, Library, UploadPreview, admin_enabled, token_matches
from qa.web.render import document_page, esc
from qa.web.ui import build_main, build_widget, chat_event_ids

STATIC_DIR = Path(__file__).parent / "static"
# Gradio's web-component loader, served by this app so host pages need no CDN.
GRADIO_JS = Path(gr.__file__).parent / "templates" / "frontend" / "gradio.js"
SEARCH_K_MAX = 50
# The document page shows text only: no scripts at all, styles from the page itself.
DOCUMENT_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


# -- embedding headers ----------------------------------------------------------------------------
def embed_origins(settings: Settings) -> list[str]:
    return [origin.rstrip("/") for origin in settings.allowed_frame_ancestors.split()]


class FrameAncestorsMiddleware:
    """Adds ``Content-Security-Policy: frame-ancestors 'self' <allowed hosts>`` to every response,
    so only this app and the configured host pages can frame its pages (a plain ASGI middleware:
    it leaves Gradio's streamed responses alone)."""

    def __init__(self, app, origins: list[str]):
        self.app = app
        self.directive = "frame-ancestors " + " ".join(["'self'", *origins])

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                policy = headers.get("content-security-policy")
                headers["content-security-policy"] = f"{policy}; {self.directive}" if policy else self.directive
            await send(message)

        await self.app(scope, receive, send_with_policy)


# -- the JSON API ---------------------------------------------------------------------------------
class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class AskRequest(BaseModel):
    question: str
    history: list[ChatMessage] = Field(default_factory=list)
    context: str = ""  # the host page's context (e.g. a policy title); steers retrieval


def preview_json(preview: UploadPreview) -> dict:
    counts = {d.id: sum(1 for a in preview.articles if a.doc_id == d.id) for d in preview.documents}
    return {
        "file": preview.file_name,
        "documents": [d.to_dict() | {"articles": counts[d.id]} for d in preview.documents],
        "articles": len(preview.articles),
    }


def admin_guard(settings: Settings):
    """A dependency: 403 when admin is off (no token configured), 401 for a missing or wrong token.
    The token comes as ``Authorization: Bearer …`` or ``X-Admin-Token``."""

    def check(request: Request) -> None:
        if not admin_enabled(settings):
            raise HTTPException(403, "管理功能未启用（未配置管理令牌）")
        given = request.headers.get("x-admin-token")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = credentials.strip()
        if not token_matches(settings, given):
            raise HTTPException(401, "管理令牌不正确", headers={"WWW-Authenticate": "Bearer"})

    return check


async def read_upload(file: UploadFile, limit: int) -> tuple[str, bytes]:
    data = await file.read(limit + 1)  # one byte over says "too big" without reading it all
    return file.filename or "", data


def api_router(settings: Settings, library: Library, admin: CorpusAdmin) -> APIRouter:
    router = APIRouter(prefix="/api")
    require_admin = Depends(admin_guard(settings))

    @router.post("/ask")
    def ask(request: AskRequest) -> dict:
        """The same JSON as `python -m qa ask --json`."""
        history = [message.model_dump() for message in request.history]
        try:
            with library.answer_slot():
                answer = library.answerer.answer(request.question, history=history, context=request.context)
        except QuestionError as error:
            raise HTTPException(400, str(error)) from error
        return answer_json(answer)

    @router.get("/search")
    def search(
        q: str = "",
        k: int | None = Query(None, ge=1, le=SEARCH_K_MAX),
        region: str | None = None,
        issuer: str | None = None,
        document: str | None = None,
        year: int | None = None,
    ) -> dict:
        """The same JSON as `python -m qa search --json`."""
        query = plain_text(q)
        if not query:
            raise HTTPException(400, "请提供检索内容 q")
        if len(query) > settings.max_question_chars:
            raise HTTPException(400, f"检索内容太长，请精简到 {settings.max_question_chars} 字以内")
        filters = Filters(region=region, issuer=issuer, document=document, year=year)
        hits = library.searcher.search(query, k=k or settings.search_desk_k, filters=filters)
        return {"query": query, "hits": [hit_json(hit) for hit in hits]}

    @router.get("/documents")
    def documents() -> dict:
        counts = library.catalog.counts()
        return {"documents": [d.to_dict() | {"articles": counts[d.id]} for d in library.catalog.documents]}

    @router.get("/admin/files", dependencies=[require_admin])
    def admin_files() -> dict:
        return {"files": [{"name": f.name, "titles": f.titles} for f in admin.files()]}

    @router.post("/admin/preview", dependencies=[require_admin])
    async def admin_preview(file: UploadFile = File(...)) -> dict:
        name, data = await read_upload(file, settings.max_upload_bytes)
        try:
            return preview_json(admin.preview(name, data))
        except AdminError as error:
            raise HTTPException(400, str(error)) from error

    @router.post("/admin/files", dependencies=[require_admin])
    async def admin_add(file: UploadFile = File(...)) -> dict:
        name, data = await read_upload(file, settings.max_upload_bytes)
        try:
            preview, report = await run_in_threadpool(admin.add, name, data)
        except AdminError as error:
            raise HTTPException(400, str(error)) from error
        return {"added": preview_json(preview), "index": report.summary()}

    @router.delete("/admin/files/{name}", dependencies=[require_admin])
    async def admin_remove(name: str) -> dict:
        try:
            report = await run_in_threadpool(admin.remove, name)
        except AdminError as error:
            raise HTTPException(400, str(error)) from error
        return {"removed": name, "index": report.summary()}

    @router.post("/admin/rebuild", dependencies=[require_admin])
    async def admin_rebuild() -> dict:
        try:
            report = await run_in_threadpool(admin.rebuild)
        except AdminError as error:
            raise HTTPException(400, str(error)) from error
        return {"index": report.summary()}

    return router


# -- pages ----------------------------------------------------------------------------------------
def page_routes(library: Library) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/doc/{doc_id}", response_class=HTMLResponse)
    def document(doc_id: str, article: str = "") -> HTMLResponse:
        """The whole document; ?article=<id> highlights that clause (the #article-… anchor scrolls to it)."""
        catalog = library.catalog
        found = catalog.document(doc_id)
        if found is None:
            body = f"<!doctype html><meta charset='utf-8'><p>没有找到文件 {esc(doc_id)}。</p>"
            return HTMLResponse(body, status_code=404, headers={"Content-Security-Policy": DOCUMENT_PAGE_POLICY})
        page = document_page(found, catalog.articles_by_doc[doc_id], article)
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCUMENT_PAGE_POLICY})

    @router.get("/gradio.js")
    def gradio_js() -> FileResponse:
        return FileResponse(GRADIO_JS, media_type="text/javascript")

    @router.get("/widget")
    def widget_slash(request: Request) -> RedirectResponse:
        # The widget is mounted at /widget/; the root app would otherwise answer /widget with a 404.
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/widget/{query}")

    return router


INTERNAL_ERROR = "服务暂时出现问题，请稍后再试。如需帮助，请拨打 12345 政务服务便民热线。"
logger = logging.getLogger("qa.web")
# What is wrong with a request FastAPI could not read, by pydantic's error type; {field} is the
# parameter's place (e.g. "history.0.role"), the rest comes from the error's context.
INVALID_REQUEST = {
    "json_invalid": "请求内容不是有效的 JSON",
    "model_attributes_type": "请求内容应为 JSON 对象",
    "dict_type": "{field} 应为 JSON 对象",
    "missing": "缺少 {field}",
    "string_type": "{field} 应为文本",
    "int_parsing": "{field} 应为整数",
    "int_type": "{field} 应为整数",
    "list_type": "{field} 应为列表",
    "greater_than_equal": "{field} 不能小于 {ge}",
    "less_than_equal": "{field} 不能大于 {le}",
    "literal_error": "{field} 只能是 {expected}",
}


def invalid_request_message(errors: list[dict]) -> str:
    """One line in Chinese for the first thing wrong with a request, e.g. "请求格式不正确：缺少 question"."""
    first = errors[0] if errors else {}
    field = ".".join(str(part) for part in first.get("loc", ())[1:]) or "请求内容"
    template = INVALID_REQUEST.get(first.get("type", ""), "{field} 的值无效")
    try:
        problem = template.format(field=field, **(first.get("ctx") or {}))
    except (KeyError, IndexError, ValueError):
        problem = f"{field} 的值无效"
    return f"请求格式不正确：{problem.replace(' or ', ' 或 ')}。"


# FastAPI's own English message for a body it cannot read (e.g. not UTF-8), said in Chinese.
HTTP_MESSAGES = {"There was an error parsing the body": "请求内容无法解析，请发送 UTF-8 编码的 JSON"}


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """An HTTPException as FastAPI answers it, with its English stock messages in Chinese."""
    detail = HTTP_MESSAGES.get(error.detail, error.detail) if isinstance(error.detail, str) else error.detail
    return JSONResponse({"detail": detail}, status_code=error.status_code, headers=getattr(error, "headers", None))


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with a message like every other error of the API ({"detail": "…"}), and where each
    problem is (loc and type, without echoing the input back)."""
    errors = list(error.errors())
    where = [{"loc": list(e.get("loc", ())), "type": e.get("type", "")} for e in errors]
    return JSONResponse({"detail": invalid_request_message(errors), "errors": where}, status_code=422)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    """Any error no handler expected: logged here with its traceback, answered with a plain
    message (no exception text or traceback reaches the client)."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)


def create_app(settings: Settings, library: Library | None = None) -> FastAPI:
    """The whole web app. ``library`` lets a caller reuse an already loaded index; the web
    settings (admin token, embedding origins, data folder) are always the ``settings`` given."""
    library = library or Library(settings)
    feedback = FeedbackLog(settings.data_dir)
    admin = CorpusAdmin(library, settings)
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN.
    app = FastAPI(title="政策问答", docs_url=None, redoc_url=None)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    origins = embed_origins(settings)
    # Innermost of ours, so its 429 and 413 answers still carry the CORS and framing headers.
    # chat_events is filled in below, once the pages (and so their events) exist.
    chat_events: dict[str, frozenset[int]] = {}
    app.add_middleware(RequestGuard, settings=settings, chat_events=chat_events)
    app.add_middleware(FrameAncestorsMiddleware, origins=origins)
    # Our own CORS policy (Gradio then adds none): only the configured host pages may call the app
    # from a browser, which the <gradio-app> web component does.
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"], allow_credentials=True)
    app.include_router(api_router(settings, library, admin))
    app.include_router(page_routes(library))
    common = {
        "css_paths": [STATIC_DIR / "app.css"],
        "js": (STATIC_DIR / "app.js").read_text(encoding="utf-8"),
        "footer_links": [],
        "run_history": False,
        "pwa": False,
        "mcp_server": False,
        "ssr_mode": False,
        "max_file_size": settings.max_upload_bytes,
        # An unexpected error shows Gradio's generic "Error", never the exception's text.
        "show_error": False,
    }
    widget = build_widget(library, feedback)
    main = build_main(settings, library, feedback, admin)
    # Past the rate limit a chat question is answered in the chat, not with Gradio's error box.
    chat_events.update({"/widget": chat_event_ids(widget), "/": chat_event_ids(main)})
    gr.mount_gradio_app(app, widget, "/widget", **common)
    gr.mount_gradio_app(app, main, "/", **common)
    app.state.library = library
    app.state.feedback = feedback
    return app
