"""Step 1 of the flow: a file on disk -> its text.

Government staff hand over TXT (often GBK/GB18030), PDF, DOCX, HTML and Markdown. Each format is
read by a well-kept library; a file that cannot be read raises :class:`LoadError` naming the file
and the reason, so the rest of a corpus still loads.
"""

from __future__ import annotations

import io
from pathlib import Path

SUPPORTED_SUFFIXES = (".txt", ".md", ".pdf", ".docx", ".html", ".htm")
# Tried in order before falling back to detection: most files are UTF-8, the rest mostly GB18030
# (a superset of GBK and GB2312).
PREFERRED_ENCODINGS = ("utf-8-sig", "gb18030")


class LoadError(Exception):
    """A file that cannot be turned into text; the message names the file and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def decode_text(data: bytes, name: str = "<bytes>") -> str:
    """Decode a text file: UTF-8, then GB18030, then charset-normalizer's best guess."""
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError(name, "looks like a binary file, not text")
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
        raise LoadError(name, "unknown text encoding (not UTF-8 or GBK/GB18030)")
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


def _read_pdf(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError(name, "the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(name, f"not a readable PDF ({exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise LoadError(name, "the PDF has no text layer (scanned images need OCR first)")
    return text


def _read_docx(data: bytes, name: str) -> str:
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(name, f"not a readable DOCX ({exc})") from exc
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:  # tables keep their rows as tab-separated lines
        for row in table.rows:
            lines.append("\t".join(cell.text.strip() for cell in row.cells))
    return "\n".join(lines)


def _read_html(data: bytes, name: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, name), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text("\n")


def read_bytes(data: bytes, name: str) -> str:
    """The text of a file given as bytes (an upload), chosen by the name's suffix."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(name, f"unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED_SUFFIXES)}")
    if not data:
        raise LoadError(name, "the file is empty")
    if suffix == ".pdf":
        text = _read_pdf(data, name)
    elif suffix == ".docx":
        text = _read_docx(data, name)
    elif suffix in (".html", ".htm"):
        text = _read_html(data, name)
    else:
        text = decode_text(data, name)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError(name, "the file has no text")
    return text


def read_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(path.name, f"cannot read the file ({exc.strerror})") from exc
    return read_bytes(data, path.name)
