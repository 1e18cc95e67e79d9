"""Step 2 of the flow: a gazette's text -> the documents it holds, with their citation metadata.

A gazette (公报) is a masthead and table of contents, then one document after another. Each
document opens with its title and a 文号 line standing alone (宁政办发〔2022〕30号); a notice that
issues a plan is followed, after its signature and date, by the plan's own title. Chronicles (大事记)
open with a heading of their own. Files that are not gazettes hold one document.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from qa.models import Document
from qa.text import CJK, Line, split_lines, squeeze

# 文号 standing alone on its line; brackets vary (〔〕, [], ［］) and spaces creep in from PDF extraction.
# (A publication permit such as 石新出管字〔2022〕第0093号 has 第 and is not a 文号.)
DOC_NUMBER_LINE = re.compile(rf"^\s*[（(]?\s*([{CJK}]{{1,12}}\s*[〔\[［]\s*\d{{4}}\s*[〕\]］]\s*\d+\s*号)\s*[）)]?\s*$")
DOC_NUMBER = re.compile(rf"[{CJK}]{{1,12}}\s*[〔\[［]\s*\d{{4}}\s*[〕\]］]\s*\d+\s*号")
CHRONICLE_HEADING = re.compile(rf"^[{CJK}\d、，,（）()]{{0,24}}大事记(（要闻）)?$")
BACK_MATTER = re.compile(r"^《[^》]{2,40}公报》简介$")
DATE_LINE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日$")
DATE_ANYWHERE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
GAZETTE_NAME = re.compile(rf"([{CJK}]{{2,20}}?人民政府)\s*\n*\s*公报")
GAZETTE_NAME_SPLIT = re.compile(rf"([{CJK}]{{2,16}})\n+([{CJK}]{{1,8}}人民政府公报|[{CJK}]{{0,8}}民政府公报)")
GAZETTE_ISSUE = re.compile(r"(\d{4})\s*年\s*第\s*(\d+)\s*期")
TOC_MARK = re.compile(r"^目\s*录$")
ORG_SUFFIX = re.compile(r"(厅|室|府|委|会|局|部|院|办|组|处|中心|委员会)$")
PUBLISH_NOTE = re.compile(r"^[（(]此件[^）)]{0,8}[）)]$")
ISSUING_VERBS = ("印发", "发布", "转发")
EFFECTIVE_FROM_DATE = re.compile(r"自\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*起\s*(施行|实施|执行)")
EFFECTIVE_ON_ISSUE = re.compile(r"自\s*(印发|发布|公布)之日起\s*(施行|实施|执行)")
REPEALS = re.compile(r"(《[^》]{2,80}》\s*[（(]([^）)]{2,30})[）)])\s*同时废止")
# County-level regions are named with their prefecture when the text says so (石嘴山市惠农区).
PREFECTURE = rf"[{CJK}]{{2,5}}(?:市|州|盟|地区)"
PREFECTURE_ORGAN = re.compile(r"市(?:委|人民政府|政府)")
MIN_PREFECTURE_MENTIONS = 5


@dataclass
class _Start:
    line: int  # index of the first line of the document (its title)
    number_line: int | None  # index of the 文号 line, None for chronicles
    title: str
    chronicle: bool = False


def iso_date(year: str, month: str, day: str) -> str:
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def is_gazette(lines: list[Line]) -> bool:
    head = [line.stripped for line in lines[:200]]
    return any(TOC_MARK.match(text) for text in head) and any("公报" in text for text in head[:40])


def detect_region(text: str) -> str:
    """The region the gazette belongs to, read from its masthead (宁夏回族自治区, 石嘴山市惠农区 ...)."""
    name = gazette_name(text)
    if not name:
        return ""
    region = name.removesuffix("人民政府公报").removesuffix("人民政府")
    if region.endswith(("区", "县", "旗")) and not region.endswith("自治区"):
        found = re.search(rf"({PREFECTURE}){re.escape(region)}", text)
        if found:
            return found.group(1) + region
        # Otherwise the prefecture the gazette keeps citing (固原市 in a 泾源县 gazette).
        name = _most_cited_prefecture(text)
        if name:
            return name + region
    return region


def _most_cited_prefecture(text: str) -> str:
    """The prefecture whose 市委/市人民政府 the text cites most; names are 2-3 characters, and the
    text gives no word boundaries, so both lengths are counted and the longer wins a tie."""
    counts: Counter[str] = Counter()
    for found in PREFECTURE_ORGAN.finditer(text):
        for size in (2, 3):
            name = text[max(0, found.start() - size):found.start()]
            if len(name) == size and re.fullmatch(rf"[{CJK}]+", name):
                counts[name + "市"] += 1
    if not counts:
        return ""
    best = max(counts.items(), key=lambda item: (item[1], len(item[0])))
    return best[0] if best[1] >= MIN_PREFECTURE_MENTIONS else ""


def gazette_name(text: str) -> str:
    """The masthead's name (宁夏回族自治区人民政府公报); mastheads wrap it over two lines."""
    lines = [re.sub(r"\s+", "", line) for line in text[:3000].splitlines()]
    lines = [line for line in lines if line]
    names = []
    for i, line in enumerate(lines[:80]):
        if not line.endswith("公报") or not re.fullmatch(rf"[{CJK}]+", line):
            continue
        if i > 0 and len(line) <= len("人民政府公报") and re.fullmatch(rf"[{CJK}]{{1,16}}", lines[i - 1]):
            line = lines[i - 1] + line
        names.append(line)
    return max(names, key=len) if names else ""


