"""Property-based tests (hypothesis) of the parser, steps 2 and 3 (qa/documents.py, qa/articles.py,
through qa/corpus.parse_text): for random and adversarial texts it never raises, and no body text is
silently lost — every non-blank character of a document, apart from the page numbers, running
heads and markup artefacts (``<input type="checkbox"/>``, ``**``) the parser drops on purpose, is in
one of the document's articles, in order.

The texts are built from the pieces gazettes are made of (headings of every style, 文号 and date
lines, page numbers, running heads, tables) put together in orders no real gazette has: headings
in odd places, numbering that jumps or goes back, full-width digits, huge lines, empty documents,
control characters and arbitrary Unicode.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st

from qa.articles import is_artifact
from qa.config import load_settings
from qa.corpus import parse_text
from qa.documents import gazette_name, is_gazette
from qa.text import split_lines, strip_markup

BASE_SETTINGS = load_settings()
WHITESPACE = re.compile(r"\s+")
RUNS = hypothesis_settings(max_examples=int(__import__("os").environ.get("QA_HYPOTHESIS_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

CN_NUMBERS = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "二十一", "一百零三", "两", "〇", "十十"]
DIGITS = st.integers(min_value=0, max_value=120).map(str)
FULL_WIDTH = DIGITS.map(lambda s: s.translate(str.maketrans("0123456789", "０１２３４５６７８９")))
NUMBER = st.one_of(st.sampled_from(CN_NUMBERS), DIGITS, FULL_WIDTH)

HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF)
PUNCTUATION = st.sampled_from(list("。；，：、？！“”《》（）()[]〔〕—…·-.．:;,0123456789１２ "))
WORDS = st.text(st.one_of(HAN, HAN, HAN, PUNCTUATION), min_size=0, max_size=60)
SENTENCE = st.builds(lambda words, end: words + end, WORDS, st.sampled_from(["。", "；", "：", "", "，", "！"]))


@st.composite
def heading(draw) -> str:
    n = draw(NUMBER)
    rest = draw(st.one_of(st.just(""), SENTENCE))
    sep = draw(st.sampled_from(["", " ", "\u3000", "  "]))
    return draw(
        st.sampled_from(
            [
                f"第{n}条{sep}{rest}",
                f"第{n}章{sep}{rest[:20]}",
                f"第{n}节{sep}{rest[:20]}",
                f"{n}、{rest}",
                f"（{n}）{rest}",
                f"({n}){rest}",
                f"{n}.{rest}",
                f"{n}．{sep}{rest}",
                f"{n}.{draw(DIGITS)}{sep}{rest}",
                f"{n}.{draw(DIGITS)}.{draw(DIGITS)} {rest}",
                f"{n} 总则",
                f"附件{n}",
                f"附件：{rest[:20]}",
                f"{draw(st.sampled_from('①②③⑳'))}{rest}",
                f"- {n}、{rest}",
            ]
        )
    )


PAGE_NUMBER = st.one_of(
    DIGITS,
    DIGITS.map(lambda n: f"- {n} -"),
    DIGITS.map(lambda n: f"—{n}—"),
    DIGITS.map(lambda n: f"第 {n} 页 共 {n} 页"),
)
RUNNING_HEAD = st.just("宁夏回族自治区人民政府公报")
DOC_NUMBER = st.builds(lambda org, year, n: f"{org}〔{year}〕{n}号", st.sampled_from(["宁政办发", "银政发", "石大政办发", "x"]), st.integers(1990, 2030), st.integers(1, 300))
DATE = st.builds(lambda y, m, d: f"{y}年{m}月{d}日", st.integers(1990, 2030), st.integers(1, 12), st.integers(1, 31))
TABLE_ROW = st.lists(WORDS, min_size=2, max_size=4).map("\t".join)
HUGE_LINE = st.builds(lambda s, n: (s or "长") * n, SENTENCE, st.integers(200, 400))
NOISE = st.text(max_size=40)  # any Unicode hypothesis likes: controls, combining marks, \r, \u2028 …

LINE = st.one_of(
    SENTENCE, SENTENCE, SENTENCE, heading(), heading(), heading(),
    PAGE_NUMBER, RUNNING_HEAD, DOC_NUMBER, DATE, TABLE_ROW, st.just(""), st.just("   "), NOISE,
    st.sampled_from(["目 录", "目录", "大事记", "《宁夏回族自治区人民政府公报》简介", "此件公开发布", "（此件公开发布）", "关于印发某某办法的通知", "宁夏回族自治区人民政府办公厅"]),
)
MASTHEAD = "宁夏回族自治区\n人民政府公报\n\n2022 年 第 9 期\n\n目 录\n\n"


@st.composite
def document_text(draw) -> str:
    """One document or a gazette of several: a title and 文号, then lines of any kind."""
    title = draw(st.one_of(SENTENCE, st.just("关于印发宁夏回族自治区某某管理办法的通知")))
    head = f"{title}\n\n{draw(DOC_NUMBER)}\n\n" if draw(st.booleans()) else ""
    body = draw(st.lists(LINE, max_size=40))
    return head + "\n".join(body)


@st.composite
def corpus_text(draw) -> str:
    parts = draw(st.lists(document_text(), min_size=1, max_size=4))
    text = MASTHEAD if draw(st.booleans()) else ""
    text += "\n\n".join(parts)
    newline = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    return text.replace("\n", newline)


# (article_target_chars, max_article_chars): the defaults, and small sizes that make the parser
# split sections and cut long articles into parts all the time.
SIZES = st.sampled_from([(BASE_SETTINGS.article_target_chars, BASE_SETTINGS.max_article_chars), (60, 120), (5, 20)])
DEFAULT_SIZES = (BASE_SETTINGS.article_target_chars, BASE_SETTINGS.max_article_chars)


def visible(text: str) -> str:
    return WHITESPACE.sub("", text)


def expected_body(text: str, start: int, end: int, running_heads: frozenset[str]) -> str:
    """A document's text as the articles must hold it: every line but page numbers and running
    heads, less markup artefacts (all dropped on purpose), without whitespace."""
    return "".join(
        visible(strip_markup(line.text)) for line in split_lines(text[start:end]) if not is_artifact(line.text, running_heads)
    )


def check_nothing_is_lost(text: str, sizes: tuple[int, int] = DEFAULT_SIZES) -> None:
    settings = replace(BASE_SETTINGS, article_target_chars=sizes[0], max_article_chars=sizes[1])
    parsed = parse_text(text, "test.txt", settings)
    masthead = gazette_name(text)
    running_heads = frozenset({masthead}) if masthead else frozenset()
    documents = parsed.documents
    for document in documents:
        articles = [a for a in parsed.articles if a.doc_id == document.id]
        assert "".join(visible(a.text) for a in articles) == expected_body(text, document.start, document.end, running_heads)
        for article in articles:
            assert article.text == article.text.strip() and article.text
            assert len(article.text) <= settings.max_article_chars
            # the offsets point at the article's first and last characters in the source
            assert text[article.start] == article.text[0], (article.start, article.text[:10])
            assert text[article.end - 1] == article.text[-1], (article.end, article.text[-10:])
            assert document.start <= article.start < article.end <= document.end
    # Documents follow one another with nothing but blank lines between them ...
    for before, after in zip(documents, documents[1:]):
        assert before.end <= after.start and not visible(text[before.end : after.start])
    # ... and a file that is not a gazette is one document from its first line to its last.
    if documents and not is_gazette(split_lines(text)):
        assert len(documents) == 1
        assert not visible(text[: documents[0].start]) and not visible(text[documents[0].end :])
    if visible(text) and not is_gazette(split_lines(text)):
        assert documents, "a file with text holds a document"
    assert len({a.id for a in parsed.articles}) == len(parsed.articles), "article ids are unique"


@RUNS
@given(corpus_text(), SIZES)
@example("", DEFAULT_SIZES)
@example(" \n\t\n\u3000\n", DEFAULT_SIZES)
@example("第一条", DEFAULT_SIZES)
@example("第一条 " + "很长的句子没有标点" * 800, DEFAULT_SIZES)
@example("一、\n一、\n二、\n四、\n三、\n十、", DEFAULT_SIZES)
@example("第１条 全角数字。\n第２条 第二条。\n第５条 跳号。", DEFAULT_SIZES)
@example("正文开头。\n- 3 -\n第 2 页 共 9 页\n12\n正文继续。", DEFAULT_SIZES)
@example("标题\n\n宁政发〔2022〕1号\n\n《宁夏回族自治区人民政府公报》简介\n简介之后的正文。", DEFAULT_SIZES)
@example("**\n第一条 **加强领导。**各地 <input type=\"checkbox\"/> 要落实。\n<p></p>\n<input type=\"checkbox\"/> 是\t否 <input type=\"checkbox\"/>", DEFAULT_SIZES)
def test_parser_never_crashes_and_loses_no_body_text(text, sizes):
    check_nothing_is_lost(text, sizes)


@RUNS
@given(st.text(max_size=3000), SIZES)
def test_arbitrary_unicode_is_parsed_without_loss(text, sizes):
    check_nothing_is_lost(text, sizes)


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(HUGE_LINE, heading(), SENTENCE), min_size=1, max_size=8))
def test_huge_lines_are_cut_into_parts_without_loss(lines):
    check_nothing_is_lost("\n".join(lines), DEFAULT_SIZES)
