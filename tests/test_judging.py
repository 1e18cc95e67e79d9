"""The answer judge (qa/judging.py) and its training (qa/judge_training.py), with the real model,
index and reader; questions written for these tests."""

import json
from dataclasses import replace

import numpy as np
import pytest

from qa.answering import Answerer
from qa.config import PROJECT_ROOT
from qa.index import build_index
from qa.judge_training import fold_of, holds_gold, train
from qa.judging import FEATURES, JUDGED_CANDIDATES, Judge, SentenceCosines, feature_rows

COMMITTED = PROJECT_ROOT / "qa" / "data" / "judge.json"


@pytest.fixture(scope="module")
def judged(settings):
    build_index(settings, progress=False)  # incremental: instant when the index is current
    return Answerer(replace(settings, judge_file=COMMITTED, llm_base_url=""))


def test_the_committed_judge_loads_and_says_how_it_was_trained():
    judge = Judge.load(COMMITTED)
    assert judge is not None and len(judge.weights) == len(FEATURES)
    assert 0.0 < judge.threshold < 1.0
    assert "held_out" in judge.about and judge.about["held_out"]["all"]["n"] > 100


def test_no_judge_file_or_one_of_other_signals_means_no_judge(tmp_path):
    assert Judge.load(tmp_path / "missing.json") is None
    assert Judge.load(PROJECT_ROOT / "no-such-dir" / "") is None
    other = json.loads(COMMITTED.read_text(encoding="utf-8")) | {"features": ["something_else"]}
    (tmp_path / "other.json").write_text(json.dumps(other), encoding="utf-8")
    assert Judge.load(tmp_path / "other.json") is None


def test_a_saved_judge_reads_back_the_same(tmp_path):
    judge = Judge.load(COMMITTED)
    judge.save(tmp_path / "judge.json")
    again = Judge.load(tmp_path / "judge.json")
    rows = np.random.default_rng(0).random((5, len(FEATURES)))
    assert np.allclose(judge.probabilities(rows), again.probabilities(rows), atol=1e-4)


def test_the_sentence_stating_the_time_limit_is_judged_above_one_that_does_not(judged):
    reading = judged.read("12345热线的咨询类工单要在几个工作日内办结？")
    best = reading.quotes[0]
    assert "2个工作日内办结" in best.sentence
    others = [q for q in reading.quotes if "办结" not in q.sentence]
    assert others and best.verdict > max(q.verdict for q in others)


def test_a_sentence_holding_no_answer_of_the_kind_asked_is_no_answer(judged):
    # asks for a time limit: sentences on the hotline that hold none get no verdict, however close
    reading = judged.read("向12345热线投诉以后，几个工作日能收到答复？")
    assert reading.query.kind is not None and reading.query.kind.name == "duration"
    assert all(q.verdict == 0.0 for q in reading.quotes if not q.lead)
    assert reading.quotes[0].lead


def test_after_an_elliptic_follow_up_only_sentences_about_what_it_names_can_answer(judged):
    turns = [{"role": "user", "content": "打12345咨询问题几天能回复？"}, {"role": "assistant", "content": "…"}]
    assert judged.read("那投诉的呢？", turns).query.aspect == ("投诉",)
    # the same sentences judged for the question alone, then as asked of 投诉
    reading = judged.read("12345热线工单要在几个工作日内办结反馈？")
    searcher, quotes = judged.searcher, reading.quotes[:JUDGED_CANDIDATES]
    alone = {q.sentence: q.verdict for q in quotes}
    of_complaints = searcher.judge.judge(replace(reading.query, aspect=("投诉",)), quotes, searcher.reader, searcher.cosines)

    def about(quote):
        return "投诉" in quote.sentence + " ".join(quote.hit.article.path) + quote.hit.article.document.title

    assert any(alone[q.sentence] > 0 and not about(q) for q in of_complaints)
    assert all(q.verdict == 0.0 for q in of_complaints if not about(q))
    assert any(q.verdict > 0 for q in of_complaints if about(q))


class CountingEmbeddings:
    """The real embeddings, counting the passages they are asked to embed."""

    def __init__(self, embeddings):
        self.embeddings, self.passages = embeddings, 0

    def encode_passages(self, texts):
        self.passages += len(texts)
        return self.embeddings.encode_passages(texts)

    def encode_queries(self, texts):
        return self.embeddings.encode_queries(texts)


