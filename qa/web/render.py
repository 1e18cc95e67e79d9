"""HTML and chat Markdown for the web app.

Document text is data, never markup: every string that comes from a document (titles, 文号, clause
text, heading paths) or from a user goes through :func:`esc` before it is put into a page. Where the
page renders Markdown (the chat, the widget's heading), such text is also kept inside an HTML block
(:func:`text_block`), so Markdown in it (links, images, emphasis, lists) is shown as typed too.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote

import jieba

from qa.answering import HOTLINE as HOTLINE_HANDOFF
from qa.answering import POSSIBLY_RELATED as LISTED_AS_POSSIBLY_RELATED
from qa.keywords import STOPWORDS, TOKEN_CHARS
from qa.models import Answer, Article, Document, Hit

POSSIBLY_RELATED = "可能相关的条款原文（仅供参考，不作为答复依据）"
CITED_CLAUSES = "引用的条款"
COPY_ANSWER = "复制回答及出处"
PATH_SEPARATOR = " › "


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def multiline(text: str) -> str:
    """Escaped text whose line breaks stay visible."""
    return esc(text).replace("\n", "<br>")


def text_block(text: str, css_class: str) -> str:
    """Text for a page that renders Markdown (chat messages, gr.Markdown), shown exactly as
    written: escaped, and on one line inside a <div> (line breaks as <br>). A Markdown renderer
    passes an HTML block through untouched up to the next blank line, and there is none, so
    ``[链接](http://…)``, ``![](…)``, ``**``, ``# `` or ``1. `` in a clause or a question stay text."""
    return f'<div class="{css_class}">{multiline(text.replace(chr(13), ""))}</div>'


# -- citations ------------------------------------------------------------------------------------
def document_notes(document: Document | None) -> list[str]:
    """Validity notes a reader must see next to a clause (the same ones Citation.notes gives)."""
    if document is None:
        return []
    notes = ["试行"] if document.trial else []
    if document.effective_date:
        notes.append(f"自{document.effective_date}起施行")
    return notes


def citation_text(article: Article) -> str:
    """Plain-text citation: 《标题》（文号）条款 · 日期 · 试行."""
    doc = article.document
    head = f"《{doc.title}》" + (f"（{doc.doc_number}）" if doc.doc_number else "")
    parts = [f"{head} {article.label}", doc.date, *document_notes(doc)]
    return " · ".join(p for p in parts if p)


def document_url(article: Article, base: str = "") -> str:
    """The whole document, scrolled to this clause and with it highlighted."""
    anchor = article_anchor(article.id)
    return f"{base}/doc/{quote(article.doc_id, safe='')}?article={quote(article.id, safe='')}#{anchor}"


def article_anchor(article_id: str) -> str:
    return "article-" + re.sub(r"[^\w-]", "_", article_id)


def citation_block(n: int, article: Article, base: str) -> str:
    """One cited clause as a collapsible block (native <details>: opens with Enter or Space).
    Kept on one line: in chat Markdown a blank line would end the HTML block."""
    path = PATH_SEPARATOR.join(article.path)
    return (
        f'<details class="qa-citation"><summary><b>[{n}]</b> {esc(citation_text(article))}</summary>'
        f'<div class="qa-clause"><div class="qa-path">{esc(path)}</div>'
        f'<div class="qa-clause-text">{multiline(article.text)}</div>'
        f'<a class="qa-open-doc" href="{esc(document_url(article, base))}" target="_blank" rel="noopener">'
        f"查看全文（定位到本条）</a></div></details>"
    )


def answer_text(answer: Answer) -> str:
    """The answer's text as the chat shows it. A refusal's text ends with a plain list of the
    closest clauses (for the CLI and the API); the chat shows those as blocks instead, not twice."""
    text = answer.text
    if answer.refused and answer.citations:
        text = text.split(LISTED_AS_POSSIBLY_RELATED)[0]
    return text.strip()


def answer_copy_text(answer: Answer) -> str:
    """What 复制回答及出处 puts on the clipboard: the answer and its citations, as plain text."""
    lines = [answer_text(answer)]
    if answer.refused and "12345" not in answer.text:
        lines.append(HOTLINE_HANDOFF)
    if answer.citations:
        lines.append((POSSIBLY_RELATED if answer.refused else CITED_CLAUSES) + "：")
        lines += [f"[{c.n}] {citation_text(c.article)}" for c in answer.citations]
    return "\n".join(lines)


def render_answer(answer: Answer, base: str = "", final: bool = True) -> str:
    """An answer as chat Markdown: the text with its [n] markers, then the cited clauses (for a
    refusal: the 12345 handoff and the closest clauses, marked as not asserted), and a button that
    copies it all as plain text (the chat's own copy button would copy this markup)."""
    text = text_block(answer_text(answer), "qa-answer-text")
    if not final:
        return text
    parts = [text]
    if answer.refused and "12345" not in answer.text:
        parts.append(HOTLINE_HANDOFF)
    for note in answer.notes:
        parts.append(f"<small>{esc(note)}</small>")
    if answer.citations:
        heading = POSSIBLY_RELATED if answer.refused else CITED_CLAUSES
        blocks = "\n".join(citation_block(c.n, c.article, base) for c in answer.citations)
        parts.append(f"**{heading}**\n\n{blocks}")
    parts.append(f'<div class="qa-actions">{copy_button(COPY_ANSWER, answer_copy_text(answer))}</div>')
    return "\n\n".join(parts)


def coverage_line(description: str) -> str:
    """What the documents cover (Scope.describe: regions, years, number and kinds of document),
    as HTML text: region names come from the documents, so they are escaped, never rendered."""
    return f'<p class="qa-coverage"><small>{esc(description)}</small></p>'


def widget_heading(context: str = "") -> str:
    """The widget's heading (a gr.Markdown): its name and, when the host page gave one, the policy
    being asked about. The context comes from the page's address, so it is shown as text only: a
    crafted ?context= cannot put a link or an image into the widget."""
    context = " ".join(context.split())
    if not context:
        return "**政策问答**"
    return f'<div class="qa-widget-heading"><b>政策问答</b> <span class="qa-context">· 正在咨询：{esc(context)}</span></div>'


# -- the search desk ------------------------------------------------------------------------------
def query_terms(query: str) -> list[str]:
    """Words of the query worth highlighting in a clause: jieba search-mode words of two or more
    characters (or numbers), longest first so 通话录音 wins over 录音."""
    text = unicodedata.normalize("NFKC", query)
    words = {
        w.strip()
        for w in jieba.cut_for_search(text)
        if w.strip() not in STOPWORDS and TOKEN_CHARS.search(w) and (len(w.strip()) >= 2 or w.strip().isdigit())
    }
    return sorted(words, key=lambda w: (-len(w), w))


def highlight(text: str, terms: Iterable[str]) -> str:
    """Escaped text with each term wrapped in <mark>; the text is cut at the matches first and
    each piece escaped on its own, so a term can never meet markup."""
    terms = [t for t in terms if t]
    if not terms:
        return multiline(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(multiline(text[last : match.start()]))
        out.append(f"<mark>{multiline(match.group())}</mark>")
        last = match.end()
    out.append(multiline(text[last:]))
    return "".join(out)


def clause_with_citation(article: Article) -> str:
    """What 复制条款 puts on the clipboard: the clause and where it comes from."""
    doc = article.document
    source = f"——《{doc.title}》" + (f"（{doc.doc_number}）" if doc.doc_number else "") + article.label
    if doc.date:
        source += f"，{doc.date}"
    return f"{article.text.strip()}\n{source}"


def reply_script(article: Article, answering: str = "") -> str:
    """答复口径: a ready reply a hotline operator can read out or paste: the sentence or item of the
    clause that answers the search (``answering``), or, without one, the whole clause."""
    doc = article.document
    name = f"《{doc.title}》" + (f"（{doc.doc_number}）" if doc.doc_number else "")
    trial = "（试行）" if doc.trial and "试行" not in doc.title else ""
    # "根据…第五条的规定：“第五条 承办单位…”" would read the label out twice
    text = (answering or article.text).strip()
    if answering and text[-1] in "；;，,：:":  # an item of a list, read out as a sentence of its own
        text = text[:-1] + "。"
    if article.label and text.startswith(article.label):
        text = text[len(article.label) :].lstrip(" 　:：")
    return (
        f"您好！根据{name}{trial}{article.label}的规定：“{text}”"
        f"具体以相关部门解释为准。{HOTLINE_HANDOFF}"
    )


def copy_button(label: str, text: str) -> str:
    """A button that copies ``text``; the click is handled by one delegated listener
    (qa/web/static/app.js). The text rides in the button's value, the attribute the chat's HTML
    sanitizer keeps (it drops data-*), with line breaks as &#10; so that no blank line can end the
    chat Markdown's HTML block."""
    value = esc(text.replace("\r", "")).replace("\n", "&#10;")
    return f'<button type="button" class="qa-copy" value="{value}">{esc(label)}</button>'


def render_hits(hits: list[Hit], query: str, base: str = "", answering: dict[str, str] | None = None) -> str:
    """The desk's results; ``answering``: by article id, the sentence that answers the search, which
    its 答复口径 quotes instead of the whole clause."""
    answering = answering or {}
    if not hits:
        return '<p class="qa-empty">没有找到匹配的条款。</p>'
    terms = query_terms(query)
    rows = [f'<p class="qa-count">找到 {len(hits)} 条相关条款</p>']
    for n, hit in enumerate(hits, start=1):
        article = hit.article
        via = '<span class="qa-badge">直接定位</span>' if hit.via == "lookup" else ""
        meta = " · ".join(p for p in (article.document.region, article.document.issuer) if p)
        rows.append(
            f'<div class="qa-hit" id="hit-{n}">'
            f'<div class="qa-hit-head"><b>[{n}]</b> {esc(citation_text(article))} {via}'
            f'<span class="qa-score">{hit.score:.3f}</span></div>'
            f'<div class="qa-meta">{esc(meta)}</div>'
            f'<div class="qa-path">{esc(PATH_SEPARATOR.join(article.path))}</div>'
            f'<div class="qa-clause-text">{highlight(article.text, terms)}</div>'
            f'<div class="qa-actions">{copy_button("复制条款及出处", clause_with_citation(article))}'
            f'{copy_button("复制答复口径", reply_script(article, answering.get(article.id, "")))}'
            f'<a class="qa-open-doc" href="{esc(document_url(article, base))}" target="_blank" rel="noopener">查看全文</a>'
            f"</div></div>"
        )
    return "\n".join(rows)


# -- documents ------------------------------------------------------------------------------------
def render_document_list(documents: list[Document], counts: dict[str, int]) -> str:
    if not documents:
        return '<p class="qa-empty">没有符合条件的文件。</p>'
    rows = [
        f"<tr><td>{esc(d.date or '—')}</td><td>{esc(d.region or '—')}</td><td>{esc(d.doc_number or '—')}</td>"
        f'<td><a href="/doc/{quote(d.id, safe="")}" target="_blank" rel="noopener">{esc(d.title)}</a>'
        f"{'（试行）' if d.trial and '试行' not in d.title else ''}</td><td>{counts.get(d.id, 0)}</td></tr>"
        for d in documents
    ]
    return (
        '<table class="qa-doc-list"><thead><tr><th>日期</th><th>地区</th><th>文号</th><th>标题</th><th>条款数</th>'
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def document_header(document: Document) -> str:
    facts = [
        ("印发通知", document.notice_title),
        ("文号", document.doc_number),
        ("发文机关", document.issuer),
        ("日期", document.date),
        ("地区", document.region),
        ("来源", document.gazette),
        ("效力", "；".join(document_notes(document))),
        ("同时废止", "；".join(document.repeals)),
    ]
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts if v)
    return f'<h1 class="qa-doc-title">{esc(document.title)}</h1><dl class="qa-doc-facts">{rows}</dl>'


def render_document(document: Document, articles: list[Article], highlight_id: str = "") -> str:
    """A document's articles in order; headings appear where the heading path changes. The
    clause named by ``highlight_id`` is marked (and is the page's #article-… target)."""
    out = [document_header(document)]
    shown: list[str] = []
    for article in articles:
        ancestors = article.path[:-1]
        same = 0
        while same < min(len(shown), len(ancestors)) and shown[same] == ancestors[same]:
            same += 1
        for depth in range(same, len(ancestors)):
            level = min(depth + 2, 6)
            out.append(f'<h{level} class="qa-heading">{esc(ancestors[depth])}</h{level}>')
        shown = list(ancestors)
        current = article.id == highlight_id
        attrs = ' class="qa-article qa-highlight" aria-current="true"' if current else ' class="qa-article"'
        out.append(f'<section id="{article_anchor(article.id)}"{attrs}>{multiline(article.text)}</section>')
    return "\n".join(out)


DOCUMENT_PAGE_CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; max-width: 860px; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.8; color: #1f2937; font-size: 18px; }
.qa-doc-facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; color: #4b5563; }
.qa-doc-facts dt { font-weight: 600; }
.qa-article { padding: .5rem .75rem; margin: .5rem 0; border-left: 4px solid transparent; scroll-margin-top: 2rem; }
.qa-highlight, .qa-article:target { background: #fef3c7; border-left-color: #d97706; }
"""


def document_page(document: Document, articles: list[Article], highlight_id: str = "") -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(document.title)}</title><style>{DOCUMENT_PAGE_CSS}</style></head>"
        f"<body><main>{render_document(document, articles, highlight_id)}</main></body></html>"
    )


# -- admin ----------------------------------------------------------------------------------------
def render_preview(file_name: str, documents: list[Document], articles: list[Article]) -> str:
    """What an upload would add: each document found with its first clauses."""
    parts = [f"<p>文件 <b>{esc(file_name)}</b>：找到 {len(documents)} 份文件、{len(articles)} 条条款。</p>"]
    for document in documents:
        own = [a for a in articles if a.doc_id == document.id]
        items = "".join(
            f"<li><b>{esc(a.label)}</b> {esc(a.text[:80])}{'…' if len(a.text) > 80 else ''}</li>" for a in own[:8]
        )
        more = f"<li>……共 {len(own)} 条</li>" if len(own) > 8 else ""
        parts.append(
            f'<div class="qa-preview-doc"><p><b>{esc(document.title)}</b> {esc(document.doc_number)} '
            f"{esc(document.date)} {esc(' '.join(document_notes(document)))}</p><ol>{items}{more}</ol></div>"
        )
    return "\n".join(parts)
