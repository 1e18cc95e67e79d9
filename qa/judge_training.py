"""Training the judge (qa/judging.py): ``python -m qa train-judge``.

Reproducible from what the repository holds: the corpus, the index built from it and the question
sets in ``tests/eval/pool/`` (written from the corpus by helpers who saw neither the dev set nor the
code; see tests/eval/README.md). No randomness: the folds come from a hash of each question's
document, and scikit-learn's L-BFGS logistic regression is deterministic.

1. Each question is read by the answer step as it runs without a judge (retrieval, reranking by the
   reader's support, the places rule); the sentences of the first clauses it would quote are the
   candidates. A candidate is positive when it holds (part of) the question's gold quote; every
   candidate of an unanswerable question is negative. Questions outside the corpus's scope (another
   province, a year it does not cover, no policy question) and article lookups are decided by rule
   and left out.
2. The questions are split into ``FOLDS`` folds by *document* (an unanswerable question goes with
   the document it was written near; out-of-scope ones are spread by id): each fold's figures come
   from a judge trained on the other folds, so they say how the judge does on documents it never
   saw, as an admin's next upload will be.
3. The threshold is the verdict above which an answer is asserted (the reader's support must still
   reach ``refusal_threshold``, the gate it was before the judge: the judge adds a veto). It is the
   highest threshold at which the held-out answerable questions given no answer stay within
   ``FALSE_REFUSAL_BUDGET`` (0.05, the product's bound): as many unanswerable questions refused as
   that bound allows. (Choosing it for the fewest weighted mistakes instead picked 0.89–0.95 and
   refused 0.23–0.42 of the answerable questions, the flagship 12345 question among them: a
   refusal there and a wrong lead cost alike, so the cost kept rising with the threshold.)
4. The judge used is trained on all the questions and stored with the threshold and the held-out
   figures in ``qa/data/judge.json``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa.config import PROJECT_ROOT, Settings
from qa.evaluate import Question, read_questions
from qa.judging import FEATURES, JUDGED_CANDIDATES, Judge, feature_rows
from qa.text import compact

DEFAULT_SETS = tuple(sorted((PROJECT_ROOT / "tests" / "eval" / "pool").glob("*.jsonl")))
DEFAULT_JUDGE = PROJECT_ROOT / "qa" / "data" / "judge.json"
FOLDS = 5
FALSE_REFUSAL_BUDGET = 0.05
# L2 strength of the logistic regression (scikit-learn's C); 1.0, its default, did as well as
# 0.1 and 10 on the held-out folds.
REGULARISATION = 1.0
QUOTE_EDGE_CHARS = 12


def holds_gold(sentence: str, quotes: list[str]) -> bool:
    """Whether a sentence holds (part of) a gold quote: the quote, its opening or its end, or the
    sentence is part of a longer quote."""
    text = compact(sentence)
    for quote in map(compact, quotes):
        if quote in text or (len(text) >= 8 and text in quote):
            return True
        if len(quote) > QUOTE_EDGE_CHARS and (quote[:QUOTE_EDGE_CHARS] in text or quote[-QUOTE_EDGE_CHARS:] in text):
            return True
    return False


def fold_of(question: Question) -> int:
    key = question.document or f"id:{question.id}"
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % FOLDS


@dataclass
class Example:
    """One question's candidates, as the judge sees them."""

    question: Question
    set_name: str
    rows: np.ndarray  # one row of features per candidate
    labels: np.ndarray  # 1 = the candidate holds the gold
    fold: int
    support: float = 0.0  # the reader's support, the gate the judge's verdict is added to
    # 1 = the candidate may be an answer: it holds the kind of answer asked, or none is asked
    # (Judge.judge gives the others no verdict)
    eligible: np.ndarray | None = None

    def verdicts(self, judge: Judge) -> np.ndarray:
        """The judge's verdicts on the candidates, as the answer step takes them."""
        verdicts = judge.probabilities(self.rows)
        return verdicts if self.eligible is None else verdicts * self.eligible


