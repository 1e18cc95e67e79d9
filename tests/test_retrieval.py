"""Hybrid retrieval over a small real index: colloquial questions, direct article lookup, filters,
scores and ranking, the LangChain retriever. Real model, hand-made corpus (tests/fixtures_index.py)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("fixtures_index")

from fixtures_index import FOREST_FILE, HOTLINE_FILE, HOUSING_FILE, QUESTIONS  # noqa: E402
from qa.retrieval import Filters, HybridSearcher, PolicyRetriever  # noqa: E402

pytest_plugins = ["fixtures_index"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

HOTLINE_TITLE = "宁夏回族自治区12345政务服务便民热线运行管理办法（试行）"


def _articles_of(searcher: HybridSearcher, source_file: str):
    return [a for a in searcher.articles if a.document.source_file == source_file]


# -- colloquial questions --------------------------------------------------------------------------


@pytest.mark.parametrize("question, source_file, label, quote", QUESTIONS, ids=["hotline", "forest", "housing"])
def test_colloquial_question_finds_the_answering_clause_first(small_searcher, question, source_file, label, quote):
    hits = small_searcher.search(question, k=5)
    assert hits, question
    top = hits[0].article
    assert top.document.source_file == source_file
    assert top.label == label
    assert quote in top.text
    assert hits[0].via == "hybrid"  # no article is named, so nothing is looked up


def test_a_clause_quoted_verbatim_comes_first(small_searcher):
    target = next(a for a in small_searcher.articles if a.label == "第六条")
    hits = small_searcher.search("通话录音和工单资料保存期限不少于3年", k=3)
    assert hits[0].article.id == target.id


# -- direct lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [f"《{HOTLINE_TITLE}》第三条", "12345热线管理办法第3条", "12345热线运行管理办法第三条是怎么规定的？"],
)
def test_named_article_is_looked_up_first(small_searcher, query):
    hits = small_searcher.search(query, k=5)
    assert hits[0].via == "lookup"
    assert hits[0].article.label == "第三条"
    assert hits[0].article.document.title == HOTLINE_TITLE
    assert hits[0].score == 1.0
    assert all(h.via == "hybrid" for h in hits[1:])  # only the one named article
    assert len({h.article.id for h in hits}) == len(hits)


def test_lookup_takes_the_named_document_not_another_with_the_same_label(small_searcher):
    # 第一条 exists only in the 办法; the 方案 is cut into 一、二、三、 and has no 第一条.
    hits = small_searcher.search("《大武口区森林草原防灭火工作方案》第一条", k=5)
    assert all(h.via == "hybrid" for h in hits)
    hits = small_searcher.search("12345热线管理办法第8条", k=5)
    assert hits[0].via == "lookup" and hits[0].article.label == "第八条"


def test_lookup_respects_filters(small_searcher):
    hits = small_searcher.search("12345热线管理办法第3条", k=5, filters=Filters(region="银川市"))
    assert hits
    assert all(h.via == "hybrid" and h.article.document.region == "银川市" for h in hits)


# -- filters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters, source_file",
    [
        (Filters(region="大武口区"), FOREST_FILE),
        (Filters(region="宁夏回族自治区"), HOTLINE_FILE),
        (Filters(issuer="银川市人民政府办公室"), HOUSING_FILE),
        (Filters(issuer="自治区人民政府办公厅"), HOTLINE_FILE),
        (Filters(year=2023), FOREST_FILE),
        (Filters(year=2021), HOUSING_FILE),
        (Filters(document="宁政办发〔2022〕30号"), HOTLINE_FILE),
        (Filters(document="森林草原防灭火"), FOREST_FILE),
        (Filters(region="石嘴山市", year=2023, issuer="大武口区"), FOREST_FILE),
    ],
    ids=["region", "region-ningxia", "issuer", "issuer-part", "year-2023", "year-2021", "doc-number", "doc-title", "combined"],
)
def test_filters_restrict_every_hit(small_searcher, filters, source_file):
    # The question is about housing: without a filter the housing document would win.
    hits = small_searcher.search("保障性租赁住房面积多大", k=10, filters=filters)
    expected = _articles_of(small_searcher, source_file)
    assert hits
    assert all(h.article.document.source_file == source_file for h in hits)
    for h in hits:
        doc = h.article.document
        if filters.region:
            assert filters.region in doc.region
        if filters.issuer:
            assert filters.issuer in doc.issuer
        if filters.year:
            assert doc.date.startswith(str(filters.year))
    # k is larger than the document: every one of its articles is returned, each once
    assert len(expected) < 10
    assert sorted(h.article.id for h in hits) == sorted(a.id for a in expected)


def test_document_filter_by_id(small_searcher):
    doc_id = _articles_of(small_searcher, HOUSING_FILE)[0].doc_id
    hits = small_searcher.search("森林防火戒严期", k=3, filters=Filters(document=doc_id))
    assert len(hits) == 3 and all(h.article.doc_id == doc_id for h in hits)


def test_the_best_clause_within_a_filter_comes_first(small_searcher):
    hits = small_searcher.search("戒严期内能不能烧纸", k=3, filters=Filters(year=2023))
    assert hits[0].article.label == "二、" and hits[0].article.document.source_file == FOREST_FILE


@pytest.mark.parametrize(
    "filters",
    [Filters(region="北京市"), Filters(year=1999), Filters(issuer="国务院办公厅"), Filters(document="不存在的办法"),
     Filters(region="银川市", year=2022)],
    ids=["region", "year", "issuer", "document", "contradictory"],
)
def test_a_filter_matching_nothing_returns_nothing(small_searcher, filters):
    assert small_searcher.search("保障性租赁住房面积多大", k=5, filters=filters) == []
    assert small_searcher.search("12345热线管理办法第3条", k=5, filters=filters) == []


def test_empty_filters_are_inactive(small_searcher):
    assert not Filters().active() and not Filters(region="").active()
    plain = [h.article.id for h in small_searcher.search("野外用火", k=5)]
    assert [h.article.id for h in small_searcher.search("野外用火", k=5, filters=Filters(region=""))] == plain


# -- scores and ranking --------------------------------------------------------------------------------


QUERIES = [q for q, *_ in QUESTIONS] + ["12345热线管理办法第3条", "通话录音保存多久", "土地价款", "野外用火"]


@pytest.mark.parametrize("query", QUERIES)
def test_scores_are_bounded_and_hits_are_ranked_consistently(small_searcher, query):
    hits = small_searcher.search(query, k=10)
    assert 0 < len(hits) <= 10
    ids = [h.article.id for h in hits]
    assert len(set(ids)) == len(ids)
    for h in hits:
        assert -1.0 <= h.score <= 1.0
        assert -1.0 - 1e-5 <= h.dense_score <= 1.0 + 1e-5
        assert 0.0 <= h.keyword_score <= 1.0
        assert h.via in ("lookup", "hybrid")
    # looked-up articles come before the rest
    vias = [h.via for h in hits]
    assert vias == sorted(vias, key=lambda v: v != "lookup")
    # asking for fewer results gives the head of the same ranking
    assert [h.article.id for h in small_searcher.search(query, k=3)] == ids[:3]
    # Within one document (same title bonus) a hit is never ranked above one that beats it on
    # both the dense and the keyword score.
    hybrid = [h for h in hits if h.via == "hybrid"]
    for i, upper in enumerate(hybrid):
        for lower in hybrid[i + 1 :]:
            if lower.article.doc_id != upper.article.doc_id:
                continue
            dominated = (lower.dense_score >= upper.dense_score and lower.keyword_score >= upper.keyword_score) and (
                lower.dense_score > upper.dense_score + 1e-6 or lower.keyword_score > upper.keyword_score + 1e-6
            )
            assert not dominated, (upper.article.label, lower.article.label)


def test_k_defaults_to_settings_and_caps_at_the_corpus(small_searcher, small_settings):
    n = len(small_searcher.articles)
    assert small_settings.top_k < n
    assert len(small_searcher.search("热线")) == small_settings.top_k
    assert len(small_searcher.search("热线", k=n + 20)) == n


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
def test_empty_query_returns_nothing(small_searcher, query):
    assert small_searcher.search(query) == []
    assert small_searcher.search(query, filters=Filters(region="银川市")) == []


# -- LangChain -------------------------------------------------------------------------------------------


def test_langchain_retriever_returns_documents_with_citations(small_searcher):
    from langchain_core.documents import Document as LCDocument

    retriever = PolicyRetriever(searcher=small_searcher, k=3)
    question = QUESTIONS[0][0]
    docs = retriever.invoke(question)
    assert len(docs) == 3
    assert all(isinstance(d, LCDocument) for d in docs)
    hits = small_searcher.search(question, k=3)
    assert [d.page_content for d in docs] == [h.article.text for h in hits]
    for doc, hit in zip(docs, hits):
        meta = doc.metadata
        for key in ("doc_title", "doc_number", "label", "path", "score"):
            assert key in meta, key
        assert meta["doc_title"] == hit.article.document.title
        assert meta["doc_number"] == hit.article.document.doc_number
        assert meta["label"] == hit.article.label
        assert meta["path"] == hit.article.path
        assert meta["score"] == pytest.approx(hit.score, abs=1e-4)
        assert -1.0 <= meta["score"] <= 1.0
    first = docs[0].metadata
    assert first["doc_number"] == "宁政办发〔2022〕30号" and first["label"] == "第五条"
    assert first["path"] == ["第二章 工作流程", "第五条"]


def test_langchain_retriever_applies_filters_and_handles_empty_queries(small_searcher):
    retriever = PolicyRetriever(searcher=small_searcher, k=5, filters=Filters(year=2021))
    docs = retriever.invoke("森林防火戒严期")
    assert docs and all(d.metadata["date"].startswith("2021") for d in docs)
    assert PolicyRetriever(searcher=small_searcher, k=3).invoke("   ") == []
