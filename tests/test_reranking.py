"""Reranking the first hits by the sentence reader (qa/reranking.py), on the bundled seed corpus."""

import pytest

from qa.index import build_index
from qa.models import Hit
from qa.reranking import RerankedSearcher
from qa.retrieval import HybridSearcher


@pytest.fixture(scope="module")
def searcher(settings):
    build_index(settings, progress=False)  # incremental: instant when index/ is current
    return RerankedSearcher(HybridSearcher(settings), settings)


def hotline_articles(searcher):
    return {a.label: a for a in searcher.articles if "12345政务服务便民热线运行管理办法" in a.document.title}


def test_the_clause_holding_the_kind_of_answer_asked_comes_first(searcher):
    by_label = hotline_articles(searcher)
    no_time_limit, time_limit = by_label["第十条"], by_label["第二十一条"]
    hits = [Hit(no_time_limit, score=0.80), Hit(time_limit, score=0.78)]
    reranked = searcher.rerank("12345热线工单几个工作日内办结？", hits)
    assert [h.article.label for h in reranked] == ["第二十一条", "第十条"]
    # scores stay in 0..1 and follow the new order
    assert 1.0 >= reranked[0].score >= reranked[1].score >= 0.0


def test_scores_stay_in_ranking_order_past_the_reranked_head(searcher):
    hits = searcher.inner.search("打12345反映问题几天能回复？", k=10)
    reranked = searcher.rerank("打12345反映问题几天能回复？", hits)
    assert {h.article.id for h in reranked} == {h.article.id for h in hits}
    scores = [h.score for h in reranked]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= x <= 1.0 for x in scores)


def test_an_article_the_question_names_stays_first_and_nothing_moves(searcher):
    by_label = hotline_articles(searcher)
    named = [Hit(by_label["第十条"], score=1.0, via="lookup"), Hit(by_label["第二十一条"], score=0.78)]
    assert searcher.rerank("12345热线工单几个工作日内办结？", named) == named


def test_a_citizens_hotline_question_finds_the_time_limit_clause_first(searcher):
    # retrieval alone puts the enterprise-complaint plan's clause on staffing first
    hits = searcher.search("打12345问个政策方面的事，一般几天能给我回复？", k=5)
    assert "咨询类工单2个工作日内办结" in hits[0].article.text


def test_a_copy_of_the_searcher_can_be_made(searcher):
    import copy

    assert copy.copy(searcher).inner is searcher.inner


def test_weight_zero_turns_reranking_off(searcher, settings):
    from dataclasses import replace

    off = RerankedSearcher(searcher.inner, replace(settings, rerank_weight=0.0), reader=searcher.reader)
    question = "打12345问个政策方面的事，一般几天能给我回复？"
    assert [h.article.id for h in off.search(question, k=5)] == [h.article.id for h in searcher.inner.search(question, k=5)]


def test_the_kind_of_answer_wanted_can_be_given(searcher):
    # a follow-up's own kind ("那地址在哪？" after a question on time limits) is the answer step's to
    # give: neither clause holds an address, so neither gains and retrieval's order stands
    from qa.query import ANSWER_KINDS

    by_label = hotline_articles(searcher)
    hits = [Hit(by_label["第十条"], score=0.80), Hit(by_label["第二十一条"], score=0.78)]
    address = next(k for k in ANSWER_KINDS if k.name == "address")
    question = "12345热线工单几个工作日内办结？"
    assert searcher.rerank(question, hits)[0].article.label == "第二十一条"
    assert searcher.rerank(question, hits, address)[0].article.label == "第十条"


def test_carried_clauses_are_read_at_the_end_of_the_head(searcher, settings):
    hits = searcher.inner.search("企业投诉 受理渠道", k=10)
    by_label = hotline_articles(searcher)
    carried = [Hit(by_label["第二十一条"], score=0.99)]
    assert carried[0].article.id not in {h.article.id for h in hits[: settings.rerank_clauses]}
    moved = searcher.carry(hits, carried)
    head = moved[: settings.rerank_clauses]
    assert head[-1].article.id == carried[0].article.id
    assert head[-1].score <= head[-2].score  # scored as the head's last, not as its own question's best
    assert [h.article.id for h in head[:-1]] == [h.article.id for h in hits[: settings.rerank_clauses - 1]]
    assert len({h.article.id for h in moved}) == len(moved) == len(hits) + 1
    ranking = searcher.rank("企业投诉 受理渠道", k=10, carried=carried)
    assert carried[0].article.id in ranking.read  # its sentences were read and judged


def test_every_searcher_declares_the_searcher_contract_and_reranking_forwards_nothing_unasked(searcher):
    from qa.models import Searcher

    assert isinstance(searcher, Searcher) and isinstance(searcher.inner, Searcher)
    assert searcher.embeddings is searcher.inner.embeddings and searcher.index is searcher.inner.index
    # the backend's own helpers are not part of the contract: reranking does not pass them on
    assert hasattr(searcher.inner, "keyword") and not hasattr(searcher, "keyword")
