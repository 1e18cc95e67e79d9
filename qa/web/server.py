"""One FastAPI server for everything: the JSON API, the document pages, the Gradio main app at /
and the widget at /widget (both mounted with gr.mount_gradio_app), and the embed headers."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import gradio as gr
import h11
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

from qa.answering import QuestionError, plain_text
from qa.config import Settings
from qa.retrieval import Filters
from qa.web.openai_api import OpenAIError, install_openai_api
from qa.web.guard import RequestGuard, header_token
from qa.web.library import AdminError, CorpusAdmin, FeedbackLog, Library, UploadPreview, admin_enabled, token_matches
from qa.web.render import document_page, esc
from qa.web.ui import SEARCH_K_MAX, build_main, build_widget, chat_event_ids

STATIC_DIR = Path(__file__).parent / "static"
# Gradio's web-component loader, served by this app so host pages need no CDN.
GRADIO_JS = Path(gr.__file__).parent / "templates" / "frontend" / "gradio.js"
# The document page shows text only: no scripts at all, styles from the page itself.
DOCUMENT_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


# -- embedding headers ----------------------------------------------------------------------------
def embed_origins(settings: Settings) -> list[str]:
    return [origin.rstrip("/") for origin in settings.allowed_frame_ancestors.split()]


# Gradio's pages run inline scripts (their config) and the page's own js= through Function(): only
# scripts from elsewhere can be refused, and plugins and a changed <base> with them.
GRADIO_PAGE_POLICY = "script-src 'self' 'unsafe-inline' 'unsafe-eval'; object-src 'none'; base-uri 'self'"
SECURITY_HEADERS = {
    # A file is what its Content-Type says (no sniffing an uploaded text into a script).
    "x-content-type-options": "nosniff",
    # Links out of an answer tell the other site this origin, not the question in the URL.
    "referrer-policy": "strict-origin-when-cross-origin",
}


class SecurityHeadersMiddleware:
    """Adds to every response ``Content-Security-Policy: frame-ancestors 'self' <allowed hosts>``
    (only this app and the configured host pages may frame its pages), a script policy where the
    response set none of its own, and :data:`SECURITY_HEADERS`. A plain ASGI middleware: it leaves
    Gradio's streamed responses alone."""

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
                policy = headers.get("content-security-policy") or GRADIO_PAGE_POLICY
                headers["content-security-policy"] = f"{policy}; {self.directive}"
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
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
        if not token_matches(settings, header_token(request.headers)):
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
            answer = library.answer(request.question, history=history, context=request.context)
        except QuestionError as error:
            raise HTTPException(400, str(error)) from error
        return answer.to_api()

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
        return {"query": query, "hits": [hit.to_api() for hit in hits]}

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
        try:  # parsing takes a while (and runs in a child process): not on the event loop
            return preview_json(await run_in_threadpool(admin.preview, name, data))
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
    if request.url.path.startswith("/v1/"):  # OpenAI's clients read error.message
        return OpenAIError(error.status_code, str(detail), headers=getattr(error, "headers", None)).response()
    return JSONResponse({"detail": detail}, status_code=error.status_code, headers=getattr(error, "headers", None))


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with a message like every other error of the API ({"detail": "…"}), and where each
    problem is (loc and type, without echoing the input back)."""
    errors = list(error.errors())
    where = [{"loc": list(e.get("loc", ())), "type": e.get("type", "")} for e in errors]
    if request.url.path.startswith("/v1/"):  # OpenAI's clients read error.message
        return OpenAIError(422, invalid_request_message(errors)).response()
    return JSONResponse({"detail": invalid_request_message(errors), "errors": where}, status_code=422)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    """Any error no handler expected: logged here with its traceback, answered with a plain
    message (no exception text or traceback reaches the client)."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    if request.url.path.startswith("/v1/"):
        return OpenAIError(500, INTERNAL_ERROR, "server_error").response()
    return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)


URL_FILES_REFUSED = "不接受以网址给出的文件，请直接上传文件。"


async def refuse_url_download(url: str, cache_dir: str) -> str:
    """Stands in for Gradio's download of a file value given as a URL: a client can put
    {"path": "https://…", "meta": {"_type": "gradio.FileData"}} in any event's data, and Gradio
    would fetch it whole into memory and the upload folder, token or not. Nothing here needs it."""
    raise gr.Error(URL_FILES_REFUSED)


def refuse_url_files() -> None:
    from gradio import processing_utils

    processing_utils.async_ssrf_protected_download = refuse_url_download


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
    app.add_middleware(SecurityHeadersMiddleware, origins=origins)
    # Our own CORS policy (Gradio then adds none): only the configured host pages may call the app
    # from a browser, which the <gradio-app> web component does.
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"], allow_credentials=True)
    app.include_router(api_router(settings, library, admin))
    install_openai_api(app, settings, library)
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
    upload_dir = private_upload_dir()
    refuse_url_files()
    widget = build_widget(library, feedback)
    main = build_main(settings, library, feedback, admin, upload_dir)
    # Past the rate limit a chat question is answered in the chat, not with Gradio's error box.
    chat_events.update({"/widget": chat_event_ids(widget), "/": chat_event_ids(main)})
    gr.mount_gradio_app(app, widget, "/widget", **common)
    gr.mount_gradio_app(app, main, "/", **common)
    for page in (widget, main):
        # Gradio checks that a file value names a file uploaded to it (not the README, not
        # /etc/…) only in an app it launched itself; a mounted one is served just the same.
        page.has_launched = True
    app.state.library = library
    app.state.feedback = feedback
    app.state.settings = settings
    app.state.upload_dir = upload_dir
    return app


UPLOAD_DIR_PREFIX = "qa-gradio-"


@functools.cache
def private_upload_dir() -> Path:
    """A folder of this process's own for Gradio's uploads (GRADIO_TEMP_DIR), removed when the
    process exits; folders that processes no longer running left behind (killed) are removed
    first. Gradio's default, one shared folder in /tmp, keeps every upload forever. One per
    process (Gradio reads it from the environment), shared by every app the process serves."""
    base = Path(tempfile.gettempdir())
    for left in base.glob(f"{UPLOAD_DIR_PREFIX}*"):
        pid = left.name.removeprefix(UPLOAD_DIR_PREFIX).split("-")[0]
        if pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{UPLOAD_DIR_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, folder, True)
    # Read by the Blocks and by mount_gradio_app's App as they are made, just after this.
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


# -- serving ----------------------------------------------------------------------------------------
class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request head (``head_timeout_s``,
    set on a subclass by :func:`uvicorn_config`): a connection that has not sent a whole head in
    time is closed. uvicorn has no such deadline: its keep-alive timer stops at the first byte,
    so a client trickling one header byte at a time held its socket indefinitely."""

    head_timeout_s = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_deadline = None
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def connection_lost(self, exc) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        if self.conn.their_state is h11.IDLE and self._cycle_done():
            if self._head_deadline is None:
                self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_overdue)
        else:
            self._stop_watching()

    def _cycle_done(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _stop_watching(self) -> None:
        if getattr(self, "_head_deadline", None) is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and self._cycle_done() and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app, settings: Settings, host: str, port: int, **options) -> uvicorn.Config:
    """How the app is served, by app.py and by the tests alike: forwarded headers believed only
    from the configured proxies, a deadline for request heads, a cap on connections."""
    protocol = type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"head_timeout_s": settings.head_timeout_s})
    trusted = settings.forwarded_allow_ips.strip()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        limit_concurrency=settings.max_connections or None,
        **options,
    )


def raise_open_file_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit (many connections are
    many sockets); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        except (ValueError, OSError):
            pass
    return soft
