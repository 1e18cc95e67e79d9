"""Step 1 of the flow: a file on disk -> its text.

Government staff hand over TXT (often GBK/GB18030), PDF, DOCX, HTML and Markdown. Each format is
read by a well-kept library; a file that cannot be read raises :class:`LoadError` naming the file
and the reason (in Chinese: an admin reads it), so the rest of a corpus still loads.

PDF and DOCX are compressed: a 100 KB DOCX can hold 200 MB of XML, a mangled PDF can send its
library into a loop. So they are checked before they are read (unpacked size, page count;
:class:`ParseLimits`) and read in a child process of their own (:func:`read_isolated`) that is
stopped past a time limit and cannot take more than its memory limit. Whatever a library raises
on a broken file becomes a LoadError: one bad file never stops a build or the service.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".pdf", ".docx", ".html", ".htm")
# Tried in order before falling back to detection: most files are UTF-8, the rest mostly GB18030
# (a superset of GBK and GB2312).
PREFERRED_ENCODINGS = ("utf-8-sig", "gb18030")


@dataclass(frozen=True)
class ParseLimits:
    """What reading one file may take (the values and their reasons are in qa/config.py)."""

    seconds: float = 60.0
    memory_mb: int = 1024
    unpacked_bytes: int = 64 * 1024 * 1024
    pdf_pages: int = 2000

    @classmethod
    def of(cls, settings) -> "ParseLimits":
        return cls(settings.parse_timeout_s, settings.parse_memory_mb, settings.max_unpacked_bytes, settings.max_pdf_pages)


logger = logging.getLogger("qa.loaders")
# Formats read in a child process (compressed, parsed by large libraries).
ISOLATED_SUFFIXES = (".pdf", ".docx")


class LoadError(Exception):
    """A file that cannot be turned into text; the message names the file and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def decode_text(data: bytes, name: str = "<bytes>") -> str:
    """Decode a text file: UTF-8, then GB18030, then charset-normalizer's best guess."""
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError(name, "看起来是二进制文件，不是文本")
    try:
        return data.decode(PREFERRED_ENCODINGS[0])
    except UnicodeDecodeError:
        pass
    mixed = _decode_mixed_lines(data)
    if mixed is not None:
        return mixed
    for encoding in PREFERRED_ENCODINGS[1:]:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadError(name, "无法识别的文字编码（不是 UTF-8 或 GBK/GB18030）")
    return str(best)


def _decode_mixed_lines(data: bytes) -> str | None:
    """A file pieced together from UTF-8 and GBK parts (paragraphs pasted from another file), each
    line read in the encoding it is valid in; None when the file is not such a mix. Decoding it
    whole as GB18030 would turn the UTF-8 lines into mojibake without an error."""
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    decoded, encodings = [], set()
    for line in lines:
        for encoding in ("utf-8", "gb18030"):
            try:
                decoded.append(line.decode(encoding))
            except UnicodeDecodeError:
                continue
            if not line.isascii():
                encodings.add(encoding)
            break
        else:
            return None
    return "\n".join(decoded) if len(encodings) > 1 else None


def _read_pdf(data: bytes, name: str, limits: ParseLimits) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError(name, "PDF 已加密（encrypted），请上传未加密的文件")
        if len(reader.pages) > limits.pdf_pages:
            raise LoadError(name, f"PDF 有 {len(reader.pages)} 页，超过上限 {limits.pdf_pages} 页")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except RecursionError as exc:
        raise LoadError(name, "PDF 结构嵌套过深，无法读取") from exc
    except Exception as exc:  # pypdf raises many kinds on a mangled file (AttributeError, LimitReachedError…)
        raise LoadError(name, f"不是可读取的 PDF 文件（{type(exc).__name__}）") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise LoadError(name, "PDF 没有文字层（扫描件需先做文字识别）")
    return text


