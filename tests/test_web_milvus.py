"""The whole web app with ``vector_backend = "milvus"`` (Milvus Lite, a file under tmp_path): the
JSON API, the chat through the Gradio queue, the document list, and an admin upload that becomes
searchable and a removal that makes it unsearchable again, all through the backend the settings
chose (qa/searchers.py), as on a cluster."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

pytest.importorskip("langchain_milvus")
pytest.importorskip("milvus_lite")
pytest.importorskip("gradio")

from fixtures_index import DOGS, DOGS_FILE, HOTLINE_FILE, QUESTIONS, single_torch_thread, write_corpus  # noqa: E402
from fixtures_web import free_port, serve  # noqa: E402
from qa.config import load_settings  # noqa: E402
from qa.loadtest import final_chat_text, find_chat_endpoint, gradio_event  # noqa: E402
from qa.milvus_store import MilvusSearcher  # noqa: E402
from qa.searchers import build_for  # noqa: E402

pytest_plugins = ["fixtures_index"]
TOKEN = "milvus-admin-token"


@pytest.fixture(scope="module")
def milvus_web(tmp_path_factory, small_embeddings):
    from qa.web import create_app
    from qa.web.library import Library
    from qa.searchers import open_searcher

    root = tmp_path_factory.mktemp("milvus-web")
    settings = dataclasses.replace(
        load_settings(corpus_dir=write_corpus(root / "corpus"), index_dir=root / "index", data_dir=root / "data"),
        vector_backend="milvus", milvus_uri=str(root / "milvus.db"), admin_token=TOKEN, rate_limit_per_minute=0,
    )
    with single_torch_thread():
        build_for(settings, small_embeddings, progress=False)
        app = create_app(settings, Library(settings, open_searcher(settings, embeddings=small_embeddings)))
        port = free_port()
        server = serve(app, port)
        yield f"http://127.0.0.1:{port}", app, settings
        server.should_exit = True


def test_the_web_app_serves_from_milvus(milvus_web):
    url, app, settings = milvus_web
    assert isinstance(app.state.library.searcher.inner, MilvusSearcher)
    question, source_file, _, quote = QUESTIONS[0]
    with httpx.Client(base_url=url, timeout=120) as client:
        documents = client.get("/api/documents").json()["documents"]
        assert {d["source_file"] for d in documents} >= {HOTLINE_FILE}
        hits = client.get("/api/search", params={"q": question, "k": 3}).json()["hits"]
        assert any(quote in hit["text"] for hit in hits)
        answer = client.post("/api/ask", json={"question": question}).json()
        assert answer["grade"] == "answer" and quote in answer["citations"][0]["text"]
        assert client.get(f"/doc/{documents[0]['id']}").status_code == 200

    async def chat():
        async with httpx.AsyncClient(base_url=url, timeout=120) as session:
            endpoint = await find_chat_endpoint(session, "/")
            _, message = await gradio_event(session, endpoint, [question, []] + [None] * (endpoint.inputs - 2), {})
            return final_chat_text(message)

    assert "5个工作日" in asyncio.run(chat())


def test_an_admin_upload_becomes_searchable_on_milvus_and_a_removal_unsearchable(milvus_web):
    url, app, settings = milvus_web
    admin = {"X-Admin-Token": TOKEN}
    question = "携犬出户时要给狗拴犬链吗？"
    with httpx.Client(base_url=url, timeout=300) as client:
        def found() -> bool:
            hits = client.get("/api/search", params={"q": question, "k": 3}).json()["hits"]
            return any(hit["source_file"] == DOGS_FILE for hit in hits)

        assert not found()
        added = client.post("/api/admin/files", headers=admin, files={"file": (DOGS_FILE, DOGS.encode("gbk"), "text/plain")})
        assert added.status_code == 200, added.text
        assert found()
        answer = client.post("/api/ask", json={"question": question}).json()
        assert any("束犬链" in c["text"] for c in answer["citations"]), answer
        assert client.delete(f"/api/admin/files/{DOGS_FILE}", headers=admin).status_code == 200
        assert not found()
    assert not (settings.corpus_dir / DOGS_FILE).exists()
