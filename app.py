"""`python app.py`: the web interface on the bundled corpus (builds the index on first run).

For now this serves clause retrieval: a chat that returns the most relevant clauses with their
citations, and a search desk with filters. Written answers and refusals come with the answer step.
"""

from __future__ import annotations

import argparse
import html
import os
import sys

# Nothing may leave the machine at run time (Gradio would otherwise phone home for analytics).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from qa.config import load_settings  # noqa: E402
from qa.index import build_index  # noqa: E402
from qa.models import Hit  # noqa: E402
from qa.retrieval import Filters, HybridSearcher  # noqa: E402

RESULTS_IN_CHAT = 3
HOTLINE_NOTE = "如需进一步咨询，请拨打 12345 政务服务便民热线。"


def citation(hit: Hit) -> str:
    doc = hit.article.document
    parts = [f"《{doc.title}》", doc.doc_number, " > ".join(hit.article.path)]
    if doc.trial:
        parts.append("（试行）")
    if doc.date:
        parts.append(doc.date)
    return " ".join(html.escape(p) for p in parts if p)


def clause_html(hit: Hit) -> str:
    """The clause text, escaped: document text is data, never markup."""
    return html.escape(hit.article.text).replace("\n", "<br>")


def chat_reply(searcher: HybridSearcher, message: str) -> str:
    message = (message or "").strip()
    if not message:
        return "请输入您的问题。"
    if len(message) > searcher.settings.max_question_chars:
        return f"问题太长了（{len(message)} 字），请精简到 {searcher.settings.max_question_chars} 字以内。"
    return render_chat(searcher.search(message, k=RESULTS_IN_CHAT))


def render_chat(hits: list[Hit]) -> str:
    """Clauses as chat Markdown; document text is escaped, it is data, never markup."""
    if not hits:
        return "资料中没有找到相关规定。" + HOTLINE_NOTE
    lines = ["以下是与您的问题最相关的条款（原文）："]
    for n, hit in enumerate(hits, start=1):
        lines.append(f"**[{n}]** {citation(hit)}\n\n> {clause_html(hit)}")
    lines.append(HOTLINE_NOTE)
    return "\n\n".join(lines)


def search_desk(searcher: HybridSearcher, query: str, region: str, year: str) -> str:
    query = (query or "").strip()
    if not query:
        return "<p>请输入关键词或问题。</p>"
    filters = Filters(region=region or None, year=int(year) if year else None)
    return render_results(searcher.search(query, k=10, filters=filters))


def render_results(hits: list[Hit]) -> str:
    if not hits:
        return "<p>没有找到匹配的条款。</p>"
    rows = []
    for n, hit in enumerate(hits, start=1):
        rows.append(
            f"<div class='clause'><p><b>[{n}]</b> {citation(hit)} <small>{hit.score:.3f}</small></p>"
            f"<p>{clause_html(hit)}</p></div>"
        )
    return "\n".join(rows)


def build_app(searcher: HybridSearcher) -> gr.Blocks:
    documents = {a.document.id: a.document for a in searcher.articles}.values()
    regions = sorted({d.region for d in documents if d.region})
    years = sorted({d.date[:4] for d in documents if d.date})
    with gr.Blocks(title="政策问答") as demo:
        gr.Markdown("# 政策问答\n根据政府公报中的政策文件回答问题，并注明所依据的条款。")
        with gr.Tab("问答"):
            gr.ChatInterface(
                fn=lambda message, history: chat_reply(searcher, message),
                examples=["打12345反映问题几天能回复？", "预警级别分为哪几级？", "保障性租赁住房面积标准是多少？"],
            )
        with gr.Tab("条款检索"):
            with gr.Row():
                query = gr.Textbox(label="关键词或问题", scale=4)
                region = gr.Dropdown(choices=[""] + regions, value="", label="地区")
                year = gr.Dropdown(choices=[""] + years, value="", label="年份")
            button = gr.Button("检索", variant="primary")
            results = gr.HTML()
            button.click(lambda q, r, y: search_desk(searcher, q, r, y), [query, region, year], results)
            query.submit(lambda q, r, y: search_desk(searcher, q, r, y), [query, region, year], results)
    return demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="政策问答 web app")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    args = parser.parse_args(argv)
    settings = load_settings()
    print("checking the index (first run builds it)…", file=sys.stderr)
    print(build_index(settings, progress=True).summary(), file=sys.stderr)
    searcher = HybridSearcher(settings)
    build_app(searcher).launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
