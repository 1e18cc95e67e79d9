"""The web app attacked on 127.0.0.1 as an outsider would (issue 15): every route under the limits
unless exempt, no anonymous writes, no server file read through Gradio, forwarded headers
believed from configured proxies only, no LaTeX from a URL, security headers, slow clients cut
off. Each test runs against the real app served by uvicorn with the settings app.py uses."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("gradio")

from fixtures_web import ADMIN_TOKEN, corpus_state, serve_again  # noqa: E402
from qa.config import PROJECT_ROOT  # noqa: E402
from qa.loadtest import find_chat_endpoint, gradio_event  # noqa: E402
from qa.web.guard import ADMIN_COOKIE  # noqa: E402

pytest_plugins = ["fixtures_web"]


def citizen(address: str) -> dict:
    return {"X-Forwarded-For": address}  # the fixture app trusts 127.0.0.1 as its proxy


@pytest.fixture(scope="module")
def tight(web):
    """The loaded index served with a burst of 3 requests, then 1 a minute, and 4 KB bodies."""
    running = serve_again(web, rate_limit_per_minute=1, rate_limit_burst=3, max_request_bytes=4096)
    yield running
    running.stop()


# Routes that were not limited before (the limits listed /api/*, queue/join, run/, call/ and upload).
LIMITED_ROUTES = [
    ("POST", "/gradio_api/reset"),
    ("POST", "/gradio_api/cancel"),
    ("GET", "/gradio_api/info"),
    ("GET", "/gradio_api/monitoring"),
    ("GET", "/gradio_api/upload_progress"),
    ("GET", "/widget/gradio_api/info"),
    ("GET", "/doc/no-such-document"),
    ("GET", "/some/path/nobody/listed"),
]
# Gradio routes that change something and that nothing here uses: not answered at all.
UNUSED_WRITES = [
    "/gradio_api/api/search", "/widget/gradio_api/api/search", "/gradio_api/run/search",
    "/gradio_api/process_recording", "/gradio_api/component_server", "/gradio_api/stream/some-event",
    "/gradio_api/vibe-edit", "/login", "/gradio_api/run-history/connect", "/gradio_api/profiling/clear",
]


def test_every_route_not_exempt_counts_against_the_rate_limit(tight):
    with httpx.Client(base_url=tight.url, timeout=60) as session:
        for n, (method, path) in enumerate(LIMITED_ROUTES, 1):
            who = citizen(f"10.15.1.{n}")
            statuses = [session.request(method, path, headers=who, json={}).status_code for _ in range(4)]
            assert 429 not in statuses[:3] and statuses[3] == 429, (path, statuses)
        # The exempt list: the pages, their configuration and scripts stay available past the limit.
        for path in ("/", "/widget/", "/config", "/widget/config", "/gradio.js"):
            assert session.get(path, headers=who).status_code == 200, path


def test_gradio_writes_nothing_uses_are_not_answered_and_events_run_only_through_the_queue(web):
    with httpx.Client(base_url=web.url, timeout=60) as session:
        for path in UNUSED_WRITES:
            response = session.post(path, json={"data": ["热线", "", "", "", ""]})
            assert response.status_code == 404 and response.json()["detail"] == "没有这个接口。", path
        recording = session.post("/gradio_api/process_recording", files={"video": ("a.webm", b"x" * 1000)})
        assert recording.status_code == 404


def test_one_client_cannot_hold_every_connection_with_event_streams(web):
    """Heartbeats stream for as long as the page is open: past max_streams_per_client (here 3) at
    once, one address gets 429 while another still gets its stream."""
    few = serve_again(web, max_streams_per_client=3)

    async def run():
        async with httpx.AsyncClient(base_url=few.url, timeout=30) as session:
            opened = []
            for n in range(3):
                request = session.build_request("GET", f"/gradio_api/heartbeat/session{n}", headers=citizen("10.15.4.1"))
                opened.append(await session.send(request, stream=True))
            fourth = await session.get("/gradio_api/heartbeat/session9", headers=citizen("10.15.4.1"))
            other = await session.send(session.build_request("GET", "/gradio_api/heartbeat/x", headers=citizen("10.15.4.2")), stream=True)
            statuses = [r.status_code for r in opened], fourth.status_code, other.status_code
            for response in opened + [other]:
                await response.aclose()
            return statuses

    try:
        opened, fourth, other = asyncio.run(run())
    finally:
        few.stop()
    assert opened == [200, 200, 200] and fourth == 429 and other == 200


def test_bodies_past_the_limit_are_refused_on_every_route(tight):
    big = b"x" * 200_000
    with httpx.Client(base_url=tight.url, timeout=60) as session:
        for n, path in enumerate(("/gradio_api/reset", "/gradio_api/cancel", "/widget/gradio_api/reset", "/api/ask")):
            response = session.post(path, content=big, headers=citizen(f"10.15.2.{n}") | {"content-type": "application/json"})
            assert response.status_code == 413 and "请求内容太大" in response.json()["detail"], path
            assert len(response.content) < 1000  # nothing of the body echoed back


def upload(session: httpx.Client, headers: dict, name: str = "通知.txt", data: bytes = "第一条 测试。".encode()) -> httpx.Response:
    return session.post("/gradio_api/upload", files={"files": (name, data, "text/plain")}, headers=headers)


def test_gradio_uploads_need_the_admin_token(web):
    upload_dir = Path(web.app.state.upload_dir)
    before = sorted(upload_dir.rglob("*"))
    with httpx.Client(base_url=web.url, timeout=60) as session:
        assert upload(session, {}).status_code == 401
        assert upload(session, {"Cookie": f"{ADMIN_COOKIE}=guess"}).status_code == 401
        assert "管理令牌" in upload(session, {}).json()["detail"]
        assert sorted(upload_dir.rglob("*")) == before  # nothing written
        accepted = upload(session, {"Cookie": f"{ADMIN_COOKIE}={ADMIN_TOKEN}"})
        assert accepted.status_code == 200
        stored = Path(accepted.json()[0])
        assert stored.is_file() and stored.resolve().is_relative_to(upload_dir.resolve())
        stored.unlink()


def test_without_admin_no_upload_is_accepted_at_all(web):
    off = serve_again(web, admin_token="")
    try:
        with httpx.Client(base_url=off.url, timeout=60) as session:
            refused = upload(session, {"Cookie": f"{ADMIN_COOKIE}={ADMIN_TOKEN}"})
            assert refused.status_code == 403 and "未启用" in refused.json()["detail"]
    finally:
        off.stop()


def file_value(path: Path | str, name: str) -> dict:
    return {"path": str(path), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def test_the_admin_tab_reads_only_files_uploaded_to_it_and_removes_them_once_added(web, tmp_path):
    """A Gradio file value names a path; one outside this app's upload folder (the README, a
    server file) is refused. An uploaded file, once added, is gone from the server."""
    before = corpus_state(web.settings)
    law = "关于加强测试工作的通知\n\n第一条 为了规范上传测试，制定本通知。\n\n第二条 本通知自发布之日起施行。\n".encode()

    async def run():
        async with httpx.AsyncClient(base_url=web.url, timeout=120) as session:
            preview = await find_chat_endpoint(session, "/", "admin_preview")
            add = await find_chat_endpoint(session, "/", "admin_add")
            read = []
            secret = tmp_path / "secret.txt"
            secret.write_text("第一条 服务器上的文件。", encoding="utf-8")
            for path in (PROJECT_ROOT / "README.md", secret, web.settings.corpus_dir / before[0][0]):
                status, message = await gradio_event(session, preview, [ADMIN_TOKEN, file_value(path, "通知.md")], {})
                read.append((status, message))
            stored = (await session.post("/gradio_api/upload", files={"files": ("上传测试通知.txt", law, "text/plain")},
                                          headers={"Cookie": f"{ADMIN_COOKIE}={ADMIN_TOKEN}"})).json()[0]
            status, added = await gradio_event(session, add, [ADMIN_TOKEN, file_value(stored, "上传测试通知.txt")], {})
            return read, stored, added["output"]["data"]

    read, stored, added = asyncio.run(run())
    for status, message in read:
        # Refused by Gradio (an error event, no output) or by the admin tab's own check.
        assert status == 200 and (message["success"] is False or "只能读取通过本页面上传的文件" in message["output"]["data"][0]), message
        assert "服务器上的文件" not in str(message) and "政策问答" not in str(message)
    assert "已加入" in added[0], added
    assert not Path(stored).exists()
    try:
        assert "上传测试通知.txt" in corpus_state(web.settings)[0]
    finally:
        with httpx.Client(base_url=web.url, timeout=120) as session:
            session.delete("/api/admin/files/上传测试通知.txt", headers={"X-Admin-Token": ADMIN_TOKEN}).raise_for_status()
    assert corpus_state(web.settings)[0] == before[0]


def test_forwarded_headers_are_believed_only_from_a_configured_proxy(web):
    """Without forwarded_allow_ips (the default) a client's X-Forwarded-For is not its address
    (one bucket however many it names) and X-Forwarded-Host never steers the answer's links."""
    direct = serve_again(web, forwarded_allow_ips="", rate_limit_per_minute=1, rate_limit_burst=3)
    try:
        with httpx.Client(base_url=direct.url, timeout=60) as session:
            statuses = [session.get("/api/documents", headers=citizen(f"10.15.3.{n}")).status_code for n in range(5)]
        assert statuses == [200, 200, 200, 429, 429]

        async def ask():
            async with httpx.AsyncClient(base_url=web.url, timeout=120) as session:
                chat = await find_chat_endpoint(session, "/")
                headers = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
                _, message = await gradio_event(session, chat, ["12345热线的通话录音保存多久？", []] + [None] * (chat.inputs - 2), headers)
                return message

        text = str(asyncio.run(ask())["output"]["data"])
        assert "/doc/" in text and "evil.example" not in text
        with httpx.Client(base_url=web.url, timeout=60) as session:  # nor Gradio's own links
            config = session.get("/config", headers={"X-Forwarded-Host": "evil.example", "X-Gradio-Server": "https://evil.example"})
            assert "evil.example" not in config.text
    finally:
        direct.stop()


