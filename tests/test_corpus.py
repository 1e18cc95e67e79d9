"""The bundled seeds split into the documents their tables of contents list, and into articles
that hold every gold quote and lose no character."""

import re

from qa.articles import is_artifact
from qa.corpus import parse_text
from qa.documents import gazette_name
from qa.text import compact

EXPECTED_DOCUMENTS = {"000": 4, "001": 5, "002": 13, "003": 17, "004": 12}
EXPECTED_REGIONS = {"000": "宁夏回族自治区", "001": "宁夏回族自治区", "002": "石嘴山市惠农区", "003": "石嘴山市大武口区", "004": "固原市泾源县"}


def test_document_counts_match_tables_of_contents(seed_corpus):
    counts = {parsed.name[:3]: len(parsed.documents) for parsed in seed_corpus.files}
    assert counts == EXPECTED_DOCUMENTS


def test_regions_come_from_the_masthead(seed_corpus):
    for parsed in seed_corpus.files:
        assert {doc.region for doc in parsed.documents} == {EXPECTED_REGIONS[parsed.name[:3]]}


def test_chronicles_are_documents(seed_corpus):
    chronicles = [doc.title for doc in seed_corpus.documents if "大事记" in doc.title]
    assert chronicles == ["惠农区政府四月份大事记", "惠农区政府五月份大事记", "大武口区人民政府9月、10月大事记"]


def _names(doc):
    names = {compact(doc.title)}
    if doc.notice_title:
        names.add(compact(doc.notice_title))
        names.update(compact(quoted) for quoted in re.findall(r"《([^》]+)》", doc.notice_title))
    return names


def test_every_gold_quote_lies_inside_one_article_of_its_document(seed_corpus, dev_questions):
    misses = []
    for question in dev_questions:
        for gold in question["gold"]:
            title = compact(gold["doc_title"])
            docs = {
                doc.id
                for doc in seed_corpus.documents
                if doc.source_file == gold["file"]
                and any(title == name or title.startswith(name) or name.startswith(title) for name in _names(doc))
            }
            quote = compact(gold["quote"])
            if not any(a.doc_id in docs and quote in compact(a.text) for a in seed_corpus.articles):
                misses.append((question["id"], gold["doc_title"], gold["quote"]))
    assert misses == []


def test_no_article_is_empty_or_over_the_limit(seed_corpus, settings):
    assert seed_corpus.articles
    for article in seed_corpus.articles:
        assert article.text.strip()
        assert len(article.text) <= settings.max_article_chars


def test_articles_cover_every_character_of_each_document_body(seed_corpus):
    """Concatenated article texts hold the document's text, character for character (whitespace,
    page numbers and running heads aside)."""
    for parsed in seed_corpus.files:
        heads = frozenset({gazette_name(parsed.text)})
        for doc in parsed.documents:
            body = "".join(
                line for line in parsed.text[doc.start:doc.end].splitlines() if line.strip() and not is_artifact(line, heads)
            )
            articles = "".join(a.text for a in parsed.articles if a.doc_id == doc.id)
            assert compact(articles) == compact(body), doc.title


def test_offsets_point_at_the_article_in_the_source(seed_corpus):
    for parsed in seed_corpus.files:
        for article in parsed.articles:
            source = parsed.text[article.start:article.end]
            assert compact(source) == compact(article.text) or compact(article.text) in compact(source)
            assert compact(source).startswith(compact(article.text)[:10])


def test_ids_are_unique_and_stable(seed_corpus, settings):
    ids = [a.id for a in seed_corpus.articles]
    assert len(ids) == len(set(ids))
    again = parse_text(seed_corpus.files[0].text, seed_corpus.files[0].name, settings)
    assert [a.id for a in again.articles] == [a.id for a in seed_corpus.files[0].articles]


def test_metadata_of_the_hotline_measures(seed_corpus):
    doc = next(d for d in seed_corpus.documents if d.doc_number == "宁政办发〔2022〕30号")
    assert doc.title == "宁夏回族自治区12345政务服务便民热线运行管理办法（试行）"
    assert doc.notice_title.startswith("自治区人民政府办公厅关于印发")
    assert doc.trial and doc.date == "2022-04-27" and doc.effective_date == "2022-04-27"
    assert doc.issuer == "宁夏回族自治区人民政府办公厅"
    assert doc.gazette == "宁夏回族自治区人民政府公报 2022年第9期"
    article = next(a for a in seed_corpus.articles if a.doc_id == doc.id and a.label == "第二十一条")
    assert article.path == ["第四章 工作流程", "第二十一条"]


def test_repealed_documents_are_recorded(seed_corpus):
    plan = next(d for d in seed_corpus.documents if d.doc_number == "宁政发〔2022〕9号")
    assert plan.title == "宁夏回族自治区突发事件总体应急预案"
    assert any("宁政办发〔2013〕126号" in repealed for repealed in plan.repeals)


def test_plan_sections_keep_their_heading_path(seed_corpus):
    warning = next(a for a in seed_corpus.articles if "一级（红色）为最高级别" in a.text)
    assert warning.path[:3] == ["3 风险防控、监测预警", "3.2 监测预警", "3.2.2 预警"]


def test_page_break_inside_a_sentence_is_mended(seed_corpus):
    article = next(a for a in seed_corpus.articles if "未纳入 12345 热线平台统一管理" in a.text or "未纳入12345热线平台统一管理" in a.text)
    assert re.search(r"统一管理\s?的热线", article.text)
