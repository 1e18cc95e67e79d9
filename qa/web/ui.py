"""The Gradio pages: the main app (citizens' chat, the staff search desk, the document browser, the
admin tab) and the compact chat-only widget for embedding in government sites.

(No ``from __future__ import annotations`` here: Gradio reads the handlers' type hints, gr.Request
and gr.LikeData, at run time.)
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from qa.answering import QuestionError, in_context, plain_text
from qa.config import Settings
from qa.retrieval import Filters
from qa.web.guard import ADMIN_COOKIE, TOO_MANY_REQUESTS, was_rate_limited
from qa.web.library import (
    AdminError,
    CorpusAdmin,
    Feedback,
    FeedbackLog,
    Library,
    admin_enabled,
    token_matches,
)
from qa.web.render import (
    HOTLINE_HANDOFF,
    coverage_line,
    esc,
    render_answer,
    render_document,
    render_document_list,
    render_hits,
    render_preview,
    text_block,
    widget_heading,
)

EXAMPLE_QUESTIONS = [
    "12345热线的通话录音保存多久？",
    "突发事件预警级别分为哪几级？",
    "森林防火戒严期是什么时候？",
    "12345热线管理办法第二十一条",
]
CONTEXT_MAX_CHARS = 200
# Said in the chat when answering fails unexpectedly (the details go to the server's log only).
ANSWER_FAILED = "抱歉，系统暂时无法回答，请稍后再试。"
# The chat's submit (Enter) and send button are one concurrency group: together they may run
# settings.gradio_concurrency answers at once, not that many each.
CHAT_CONCURRENCY_ID = "chat-answer"
logger = logging.getLogger("qa.web")
LARGE_TEXT_JS = """(on) => {
  document.documentElement.classList.toggle("qa-large", on);
  localStorage.setItem("qa-large-text", on ? "1" : "0");
}"""
LARGE_TEXT_SAVED_JS = """() => localStorage.getItem("qa-large-text") === "1" """
# The widget's host context: the iframe's own ?context=, or, inside the <gradio-app> web component
# (whose page is the host's), the component's data-context attribute or the context on its src.
PAGE_CONTEXT_JS = """(current) => {
  const component = document.querySelector('gradio-app[src*="/widget"]');
  if (component) {
    if (component.dataset.context) return component.dataset.context;
    try {
      const fromSrc = new URL(component.getAttribute("src"), window.location.href).searchParams.get("context");
      if (fromSrc) return fromSrc;
    } catch (error) {}
  }
  return new URLSearchParams(window.location.search).get("context") || "";
}"""


# The admin tab keeps the token typed into it in a same-site cookie, which the browser then sends
# with the file it uploads to Gradio: the guard lets no upload in without it (qa/web/guard.py).
ADMIN_COOKIE_JS = """(token) => {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  const life = token ? "; Max-Age=28800" : "; Max-Age=0";  // a working day, then typed again
  document.cookie = "%s=" + encodeURIComponent(token || "") + "; path=/; SameSite=Strict" + secure + life;
}""" % ADMIN_COOKIE
# Uploads the admin previewed but never added are deleted by Gradio after an hour (and all of
# them when the app stops; see server.private_upload_dir).
UPLOAD_CACHE_SECONDS = 3600


def markdown(value: str = "", **options) -> gr.Markdown:
    """A gr.Markdown that renders no LaTeX: its text may hold what a URL or a document said
    ($$…$$ would otherwise be typeset, e.g. a large red banner in the widget's heading)."""
    return gr.Markdown(value, latex_delimiters=[], **options)


def link_base(request: gr.Request | None) -> str:
    """This app's own origin, so links in answers work inside a host page (web component) too.
    The scheme is the connection's (uvicorn takes X-Forwarded-Proto from a configured proxy only)
    and the host its Host header, which a proxy passes on (README, "Operating it"): an
    X-Forwarded-Host from anyone would let a client point the links elsewhere."""
    headers = getattr(request, "headers", None) or {}
    host = headers.get("host")
    url = getattr(request, "url", None)
    proto = getattr(url, "scheme", "http") or "http"
    if not host or proto not in ("http", "https"):
        return ""
    return f"{proto}://{host}"


# -- chat ------------------------------------------------------------------------------------------
@dataclass
class Exchange:
    """One question and its final answer; ``message_index`` is the answer's place in the chat."""

    question: str
    answer: dict  # Answer.to_dict()
    message_index: int


def plain_history(exchanges: list[Exchange]) -> list[dict]:
    """The conversation as the answerer wants it (messages format), without the rendered clauses."""
    messages = []
    for exchange in exchanges:
        messages.append({"role": "user", "content": exchange.question})
        messages.append({"role": "assistant", "content": exchange.answer["answer"]})
    return messages


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


class ChatHandlers:
    """The chat's events for one page ("chat" or "widget")."""

    def __init__(self, library: Library, feedback: FeedbackLog, page: str):
        self.library = library
        self.feedback = feedback
        self.page = page

    def coverage(self) -> str:
        """What the documents cover, read from the current index (it changes with an upload)."""
        return coverage_line(self.library.scope.describe())

    def respond(self, message: str, history: list, exchanges: list, context: str, request: gr.Request):
        """Streams the answer into the chat; the last update carries the cited clauses."""
        question = plain_text(message)  # as the answerer reads it: no control characters or lone surrogates
        history = list(history or [])
        if not question:
            yield history, "", exchanges
            return
        history.append({"role": "user", "content": text_block(question, "qa-question-text")})
        if was_rate_limited(request):  # past the client's rate limit (qa/web/guard.py): said, not answered
            yield history + [assistant(esc(TOO_MANY_REQUESTS))], "", exchanges
            return
        base = link_base(request)
        answer = None
        try:
            with self.library.answer_slot():
                stream = self.library.answerer.stream(question, history=plain_history(exchanges), context=context or "")
                for answer in stream:
                    yield history + [assistant(render_answer(answer, base, final=False))], "", exchanges
        except QuestionError as error:
            yield history + [assistant(esc(str(error)))], "", exchanges
            return
        except Exception:  # noqa: BLE001 - the citizen gets a message, the log gets the traceback
            logger.exception("answering failed on the %s page", self.page)
            yield history + [assistant(ANSWER_FAILED + HOTLINE_HANDOFF)], "", exchanges
            return
        if answer is None:
            yield history + [assistant("抱歉，暂时无法回答。" + HOTLINE_HANDOFF)], "", exchanges
            return
        history.append(assistant(render_answer(answer, base)))
        yield history, "", exchanges + [Exchange(question, answer.to_dict(), len(history) - 1)]

    def on_feedback(self, exchanges: list, context: str, data: gr.LikeData) -> None:
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        exchange = next((x for x in exchanges if x.message_index == index), None)
        if exchange is None or data.liked not in (True, False):
            return  # a click on a question, or a rating taken back
        rating = "like" if data.liked else "dislike"
        self.feedback.record(Feedback(rating, exchange.question, exchange.answer, self.page, context or ""))


# The queue's events for programs (gr.api): not the chat's (the guard passes the chat's questions
# past the rate limit, marked, so the chat can say so; a program's are refused with a 429).
PROGRAM_CONCURRENCY_ID = "programs"
# The most clauses a search returns to a program (GET /api/search and the page's "search").
SEARCH_K_MAX = 50


class ProgramHandlers:
    """The main page's events for programs (gradio_client): plain text and structured citations,
    the JSON of POST /api/ask and GET /api/search."""

    def __init__(self, library: Library):
        self.library = library

    def ask(self, question: str, history: list[dict] | None = None, context: str = "") -> dict:
        """The answer to ``question`` (``history``: earlier turns as {"role", "content"}), as
        POST /api/ask gives it: answer, grade, refused, citations."""
        turns = [t for t in history or [] if isinstance(t, dict) and t.get("role") in ("user", "assistant")]
        try:
            return self.library.answer(question, history=turns, context=plain_text(context or "")).to_api()
        except QuestionError as error:
            raise gr.Error(str(error)) from error

    def search(self, query: str, region: str = "", issuer: str = "", document: str = "", year: int | None = None, k: int = 10) -> dict:
        """Clauses for ``query`` with the desk's filters given directly, as GET /api/search gives them."""
        text = plain_text(query)
        settings = self.library.settings
        if not text:
            raise gr.Error("请提供检索内容")
        if len(text) > settings.max_question_chars:
            raise gr.Error(f"检索内容太长，请精简到 {settings.max_question_chars} 字以内")
        filters = Filters(region=region or None, issuer=issuer or None, document=document or None, year=year or None)
        hits = self.library.searcher.search(text, k=max(1, min(int(k or 10), SEARCH_K_MAX)), filters=filters)
        return {"query": text, "hits": [hit.to_api() for hit in hits]}


def chat_panel(handlers: ChatHandlers, context: gr.State, height: int | str, examples: bool) -> None:
    chatbot = gr.Chatbot(
        label="对话",
        # The label sits over the top of the messages and hid the first words of a scrolled answer.
        show_label=False,
        elem_id="qa-chatbot",
        height=height,
        # No Gradio copy button: it copied the message's markup. Each answer has its own
        # 复制回答及出处 button (qa.web.render.render_answer).
        buttons=[],
        # Document text is shown as written: no "$$…$$" typeset as formulas.
        latex_delimiters=[],
        placeholder="请输入您想了解的政策问题，回答会注明所依据的文件和条款。",
    )
    exchanges = gr.State([])
    with gr.Row():
        question = gr.Textbox(
            label="您的问题",
            placeholder="例如：打12345热线反映问题，几天内能办结答复？（按回车发送）",
            elem_id="qa-question",
            scale=5,
            min_width=200,
            max_lines=4,
            autofocus=True,
        )
        send = gr.Button("发送", variant="primary", elem_id="qa-send", scale=1, min_width=72)
    clear = gr.Button("清空对话", size="sm", elem_id="qa-clear")
    if examples:
        gr.Examples(EXAMPLE_QUESTIONS, inputs=[question], label="可以这样问")
    inputs = [question, chatbot, exchanges, context]
    outputs = [chatbot, question, exchanges]
    # Named for gradio_client; programs are better served by the page's "ask" (plain text and
    # structured citations, not the chat's HTML). The button runs the same event, unlisted.
    question.submit(handlers.respond, inputs, outputs, concurrency_id=CHAT_CONCURRENCY_ID, api_name="chat")
    send.click(handlers.respond, inputs, outputs, concurrency_id=CHAT_CONCURRENCY_ID, api_visibility="private")
    clear.click(lambda: ([], "", []), None, outputs, api_visibility="private")
    chatbot.clear(lambda: [], None, exchanges, api_visibility="private")  # the chat's own trash button: forget the turns too
    chatbot.like(handlers.on_feedback, [exchanges, context], None, api_visibility="private")


def chat_event_ids(page: gr.Blocks) -> frozenset[int]:
    """The events (fn_index) of a page that ask the chat a question: the guard lets them through
    past the rate limit, marked, so the chat can say so (qa/web/guard.py)."""
    return frozenset(index for index, fn in page.fns.items() if fn.concurrency_id == CHAT_CONCURRENCY_ID)


def large_text_toggle() -> gr.Checkbox:
    toggle = gr.Checkbox(label="大字模式", value=False, elem_id="qa-large-text", container=False, scale=0, min_width=110)
    toggle.change(None, [toggle], None, js=LARGE_TEXT_JS, api_visibility="private")
    return toggle


# -- the staff search desk and the document browser -----------------------------------------------
class DeskHandlers:
    def __init__(self, library: Library):
        self.library = library

    def filter_choices(self):
        """Fresh choices on every page load (documents may have been added since)."""
        catalog = self.library.catalog
        documents = [(f"{d.date or '—'} {d.title}", d.id) for d in catalog.browse()]
        return (
            gr.update(choices=[("全部", "")] + [(r, r) for r in catalog.regions()]),
            gr.update(choices=[("全部", "")] + [(i, i) for i in catalog.issuers()]),
            gr.update(choices=[("全部", "")] + documents),
            gr.update(choices=[("全部", "")] + [(y, y) for y in catalog.years()]),
            gr.update(choices=[("全部", "")] + [(r, r) for r in catalog.regions()]),
        )

    def search(self, query: str, region: str, issuer: str, document: str, year: str, request: gr.Request) -> str:
        query = plain_text(query)
        settings = self.library.settings
        if not query:
            return '<p class="qa-empty">请输入关键词、问题或条款（例如：12345热线管理办法第二十一条）。</p>'
        if len(query) > settings.max_question_chars:
            return f'<p class="qa-empty">检索内容太长，请精简到 {settings.max_question_chars} 字以内。</p>'
        filters = Filters(
            region=region or None, issuer=issuer or None, document=document or None, year=int(year) if str(year or "").isdigit() else None
        )
        ranking = self.library.searcher.rank(query, k=settings.search_desk_k, filters=filters, judged=False)
        # the reader's best sentence of each clause it read (quotes come best first), unless the
        # clause was looked up by name: its 答复口径 quotes that item, not all five of 第二十一条
        answering: dict[str, str] = {}
        for quote in ranking.quotes:
            if quote.support > 0 and quote.hit.via != "lookup":
                answering.setdefault(quote.hit.article.id, in_context(quote))
        return render_hits(ranking.hits, query, link_base(request), answering)

    def browse(self, region: str):
        catalog = self.library.catalog
        documents = catalog.browse(region or "")
        choices = [(f"{d.date or '—'} {d.title}", d.id) for d in documents]
        return render_document_list(documents, catalog.counts()), gr.update(choices=choices, value=None)

    def open_document(self, doc_id: str) -> str:
        catalog = self.library.catalog
        document = catalog.document(doc_id or "")
        if document is None:
            return ""
        return render_document(document, catalog.articles_by_doc[doc_id])


def search_desk(handlers: DeskHandlers) -> list:
    markdown("检索条款原文：可输入关键词、问题，或直接输入条款（如“12345热线管理办法第二十一条”）。")
    with gr.Row():
        query = gr.Textbox(label="关键词、问题或条款", elem_id="qa-search-query", scale=4)
        button = gr.Button("检索", variant="primary", elem_id="qa-search-button", scale=1)
    with gr.Row():
        # Values outside the choices are taken (the handler reads them as filters): a program calling
        # desk_search passes a region or year directly, without loading the page's choices first.
        direct = {"value": "", "allow_custom_value": True}
        region = gr.Dropdown(label="地区", choices=[("全部", "")], elem_id="qa-filter-region", **direct)
        issuer = gr.Dropdown(label="发文机关", choices=[("全部", "")], elem_id="qa-filter-issuer", **direct)
        document = gr.Dropdown(label="文件", choices=[("全部", "")], elem_id="qa-filter-document", **direct)
        year = gr.Dropdown(label="年份", choices=[("全部", "")], elem_id="qa-filter-year", **direct)
    results = gr.HTML(elem_id="qa-search-results")
    inputs = [query, region, issuer, document, year]
    button.click(handlers.search, inputs, results, api_name="desk_search")
    query.submit(handlers.search, inputs, results, api_visibility="private")
    return [region, issuer, document, year]


def document_browser(handlers: DeskHandlers) -> tuple[gr.Dropdown, gr.HTML, gr.Dropdown]:
    region = gr.Dropdown(label="按地区筛选", choices=[("全部", "")], value="", elem_id="qa-browse-region")
    listing = gr.HTML(elem_id="qa-document-list")
    chosen = gr.Dropdown(label="打开文件", choices=[], elem_id="qa-browse-document")
    reader = gr.HTML(elem_id="qa-document-view")
    region.change(handlers.browse, [region], [listing, chosen], api_name="browse")
    chosen.change(handlers.open_document, [chosen], [reader], api_name="open_document")
    return region, listing, chosen


# -- admin ----------------------------------------------------------------------------------------
class AdminHandlers:
    """Every action checks the token first; a wrong token changes nothing and reveals nothing."""

    DENIED = "管理令牌不正确。"

    def __init__(self, settings: Settings, admin: CorpusAdmin, upload_dir: Path):
        self.admin = admin
        self.settings = settings
        self.upload_dir = upload_dir.resolve()

    def file_choices(self):
        return gr.update(choices=[(f.label(), f.name) for f in self.admin.files()], value=None)

    def files_for(self, token: str):
        """The corpus files for the dropdown once the token is right (Enter, or leaving the field);
        before that the list stays empty, as GET /api/admin/files is without the token."""
        if not token_matches(self.settings, token):
            return gr.update(choices=[], value=None)
        return self.file_choices()

    def _upload(self, token: str, upload: str | None) -> tuple[str, bytes]:
        if not token_matches(self.settings, token):
            raise AdminError(self.DENIED)
        if not upload:
            raise AdminError("请先选择要上传的文件。")
        path = self.uploaded(upload)
        try:
            return path.name, path.read_bytes()
        except OSError as error:
            raise AdminError("上传的文件已不在服务器上，请重新选择文件。") from error

    def uploaded(self, upload: str) -> Path:
        """The upload's path, only if it lies in this app's upload folder: a client can name any
        path in a Gradio file value, and no other file on the server may be read or added."""
        path = Path(upload).resolve()
        if not path.is_relative_to(self.upload_dir) or not path.is_file():
            raise AdminError("只能读取通过本页面上传的文件，请重新选择文件。")
        return path

    def discard(self, upload: str | None) -> None:
        """The upload, once added (or refused), is removed from the server."""
        if upload:
            try:
                self.uploaded(upload).unlink(missing_ok=True)
            except AdminError:
                pass

    def preview(self, token: str, upload: str | None):
        try:
            name, data = self._upload(token, upload)
            found = self.admin.preview(name, data)
        except AdminError as error:
            return f"❌ {error}", ""
        return "预览如下；确认无误后点击“加入资料库”。", render_preview(found.file_name, found.documents, found.articles)

    def add(self, token: str, upload: str | None):
        try:
            name, data = self._upload(token, upload)
            self.discard(upload)
            found, report = self.admin.add(name, data)
        except AdminError as error:
            return f"❌ {error}", "", gr.update()
        message = f"✅ 已加入 {found.file_name}（{len(found.documents)} 份文件，{len(found.articles)} 条条款）。{report.summary()}"
        return message, render_preview(found.file_name, found.documents, found.articles), self.file_choices()

    def remove(self, token: str, name: str | None):
        if not token_matches(self.settings, token):
            return self.DENIED, gr.update()
        if not name:
            return "请先选择要删除的文件。", gr.update()
        try:
            report = self.admin.remove(name)
        except AdminError as error:
            return f"❌ {error}", gr.update()
        return f"✅ 已删除 {name}。{report.summary()}", self.file_choices()

    def rebuild(self, token: str):
        if not token_matches(self.settings, token):
            return self.DENIED
        try:
            return f"✅ {self.admin.rebuild().summary()}"
        except AdminError as error:
            return f"❌ {error}"


def admin_panel(handlers: AdminHandlers | None) -> None:
    if handlers is None:
        markdown("管理功能未启用：没有配置管理令牌。设置环境变量 `QA_ADMIN_TOKEN` 后重新启动即可启用。")
        return
    token = gr.Textbox(label="管理令牌", type="password", elem_id="qa-admin-token")
    upload = gr.File(
        label="上传文件（TXT：UTF-8 或 GBK；PDF、DOCX、HTML、MD）",
        file_types=[".txt", ".md", ".pdf", ".docx", ".html", ".htm"],
        type="filepath",
        elem_id="qa-admin-upload",
    )
    with gr.Row():
        preview = gr.Button("预览", elem_id="qa-admin-preview")
        add = gr.Button("加入资料库并更新索引", variant="primary", elem_id="qa-admin-add")
    status = markdown(elem_id="qa-admin-status")
    found = gr.HTML(elem_id="qa-admin-found")
    with gr.Row():
        files = gr.Dropdown(label="资料库中的文件", choices=[], elem_id="qa-admin-files", scale=4)
        remove = gr.Button("删除所选文件", variant="stop", elem_id="qa-admin-remove", scale=1)
    rebuild = gr.Button("按资料库文件更新索引", elem_id="qa-admin-rebuild")
    preview.click(handlers.preview, [token, upload], [status, found], api_name="admin_preview")
    add.click(handlers.add, [token, upload], [status, found, files], api_name="admin_add")
    remove.click(handlers.remove, [token, files], [status, files], api_name="admin_remove")
    rebuild.click(handlers.rebuild, [token], [status], api_name="admin_rebuild")
    token.change(None, [token], None, js=ADMIN_COOKIE_JS, api_visibility="private")
    token.submit(handlers.files_for, [token], [files], api_name="admin_files")
    token.blur(handlers.files_for, [token], [files])


# -- pages ----------------------------------------------------------------------------------------
def build_main(settings: Settings, library: Library, feedback: FeedbackLog, admin: CorpusAdmin, upload_dir: Path) -> gr.Blocks:
    """The main page; ``upload_dir`` is the folder Gradio puts this process's uploads in."""
    chat = ChatHandlers(library, feedback, page="chat")
    desk = DeskHandlers(library)
    admin_handlers = AdminHandlers(settings, admin, upload_dir) if admin_enabled(settings) else None
    cache = (UPLOAD_CACHE_SECONDS, UPLOAD_CACHE_SECONDS)
    with gr.Blocks(title="政策问答", analytics_enabled=False, delete_cache=cache) as page:
        with gr.Row():
            markdown("# 政策问答\n根据政府公报中的政策文件回答问题，并注明所依据的文件和条款。")
            toggle = large_text_toggle()
        coverage = gr.HTML(elem_id="qa-coverage")
        no_context = gr.State("")
        with gr.Tabs():
            with gr.Tab("政策问答", id="chat", elem_id="qa-tab-chat"):
                chat_panel(chat, no_context, height=520, examples=True)
            with gr.Tab("条款检索（坐席）", id="search", elem_id="qa-tab-search"):
                filters = search_desk(desk)
            with gr.Tab("文件浏览", id="documents", elem_id="qa-tab-documents"):
                browse_region, listing, chosen = document_browser(desk)
            with gr.Tab("管理", id="admin", elem_id="qa-tab-admin"):
                admin_panel(admin_handlers)
        markdown(f"<small>回答依据已公开的政策文件，仅供参考。{HOTLINE_HANDOFF}</small>")
        page.load(None, None, [toggle], js=LARGE_TEXT_SAVED_JS, api_visibility="private")
        page.load(chat.coverage, None, coverage, api_name="coverage")
        page.load(desk.filter_choices, None, filters + [browse_region], api_name="filter_choices")
        page.load(desk.browse, [browse_region], [listing, chosen], api_visibility="private")
        programs = ProgramHandlers(library)
        gr.api(programs.ask, api_name="ask", concurrency_id=PROGRAM_CONCURRENCY_ID)
        gr.api(programs.search, api_name="search_clauses", concurrency_id=PROGRAM_CONCURRENCY_ID)
    return with_queue(page, settings)


def build_widget(library: Library, feedback: FeedbackLog) -> gr.Blocks:
    chat = ChatHandlers(library, feedback, page="widget")
    with gr.Blocks(title="政策问答", analytics_enabled=False, fill_height=True) as page:
        context = gr.State("")
        from_page = gr.Textbox(visible=False)
        with gr.Row():
            note = markdown(widget_heading(), elem_id="qa-widget-title")
            toggle = large_text_toggle()
        chat_panel(chat, context, height=360, examples=False)
        coverage = gr.HTML(elem_id="qa-coverage")
        markdown(f"<small>回答依据已公开的政策文件，仅供参考。{HOTLINE_HANDOFF}</small>")
        page.load(chat.coverage, None, coverage, api_name="coverage")

        def take_context(given: str, request: gr.Request):
            params = dict(getattr(request, "query_params", None) or {})
            value = plain_text(given or params.get("context") or "")[:CONTEXT_MAX_CHARS]
            return value, widget_heading(value)

        page.load(take_context, [from_page], [context, note], js=PAGE_CONTEXT_JS, api_visibility="private")
        page.load(None, None, [toggle], js=LARGE_TEXT_SAVED_JS, api_visibility="private")
    return with_queue(page, library.settings)


def with_queue(page: gr.Blocks, settings: Settings) -> gr.Blocks:
    """The page's Gradio queue: ``gradio_concurrency`` events of each kind at once (answers are CPU
    bound; see qa/config.py), at most ``gradio_queue_max_size`` waiting, past which a visitor is
    told the queue is full instead of waiting ever longer; and at most ``gradio_sessions``
    conversations kept in memory (read by the queue's app, so set first)."""
    page.state_session_capacity = settings.gradio_sessions
    # api_open=False: an event is run only through the queue (and so its limits), never by a
    # direct POST to /gradio_api/api/<name>.
    return page.queue(default_concurrency_limit=settings.gradio_concurrency, max_size=settings.gradio_queue_max_size, api_open=False)