def test_no_markdown_on_the_pages_typesets_latex(web):
    """The widget's heading shows the host page's ?context=: $$\\Huge…$$ must stay text."""
    with httpx.Client(base_url=web.url, timeout=60) as session:
        for page in ("/config", "/widget/config"):
            components = session.get(page).json()["components"]
            shown = [c for c in components if c.get("type") in ("markdown", "chatbot")]
            assert shown and all(c["props"].get("latex_delimiters") == [] for c in shown), page


def test_pages_and_api_carry_the_security_headers(web):
    with httpx.Client(base_url=web.url, timeout=60) as session:
        for path in ("/", "/widget/", "/api/documents"):
            headers = session.get(path).headers
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "strict-origin-when-cross-origin", path
            policy = headers["content-security-policy"]
            assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors" in policy, path


def test_a_client_trickling_its_request_head_is_cut_off(web):
    """30 connections sending a header byte every 0.3 s are closed once head_timeout_s (here 1 s)
    has passed, while a normal request is served meanwhile."""
    quick = serve_again(web, head_timeout_s=1.0)
    host, port = quick.url.removeprefix("http://").split(":")
    sockets = []
    try:
        for _ in range(30):
            connection = socket.create_connection((host, int(port)), timeout=5)
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(connection)
        with httpx.Client(base_url=quick.url, timeout=10) as session:
            assert session.get("/api/documents").status_code == 200
        deadline = time.monotonic() + 4.0
        closed = set()
        while time.monotonic() < deadline and len(closed) < len(sockets):
            for n, connection in enumerate(sockets):
                if n in closed:
                    continue
                try:
                    connection.sendall(b"a")
                    connection.settimeout(0.01)
                    if connection.recv(1) == b"":
                        closed.add(n)
                except socket.timeout:
                    pass
                except OSError:
                    closed.add(n)
            time.sleep(0.3)
        assert len(closed) == len(sockets)
    finally:
        for connection in sockets:
            connection.close()
        quick.stop()


