"""Reading the formats government staff hand over, and clear errors for files that cannot be read."""

import io

import pytest

from qa.config import load_settings
from qa.corpus import load_corpus
from qa.loaders import LoadError, read_bytes

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
        (b"", "empty.txt", "empty"),
        (b"\x00\x01\x02binary\x00" * 20, "blob.txt", "binary"),
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "PDF"),
        (b"PK\x03\x04 not a zip", "broken.docx", "DOCX"),
        (NOTICE.encode(), "notice.exe", "unsupported"),
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