def collect(answerer, questions: list[tuple[str, Question]]) -> tuple[list[Example], list[tuple[str, Question, str]]]:
    """(examples for the judge, questions decided by rule with how: "outside" or "lookup")."""
    examples, ruled = [], []
    for set_name, question in questions:
        reading = answerer.read(question.question)
        if reading.outside or reading.names_article:
            ruled.append((set_name, question, "outside" if reading.outside else "lookup"))
            continue
        quotes = served_candidates(answerer, reading.query)
        cosines = answerer.searcher.cosines.of(reading.query, quotes) if quotes else None
        rows = feature_rows(reading.query, quotes, answerer.reader, cosines) if quotes else np.zeros((0, len(FEATURES)))
        labels = np.array([holds_gold(q.sentence, question.quotes) for q in quotes], dtype=float) if question.quotes else np.zeros(len(quotes))
        eligible = np.array([bool(q.lead) or reading.query.kind is None for q in quotes], dtype=float)
        examples.append(Example(question, set_name, rows, labels, fold_of(question), reading.support, eligible))
    return examples, ruled


def served_candidates(answerer, query) -> list:
    """The sentences the judge sees when serving this question (RerankedSearcher.read): the
    reader's best of the head retrieval returns, fresh, with retrieval's ranks and scores (the
    answer step's quotes have been reordered since)."""
    searcher = answerer.searcher
    head = searcher.head(searcher.retrieve(query, answerer.retrieval_k))
    return searcher.read(query, head, judged=False)[:JUDGED_CANDIDATES]


def fit(examples: list[Example]) -> Judge:
    from sklearn.linear_model import LogisticRegression

    rows = np.vstack([e.rows for e in examples if len(e.rows)])
    labels = np.concatenate([e.labels for e in examples if len(e.rows)])
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=REGULARISATION, max_iter=2000, class_weight="balanced")
    model.fit((rows - mean) / scale, labels)
    return Judge(weights=model.coef_[0], bias=float(model.intercept_[0]), mean=mean, scale=scale, threshold=0.5)


@dataclass
class Outcome:
    """A question's held-out result: its best verdict and whether the sentence it led with holds the gold."""

    example: Example
    verdict: float
    lead_holds_gold: bool
    gate: float = 0.0  # the reader's support must reach this too (the answer step's refusal_threshold)

    def answered(self, threshold: float) -> bool:
        return self.example.support >= self.gate and self.verdict >= threshold

    @property
    def answerable(self) -> bool:
        return bool(self.example.question.quotes)


def held_out(examples: list[Example], gate: float = 0.0) -> list[Outcome]:
    """Each example judged by a judge trained on the other folds."""
    outcomes = []
    for fold in range(FOLDS):
        training = [e for e in examples if e.fold != fold]
        judge = fit(training)
        for example in (e for e in examples if e.fold == fold):
            if not len(example.rows):
                outcomes.append(Outcome(example, 0.0, False, gate))
                continue
            verdicts = example.verdicts(judge)
            best = int(np.argmax(verdicts))
            outcomes.append(Outcome(example, float(verdicts[best]), bool(example.labels[best]), gate))
    return outcomes


def choose_threshold(outcomes: list[Outcome], ruled=()) -> float:
    """The highest threshold whose held-out share of answerable questions given no answer is
    within FALSE_REFUSAL_BUDGET (lookups among the answerable ones count as answered)."""
    answerable = [o for o in outcomes if o.answerable]
    lookups = sum(1 for _, q, how in ruled if q.quotes and how == "lookup")
    total = len(answerable) + sum(1 for _, q, _ in ruled if q.quotes)
    best = 0.0
    for threshold in np.round(np.arange(0.05, 0.96, 0.01), 2):
        refused = sum(not o.answered(threshold) for o in answerable) + (total - len(answerable) - lookups)
        if refused / max(1, total) <= FALSE_REFUSAL_BUDGET:
            best = float(threshold)
    return best


