"""Reading the formats government staff hand over, and clear errors for files that cannot be read."""

import io

import pytest

from qa.config import load_settings
from qa.corpus import load_corpus
from qa.loaders import LoadError, ParseLimits, read_bytes, read_isolated

NOTICE = "关于做好防汛工作的通知\n\n一、加强值班，确保24小时有人值守。\n二、及时报告险情。\n"


def test_gbk_text_is_detected():
    assert read_bytes(NOTICE.encode("gbk"), "notice.txt") == NOTICE


def test_gb18030_and_utf8_bom():
    assert read_bytes(NOTICE.encode("gb18030"), "a.txt") == NOTICE
    assert read_bytes(NOTICE.encode("utf-8-sig"), "b.txt") == NOTICE


def test_docx_paragraphs_and_tables():
    import docx

    document = docx.Document()
    for line in NOTICE.strip().splitlines():
        document.add_paragraph(line)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "区应急局"
    table.rows[0].cells[1].text = "牵头负责"
    buffer = io.BytesIO()
    document.save(buffer)
    text = read_bytes(buffer.getvalue(), "notice.docx")
    assert "一、加强值班，确保24小时有人值守。" in text
    assert "区应急局\t牵头负责" in text


def test_html_text_without_scripts():
    html = "<html><head><script>alert(1)</script></head><body><h1>关于做好防汛工作的通知</h1><p>一、加强值班。</p></body></html>"
    text = read_bytes(html.encode("gbk"), "notice.html")
    assert "一、加强值班。" in text and "alert" not in text


@pytest.mark.parametrize(
    "data,name,reason",
    [
        (b"", "empty.txt", "空文件"),
        (b"\x00\x01\x02binary\x00" * 20, "blob.txt", "二进制"),
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "PDF"),
        (b"PK\x03\x04 not a zip", "broken.docx", "DOCX"),
        (NOTICE.encode(), "notice.exe", "不支持的文件类型"),
    ],
)
def test_unreadable_files_give_one_clear_error(data, name, reason):
    with pytest.raises(LoadError) as caught:
        read_bytes(data, name)
    assert name in str(caught.value) and reason in str(caught.value)


def test_a_bad_file_does_not_stop_the_corpus(tmp_path):
    (tmp_path / "good.txt").write_bytes(NOTICE.encode("gbk"))
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    corpus = load_corpus(load_settings(corpus_dir=tmp_path), report=None)
    assert [f.name for f in corpus.files] == ["good.txt"]
    assert [e.name for e in corpus.errors] == ["bad.pdf"]
    assert [a.label for a in corpus.articles] == ["正文", "一、", "二、"]


# -- broken and hostile files: a clear error, never a crash, bounded in time and memory ----------------
def notice_docx() -> bytes:
    import docx

    document = docx.Document()
    for line in NOTICE.strip().splitlines():
        document.add_paragraph(line)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def notice_pdf() -> bytes:
    """A one-page PDF with a text layer, written by hand (pypdf writes no text)."""
    stream = b"BT /F1 12 Tf 20 100 Td (Article 1 text of the notice.) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def rezipped(data: bytes, change) -> bytes:
    """The DOCX with each member's bytes passed through ``change(name, bytes)``."""
    import zipfile

    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            target.writestr(member.filename, change(member.filename, source.read(member.filename)))
    return out.getvalue()


def test_a_docx_with_truncated_xml_is_refused_clearly():
    broken = rezipped(notice_docx(), lambda name, data: data[: len(data) // 2] if name == "word/document.xml" else data)
    for read in (read_bytes, read_isolated):
        with pytest.raises(LoadError) as caught:
            read(broken, "截断.docx")
        assert "截断.docx" in str(caught.value) and "DOCX" in caught.value.reason


def test_a_docx_that_unpacks_past_the_limit_is_refused_before_it_is_read():
    """A decompression bomb: 40 MB of XML in a zip of well under 1 MB (kept small so the test is
    quick; the limit is set below it)."""
    padding = b"<w:p/>" * (40 * 1024 * 1024 // 6)
    bomb = rezipped(notice_docx(), lambda name, data: data.replace(b"</w:body>", padding + b"</w:body>") if name == "word/document.xml" else data)
    assert len(bomb) < 1024 * 1024
    with pytest.raises(LoadError) as caught:
        read_isolated(bomb, "炸弹.docx", ParseLimits(unpacked_bytes=16 * 1024 * 1024))
    assert "解压后" in caught.value.reason and "超过上限 16 MB" in caught.value.reason


def test_reading_past_its_time_or_memory_is_stopped_with_a_clear_error():
    padding = b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 300_000  # ~10 MB of XML: 17 s and ~250 MB to read
    heavy = rezipped(notice_docx(), lambda name, data: data.replace(b"</w:body>", padding + b"</w:body>") if name == "word/document.xml" else data)
    with pytest.raises(LoadError) as slow:
        read_isolated(heavy, "慢.docx", ParseLimits(seconds=0.5))
    assert "读取超过 0.5 秒仍未完成" in slow.value.reason
    with pytest.raises(LoadError) as hungry:  # it needs ~250 MB: libxml2 fails to allocate, or the child dies
        read_isolated(heavy, "大.docx", ParseLimits(memory_mb=150))
    assert "内存" in hungry.value.reason or "DOCX" in hungry.value.reason
    assert "一、加强值班" in read_isolated(notice_docx(), "好.docx")  # and the next file reads as ever


def test_mangled_pdfs_give_a_load_error_or_text_never_a_crash():
    import random

    good = notice_pdf()
    assert "Article 1" in read_bytes(good, "notice.pdf")
    rng = random.Random(15)
    for trial in range(40):
        mangled = bytearray(good)
        for _ in range(rng.randint(1, 12)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        if trial % 4 == 0:
            mangled = mangled[: rng.randrange(len(mangled))]
        try:
            read_bytes(bytes(mangled), "坏.pdf")
        except LoadError as error:
            assert error.name == "坏.pdf" and error.reason


def test_broken_files_in_the_corpus_are_reported_and_skipped(tmp_path):
    (tmp_path / "good.txt").write_bytes(NOTICE.encode("gbk"))
    (tmp_path / "truncated.docx").write_bytes(rezipped(notice_docx(), lambda name, data: data[:100] if name == "word/document.xml" else data))
    (tmp_path / "mangled.pdf").write_bytes(notice_pdf()[:200])
    (tmp_path / ("很长的名字" * 16 + ".txt")).write_bytes(NOTICE.encode())
    corpus = load_corpus(load_settings(corpus_dir=tmp_path), report=None)
    assert sorted(f.name for f in corpus.files) == sorted(["good.txt", "很长的名字" * 16 + ".txt"])
    assert sorted(e.name for e in corpus.errors) == ["mangled.pdf", "truncated.docx"]
