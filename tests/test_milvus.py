"""The Milvus backend against Milvus Lite (same client API as a cluster): a real collection with
the real embedding model's dense vectors and Milvus's own BM25 over its jieba analyzer, on the small
hand-made corpus. Milvus Lite runs in-process from a file under tmp_path."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("langchain_milvus")
pytest.importorskip("milvus_lite")
pytest.register_assert_rewrite("fixtures_index")

from fixtures_index import FOREST_FILE, HOTLINE_FILE, HOUSING_FILE, QUESTIONS  # noqa: E402
from qa.corpus import load_corpus  # noqa: E402
from qa.index import IndexUnavailable  # noqa: E402
from qa.milvus_store import (  # noqa: E402
    MilvusSearcher,
    collection_prefix,
    current_collection,
    filter_expression,
)
from qa.retrieval import Filters, HybridSearcher  # noqa: E402
from qa.searchers import build_for, open_searcher  # noqa: E402

pytest_plugins = ["fixtures_index"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def milvus_settings(small_settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("milvus")
    return dataclasses.replace(small_settings, vector_backend="milvus", milvus_uri=str(folder / "milvus.db"))


@pytest.fixture(scope="module")
def milvus_build(milvus_settings, small_embeddings):
    return build_for(milvus_settings, small_embeddings, progress=False)


@pytest.fixture(scope="module")
def searcher(milvus_settings, small_embeddings, milvus_build):
    return open_searcher(milvus_settings, embeddings=small_embeddings)


def test_build_puts_every_article_in_a_collection_named_by_the_fingerprint(milvus_build, searcher, milvus_settings, small_embeddings):
    articles = load_corpus(milvus_settings, report=None).articles
    assert milvus_build.articles == milvus_build.embedded == len(articles)
    assert isinstance(searcher.inner, MilvusSearcher)  # reranked (qa/reranking.py)
    from qa.models import Searcher

    assert isinstance(searcher.inner, Searcher)  # the contract every backend declares
    assert searcher.inner.collection.startswith(collection_prefix(milvus_settings, small_embeddings.fingerprint))
    assert searcher.inner.client.get_collection_stats(searcher.inner.collection)["row_count"] == len(articles)


@pytest.mark.parametrize("question, source_file, label, quote", QUESTIONS)
def test_colloquial_questions_find_their_clause(searcher, question, source_file, label, quote):
    hits = searcher.search(question, k=3)
    assert hits, question
    assert any(h.article.document.source_file == source_file and quote in h.article.text for h in hits), [
        (h.article.label, h.article.text[:30]) for h in hits
    ]
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_answers_work_over_milvus(searcher, milvus_settings):
    """The answer step reads the clauses Milvus returns; its word statistics come from the corpus
    folder, as Milvus keeps no articles in this process."""
    from qa.answering import Answerer

    answer = Answerer(milvus_settings, searcher=searcher, llm=None).answer(QUESTIONS[0][0])
    assert not answer.refused and any(QUESTIONS[0][3] in c.article.text for c in answer.citations)


def test_bm25_over_the_jieba_analyzer_matches_chinese_words(searcher):
    """The keyword side alone: Milvus tokenises both the passages and the query with jieba."""
    ranked = searcher.inner.keyword("戒严期 上坟烧纸", 5, "")
    assert ranked and ranked[0][1] > 0
    best = searcher.inner.client.get(searcher.inner.collection, ids=[ranked[0][0]], output_fields=["text"])[0]["text"]
    assert "戒严期" in best
    assert searcher.inner.keyword("量子计算机", 5, "") == []  # words no passage holds find nothing


def test_dense_side_scores_cosines(searcher, small_embeddings):
    vector = small_embeddings.encode_queries(["热线工单几个工作日办结"])[0]
    ranked = searcher.inner.dense(vector, 3, "")
    assert len(ranked) == 3
    assert all(-1.0 <= score <= 1.0 for _, score in ranked)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


@pytest.mark.parametrize(
    "filters, allowed_file",
    [
        (Filters(region="大武口区"), FOREST_FILE),
        (Filters(year=2021), HOUSING_FILE),
        (Filters(document="宁政办发〔2022〕30号"), HOTLINE_FILE),
    ],
)
def test_filters_narrow_the_hits(searcher, filters, allowed_file):
    hits = searcher.search("工作日 办理 期限", k=10, filters=filters)
    assert hits
    assert all(filters.allows(h.article) for h in hits)
    assert {h.article.document.source_file for h in hits} == {allowed_file}


def test_filter_values_are_quoted_for_milvus():
    expression = filter_expression(Filters(region='a"b', year=2022))
    assert expression == 'region like "%a\\"b%" and year == 2022'
    assert filter_expression(None) == "" and filter_expression(Filters()) == ""


def test_hits_carry_citable_articles(searcher):
    hit = searcher.search("森林防火戒严期", k=1)[0]
    assert hit.article.document.title and hit.article.document.doc_number
    assert hit.article.label and hit.article.path and hit.via == "hybrid"
    assert hit.to_dict()["source_file"] == FOREST_FILE


def test_another_embedding_fingerprint_is_refused(milvus_settings, small_embeddings, milvus_build):
    from qa.embedding import PolicyEmbeddings

    other = dataclasses.replace(milvus_settings, query_prefix="查询：")
    with pytest.raises(IndexUnavailable, match="another embedding"):
        MilvusSearcher(other, embeddings=PolicyEmbeddings(other))


def test_missing_collection_is_reported(milvus_settings, small_embeddings, tmp_path):
    empty = dataclasses.replace(milvus_settings, milvus_uri=str(tmp_path / "empty.db"))
    with pytest.raises(IndexUnavailable, match="no Milvus collection"):
        MilvusSearcher(empty, embeddings=small_embeddings)


def test_rebuild_switches_the_alias_and_drops_the_old_collection(milvus_settings, small_embeddings, searcher):
    before = searcher.inner.collection
    import time

    time.sleep(1.1)  # collection names carry the build time to the second
    build_for(milvus_settings, small_embeddings, progress=False)
    fresh = MilvusSearcher(milvus_settings, embeddings=small_embeddings)
    after = current_collection(fresh.client, milvus_settings.milvus_collection)
    assert after == fresh.collection != before
    assert before not in fresh.client.list_collections()
    assert fresh.search("保障性租赁住房 面积", k=1)[0].article.document.source_file == HOUSING_FILE


def test_the_default_backend_is_faiss(small_settings, small_searcher):
    assert small_settings.vector_backend == "faiss"
    assert isinstance(open_searcher(small_settings, embeddings=small_searcher.embeddings).inner, HybridSearcher)
    with pytest.raises(ValueError, match="vector_backend"):
        open_searcher(dataclasses.replace(small_settings, vector_backend="elastic"))
