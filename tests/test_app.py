"""The web app renders document text as text, never as markup."""

from app import render_chat, render_results
from qa.models import Article, Document, Hit


def _hit(text: str) -> Hit:
    doc = Document(id="d", source_file="x.txt", title="测试<b>办法</b>", doc_number="测〔2022〕1号")
    article = Article(id="a", doc_id="d", label="第一条", path=["第一条"], text=text, start=0, end=len(text), document=doc)
    return Hit(article=article, score=0.9)


def test_markup_in_documents_is_escaped():
    hostile = "第一条 <script>alert('x')</script><img src=x onerror=alert(1)>"
    for rendered in (render_chat([_hit(hostile)]), render_results([_hit(hostile)])):
        assert "<script>" not in rendered and "<img" not in rendered and "<b>办法" not in rendered
        assert "&lt;script&gt;" in rendered


def test_no_hits_says_so_and_points_to_the_hotline():
    assert "12345" in render_chat([])
