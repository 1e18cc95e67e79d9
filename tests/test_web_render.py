"""What the web app renders: document text is shown as text, never as markup; citations carry
their title, 文号, article, date and validity notes; refusals hand off to 12345."""

import html
import re

import pytest
from markdown_it import MarkdownIt

from qa.answering import POSSIBLY_RELATED as LISTED_AS_POSSIBLY_RELATED
from qa.models import Answer, Article, Citation, Document, Hit
from qa.web.library import AdminError, safe_file_name, token_matches
from qa.web.render import (
    POSSIBLY_RELATED,
    clause_with_citation,
    document_page,
    highlight,
    query_terms,
    render_answer,
    render_document,
    render_hits,
    render_preview,
    reply_script,
    text_block,
    widget_heading,
)

HOSTILE = "第一条 <script>alert('x')</script><img src=x onerror=alert(1)> 承办单位应当在5个工作日内办结。"


def _article(text: str = HOSTILE, label: str = "第一条", path=None, article_id: str = "a1") -> Article:
    doc = Document(
        id="d",
        source_file="x.txt",
        title="测试<b>办法</b>（试行）",
        doc_number="测〔2022〕1号",
        issuer="测试<i>办公厅</i>",
        date="2022-04-27",
        region="测试区",
        trial=True,
        effective_date="2022-05-01",
    )
    return Article(id=article_id, doc_id="d", label=label, path=path or ["第一章 总则", label], text=text, start=0, end=len(text), document=doc)


def _hit(text: str = HOSTILE) -> Hit:
    return Hit(article=_article(text), score=0.9)


def _no_markup_from_documents(rendered: str) -> None:
    assert "<script>" not in rendered and "<img" not in rendered
    assert "<b>办法" not in rendered and "<i>办公厅" not in rendered
    assert "&lt;script&gt;" in rendered


def test_markup_in_documents_is_escaped_everywhere():
    article = _article()
    answer = Answer(question="<b>q</b>", text="回答<script>x</script>[1]", refused=False, citations=[Citation(1, _hit())])
    for rendered in (
        render_answer(answer),
        render_hits([_hit()], "承办单位 <script>"),
        render_document(article.document, [article], "a1"),
        document_page(article.document, [article], "a1"),
        render_preview("x.txt", [article.document], [article]),
    ):
        _no_markup_from_documents(rendered)


def test_copy_texts_are_escaped_inside_their_attribute():
    rendered = render_hits([_hit('第一条 引号" onclick="alert(1) 结束')], "引号")
    assert 'onclick="alert' not in rendered
    assert "&quot; onclick=&quot;alert(1)" in rendered


def test_cited_clause_block_carries_the_whole_citation_and_a_link_to_the_clause():
    answer = Answer(question="q", text="5个工作日内办结。[1]", refused=False, citations=[Citation(1, _hit())])
    rendered = render_answer(answer, base="http://127.0.0.1:7860")
    block = re.search(r'<details class="qa-citation">.*?</details>', rendered).group()
    for part in ("[1]", "测试&lt;b&gt;办法&lt;/b&gt;（试行）", "测〔2022〕1号", "第一条", "2022-04-27", "试行", "自2022-05-01起施行"):
        assert part in block
    assert 'href="http://127.0.0.1:7860/doc/d?article=a1#article-a1"' in block
    assert "\n\n" not in block, "a blank line would end the HTML block in chat Markdown"


def test_refusal_hands_off_to_12345_and_marks_clauses_as_only_possibly_related():
    refusal = Answer(question="q", text="资料中没有找到相关规定。", refused=True, citations=[Citation(1, _hit())])
    rendered = render_answer(refusal)
    assert "12345" in rendered and POSSIBLY_RELATED in rendered
    assert "qa-citation" in rendered


def test_streaming_updates_show_the_text_only():
    partial = Answer(question="q", text="5个工作日", refused=False, citations=[Citation(1, _hit())])
    assert render_answer(partial, final=False) == '<div class="qa-answer-text">5个工作日</div>'


def test_a_refusal_lists_the_possibly_related_clauses_once_as_blocks():
    # The answerer's refusal text ends with a plain list of the closest clauses (for the CLI and
    # the API); the chat shows them as blocks under its own heading, not a second time as a list.
    text = f"资料中没有找到相关规定。建议拨打 12345 政务服务便民热线咨询。\n{LISTED_AS_POSSIBLY_RELATED}\n[1] 《测试办法》 第一章 总则 > 第一条"
    refusal = Answer(question="q", text=text, refused=True, citations=[Citation(1, _hit())])
    shown = render_answer(refusal).split('<div class="qa-actions">')[0]  # without the copy button
    assert LISTED_AS_POSSIBLY_RELATED not in shown and "第一章 总则 &gt; 第一条" not in shown
    assert "资料中没有找到相关规定" in shown and shown.count(POSSIBLY_RELATED) == 1
    assert shown.count("[1]") == 1


# Markdown a clause, a question or a host page's ?context= may carry: a link, an image from another
# host, emphasis, a heading, a list and a formula.
MARKDOWN = "[点此领取补贴](http://evil.example/) ![t](http://evil.example/t.png) **粗体** $$x^2$$\n\n# 标题\n1. 列表"