def test_an_answer_reads_sentence_vectors_from_the_index_and_embeds_none(judged):
    searcher = judged.searcher
    stored = searcher.cosines.stored
    assert stored is not None and len(stored) > 1000  # the seed corpus's sentences, embedded at build
    counting = CountingEmbeddings(searcher.cosines.embeddings)
    cosines = SentenceCosines(counting, stored)
    reading = judged.read("打12345反映的问题多久能办结反馈？")
    quotes = reading.quotes[:JUDGED_CANDIDATES]
    from_index = cosines.of(reading.query, quotes)
    assert counting.passages == 0
    embedded = SentenceCosines(counting, None).of(reading.query, quotes)
    assert counting.passages == len({q.sentence for q in quotes}) > 0
    assert np.allclose(from_index, embedded, atol=1e-3)  # the same cosines either way


def test_search_is_ordered_by_the_reader_and_an_answer_by_the_judge(judged):
    ranking = judged.searcher.rank(judged.reader.analyse("12345热线工单延期最多几次"))
    head = judged.settings.rerank_clauses
    support = {}
    for quote in ranking.quotes:
        support[quote.hit.article.id] = max(support.get(quote.hit.article.id, 0.0), quote.support)
    reranked = [hit.article.id for hit in ranking.hits[:head]]
    retrieved = {hit.article.id: hit.score for hit in ranking.retrieved}
    # the reordered head follows retrieval score + the reader's support, best first
    keys = [retrieved[i] + judged.settings.rerank_weight * support.get(i, 0.0) for i in reranked]
    assert keys == sorted(keys, reverse=True)


def test_feature_rows_have_one_row_per_quote_and_gaps_to_the_best(judged):
    reading = judged.read("保障性租赁住房以建筑面积不超过多少平方米的小户型为主？")
    quotes = reading.quotes[:6]
    rows = feature_rows(reading.query, quotes, judged.reader, judged.searcher.cosines.of(reading.query, quotes))
    assert rows.shape == (len(quotes), len(FEATURES))
    gap = rows[:, FEATURES.index("sentence_cosine_gap")]
    assert gap.max() == 0.0 and (gap <= 0).all()


def test_the_judge_refuses_what_no_clause_states(judged):
    # the 12345 rules set time limits; they say nothing of the operators' pay
    answer = judged.answer("12345热线的接线员一个月能拿多少工资？")
    assert answer.refused and answer.grade in ("related", "none")


def test_gold_is_matched_by_quote_opening_end_or_sentence_inside_it():
    assert holds_gold("咨询类工单2个工作日内办结反馈诉求人，求助类5个工作日", ["咨询类工单2个工作日内办结反馈诉求人"])
    assert holds_gold("第一句在这里说明了情况。", ["前文第一句在这里说明了情况。后文"])
    assert not holds_gold("毫不相干的一句话", ["咨询类工单2个工作日内办结反馈诉求人"])


def test_folds_go_by_document():
    from qa.evaluate import Question

    a = Question(id="1", question="q", document="《某办法》")
    b = Question(id="2", question="r", document="《某办法》")
    assert fold_of(a) == fold_of(b)


def test_training_on_a_small_set_writes_a_judge_with_held_out_figures(settings, tmp_path):
    lines = []
    for path in sorted((PROJECT_ROOT / "tests" / "eval" / "pool").glob("w*.jsonl")):
        lines += path.read_text(encoding="utf-8").splitlines()[:12]
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(lines) + "\n", encoding="utf-8")
    judge = train(settings, [small], tmp_path / "judge.json", log=lambda *_: None)
    again = Judge.load(tmp_path / "judge.json")
    assert again is not None and again.threshold == pytest.approx(judge.threshold)
    assert again.about["held_out"]["all"]["n"] == len(lines)


def test_a_word_said_whole_is_found_written_apart_only_with_its_characters_in_order_and_close():
    from qa.extractive import written_apart

    assert written_apart("县政府", "市、县(区)人民政府及其有关部门")
    assert not written_apart("县政府", "自治区人民政府")  # no 县
    assert not written_apart("生活污水", "生活垃圾处理率")
    assert not written_apart("县政府", "县里的事由市人民代表大会和政府")  # too far apart
    assert not written_apart("投诉", "投资的诉求")  # two characters: whole words only