def _check_unpacked_size(data: bytes, name: str, limits: ParseLimits) -> None:
    """A DOCX is a zip: its members' sizes, read from the zip's directory, bound what reading it
    unpacks (zipfile reads no member past its stated size)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoadError(name, f"不是可读取的 DOCX 文件（{type(exc).__name__}）") from exc
    if unpacked > limits.unpacked_bytes:
        raise LoadError(name, f"解压后有 {unpacked / 1024 / 1024:.0f} MB，超过上限 {limits.unpacked_bytes // (1024 * 1024)} MB")


def _read_docx(data: bytes, name: str, limits: ParseLimits) -> str:
    import docx

    _check_unpacked_size(data, name, limits)
    try:
        document = docx.Document(io.BytesIO(data))
        lines = [paragraph.text for paragraph in document.paragraphs]
        for table in document.tables:  # tables keep their rows as tab-separated lines
            for row in table.rows:
                lines.append("\t".join(cell.text.strip() for cell in row.cells))
    except Exception as exc:  # truncated XML (lxml's XMLSyntaxError), missing parts (KeyError)…
        raise LoadError(name, f"不是可读取的 DOCX 文件（{type(exc).__name__}）") from exc
    return "\n".join(lines)


def _read_html(data: bytes, name: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, name), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text("\n")


def read_bytes(data: bytes, name: str, limits: ParseLimits = ParseLimits()) -> str:
    """The text of a file given as bytes (an upload), chosen by the name's suffix, read here."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(name, f"不支持的文件类型 {suffix or '（无扩展名）'}（unsupported），支持 {'、'.join(SUPPORTED_SUFFIXES)}")
    if not data:
        raise LoadError(name, "是空文件（empty）")
    if suffix == ".pdf":
        text = _read_pdf(data, name, limits)
    elif suffix == ".docx":
        text = _read_docx(data, name, limits)
    elif suffix in (".html", ".htm"):
        text = _read_html(data, name)
    else:
        text = decode_text(data, name)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError(name, "文件中没有文字")
    return text


def read_isolated(data: bytes, name: str, limits: ParseLimits = ParseLimits()) -> str:
    """:func:`read_bytes`, for PDF and DOCX in a child Python under ``limits`` (time, memory);
    other formats, bounded by their size, here. The child is a fresh interpreter (not a fork of a
    process holding uvicorn's and torch's threads, and not multiprocessing's spawn, which would
    run the parent's main module again) that reads the file from its stdin."""
    if Path(name).suffix.lower() not in ISOLATED_SUFFIXES or not data:
        return read_bytes(data, name, limits)
    package_root = str(Path(__file__).resolve().parent.parent)
    command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {package_root!r}); import qa.loaders as l; l.read_in_child()"]
    request = pickle.dumps((data, name, limits))
    # The child's warnings (pypdf writes one per broken object) go nowhere: unbounded otherwise.
    try:
        done = subprocess.run(command, input=request, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=limits.seconds)
    except subprocess.TimeoutExpired:
        raise LoadError(name, f"读取超过 {limits.seconds:g} 秒仍未完成，已停止（文件可能已损坏或过于复杂）") from None
    try:  # JSON, not pickle: what comes back from the child reading a hostile file is only data
        kind, value = json.loads(done.stdout.decode("ascii"))
        if kind not in ("text", "error") or not isinstance(value, str):
            raise ValueError(kind)
    except (ValueError, TypeError, UnicodeDecodeError):
        # no whole reply: the child died, killed at its memory limit (or, rarely, otherwise)
        logger.warning("reading %s in a child process failed: exit code %s", name, done.returncode)
        if done.returncode != 0:
            raise LoadError(name, f"读取所需内存超过上限 {limits.memory_mb} MB（或文件已损坏），已停止") from None
        raise LoadError(name, "读取进程没有给出结果，文件可能已损坏") from None
    if kind == "error":
        raise LoadError(name, value)
    return value


def read_in_child() -> None:
    """The child's side of :func:`read_isolated`: limits its own memory, reads the request
    (data, name, limits; pickled by the parent) from stdin and writes ["text", text] or
    ["error", reason] as JSON to stdout."""
    import resource

    # The reply goes to the real stdout; whatever a library prints (Python or C) goes to stderr.
    reply_to = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    data, name, limits = pickle.loads(sys.stdin.buffer.read())
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        reply = ("text", read_bytes(data, name, limits))
    except LoadError as error:
        reply = ("error", error.reason)
    except MemoryError:
        reply = ("error", f"读取所需内存超过上限 {limits.memory_mb} MB，已停止（文件可能已损坏或过于复杂）")
    except Exception as exc:  # whatever else a library raises: this file is unreadable, nothing more
        reply = ("error", f"无法读取（{type(exc).__name__}）")
    reply_to.write(json.dumps(reply).encode("ascii"))  # escaped: a lone surrogate from a PDF survives
    reply_to.flush()


def read_file(path: Path, limits: ParseLimits = ParseLimits()) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(path.name, f"无法读取文件（{exc.strerror}）") from exc
    return read_isolated(data, path.name, limits)