def markdown_html(rendered: str) -> str:
    """The page as a CommonMark renderer (like the chat's) makes it, HTML blocks passed through."""
    return MarkdownIt("commonmark", {"html": True}).render(rendered)


def _shown_as_written(page: str) -> None:
    assert "evil.example/\">" not in page and "<img" not in page and "<strong>粗体" not in page, page
    assert "<h1>" not in page and "<ol>" not in page, page
    assert "[点此领取补贴](http://evil.example/)" in page and "**粗体**" in page and "# 标题" in page


def test_markdown_in_an_answer_or_a_question_is_shown_as_written():
    answer = Answer(question="q", text=f"回答：“{MARKDOWN}”[1]", refused=False, citations=[Citation(1, _hit(MARKDOWN))])
    for rendered in (render_answer(answer), render_answer(answer, final=False), text_block(MARKDOWN, "qa-question-text")):
        _shown_as_written(markdown_html(rendered))


def test_the_widget_context_is_shown_as_written():
    page = markdown_html(widget_heading(MARKDOWN))
    _shown_as_written(page.replace("\n", " "))
    assert "正在咨询" in page
    assert markdown_html(widget_heading("")).strip() == "<p><strong>政策问答</strong></p>"


def test_an_answer_can_be_copied_as_plain_text_with_its_citations():
    answer = Answer(question="q", text="5个工作日内办结。[1]\n\n依据：<b>原文</b>", refused=False, citations=[Citation(1, _hit())])
    rendered = render_answer(answer)
    button = re.search(r'<button type="button" class="qa-copy" value="([^"]*)">复制回答及出处</button>', rendered)
    assert button, rendered
    assert "\n" not in button.group(), "a blank line inside the button would end the chat Markdown's HTML block"
    copied = html.unescape(button.group(1))
    assert copied.startswith("5个工作日内办结。[1]\n\n依据：<b>原文</b>\n引用的条款：\n")
    assert "[1] 《测试<b>办法</b>（试行）》（测〔2022〕1号） 第一条 · 2022-04-27 · 试行 · 自2022-05-01起施行" in copied
    assert "<details" not in copied and "**" not in copied
    assert render_answer(answer, final=False).count("qa-copy") == 0, "only a finished answer can be copied"


def test_highlight_marks_query_words_without_breaking_escaping():
    terms = query_terms("要在几个工作日内办结？")
    assert "办结" in terms and "要" not in terms
    rendered = highlight(HOSTILE, terms)
    assert re.search("<mark>工作日(内)?</mark>", rendered) and "<mark>办结</mark>" in rendered
    _no_markup_from_documents(rendered)
    assert highlight("a < b", ["<"]) == "a <mark>&lt;</mark> b"


def test_copy_texts_name_the_source():
    article = _article("第五条 承办单位应当自收到工单之日起5个工作日内办结。", label="第五条")
    copied = clause_with_citation(article)
    assert copied.startswith("第五条 承办单位") and "《测试<b>办法</b>（试行）》（测〔2022〕1号）第五条" in copied
    reply = reply_script(article)
    assert "根据《测试<b>办法</b>（试行）》（测〔2022〕1号）第五条的规定：“承办单位应当" in reply and "12345" in reply
    items = _article("第六条 办理时限：\n（一）咨询类2个工作日内办结；\n（二）投诉类5个工作日内办结；", label="第六条")
    one = reply_script(items, "（二）投诉类5个工作日内办结；")
    assert "第六条的规定：“（二）投诉类5个工作日内办结。”" in one and "咨询类" not in one


def test_document_shows_each_heading_once_and_marks_one_clause():
    articles = [
        _article("第一条 总则一。", "第一条", ["第一章 总则", "第一条"], "a1"),
        _article("第二条 总则二。", "第二条", ["第一章 总则", "第二条"], "a2"),
        _article("第三条 流程。", "第三条", ["第二章 流程", "第三条"], "a3"),
    ]
    rendered = render_document(articles[0].document, articles, "a2")
    assert rendered.count("第一章 总则</h2>") == 1 and rendered.count("第二章 流程</h2>") == 1
    assert rendered.count("qa-highlight") == 1
    assert '<section id="article-a2" class="qa-article qa-highlight"' in rendered


@pytest.mark.parametrize(
    ("given", "expected"),
    [("办法.txt", "办法.txt"), ("../../etc/passwd.txt", "passwd.txt"), ("C:\\x\\公报 2022.pdf", "公报_2022.pdf"), (".hidden.txt", "hidden.txt")],
)
def test_upload_names_are_made_safe(given, expected):
    assert safe_file_name(given) == expected


@pytest.mark.parametrize("given", ["", "..", "evil.exe", "noext", ".txt"])
def test_unusable_upload_names_are_refused(given):
    with pytest.raises(AdminError):
        safe_file_name(given)


def test_admin_token_must_be_configured_and_match(settings):
    from dataclasses import replace

    assert not token_matches(settings.__class__(admin_token=""), "")
    configured = replace(settings, admin_token="s3cret")
    assert token_matches(configured, "s3cret")
    assert not token_matches(configured, "s3cre") and not token_matches(configured, None) and not token_matches(configured, "")
