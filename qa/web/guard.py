"""What keeps one client from taking the service from everyone else: a request-rate limit per
client address and a size limit on request bodies. One plain ASGI middleware, in process: the app
runs as one process, so a token bucket per address in memory is all the state a limit needs.

Default deny: every request counts against its client's rate, and every body against the size
limit, unless it is on the short exempt list below (GETs a page makes many of: the page shells,
static files, the queue's event stream and heartbeats). Gradio adds routes with every release
(monitoring, streams, reset, cancel…); a list of what to limit would miss the next one.

Uploads to Gradio (``/gradio_api/upload``, the admin tab's file) are the one route that writes to
disk, so they need the admin token too: the admin tab keeps the token the operator typed in a
same-site cookie (:data:`ADMIN_COOKIE`), which the browser sends with the upload.

A chat question past the limit is not refused with a 429 (Gradio's page would show it as an error
box): it goes on to the chat marked as limited (:func:`was_rate_limited`), which says so as an
answer, without answering. Such notices have a small bucket of their own (NOTICE_BURST at once,
then NOTICES_PER_MINUTE); past it a chat question gets the 429 too, so a flood of questions cannot
fill the queue with notices.

The client address is the connection's. uvicorn replaces it with ``X-Forwarded-For`` only when the
connection comes from a proxy named in ``forwarded_allow_ips`` (none by default; see
:func:`qa.web.server.uvicorn_config`), so a visitor cannot pick a new address per request to
escape the limit.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote

from fastapi import HTTPException

from qa.config import Settings
from qa.web.library import token_matches

# The exempt list: GETs (and HEADs) a page makes many of, cheap to answer. Under "/" and under
# "/widget/": the page itself, its configuration (which the web component fetches), its static
# files, Gradio's web-component script, and the queue's event stream and heartbeats (one open
# stream per event a visitor runs).
EXEMPT_GET = re.compile(
    r"^(?:/widget)?/(?:"
    r"|config/?|gradio\.js|favicon\.ico|theme\.css|gradio_api/theme\.css"
    r"|(?:gradio_api/)?(?:assets|static|svelte)/.*"
    r"|gradio_api/queue/data|gradio_api/heartbeat/.*"
    r")$"
)
# The requests that change something (POST, PUT, DELETE…) the app answers at all: its JSON API and
# the Gradio routes its pages and gradio_client use. Gradio's others (process_recording, which
# writes a file to /tmp and runs ffmpeg on it, component_server, vibe-edit, login, run-history…)
# are 404: nothing here uses them.
WRITE_ROUTES = re.compile(r"^(?:/api/.*|/v1/chat/completions|(?:/widget)?/gradio_api/(?:queue/join|upload|cancel|reset|call/.*)/?)$")
# The long-lived GETs of the exempt list (the queue's event stream, heartbeats): open at once per
# client at most this many, so one address cannot hold every connection (settings.max_connections).
STREAM_PATHS = re.compile(r"^(?:/widget)?/gradio_api/(?:queue/data|heartbeat/.*)$")
# Headers Gradio reads to build its links, which only a configured proxy may set; uvicorn has
# already applied a trusted proxy's X-Forwarded-Proto to the request's scheme by then.
UNTRUSTED_HEADERS = (b"x-forwarded-host", b"x-forwarded-proto", b"x-gradio-server")
UPLOAD_PATHS = ("/api/admin/", "/gradio_api/upload")
GRADIO_UPLOAD = "/gradio_api/upload"
# The cookie the admin tab sets from its token field (see ui.ADMIN_COOKIE_JS) for Gradio uploads.
ADMIN_COOKIE = "qa_admin_token"
UPLOAD_DENIED = "上传文件需要管理令牌：请在“管理”页填写正确的管理令牌后再上传。"
UPLOAD_OFF = "管理功能未启用，不接受上传。"
# Multipart framing around an uploaded file (boundaries, part headers): generous, it is small.
MULTIPART_OVERHEAD = 64 * 1024
# Addresses remembered at most; the least recently seen are forgotten first (a forgotten address
# starts again with a full bucket, which is what it would have after a quiet spell anyway).
MAX_TRACKED_CLIENTS = 10_000
GRADIO_JOIN = "/gradio_api/queue/join"
# Chat notices of the limit a client may get: a few at once, then one every two seconds.
NOTICE_BURST = 3
NOTICES_PER_MINUTE = 30
# The request state key (scope["state"]) that marks a chat question past the limit.
RATE_LIMITED_STATE = "qa_rate_limited"
TOO_MANY_REQUESTS = "请求过于频繁，请稍后再试。"
NOT_FOUND = "没有这个接口。"
TOO_LARGE = "请求内容太大（上限 {limit}）。"


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, then ``per_minute`` a minute."""

    def __init__(self, per_minute: int, burst: int, max_clients: int = MAX_TRACKED_CLIENTS):
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait_needed(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and takes a token), else the seconds until it may."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.pop(client, None) or Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets[client] = bucket  # most recently seen last
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def is_exempt(method: str, path: str) -> bool:
    """Whether a request is on the exempt list (not rate limited); every other one is."""
    return method in ("GET", "HEAD") and EXEMPT_GET.match(path) is not None


