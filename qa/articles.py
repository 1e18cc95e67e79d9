"""Step 3 of the flow: a document -> its articles, the clauses people cite.

Headings are recognised by style (第X章, 第X条, 一、, （一）, 1., （1）, ①, 1.1, 附件) and nested by
the order styles appear in, the way a reader does. Numbering must run on (一、 then 二、), which is
what keeps cross-references (依照本办法第五条…) and wrapped lines from being taken for headings.

Which level becomes an article: every 第X条 is one; elsewhere a section is kept whole while it is
short enough to be a self-contained clause (``target_chars``) and split into its sub-sections
otherwise. A section's heading-only introduction travels with its first sub-section, so no text is
lost. Anything still longer than ``max_chars`` is cut at sentence ends into parts.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from dataclasses import dataclass, field

from qa.models import Article, Document
from qa.text import (
    CN_NUMERAL,
    Line,
    cn_to_int,
    ends_sentence,
    join_broken,
    split_lines,
    squeeze,
    strip_markup,
    unmarked_spans,
)

CN = f"[{CN_NUMERAL}]+"


@dataclass(frozen=True)
class HeadingStyle:
    name: str
    pattern: re.Pattern
    # Styles numbered across the whole document (第X条 keeps counting through chapters).
    global_numbering: bool = False
    # Articles (第X条) are always their own unit, whatever their length.
    always_unit: bool = False


STYLES = [
    HeadingStyle("chapter", re.compile(rf"^第({CN}|\d+)章(?:[\s\u3000]+(.{{0,30}}))?$"), global_numbering=True),
    HeadingStyle("section", re.compile(rf"^第({CN}|\d+)节(?:[\s\u3000]+(.{{0,30}}))?$"), global_numbering=True),
    HeadingStyle("article", re.compile(rf"^第({CN}|\d+)条(?:[\s\u3000]*)(.*)$"), global_numbering=True, always_unit=True),
    HeadingStyle("attachment", re.compile(r"^附件\s*[:：]?\s*(\d{0,2})\s*[:：]?\s*(.{0,40})$")),
    HeadingStyle("cn", re.compile(r"^([一二三四五六七八九十]{1,3})\s*[、.．]\s*(.*)$")),
    HeadingStyle("cn_paren", re.compile(r"^[（(]\s*([一二三四五六七八九十]{1,3})\s*[）)]\s*(.*)$")),
    HeadingStyle("dotted", re.compile(r"^(\d{1,2}(?:\.\d{1,2}){1,3})(?![\d.])\s*[.．]?\s*(\S.*)$")),
    HeadingStyle("arabic", re.compile(r"^(\d{1,3})\s*[.．、](?![\d.])\s*(.*)$")),
    HeadingStyle("arabic_paren", re.compile(r"^[（(]\s*(\d{1,3})\s*[）)]\s*(.*)$")),
    HeadingStyle("circled", re.compile(r"^([①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳])\s*(.*)$")),
    # "1 总则": a bare number then a short title, the top level of numbered plans (1 / 1.1 / 1.1.1).
    HeadingStyle("dotted1", re.compile(r"^(\d{1,2})[\s\u3000]+([\u4e00-\u9fff][^。；，,;]{1,24})$")),
]
LIST_BULLET = re.compile(r"^[-•·]\s+")
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
PAGE_ARTIFACT = re.compile(r"^(?:[-—–－·•\s]*\d{1,3}[-—–－·•\s]*|第\s*\d+\s*页(?:\s*共\s*\d+\s*页)?)$")
SENTENCE_SPLIT = re.compile(r"(?<=[。！？；!?;])|(?<=\n)")


# A table row's first cell when it ends a sentence (2.考生忘带准考证…过期。<tab>先验证考生相貌…).
ROW_CASE = re.compile(r"^[^\t\n]*[。！？；!?;][ \u3000]*(?=\t)")


def sentences(text: str) -> list[str]:
    """A clause's sentences as the reader quotes them (and the index embeds them): split after
    sentence-ending punctuation and line breaks, fragments under 4 characters dropped. A table
    row's case (its first cell) stays with the first sentence of what is done about it: apart,
    the case was quoted as the answer to "忘带准考证还能进考场吗" and the answer never was."""
    return [sentence for sentence, _ in sentences_with_cases(text)]


def sentences_with_cases(text: str) -> list[tuple[str, str]]:
    """:func:`sentences`, each with the table-row case it is said of ("" outside a table row and for
    the row's first sentence, which holds its case): 所误时间不补 is said of 考生发生晕场、疾病等情况."""
    pieces = []
    for line in text.splitlines(keepends=True):
        case = ROW_CASE.match(line)
        if case:
            first, *rest = SENTENCE_SPLIT.split(line[case.end() :])
            pieces += [(case.group() + first, ""), *((sentence, case.group().strip()) for sentence in rest)]
        else:
            pieces += [(sentence, "") for sentence in SENTENCE_SPLIT.split(line)]
    return [(s.strip(), c) for s, c in pieces if len(s.strip()) >= 4]


# A line this long that stops mid-sentence was cut by the page layout, not by the author.
MIN_BROKEN_LINE = 18
# A section introduction shorter than this is carried into its first sub-section's article.
MAX_CARRIED_INTRO = 120


@dataclass
class Heading:
    style: str
    number: int
    label: str
    title: str  # what the path shows: 第四章 工作流程, 二、主要任务, （三）强化…

    @property
    def key(self) -> str:
        return self.style


@dataclass
class Block:
    """A heading with the lines under it up to the next heading, and its sub-sections."""

    heading: Heading | None
    lines: list[Line] = field(default_factory=list)
    children: list["Block"] = field(default_factory=list)

    def subtree_chars(self) -> int:
        own = sum(len(line.stripped) for line in self.lines)
        return own + sum(child.subtree_chars() for child in self.children)

    def subtree_lines(self) -> list[Line]:
        lines = list(self.lines)
        for child in self.children:
            lines.extend(child.subtree_lines())
        return lines


def _number(style: str, raw: str) -> int:
    if style == "circled":
        return CIRCLED.index(raw) + 1
    if style == "dotted":
        return int(raw.split(".")[-1])
    if style == "attachment":
        return int(raw) if raw else 1
    return cn_to_int(raw)


def _short_title(rest: str) -> str:
    """A heading's title part: up to its first full stop or colon, capped for the path."""
    rest = rest.strip()
    cut = re.split(r"[。：:；;]", rest, maxsplit=1)[0]
    return cut[:30]


def match_heading(text: str) -> Heading | None:
    """The heading a line opens with, if its shape is one (numbering is checked by the caller)."""
    if "\t" in text or len(text) < 2:
        return None
    text = LIST_BULLET.sub("", text)
    for style in STYLES:
        m = style.pattern.match(text)
        if not m:
            continue
        raw, rest = m.group(1), (m.group(2) or "")
        number = _number(style.name, raw)
        name = "dotted" if style.name == "dotted1" else style.name
        depth = raw.count(".") + 1 if name == "dotted" else 0
        label = _label(style.name, raw, text)
        title = squeeze(_short_title(strip_markup(rest)))
        if style.name in ("chapter", "section", "attachment", "dotted", "dotted1"):
            heading_title = f"{label} {title}".strip() if title else label
        elif style.name == "article":
            heading_title = label
        else:
            heading_title = f"{label}{title}"
        return Heading(f"{name}{depth or ''}", number, label, heading_title)
    return None


def _label(style: str, raw: str, text: str) -> str:
    if style in ("chapter", "section", "article"):
        return text[: text.index(style_char(style)) + 1]
    if style == "attachment":
        return f"附件{raw}"
    if style in ("cn",):
        return f"{raw}、"
    if style == "cn_paren":
        return f"（{raw}）"
    if style == "arabic_paren":
        return f"（{raw}）"
    if style == "arabic":
        return f"{raw}."
    return raw


def style_char(style: str) -> str:
    return {"chapter": "章", "section": "节", "article": "条"}[style]


STYLE_BY_NAME = {style.name: style for style in STYLES}


def _style_of(heading: Heading) -> HeadingStyle:
    base = heading.style.rstrip("0123456789")
    return STYLE_BY_NAME.get(base, STYLE_BY_NAME["dotted"])


class OutlineBuilder:
    """Nests headings by the order their styles appear in, accepting only numbering that runs on."""

    def __init__(self) -> None:
        self.root = Block(None)
        self.stack: list[Block] = [self.root]
        self.global_last: dict[str, int] = {}

    def add(self, line: Line) -> None:
        heading = match_heading(line.stripped)
        if heading is None or not self._place(heading, line):
            self.stack[-1].lines.append(line)

    def _place(self, heading: Heading, line: Line) -> bool:
        style = _style_of(heading)
        if style.name == "attachment":
            return self._push_at(1, heading, line)
        if style.global_numbering:
            last = self.global_last.get(heading.style, 0)
            if not (last < heading.number <= last + 2):
                return False
            self.global_last[heading.style] = heading.number
            if heading.style == "chapter":
                self.global_last.pop("section", None)
        position = next((i for i, b in enumerate(self.stack) if b.heading and b.heading.key == heading.key), None)
        if position is not None:
            previous = self.stack[position].heading
            if style.global_numbering or previous.number < heading.number <= previous.number + 2:
                return self._push_at(position, heading, line)
            return False
        if style.global_numbering or heading.number == 1:
            return self._push_at(len(self.stack), heading, line)
        return False

    def _push_at(self, position: int, heading: Heading, line: Line) -> bool:
        del self.stack[position:]
        block = Block(heading, [line])
        self.stack[-1].children.append(block)
        self.stack.append(block)
        return True


def build_outline(lines: list[Line]) -> Block:
    builder = OutlineBuilder()
    for line in lines:
        if line.blank:
            continue
        builder.add(line)
    return builder.root


@dataclass
class _Unit:
    """The lines that become one article (before any cutting into parts)."""

    label: str
    path: list[str]
    lines: list[Line]


def _holds_units(block: Block) -> bool:
    """Whether a section contains 第X条 articles, which are always cited one by one."""
    return any(
        (child.heading is not None and _style_of(child.heading).always_unit) or _holds_units(child)
        for child in block.children
    )


def plan_units(root: Block, target_chars: int, preamble_label: str) -> list[_Unit]:
    units: list[_Unit] = []

    def emit(block: Block, path: list[str], carried: list[Line]) -> None:
        heading = block.heading
        here = path + [heading.title] if heading else path
        label = heading.label if heading else preamble_label
        whole = carried + block.subtree_lines()
        if heading is not None and (
            _style_of(heading).always_unit
            or not block.children
            or (block.subtree_chars() <= target_chars and not _holds_units(block))
        ):
            units.append(_Unit(label, here, whole))
            return
        own = carried + block.lines
        intro_chars = sum(len(line.stripped) for line in block.lines[1:] if heading) if heading else 0
        carry: list[Line] = []
        if heading is None:
            if own:
                units.append(_Unit(label, here or [preamble_label], own))
        elif intro_chars <= MAX_CARRIED_INTRO:
            carry = own
        else:
            units.append(_Unit(label, here, own))
        for child in block.children:
            emit(child, here, carry)
            carry = []
        if carry:  # no child took it (cannot happen with children, kept for safety)
            units.append(_Unit(label, here, carry))

    emit(root, [], [])
    return units


@dataclass
class _Text:
    """Article text with a map back to source offsets."""

    text: str
    text_starts: list[int]
    source_starts: list[int]

    def source_offset(self, pos: int) -> int:
        i = bisect.bisect_right(self.text_starts, pos) - 1
        i = max(i, 0)
        return self.source_starts[i] + (pos - self.text_starts[i])


def is_artifact(line: str, running_heads: frozenset[str]) -> bool:
    """A page number or running head left by PDF extraction (a table cell holding a number is not)."""
    if "\t" in line:
        return False
    text = line.strip()
    return bool(PAGE_ARTIFACT.match(text)) or re.sub(r"\s+", "", text) in running_heads


def assemble(lines: list[Line], running_heads: frozenset[str]) -> _Text:
    """Join lines into article text, mending sentences the page layout cut in two. Markup left in
    the source (``<input type="checkbox"/>``, ``**``) is cut out of the text; each run of text
    between two cuts keeps its own source offset, so offsets still point into the source."""
    pieces: list[str] = []
    text_starts: list[int] = []
    source_starts: list[int] = []
    length = 0
    previous = ""
    for line in lines:
        if not line.text.strip() or is_artifact(line.text, running_heads):
            continue
        spans = unmarked_spans(line.text)
        body = "".join(line.text[a:b] for a, b in spans)
        if not body:  # nothing but markup
            continue
        if pieces:
            broken = (
                len(previous) >= MIN_BROKEN_LINE
                and not ends_sentence(previous)
                and "\t" not in previous
                and "\t" not in body
                and match_heading(line.stripped) is None
            )
            sep = join_broken(previous, body) if broken else "\n"
            pieces.append(sep)
            length += len(sep)
        for a, b in spans:
            text_starts.append(length)
            source_starts.append(line.start + a)
            length += b - a
        pieces.append(body)
        previous = body
    return _Text("".join(pieces), text_starts, source_starts)


def _cut_points(text: str) -> list[str]:
    """The pieces a long clause may be cut between: sentences, but a table row (a line with tab-
    separated cells) whole, so that a row's answer cell (牵头单位) stays with the task it is for."""
    pieces = []
    for line in text.splitlines(keepends=True):
        pieces += [line] if "\t" in line else SENTENCE_SPLIT.split(line)
    return pieces


def cut_into_parts(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Spans of ``text`` of at most ``max_chars``, cut at sentence ends (table rows whole), of
    balanced length."""
    if len(text) <= max_chars:
        return [(0, len(text))]
    pieces = [p for p in _cut_points(text) if p]
    units: list[str] = []
    for piece in pieces:  # a sentence longer than a part is cut where it must be
        while len(piece) > max_chars:
            units.append(piece[:max_chars])
            piece = piece[max_chars:]
        units.append(piece)
    goal = len(text) / math.ceil(len(text) / max_chars)
    spans: list[tuple[int, int]] = []
    start = pos = 0
    for unit in units:
        if pos > start and (pos + len(unit) - start > max_chars or pos - start >= goal):
            spans.append((start, pos))
            start = pos
        pos += len(unit)
    spans.append((start, pos))
    return spans


def article_id(doc_id: str, path: list[str], part: int, text: str) -> str:
    key = "\x1f".join([doc_id, *path, str(part), text])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def unique_id(candidate: str, seen: set[str]) -> str:
    """The id, or when the document already has an article with the same path and text (a form
    repeated under two identical headings), the id told apart by its occurrence: ids are anchors
    in the document page and keys of citations, two clauses must not share one."""
    unique, occurrence = candidate, 1
    while unique in seen:
        occurrence += 1
        unique = hashlib.sha1(f"{candidate}#{occurrence}".encode("utf-8")).hexdigest()[:16]
    seen.add(unique)
    return unique


def split_articles(
    document: Document,
    text: str,
    *,
    target_chars: int,
    max_chars: int,
    running_heads: frozenset[str] = frozenset(),
) -> list[Article]:
    """The articles of ``document``; ``text`` is the whole source file (offsets refer to it)."""
    lines = [
        Line(line.start + document.start, line.end + document.start, line.text)
        for line in split_lines(text[document.start:document.end])
    ]
    root = build_outline(lines)
    preamble_label = "通知" if document.notice_title or document.doc_number else "正文"
    articles: list[Article] = []
    seen_ids: set[str] = set()
    for unit in plan_units(root, target_chars, preamble_label):
        assembled = assemble(unit.lines, running_heads)
        if not assembled.text.strip():
            continue
        spans = cut_into_parts(assembled.text, max_chars)
        for n, (a, b) in enumerate(spans, start=1):
            part_text = assembled.text[a:b].strip()
            if not part_text:
                continue
            lead = len(assembled.text[a:b]) - len(assembled.text[a:b].lstrip())
            part = n if len(spans) > 1 else 0
            start = assembled.source_offset(a + lead)
            end = assembled.source_offset(a + lead + len(part_text) - 1) + 1
            articles.append(
                Article(
                    id=unique_id(article_id(document.id, unit.path, part, part_text), seen_ids),
                    doc_id=document.id,
                    label=unit.label,
                    path=list(unit.path),
                    text=part_text,
                    start=start,
                    end=end,
                    part=part,
                    document=document,
                )
            )
    return articles