def gazette_label(text: str) -> str:
    name = gazette_name(text)
    issue = GAZETTE_ISSUE.search(text[:4000])
    if name and issue:
        return f"{name} {issue.group(1)}年第{int(issue.group(2))}期"
    return name


def _non_blank_before(lines: list[Line], index: int) -> int | None:
    i = index - 1
    while i >= 0 and lines[i].blank:
        i -= 1
    return i if i >= 0 else None


def _non_blank_after(lines: list[Line], index: int, stop: int) -> int | None:
    i = index + 1
    while i < stop and lines[i].blank:
        i += 1
    return i if i < stop else None


def _looks_like_org_line(text: str) -> bool:
    return len(text) <= 30 and not re.search(r"[。，；：:,;、]", text) and bool(ORG_SUFFIX.search(text))


def _title_before(lines: list[Line], number_line: int) -> tuple[int, str]:
    """The title sits on the line(s) just above the 文号 line; an issuer may have wrapped onto its own line."""
    first = _non_blank_before(lines, number_line)
    if first is None:
        return number_line, ""
    title = lines[first].stripped
    if title.startswith("关于"):
        above = _non_blank_before(lines, first)
        if above is not None and _looks_like_org_line(lines[above].stripped):
            return above, squeeze(lines[above].stripped + " " + title)
    return first, squeeze(title)


def _toc_chronicle_title(lines: list[Line], heading: str, toc_end: int) -> str:
    """A bare 大事记 heading takes its full title from the table of contents when one lists it."""
    for line in lines[:toc_end]:
        text = line.stripped
        if "大事记" in text and not text.startswith("【"):
            text = re.sub(r"^[-•·\s]*\d+\s*[、.．]\s*", "", text)
            text = re.sub(r"[.…·\s]*[（(]?\s*\d+\s*[）)]?\s*$", "", text)
            if text.endswith(heading) and len(text) > len(heading):
                return squeeze(text)
    return heading


def find_starts(lines: list[Line]) -> list[_Start]:
    starts: list[_Start] = []
    for i, line in enumerate(lines):
        if DOC_NUMBER_LINE.match(line.text):
            first, title = _title_before(lines, i)
            starts.append(_Start(first, i, title))
    toc_end = starts[0].line if starts else 0
    last_chronicle = None
    for i, line in enumerate(lines):
        if i < toc_end or not CHRONICLE_HEADING.match(line.stripped):
            continue
        heading = line.stripped
        previous = max((s for s in starts if s.line < i), key=lambda s: s.line, default=None)
        # A repeated bare heading (大事记 … 大事记) continues the chronicle it repeats.
        if previous is not None and previous.chronicle and last_chronicle == heading:
            continue
        starts.append(_Start(i, None, _toc_chronicle_title(lines, heading, toc_end), chronicle=True))
        last_chronicle = heading
    return sorted(starts, key=lambda s: s.line)


def _end_of_documents(lines: list[Line]) -> int:
    for i, line in enumerate(lines):
        if BACK_MATTER.match(line.stripped):
            return i
    return len(lines)


def _signature(lines: list[Line], begin: int, stop: int) -> tuple[str, str, int | None]:
    """Issuer and date from the first signature block (org lines, then a date line standing alone)."""
    for i in range(begin, stop):
        match = DATE_LINE.match(lines[i].stripped)
        if not match:
            continue
        issuers = []
        j = _non_blank_before(lines, i)
        while j is not None and j > begin and _looks_like_org_line(lines[j].stripped) and len(issuers) < 3:
            issuers.insert(0, lines[j].stripped)
            j = _non_blank_before(lines, j)
        return " ".join(issuers), iso_date(*match.groups()), i
    return "", "", None