def test_an_upload_that_takes_long_to_read_holds_up_no_one_and_is_stopped(web):
    """A DOCX of 10 MB of XML (17 s to read on 2 cores) is read in a child process stopped at the
    time limit (here 3 s), while other requests are answered as usual."""
    from test_loaders import notice_docx, rezipped

    padding = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 300_000
    heavy = rezipped(notice_docx(), lambda name, data: data.replace(b"</w:body>", padding + b"</w:body>") if name == "word/document.xml" else data)
    slow = serve_again(web, parse_timeout_s=3.0)
    before = corpus_state(web.settings)

    async def run():
        async with httpx.AsyncClient(base_url=slow.url, timeout=60) as session:
            upload = asyncio.create_task(session.post("/api/admin/preview", headers={"X-Admin-Token": ADMIN_TOKEN},
                                                      files={"file": ("复杂.docx", heavy, "application/octet-stream")}))
            await asyncio.sleep(0.5)
            waits = []
            for _ in range(5):
                started = time.monotonic()
                assert (await session.get("/api/documents")).status_code == 200
                waits.append(time.monotonic() - started)
            return await upload, waits

    try:
        response, waits = asyncio.run(run())
    finally:
        slow.stop()
    assert response.status_code == 400 and "读取超过 3 秒仍未完成" in response.json()["detail"]
    assert max(waits) < 2.0, waits
    assert corpus_state(web.settings) == before


def test_a_file_value_given_as_a_url_is_never_fetched(web):
    """Gradio fetches a file value whose path is a URL (any event, no token) into memory and the
    upload folder; the app refuses instead. (Gradio itself refuses private addresses, so what a
    public URL would do is checked on the function Gradio calls.)"""
    from gradio import processing_utils

    from qa.web.server import URL_FILES_REFUSED

    with pytest.raises(Exception, match=URL_FILES_REFUSED):
        asyncio.run(processing_utils.async_ssrf_protected_download("https://www.example.gov.cn/big.zip", str(web.app.state.upload_dir)))

    async def run():
        async with httpx.AsyncClient(base_url=web.url, timeout=60) as session:
            preview = await find_chat_endpoint(session, "/", "admin_preview")
            return await gradio_event(session, preview, [ADMIN_TOKEN, file_value("https://www.example.gov.cn/通知.txt", "通知.txt")], {})

    status, message = asyncio.run(run())
    assert status == 200 and message["success"] is False
