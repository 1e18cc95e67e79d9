"""Small text helpers shared by the parsing steps: lines with offsets, normalisation, Chinese numerals."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000}
CN_NUMERAL = "零〇一二两三四五六七八九十百千"

# Characters that end a sentence or a clause; a line ending in none of these was cut by the layout.
SENTENCE_END = "。！？；!?;：:”’」』）)】]"
CJK = r"\u3400-\u9fff\uf900-\ufaff"

# Markup that conversion to text left in some source files: HTML form and paragraph tags
# (<input type="checkbox"/> for a form's tick box, <p>…</p> in table cells) and Markdown bold (**).
# The spaces that set a tag off go with it. Only these tags: other markup is a document's own text
# (a rule on web pages may quote <script> or <b>), as are angle brackets used as quotation marks
# (<宁夏回族自治区政务公开专区标识>) or around a web address.
_HTML_TAG = r"</?(?:input|p)\b[^<>\n]*>"
MARKUP = re.compile(rf"\*\*|(?:^|(?<=\t)){_HTML_TAG}[ \u3000]*|[ \u3000]*{_HTML_TAG}", re.IGNORECASE)


@dataclass(frozen=True)
class Line:
    """One line of a source file, with its character offsets (end excludes the newline)."""

    start: int
    end: int
    text: str

    @property
    def stripped(self) -> str:
        return self.text.strip()

    @property
    def blank(self) -> bool:
        return not self.text.strip()


def split_lines(text: str) -> list[Line]:
    lines = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        lines.append(Line(pos, pos + len(body), body))
        pos += len(raw)
    return lines


def unmarked_spans(text: str) -> list[tuple[int, int]]:
    """The (start, end) spans of ``text`` that remain once markup artefacts (:data:`MARKUP`) are
    cut out, without whitespace at either end of the whole; empty when nothing but markup and
    whitespace is left. Spans, not a string, so a caller can map what is left back to the source."""
    spans, pos = [], 0
    for found in MARKUP.finditer(text):
        if found.start() > pos:
            spans.append((pos, found.start()))
        pos = found.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    while spans and not text[spans[0][0] : spans[0][1]].strip():
        spans.pop(0)
    while spans and not text[spans[-1][0] : spans[-1][1]].strip():
        spans.pop()
    if spans:
        start, end = spans[0]
        spans[0] = (end - len(text[start:end].lstrip()), end)
        start, end = spans[-1]
        spans[-1] = (start, start + len(text[start:end].rstrip()))
    return spans


def strip_markup(text: str) -> str:
    """``text`` without markup artefacts (HTML form/paragraph tags, Markdown ``**``), stripped."""
    return "".join(text[a:b] for a, b in unmarked_spans(text))


def cn_to_int(numeral: str) -> int:
    """Chinese numerals as used for article numbers: 二十一 -> 21, 一百零三 -> 103, 12 -> 12."""
    numeral = numeral.strip()
    if numeral.isdigit():
        return int(unicodedata.normalize("NFKC", numeral))
    total, current = 0, 0
    for ch in numeral:
        if ch in CN_DIGITS:
            current = CN_DIGITS[ch]
        elif ch in CN_UNITS:
            total += (current or 1) * CN_UNITS[ch]
            current = 0
        else:
            raise ValueError(f"not a Chinese numeral: {numeral!r}")
    return total + current


def int_to_cn(number: int) -> str:
    """21 -> 二十一 (1..999), the form used in 第X条 labels."""
    digits = "零一二三四五六七八九"
    if number < 10:
        return digits[number]
    if number < 20:
        return "十" + (digits[number % 10] if number % 10 else "")
    if number < 100:
        return digits[number // 10] + "十" + (digits[number % 10] if number % 10 else "")
    hundreds, rest = divmod(number, 100)
    if rest == 0:
        return digits[hundreds] + "百"
    middle = "零" if rest < 10 else ""
    tail = int_to_cn(rest) if rest >= 20 or rest < 10 else "一" + int_to_cn(rest)
    return digits[hundreds] + "百" + middle + tail


def squeeze(text: str) -> str:
    """Remove layout whitespace between CJK characters (titles wrapped over lines), keep it between words."""
    text = re.sub(r"\s+", " ", text.strip())
    text = re.sub(rf"(?<=[{CJK}（）《》“”、，])\s+|\s+(?=[{CJK}（）《》“”、，])", "", text)
    return text


def compact(text: str) -> str:
    """The form used to compare texts: no markup artefacts, NFKC, no whitespace (a quote copied
    from a source file with its ``**`` still matches the article text, which has none)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", MARKUP.sub("", text)))


def join_broken(left: str, right: str) -> str:
    """The separator to put between two lines of one paragraph that the PDF layout split."""
    if left and right and left[-1].isascii() and right[0].isascii() and left[-1].isalnum() and right[0].isalnum():
        return " "
    return ""


def ends_sentence(text: str) -> bool:
    return bool(text) and text.rstrip()[-1] in SENTENCE_END
