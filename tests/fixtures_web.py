"""Shared fixtures for the web tests: the whole app served over HTTP on 127.0.0.1, once per session.

It serves a private copy of the seed corpus and its index (the admin tests add and remove files),
with an admin token, a data folder of its own and, as the allowed embedding origin, a second local
server that serves examples/ (the example host page) from another port, i.e. another origin.

Used via ``pytest_plugins = ["fixtures_web"]`` in the test modules.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa.config import PROJECT_ROOT, Settings, load_settings

ADMIN_TOKEN = "test-admin-token-5c1f"
EXAMPLES_DIR = PROJECT_ROOT / "examples"
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningApp:
    url: str  # http://127.0.0.1:PORT
    settings: Settings
    app: object  # the FastAPI app; app.state.library is what it serves from
    server: object  # the uvicorn.Server

    def stop(self) -> None:
        self.server.should_exit = True


def serve(app, port: int) -> object:
    """Runs the app under uvicorn in a background thread; returns once it accepts connections."""
    import uvicorn

    from qa.web.server import uvicorn_config

    server = uvicorn.Server(uvicorn_config(app, app.state.settings, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the web app did not start on port {port}")
        time.sleep(0.05)
    return server


def serve_again(web: RunningApp, **changes) -> RunningApp:
    """The running app's loaded index served once more, on a free port, with settings changed
    (a stingier rate limit); ``stop()`` it when done."""
    from dataclasses import replace

    from qa.web import create_app

    settings = replace(web.settings, **changes)
    app = create_app(settings, web.app.state.library)
    port = free_port()
    return RunningApp(f"http://127.0.0.1:{port}", settings, app, serve(app, port))


@dataclass
class HostSite:
    url: str  # the example host page's origin, e.g. http://127.0.0.1:PORT


@pytest.fixture(scope="session")
def host_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def host_site(host_port):
    """examples/ served by a plain static server: the government site that embeds the widget."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(EXAMPLES_DIR))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", host_port), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="host-site", daemon=True)
    thread.start()
    yield HostSite(f"http://127.0.0.1:{host_port}")
    httpd.shutdown()


@pytest.fixture(scope="session")
def web_settings(settings, tmp_path_factory, host_port) -> Settings:
    """The seed corpus and index (built by the seed tests, or now: incremental, instant when
    current), copied so the admin tests can change them."""
    from qa.index import build_index

    build_index(settings, progress=False)
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(settings.corpus_dir, root / "corpus")
    shutil.copytree(settings.index_dir, root / "index")
    return load_settings(
        corpus_dir=root / "corpus",
        index_dir=root / "index",
        data_dir=root / "data",
        admin_token=ADMIN_TOKEN,
        allowed_frame_ancestors=f"http://127.0.0.1:{host_port}",
        # Every test request comes from 127.0.0.1, far faster than a citizen asks: the limits have
        # tests of their own (tests/test_web_security.py), on an app of their own.
        rate_limit_per_minute=0,
        # The tests play the reverse proxy: each says which citizen it is with X-Forwarded-For.
        forwarded_allow_ips="127.0.0.1",
    )


@pytest.fixture(scope="session")
def web(web_settings) -> RunningApp:
    from fixtures_index import single_torch_thread

    from qa.web import create_app

    with single_torch_thread():
        app = create_app(web_settings)
        app.state.library.answerer  # load it now, not inside the first test's timeout
        port = free_port()
        server = serve(app, port)
        running = RunningApp(f"http://127.0.0.1:{port}", web_settings, app, server)
        yield running
        running.stop()


def corpus_state(settings: Settings) -> tuple[list[str], str]:
    """The corpus file names and the index version in use: what a refused change must not touch."""
    names = sorted(p.name for p in Path(settings.corpus_dir).iterdir())
    return names, (Path(settings.index_dir) / "CURRENT").read_text(encoding="utf-8")