def _plan_title(lines: list[Line], after: int, stop: int) -> str:
    """The title of the plan a notice issues: the first short line after the signature block."""
    i = _non_blank_after(lines, after, stop)
    if i is not None and PUBLISH_NOTE.match(lines[i].stripped):
        i = _non_blank_after(lines, i, stop)
    if i is None:
        return ""
    text = lines[i].stripped
    if len(text) <= 80 and not re.search(r"[。；;：:]", text) and "\t" not in text and not text.startswith("附件"):
        return squeeze(text)
    return ""


def _issuer_from_title(title: str) -> str:
    match = re.match(r"^(.{2,40}?)\s*关于", title)
    return squeeze(match.group(1)) if match else ""


def _validity(body: str, date: str) -> tuple[str, list[str]]:
    effective = ""
    found = EFFECTIVE_FROM_DATE.search(body)
    if found:
        effective = iso_date(*found.groups()[:3])
    elif EFFECTIVE_ON_ISSUE.search(body):
        effective = date
    # The same repealed document is often named twice (in the notice and in the plan's 附则).
    by_number = {re.sub(r"\s+", "", m.group(2)): squeeze(m.group(1)) for m in REPEALS.finditer(body)}
    repeals = sorted(set(by_number.values()))
    return effective, repeals


def document_id(source_file: str, title: str, doc_number: str, occurrence: int) -> str:
    key = f"{source_file}\x1f{title}\x1f{doc_number}\x1f{occurrence}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def split_documents(text: str, source_file: str) -> list[Document]:
    """Split a file's text into documents; a file that is not a gazette is one document."""
    lines = split_lines(text)
    region = detect_region(text)
    label = gazette_label(text)
    gazette = is_gazette(lines)
    starts = find_starts(lines)
    # Only a gazette ends in back matter (its 《…公报》简介); a plain file is body to its last line.
    stop = _end_of_documents(lines) if gazette else len(lines)
    if not starts or not gazette:
        starts = _single_document_start(lines, starts)
    documents: list[Document] = []
    seen: dict[tuple[str, str], int] = {}
    for n, start in enumerate(starts):
        end_line = starts[n + 1].line if n + 1 < len(starts) else stop
        if start.line >= end_line:
            continue
        doc = _build_document(lines, start, end_line, source_file, region, label)
        key = (doc.title, doc.doc_number)
        seen[key] = seen.get(key, 0) + 1
        doc.id = document_id(source_file, doc.title, doc.doc_number, seen[key])
        documents.append(doc)
    return documents


def _single_document_start(lines: list[Line], starts: list[_Start]) -> list[_Start]:
    first = next((i for i, line in enumerate(lines) if not line.blank), None)
    if first is None:
        return []
    if starts and starts[0].number_line is not None:
        return [_Start(first, starts[0].number_line, starts[0].title)]
    return [_Start(first, None, squeeze(lines[first].stripped)[:80])]


def _build_document(lines, start: _Start, end_line: int, source_file: str, region: str, label: str) -> Document:
    span_start = lines[start.line].start
    span_end = lines[end_line - 1].end
    body = "\n".join(line.text for line in lines[start.line:end_line])
    doc_number = ""
    if start.number_line is not None:
        doc_number = re.sub(r"\s+", "", DOC_NUMBER.search(lines[start.number_line].text).group(0))
        doc_number = doc_number.replace("[", "〔").replace("]", "〕").replace("［", "〔").replace("］", "〕")
    notice_title = start.title
    title, issuer, date = notice_title, "", ""
    if start.chronicle:
        dates = DATE_ANYWHERE.findall(body)
        date = iso_date(*dates[-1]) if dates else ""
    else:
        issuer, date, sign_line = _signature(lines, start.number_line or start.line, end_line)
        if sign_line is not None and any(verb in notice_title for verb in ISSUING_VERBS):
            plan = _plan_title(lines, sign_line, end_line)
            if plan:
                title = plan
        issuer = issuer or _issuer_from_title(notice_title)
    effective, repeals = _validity(body, date)
    return Document(
        id="",
        source_file=source_file,
        title=title,
        notice_title=notice_title if title != notice_title else "",
        doc_number=doc_number,
        issuer=issuer,
        date=date,
        region=region,
        gazette=label,
        trial="试行" in title or "试行" in notice_title,
        effective_date=effective,
        repeals=repeals,
        start=span_start,
        end=span_end,
    )