def is_gradio_upload(path: str) -> bool:
    return path.rstrip("/").endswith(GRADIO_UPLOAD)


def bearer_token(headers) -> str | None:
    """The token of ``Authorization: Bearer …``; ``headers`` is any mapping of lower-case names
    (Starlette's included)."""
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def header_token(headers) -> str | None:
    """The admin token a request's headers carry (``Authorization: Bearer …`` or ``X-Admin-Token``)."""
    scheme = (headers.get("authorization") or "").partition(" ")[0]
    return bearer_token(headers) if scheme.lower() == "bearer" else headers.get("x-admin-token") or None


def upload_token(scope) -> str | None:
    """The admin token an upload carries: in its headers, or the admin tab's cookie."""
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers") or []}
    given = header_token(headers)
    if given:
        return given
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == ADMIN_COOKIE:
            return unquote(value)
    return None


def admin_token_given(scope, settings: Settings) -> bool:
    return token_matches(settings, upload_token(scope))


def gradio_page(path: str) -> str:
    """The page a Gradio route belongs to: "/widget" for the widget's, "/" for the main app's."""
    return "/widget" if "/widget/gradio_api/" in path else "/"


def chat_event(body: bytes) -> int | None:
    """The event (fn_index) a Gradio queue join asks to run, None when the body says none."""
    try:
        event = json.loads(body).get("fn_index")
    except (ValueError, AttributeError):
        return None
    return event if isinstance(event, int) and not isinstance(event, bool) else None


def was_rate_limited(request) -> bool:
    """Whether the guard let this request (a chat question; a Starlette or gr.Request) through
    past its client's rate limit, for the chat to say so instead of answering."""
    state = getattr(request, "state", None)
    return bool(getattr(state, RATE_LIMITED_STATE, False)) if state is not None else False


def body_limit(path: str, settings: Settings) -> int:
    if path.startswith(UPLOAD_PATHS[0]) or is_gradio_upload(path):
        return settings.max_upload_bytes + MULTIPART_OVERHEAD
    return settings.max_request_bytes


def readable_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.0f} MB"
    return f"{math.ceil(size / 1024)} KB"


class BodyTooLarge(HTTPException):
    """Raised inside the app's receive() once a body without Content-Length passes the limit; an
    HTTPException, so FastAPI's body parsing passes it on as the 413 it is."""

    def __init__(self, detail: str):
        super().__init__(413, detail, headers={"Connection": "close"})


# OpenAI's error types by status, for the /v1 API's clients (qa/web/openai_api.py)
OPENAI_ERROR_TYPES = {404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}


