"""Hybrid retrieval over a small real index: colloquial questions, direct article lookup, filters,
scores and ranking, the LangChain retriever. Real model, hand-made corpus (tests/fixtures_index.py)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.register_assert_rewrite("fixtures_index")

from fixtures_index import FOREST_FILE, HOTLINE_FILE, HOUSING_FILE, QUESTIONS  # noqa: E402
from qa.keywords import tokenize  # noqa: E402
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
    # Within one document (same title and region evidence) and among clauses of one kind (both
    # stating a number, or neither) a hit is never ranked above one that beats it on both the dense
    # and the keyword score.
    hybrid = [h for h in hits if h.via == "hybrid"]
    index_of = {a.id: n for n, a in enumerate(small_searcher.articles)}
    for i, upper in enumerate(hybrid):
        for lower in hybrid[i + 1 :]:
            if lower.article.doc_id != upper.article.doc_id:
                continue
            a, b = index_of[upper.article.id], index_of[lower.article.id]
            evidence = small_searcher._evidence_array(query, tokenize(query), np.array([a, b]))
            if evidence[0] != evidence[1]:
                continue
            dominated = (lower.dense_score >= upper.dense_score and lower.keyword_score >= upper.keyword_score) and (
                lower.dense_score > upper.dense_score + 1e-6 or lower.keyword_score > upper.keyword_score + 1e-6
            )
            assert not dominated, (upper.article.label, lower.article.label)


def test_batched_cosines_equal_each_articles_own(small_searcher, monkeypatch):
    """Search reads all candidates' article and window vectors in one batch per index (a view of a
    flat index's memory, or reconstruct_batch for IVF); each article's pair of cosines is the one
    _cosines reads for it alone, in any order of candidates, with repeats, and with articles that
    have no windows (their window cosine is their own)."""
    vector = small_searcher.embeddings.encode_queries(["热线工单多久办完"])
    n = len(small_searcher.articles)
    ids = np.array([n - 1, 0, *range(1, n - 1), 3], dtype=np.int64)
    no_windows = small_searcher._window_start.copy()
    no_windows[1] = no_windows[0]  # article 0's windows move to article 1
    no_windows[n - 1] = no_windows[n - 2]  # and the second last's go to the last
    for window_start, flat in ((small_searcher._window_start, True), (no_windows, True), (no_windows, False)):
        monkeypatch.setattr(small_searcher, "_window_start", window_start)
        if not flat:  # the path IVF indexes take
            monkeypatch.setattr(small_searcher, "_article_vectors", None)
            monkeypatch.setattr(small_searcher, "_window_vectors", None)
        expected = np.array([small_searcher._cosines(int(i), vector) for i in ids])
        articles, windows = small_searcher._all_cosines(ids, vector)
        assert articles.shape == windows.shape == (len(ids),)
        assert np.allclose(articles, expected[:, 0], rtol=0, atol=1e-6)
        assert np.allclose(windows, expected[:, 1], rtol=0, atol=1e-6)
        skipped, same_windows = small_searcher._all_cosines(ids, vector, article_cosines=False)
        assert np.array_equal(same_windows, windows)  # windows alone rank by default
        assert skipped is None or np.array_equal(skipped, articles)
    assert expected[1, 0] == expected[1, 1]  # article 0 has no windows now
    assert [len(a) for a in small_searcher._all_cosines(np.zeros(0, dtype=np.int64), vector)] == [0, 0]


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


# -- region, title and quantity evidence --------------------------------------------------------------

# The same provision in the 自治区's plan and in a district's plan restating it (as district plans do).
REGION_PROVISION = "汛期实行24小时防汛值班制度，值班人员不得擅自离岗，值班电话保持畅通。"


def _flood_gazette(masthead: str, issuer: str, title: str, number: str) -> str:
    return f"""{masthead}
人民政府公报

2022 年 第 5 期

目 录

{issuer}关于印发{title}的通知
（{number}）…………（2）

{issuer}关于印发{title}的通知

{number}

各有关单位：

现将《{title}》印发给你们，请认真贯彻执行。

{issuer}

2022年5月10日

{title}

一、总体要求

坚持人民至上、生命至上，统筹做好防汛抗旱各项工作。

二、值班值守

{REGION_PROVISION}

三、物资保障

