"""The web app over HTTP on 127.0.0.1: the JSON API, the document pages, the embedding headers and
the admin API (uploads of a GBK TXT and a DOCX made here; no token, no change)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import httpx
import pytest

pytest.register_assert_rewrite("fixtures_web")

from fixtures_web import ADMIN_TOKEN, corpus_state, free_port, serve  # noqa: E402
from qa.config import PROJECT_ROOT  # noqa: E402

pytest_plugins = ["fixtures_web"]

ANSWERABLE = "12345热线的通话录音保存多久？"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# A small regulation, uploaded as GBK text: the encoding hotline staff's files often come in.
DOGS_NAME = "惠农区养犬管理办法.txt"
DOGS = """石嘴山市惠农区城市养犬管理办法

惠政发〔2020〕5号

第一条 为规范城市养犬行为，保障市民人身安全和环境卫生，制定本办法。

第二条 养犬人应当为犬只办理养犬登记，并每年为犬只接种狂犬病疫苗。

第三条 携犬出户时，应当为犬只束犬链，由成年人牵领，并主动避让老年人和儿童。

第四条 本办法自2020年6月1日起施行。
"""
PARK_NAME = "泾源县城市公园管理办法.docx"
PARK = [
    "泾源县城市公园管理办法",
    "泾政发〔2023〕7号",
    "第一条 为加强城市公园管理，保护公园绿地和设施，制定本办法。",
    "第二条 城市公园每日6时至22时向公众免费开放，节假日延长至23时。",
    "第三条 在公园内禁止烧烤、露营、放风筝和驾驶机动车辆。",
    "第四条 本办法自2023年9月1日起施行。",
]


def make_docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def client(web):
    with httpx.Client(base_url=web.url, timeout=120) as session:
        yield session


# -- POST /api/ask --------------------------------------------------------------------------------
def test_ask_returns_the_json_of_the_cli(web, client):
    response = client.post("/api/ask", json={"question": ANSWERABLE, "history": []})
    assert response.status_code == 200
    data = response.json()
    assert data["refused"] is False and "[1]" in data["answer"]
    first = data["citations"][0]
    assert first["n"] == 1 and first["doc_title"] and first["doc_number"] and first["label"] and first["text"]
    assert "电话录音至少保存2年" in first["text"]
    # The very JSON `python -m qa ask --json` prints, on the same corpus and index.
    env = os.environ | {"QA_CORPUS_DIR": str(web.settings.corpus_dir), "QA_INDEX_DIR": str(web.settings.index_dir)}
    cli = subprocess.run(
        [sys.executable, "-m", "qa", "ask", ANSWERABLE, "--json"],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=600,
    )
    assert cli.returncode == 0, cli.stderr
    assert data == json.loads(cli.stdout)


def test_ask_follow_up_is_read_with_the_history(client):
    history = [
        {"role": "user", "content": "森林防火戒严期是什么时候？"},
        {"role": "assistant", "content": "即每年10月1日起至次年5月31日。[1]"},
    ]
    follow_up = client.post("/api/ask", json={"question": "那要注意什么？", "history": history}).json()
    assert not follow_up["refused"] and "防火" in follow_up["citations"][0]["doc_title"]
    alone = client.post("/api/ask", json={"question": "那要注意什么？"}).json()
    assert all("防火" not in c["doc_title"] for c in alone["citations"])


def test_ask_refusal_hands_off_to_12345_with_possibly_related_clauses(client):
    # the 保障性租赁住房 rules do not state a rent per square metre: related, not answered
    data = client.post("/api/ask", json={"question": "保障性租赁住房的租金每平方米多少钱？"}).json()
    assert data["refused"] is True and data["grade"] == "related"
    assert "12345" in data["answer"]
    assert data["citations"], "a related refusal lists the closest clauses (可能相关)"


def test_ask_outside_the_corpus_is_not_covered_without_clauses(client):
    data = client.post("/api/ask", json={"question": "明天去火星的机票多少钱？"}).json()
    assert data["refused"] is True and data["grade"] == "none"
    assert "12345" in data["answer"] and not data["citations"]


@pytest.mark.parametrize("question", ["", "   ", "问" * 5000])
def test_ask_rejects_an_empty_or_too_long_question_with_a_message(client, question):
    response = client.post("/api/ask", json={"question": question})
    assert response.status_code == 400
    assert re.search(r"请输入|太长", response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"history": []}', 422, "请求格式不正确：缺少 question。"),
        (b'{"question": "x", "history": [{"role": "system", "content": "x"}]}', 422, "history.0.role 只能是 'user' 或 'assistant'"),
        (b'{"question": "abc', 422, "请求格式不正确：请求内容不是有效的 JSON。"),
        (b'{"question": 5}', 422, "question 应为文本"),
        (b"[1, 2]", 422, "请求内容应为 JSON 对象"),
        (b'{"question": "\xff\xfe"}', 400, "请发送 UTF-8 编码的 JSON"),
    ],
    ids=["no-question", "history-role", "truncated", "number", "array", "not-utf8"],
)
def test_ask_rejects_a_malformed_body_with_a_message(client, body, status, message):
    # Every error of the API is {"detail": "<a sentence in Chinese>"}, these too (not pydantic's
    # list of English errors, nor FastAPI's English sentence).
    response = client.post("/api/ask", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail, detail


# -- GET /api/search ------------------------------------------------------------------------------
def test_search_returns_the_hit_json_of_the_cli(web, client):
    data = client.get("/api/search", params={"q": "防汛 值班", "k": 4}).json()
    expected = [h.to_api() for h in web.app.state.library.searcher.search("防汛 值班", k=4)]
    assert data == {"query": "防汛 值班", "hits": expected}
    assert len(data["hits"]) == 4


def test_search_looks_up_a_named_article_and_filters(client):
    lookup = client.get("/api/search", params={"q": "12345热线管理办法第二十一条", "k": 3}).json()["hits"]
    assert lookup[0]["via"] == "lookup" and lookup[0]["label"] == "第二十一条"
    filtered = client.get("/api/search", params={"q": "防汛值班", "k": 5, "region": "大武口区"}).json()["hits"]
    documents = client.get("/api/documents").json()["documents"]
    in_region = {d["title"] for d in documents if "大武口区" in d["region"]}
    assert len(filtered) == 5 and all(h["doc_title"] in in_region for h in filtered)


def test_search_rejects_bad_parameters(client):
    assert client.get("/api/search").status_code == 400
    too_few = client.get("/api/search", params={"q": "热线", "k": 0})
    assert too_few.status_code == 422 and too_few.json()["detail"] == "请求格式不正确：k 不能小于 1。"
    too_many = client.get("/api/search", params={"q": "热线", "k": 500})
    assert too_many.status_code == 422 and too_many.json()["detail"] == "请求格式不正确：k 不能大于 50。"
    not_a_year = client.get("/api/search", params={"q": "热线", "year": "二〇二二"})
    assert not_a_year.status_code == 422 and not_a_year.json()["detail"] == "请求格式不正确：year 应为整数。"


# -- pages and headers ----------------------------------------------------------------------------
def test_document_page_marks_the_clause_and_allows_no_scripts(client):
    hit = client.get("/api/search", params={"q": ANSWERABLE, "k": 1}).json()["hits"][0]
    docs = client.get("/api/documents").json()["documents"]
    doc_id = next(d["id"] for d in docs if d["title"] == hit["doc_title"])
    response = client.get(f"/doc/{doc_id}", params={"article": hit["id"]})
    assert response.status_code == 200
    marked = re.search(rf'<section id="article-{hit["id"]}" class="qa-article qa-highlight"[^>]*>(.*?)</section>', response.text, re.S)
    assert marked and hit["text"][:15] in marked.group(1).replace("<br>", "\n")
    assert response.text.count("qa-highlight\"") == 1
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert client.get("/doc/no-such-document").status_code == 404


def test_frame_ancestors_and_cors_allow_only_the_configured_host(web, client, host_site):
    page = client.get("/widget/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].endswith(f"; frame-ancestors 'self' {host_site.url}")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options("/api/ask", headers={"Origin": host_site.url, **preflight})
    assert allowed.headers.get("access-control-allow-origin") == host_site.url
    other = client.options("/api/ask", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_widget_address_keeps_its_context(client):
    response = client.get("/widget", params={"context": "保障性租赁住房"}, follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"].startswith("/widget/?context=")


def test_pages_load_nothing_from_other_hosts(client):
    script = client.get("/gradio.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    module = re.search(r'import\("\./(assets/[^"]+)"\)', script.text).group(1)
    assert client.get(f"/{module}").status_code == 200
    for path in ("/", "/widget/"):
        html = client.get(path).text
        external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        assert external == [], f"{path} loads {external}"
        assert '"analytics_enabled":false' in html.replace(" ", "")
    assert client.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN


# -- admin ----------------------------------------------------------------------------------------
def test_admin_calls_without_the_token_are_refused_and_change_nothing(web, client):
    before = corpus_state(web.settings)
    upload = {"file": (DOGS_NAME, DOGS.encode("gbk"), "text/plain")}
    calls = [
        ("GET", "/api/admin/files", {}),
        ("POST", "/api/admin/preview", {"files": upload}),
        ("POST", "/api/admin/files", {"files": upload}),
        ("DELETE", f"/api/admin/files/{before[0][0]}", {}),
        ("POST", "/api/admin/rebuild", {}),
    ]
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"X-Admin-Token": ADMIN_TOKEN[:-1]}):
        for method, path, extra in calls:
            response = client.request(method, path, headers=headers, **extra)
            assert response.status_code == 401, (method, path, headers)
    assert corpus_state(web.settings) == before


def test_admin_is_off_when_no_token_is_configured(web):
    from dataclasses import replace

    from qa.web import create_app

    settings = replace(web.settings, admin_token="")
    app = create_app(settings, web.app.state.library)  # same loaded index, admin off
    server = serve(app, port := free_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as other:
            for headers in ({}, {"Authorization": "Bearer anything"}, {"X-Admin-Token": ADMIN_TOKEN}):
                assert other.get("/api/admin/files", headers=headers).status_code == 403
            assert other.post("/api/admin/rebuild", headers={"Authorization": "Bearer x"}).status_code == 403
    finally:
        server.should_exit = True


def test_admin_uploads_a_gbk_txt_previews_adds_and_removes_it(web, client):
    data = DOGS.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really GBK
    preview = client.post("/api/admin/preview", headers=ADMIN, files={"file": (DOGS_NAME, data, "text/plain")})
    assert preview.status_code == 200, preview.text
    found = preview.json()
    assert found["file"] == DOGS_NAME
    assert [d["title"] for d in found["documents"]] == ["石嘴山市惠农区城市养犬管理办法"]
    assert found["documents"][0]["doc_number"] == "惠政发〔2020〕5号" and found["articles"] >= 4
    assert not (web.settings.corpus_dir / DOGS_NAME).exists(), "a preview changes nothing"

    added = client.post("/api/admin/files", headers=ADMIN, files={"file": (DOGS_NAME, data, "text/plain")})
    assert added.status_code == 200, added.text
    assert (web.settings.corpus_dir / DOGS_NAME).read_bytes() == data
    hits = client.get("/api/search", params={"q": "养犬登记 狂犬病疫苗", "k": 3}).json()["hits"]
    assert hits[0]["source_file"] == DOGS_NAME and "狂犬病疫苗" in hits[0]["text"]
    answer = client.post("/api/ask", json={"question": "养犬人每年要为犬只接种什么疫苗？"}).json()
    assert not answer["refused"] and answer["citations"][0]["source_file"] == DOGS_NAME

    again = client.post("/api/admin/files", headers=ADMIN, files={"file": (DOGS_NAME, data, "text/plain")})
    assert again.status_code == 400 and "同名" in again.json()["detail"]

    removed = client.delete(f"/api/admin/files/{DOGS_NAME}", headers=ADMIN)
    assert removed.status_code == 200, removed.text
    assert not (web.settings.corpus_dir / DOGS_NAME).exists()
    hits = client.get("/api/search", params={"q": "养犬登记 狂犬病疫苗", "k": 3}).json()["hits"]
    assert all(h["source_file"] != DOGS_NAME for h in hits)


def test_admin_uploads_a_docx(web, client):
    data = make_docx(PARK)
    added = client.post("/api/admin/files", headers=ADMIN, files={"file": (PARK_NAME, data, "application/octet-stream")})
    assert added.status_code == 200, added.text
    assert added.json()["added"]["documents"][0]["title"] == "泾源县城市公园管理办法"
    try:
        names = [f["name"] for f in client.get("/api/admin/files", headers=ADMIN).json()["files"]]
        assert PARK_NAME in names
        hits = client.get("/api/search", params={"q": "城市公园开放时间", "k": 3}).json()["hits"]
        assert hits[0]["source_file"] == PARK_NAME and "6时至22时" in hits[0]["text"]
        titles = [d["title"] for d in client.get("/api/documents").json()["documents"]]
        assert "泾源县城市公园管理办法" in titles
    finally:
        assert client.delete(f"/api/admin/files/{PARK_NAME}", headers=ADMIN).status_code == 200


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.txt", b"", "空"),
        ("program.exe", b"MZ\x90\x00", "不支持"),
        ("binary.txt", b"\x00\x01\x02" * 100, "二进制|binary"),
        ("broken.docx", b"PK\x03\x04 not really a docx", "无法读取"),
        ("broken.pdf", b"%PDF-1.4 garbage", "无法读取"),
    ],
)
def test_admin_bad_upload_gives_a_clear_error_and_changes_nothing(web, client, name, data, message):
    before = corpus_state(web.settings)
    for path in ("/api/admin/preview", "/api/admin/files"):
        response = client.post(path, headers=ADMIN, files={"file": (name, data, "application/octet-stream")})
        assert response.status_code == 400
        assert re.search(message, response.json()["detail"]), response.json()["detail"]
    assert corpus_state(web.settings) == before


def test_admin_cannot_remove_a_file_outside_the_corpus(web, client):
    before = corpus_state(web.settings)
    for name in ("..%2Fconfig.py", "no-such-file.txt"):
        response = client.delete(f"/api/admin/files/{name}", headers=ADMIN)
        assert response.status_code in (400, 404)
    assert corpus_state(web.settings) == before