async def send_json(send, status: int, detail: str, headers: dict[str, str] | None = None, *, path: str = "") -> None:
    """A JSON error as the API gives it ({"detail": …}), or under /v1/ as OpenAI's ({"error": {…}})."""
    if path.startswith("/v1/"):
        shaped = {"error": {"message": detail, "type": OPENAI_ERROR_TYPES.get(status, "invalid_request_error"), "code": None}}
    else:
        shaped = {"detail": detail}
    body = json.dumps(shaped, ensure_ascii=False).encode("utf-8")
    raw = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: 429 (with Retry-After) past a client's rate, 413 past the body limit.

    ``chat_events`` maps a Gradio page ("/", "/widget"; see :func:`gradio_page`) to the events
    (fn_index) of its chat's questions, which past the limit are passed on marked instead; the
    app fills it in once its pages are built."""

    def __init__(self, app, settings: Settings, chat_events: dict[str, frozenset[int]] | None = None):
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.notices = RateLimiter(NOTICES_PER_MINUTE, NOTICE_BURST)
        self.chat_events = chat_events if chat_events is not None else {}
        self.streams: dict[str, int] = {}  # open event streams and heartbeats per client

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        method = scope.get("method", "")
        if scope["type"] != "http" or method == "OPTIONS":
            await self.app(scope, receive, send)
            return
        scope["headers"] = [(k, v) for k, v in scope.get("headers") or [] if k.lower() not in UNTRUSTED_HEADERS]
        if method not in ("GET", "HEAD") and not WRITE_ROUTES.match(path):
            await send_json(send, 404, NOT_FOUND, {"Connection": "close"}, path=path)
            return
        limit = body_limit(path, self.settings)
        too_large = TOO_LARGE.format(limit=readable_size(limit))
        client = (scope.get("client") or ("unknown", 0))[0]
        if is_exempt(method, path):
            if STREAM_PATHS.match(path):
                await self._stream(scope, receive, send, client, limit, too_large)
            else:
                await self._counted(scope, receive, send, limit, too_large)
            return
        wait = self.limiter.wait_needed(client)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if wait > 0 and not (path.endswith(GRADIO_JOIN) and self.chat_events.get(gradio_page(path))):
            await send_json(send, 429, TOO_MANY_REQUESTS, {"Retry-After": str(math.ceil(wait)), "Connection": "close"}, path=path)
            return
        if is_gradio_upload(path) and not admin_token_given(scope, self.settings):
            status, detail = (403, UPLOAD_OFF) if not self.settings.admin_token else (401, UPLOAD_DENIED)
            await send_json(send, status, detail, {"Connection": "close"})
            return
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, too_large, {"Connection": "close"}, path=path)
            return
        if wait > 0:
            await self._limited_join(scope, receive, send, client, wait, limit, too_large)
            return
        await self._counted(scope, receive, send, limit, too_large)

    async def _stream(self, scope, receive, send, client: str, limit: int, too_large: str) -> None:
        """An event stream or heartbeat, while its client holds fewer than ``max_streams_per_client``."""
        if self.streams.get(client, 0) >= self.settings.max_streams_per_client:
            await send_json(send, 429, TOO_MANY_REQUESTS, {"Retry-After": "5", "Connection": "close"})
            return
        self.streams[client] = self.streams.get(client, 0) + 1
        try:
            await self._counted(scope, receive, send, limit, too_large)
        finally:
            self.streams[client] -= 1
            if not self.streams[client]:
                del self.streams[client]

    async def _limited_join(self, scope, receive, send, client: str, wait: float, limit: int, too_large: str) -> None:
        """A queue join past the limit: a chat question goes on marked (while the client's notices
        last; see the module's docstring), anything else is refused with the 429."""
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await send_json(send, 413, too_large, {"Connection": "close"})
                return
            if not message.get("more_body"):
                break
        if chat_event(body) not in self.chat_events.get(gradio_page(scope["path"]), ()) or self.notices.wait_needed(client) > 0:
            await send_json(send, 429, TOO_MANY_REQUESTS, {"Retry-After": str(math.ceil(wait)), "Connection": "close"})
            return
        # A fresh state dict for this request (the server's may be shared with others).
        scope["state"] = {**(scope.get("state") or {}), RATE_LIMITED_STATE: True}
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _counted(self, scope, receive, send, limit: int, too_large: str) -> None:
        """Runs the app, counting body bytes as they arrive (a chunked body declares no length)."""
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(too_large)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_json(send, 413, too_large, {"Connection": "close"}, path=scope.get("path", ""))