各级防汛指挥机构按规定储备抢险物资，所需经费列入本级财政预算。
"""


@pytest.fixture(scope="module")
def region_searcher(tmp_path_factory, small_embeddings):
    from fixtures_index import write_corpus
    from qa.config import load_settings
    from qa.index import build_index

    root = tmp_path_factory.mktemp("regions")
    files = {
        "top.txt": _flood_gazette("宁夏回族自治区", "自治区人民政府办公厅", "宁夏回族自治区防汛抗旱应急预案", "宁政办发〔2022〕40号"),
        "district.txt": _flood_gazette("石嘴山市大武口区", "大武口区人民政府办公室", "大武口区防汛抗旱应急预案", "石大政办发〔2022〕40号"),
    }
    settings = load_settings(corpus_dir=write_corpus(root / "corpus", files), index_dir=root / "index")
    build_index(settings, small_embeddings, progress=False)
    return HybridSearcher(settings, embeddings=small_embeddings)


def _top_region(searcher, question):
    hits = searcher.search(question, k=2)
    assert REGION_PROVISION in hits[0].article.text, question
    return hits[0].article.document.region


@pytest.mark.parametrize(
    "question, region",
    [
        ("大武口区汛期防汛值班有什么要求？", "石嘴山市大武口区"),
        ("大武口汛期值班人员能离岗吗", "石嘴山市大武口区"),
        ("宁夏汛期防汛值班有什么要求？", "宁夏回族自治区"),
        ("自治区汛期防汛值班有什么要求？", "宁夏回族自治区"),
        # no region named: the 自治区's plan, which the district's restates
        ("汛期防汛值班有什么要求？", "宁夏回族自治区"),
    ],
    ids=["district", "district-short-name", "ningxia", "zizhiqu", "none-named"],
)
def test_the_region_a_question_names_comes_first(region_searcher, question, region):
    assert _top_region(region_searcher, question) == region


def test_named_regions_and_their_aliases(region_searcher):
    from qa.retrieval import region_aliases

    assert region_aliases("石嘴山市惠农区") == {"石嘴山市惠农区", "石嘴山市", "石嘴山", "惠农区", "惠农"}
    assert region_aliases("宁夏回族自治区") == {"宁夏回族自治区", "宁夏", "自治区"}
    assert region_aliases("固原市泾源县") >= {"泾源县", "泾源", "固原"}
    assert region_searcher.named_regions("大武口区防汛办在哪") == {"石嘴山市大武口区"}
    assert region_searcher.named_regions("石嘴山市防汛值班") == {"石嘴山市大武口区"}  # the only 石嘴山 region here
    assert region_searcher.named_regions("宁夏和大武口区分别怎么规定") == {"宁夏回族自治区", "石嘴山市大武口区"}
    assert region_searcher.named_regions("防汛值班要求") == set()


def _provision_margin(searcher, question, region, **settings):
    """Score of ``region``'s copy of the provision minus the other region's copy."""
    import dataclasses

    before = searcher.settings
    searcher.settings = dataclasses.replace(before, **settings)
    try:
        hits = searcher.search(question, k=len(searcher.articles))
    finally:
        searcher.settings = before
    scores = {h.article.document.region: h.score for h in hits if REGION_PROVISION in h.article.text}
    assert len(scores) == 2 and all(0.0 <= v <= 1.0 for v in scores.values())
    (other,) = set(scores) - {region}
    return scores[region] - scores[other]


@pytest.mark.parametrize(
    "question, region, weight",
    [
        ("大武口区汛期防汛值班有什么要求？", "石嘴山市大武口区", "region_weight"),
        ("宁夏汛期防汛值班有什么要求？", "宁夏回族自治区", "region_weight"),
        ("汛期防汛值班有什么要求？", "宁夏回族自治区", "top_level_weight"),
    ],
    ids=["district", "ningxia", "none-named"],
)
def test_region_evidence_widens_the_named_regions_lead_and_can_be_turned_off(region_searcher, question, region, weight):
    on = _provision_margin(region_searcher, question, region, **{weight: 0.1})
    off = _provision_margin(region_searcher, question, region, **{weight: 0.0})
    assert on > off


def test_title_scores_point_at_the_document_a_question_names(small_searcher):
    scores = small_searcher.title_scores(tokenize("12345热线的工单多久办完"))
    best = small_searcher._doc_ids[int(np.argmax(scores))]
    assert best == _articles_of(small_searcher, HOTLINE_FILE)[0].doc_id
    assert scores.max() == pytest.approx(1.0)
    assert not small_searcher.title_scores([]).any()


def test_a_question_asking_for_a_number_prefers_the_clause_stating_one(small_searcher):
    # Both 三、 and 四、 of the forest plan are about fighting fires; only 三、 states how soon.
    hits = small_searcher.search("发现山火报警后，镇街多长时间内要组织人赶到现场？", k=3)
    assert hits[0].article.label == "三、" and "30分钟内" in hits[0].article.text


# -- query normalisation and quantity words ------------------------------------------------------------


def test_normalise_folds_width_case_and_variant_characters():
    from qa.keywords import normalise

    assert normalise("涇源县１２３４５ＡＢ") == "泾源县12345ab"
    assert tokenize("涇源县政务公开") == tokenize("泾源县政务公开")


def test_roman_numeral_signs_read_as_the_numbers_people_say():
    from qa.keywords import normalise

    # the emergency plans write Ⅲ级响应; a citizen asks about 三级响应
    assert normalise("启动Ⅲ级、Ⅳ级响应（ⅱ级）") == "启动三级、四级响应(二级)"
    assert set(tokenize("三级响应")) <= set(tokenize("Ⅲ级响应"))


@pytest.mark.parametrize(
    "question, asks",
    [("工单最多延期几次？", True), ("住房面积一般多大", True), ("材料什么时候前报送", True), ("补贴按什么标准发", True),
     ("防汛办设在哪个单位？", False), ("谁来牵头", False), ("燃气入户检查要签字吗", False)],
)
def test_questions_asking_for_a_number(question, asks):
    from qa.keywords import asks_quantity

    assert asks_quantity(question) is asks


@pytest.mark.parametrize(
    "text, has",
    [("最迟不得超过1小时", True), ("建筑面积不超过70平方米", True), ("每季度至少召开一次", True), ("１０月１０日前报送", True),
     ("负责统筹协调、业务指导", False), ("第二章 工作流程", False)],
)
def test_clauses_stating_a_number(text, has):
    from qa.keywords import has_quantity

    assert has_quantity(text) is has


# -- synonyms ----------------------------------------------------------------------------------------


def test_synonyms_read_each_word_of_a_group_as_the_documents_word(tmp_path):
    from qa.keywords import Synonyms

    path = tmp_path / "synonyms.txt"
    path.write_text("# comment\n答复 回复 反馈\n身份证 居民身份证\n孤字\n", encoding="utf-8")
    synonyms = Synonyms.load(path)
    assert synonyms.canonical("几天能回复") == "几天能答复"
    assert synonyms.canonical("结果反馈至平台") == "结果答复至平台"
    # longest first: 居民身份证 is one word of the group, not 居民 + 身份证
    assert synonyms.canonical("带上居民身份证") == "带上身份证"
    assert synonyms.expansions("几天能回复") == ["答复", "反馈"]
    assert synonyms.expansions("没有同义词的问题") == []
    assert Synonyms.load(tmp_path / "missing.txt").canonical("回复") == "回复"


def test_a_question_in_other_words_than_the_clause_is_expanded_for_keyword_search(small_searcher):
    # The hotline rules say 反馈 and 答复; a citizen asks when they will get a 回复.
    tokens = small_searcher.query_tokens("多久能回复")
    assert "回复" in tokens and "答复" in tokens and "反馈" in tokens
    assert small_searcher.query_tokens("防火戒严期") == tokenize("防火戒严期")


def test_both_backends_fuse_scores_as_a_weighted_sum_of_normalised_cosine_and_relative_bm25(settings):
    from dataclasses import replace

    from qa.retrieval import fuse_scores

    weighted = replace(settings, dense_weight=1.0, keyword_weight=0.5)
    fused = fuse_scores(weighted, np.array([0.80, 0.90, 0.85]), np.array([1.0, 0.0, 0.5]))
    # the cosines become 0, 1, 0.5 over the candidates; then (1 x cosine + 0.5 x bm25) / 1.5
    assert np.allclose(fused, [0.5 / 1.5, 1.0 / 1.5, 0.75 / 1.5])
    assert np.allclose(fuse_scores(weighted, np.array([0.7, 0.7]), np.array([0.0, 1.0])), [0.0, 0.5 / 1.5])  # equal cosines