def figures(outcomes: list[Outcome], threshold: float, ruled=()) -> dict:
    """Held-out figures per set and per type, with the questions decided by rule counted as the
    answer step decides them (outside: refused; lookup: answered)."""
    groups: dict[str, list] = defaultdict(list)
    for o in outcomes:
        answered = o.answered(threshold)
        row = (o.answerable, answered, answered and o.lead_holds_gold)
        q = o.example.question
        for key in ("all", f"set:{o.example.set_name}", f"type:{q.subtype or q.type or '-'}"):
            groups[key].append(row)
    for set_name, q, how in ruled:
        row = (bool(q.quotes), how == "lookup", how == "lookup")
        for key in ("all", f"set:{set_name}", f"type:{q.subtype or q.type or '-'}"):
            groups[key].append(row)
    result = {}
    for key, rows in sorted(groups.items()):
        answerable = [r for r in rows if r[0]]
        unanswerable = [r for r in rows if not r[0]]
        result[key] = {
            "n": len(rows),
            "unanswerable_refused": round(sum(not r[1] for r in unanswerable) / len(unanswerable), 3) if unanswerable else None,
            "answerable_refused": round(sum(not r[1] for r in answerable) / len(answerable), 3) if answerable else None,
            "lead_holds_gold": round(sum(r[2] for r in answerable if r[1]) / max(1, sum(r[1] for r in answerable)), 3) if answerable else None,
        }
    return result


def question_sets(paths) -> list[tuple[str, Question]]:
    return [(Path(p).stem, q) for p in paths for q in read_questions(Path(p))]


def train(settings: Settings, paths=DEFAULT_SETS, out: Path | None = None, searcher=None, log=print) -> Judge:
    """Train the judge on ``paths`` and write it to ``out`` (default: ``settings.judge_file``).
    ``searcher``: the retrieval searcher to read candidates with (default: the FAISS one)."""
    from qa.answering import Answerer
    from qa.reranking import RerankedSearcher

    out = Path(out or (settings.judge_file if str(settings.judge_file) and not settings.judge_file.is_dir() else DEFAULT_JUDGE))
    questions = question_sets(paths)
    log(f"{len(questions)} questions from {len(paths)} sets; candidates read without a judge")
    plain = replace(settings, judge_file=Path(""), llm_base_url="")
    inner = searcher.inner if isinstance(searcher, RerankedSearcher) else searcher
    answerer = Answerer(plain, searcher=RerankedSearcher(inner, plain) if inner is not None else None)
    examples, ruled = collect(answerer, questions)
    positives = int(sum(e.labels.sum() for e in examples))
    log(f"{len(examples)} questions judged ({sum(len(e.rows) for e in examples)} candidate sentences, {positives} hold the gold); {len(ruled)} decided by rule")
    outcomes = held_out(examples, settings.refusal_threshold)
    threshold = choose_threshold(outcomes, ruled)
    held = figures(outcomes, threshold, ruled)
    judge = fit(examples)
    judge.threshold = threshold
    judge.about = {
        "trained_on": [str(Path(p).relative_to(PROJECT_ROOT)) if Path(p).is_relative_to(PROJECT_ROOT) else str(p) for p in paths],
        "folds": f"{FOLDS} folds by document (sha1 of the gold or topic document's title)",
        "threshold": f"highest with held-out answerable questions given no answer <= {FALSE_REFUSAL_BUDGET}",
        "held_out": held,
    }
    judge.save(out)
    log(f"threshold {threshold:.2f}; written to {out}")
    log(render(held))
    return judge


def render(held: dict) -> str:
    lines = ["held-out (judge trained without the question's document):", "  group                          n  unanswerable refused  answerable refused  lead holds gold"]
    for key, f in held.items():
        cells = ["   -   " if f[k] is None else f"{f[k]:.3f}" for k in ("unanswerable_refused", "answerable_refused", "lead_holds_gold")]
        lines.append(f"  {key:<28}{f['n']:>4}  {cells[0]:>20}  {cells[1]:>18}  {cells[2]:>15}")
    return "\n".join(lines)

