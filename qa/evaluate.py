"""Retrieval figures on a question set (JSONL with id, question, type, gold quotes).

A result counts as a hit when its text contains a gold quote, compared after NFKC and with all
whitespace removed. Questions without gold (unanswerable) are left out of recall; they matter for
refusals, which the answer step measures.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from qa.models import Hit
from qa.text import compact

CONTEXT_BUDGET_CHARS = 1500


@dataclass
class Question:
    id: str
    question: str
    type: str = ""
    quotes: list[str] = field(default_factory=list)
    subtype: str = ""  # for unanswerable questions: near_miss, other_region, off_topic …
    document: str = ""  # the document it was written from (gold or topic_doc): what splits go by
    follow_up: bool = False


def _read_lines(path: Path, convert, what: str) -> list:
    """``convert(data, line number)`` of each JSON line of ``path``; a line that is no JSON or
    lacks a field is reported with its number."""
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(convert(json.loads(line), n))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{n}: not a {what} line ({error})") from error
    return items


def read_questions(path: Path) -> list[Question]:
    return _read_lines(path, lambda data, n: question_of(data, str(data.get("id", n))), "question")


def question_of(data: dict, id: str) -> Question:
    """A question (or a conversation's turn) from its JSON object."""
    gold = data.get("gold", [])
    return Question(
        id=id,
        question=data["question"],
        type=data.get("type", ""),
        quotes=[g["quote"] for g in gold if g.get("quote")],
        subtype=data.get("subtype", ""),
        document=next((g.get("doc_title", "") for g in gold if g.get("doc_title")), data.get("topic_doc", "")),
        follow_up=bool(data.get("follow_up", False)),
    )


def first_relevant_rank(hits: list[Hit], quotes: list[str]) -> int | None:
    wanted = [compact(q) for q in quotes]
    for rank, hit in enumerate(hits, start=1):
        text = compact(hit.article.text)
        if any(q in text for q in wanted):
            return rank
    return None


def found_within_budget(hits: list[Hit], quotes: list[str], budget: int = CONTEXT_BUDGET_CHARS) -> bool:
    """Whether the gold is in the results that fit in ``budget`` characters (what an LLM would read)."""
    wanted = [compact(q) for q in quotes]
    used = 0
    for hit in hits:
        if used >= budget:
            break
        text = hit.article.text[: budget - used]
        used += len(hit.article.text)
        if any(q in compact(text) for q in wanted):
            return True
    return False


@dataclass
class RetrievalReport:
    total: int = 0
    at1: int = 0
    at5: int = 0
    at10: int = 0
    reciprocal: float = 0.0
    budget: int = 0
    by_type: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0.0]))  # n, @5, rr
    misses: list = field(default_factory=list)

    def add(self, question: Question, rank: int | None, in_budget: bool, top: str) -> None:
        self.total += 1
        self.at1 += rank == 1
        self.at5 += rank is not None and rank <= 5
        self.at10 += rank is not None and rank <= 10
        self.reciprocal += 1 / rank if rank else 0.0
        self.budget += in_budget
        row = self.by_type[question.type or "-"]
        row[0] += 1
        row[1] += rank is not None and rank <= 5
        row[2] += 1 / rank if rank else 0.0
        if rank != 1:
            self.misses.append({"id": question.id, "question": question.question, "rank": rank, "top": top})

    def figures(self) -> dict:
        n = self.total or 1
        return {
            "questions": self.total,
            "recall@1": round(self.at1 / n, 4),
            "recall@5": round(self.at5 / n, 4),
            "recall@10": round(self.at10 / n, 4),
            "mrr@10": round(self.reciprocal / n, 4),
            f"recall@{CONTEXT_BUDGET_CHARS}chars": round(self.budget / n, 4),
            "by_type": {t: {"n": r[0], "recall@5": round(r[1] / r[0], 4), "mrr@10": round(r[2] / r[0], 4)} for t, r in sorted(self.by_type.items())},
        }

    def render(self) -> str:
        f = self.figures()
        lines = [
            f"questions with gold: {f['questions']}",
            f"Recall@1  {f['recall@1']:.3f}",
            f"Recall@5  {f['recall@5']:.3f}",
            f"Recall@10 {f['recall@10']:.3f}",
            f"MRR@10    {f['mrr@10']:.3f}",
            f"Recall within {CONTEXT_BUDGET_CHARS} chars {f[f'recall@{CONTEXT_BUDGET_CHARS}chars']:.3f}",
            "",
            "by type:   n  R@5    MRR@10",
        ]
        for name, row in f["by_type"].items():
            lines.append(f"  {name:<12}{row['n']:>3}  {row['recall@5']:.3f}  {row['mrr@10']:.3f}")
        if self.misses:
            lines.append("")
            lines.append("not first (rank, question → top result):")
            for miss in self.misses:
                lines.append(f"  {miss['id']} rank={miss['rank'] or '>10'} {miss['question']} → {miss['top']}")
        return "\n".join(lines)


def evaluate_retrieval(searcher, questions: list[Question], k: int = 10) -> RetrievalReport:
    report = RetrievalReport()
    for question in questions:
        if not question.quotes:
            continue
        hits = searcher.search(question.question, k=k)
        rank = first_relevant_rank(hits, question.quotes)
        top = ""
        if hits:
            a = hits[0].article
            top = f"{a.document.title[:20]} {' > '.join(a.path)[-30:]}"
        report.add(question, rank, found_within_budget(hits, question.quotes), top)
    return report


# Thresholds the refusal curve is printed at.
CURVE_THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(0, 20)) + tuple(round(0.05 * i, 2) for i in range(4, 17))


@dataclass
class AnswerOutcome:
    id: str
    answerable: bool
    refused: bool
    support: float  # the refusal signal (the judge's best verdict); 1.0 for a question naming an article
    cites_gold: bool
    shows_gold: bool = False  # the answer's own text holds the gold quote (see shows_gold)
    question: str = ""
    grade: str = ""  # answer, related or none
    type: str = ""  # the question's type, or for an unanswerable one its subtype
    first_cites_gold: bool = False  # the first citation holds the gold
    follow_up: bool | None = None  # for a conversation turn: whether it follows up the one before


@dataclass
class AnswerReport:
    outcomes: list[AnswerOutcome] = field(default_factory=list)
    threshold: float = 0.0

    def _answerable(self) -> list[AnswerOutcome]:
        return [o for o in self.outcomes if o.answerable]

    def _unanswerable(self) -> list[AnswerOutcome]:
        return [o for o in self.outcomes if not o.answerable]

    def figures(self) -> dict:
        f = group_figures(self.outcomes)
        f["refusal_threshold"] = self.threshold
        f["by_type"] = {name: group_figures(rows) for name, rows in sorted(_grouped(self.outcomes, lambda o: o.type or "-").items())}
        turns = [o for o in self.outcomes if o.follow_up is not None]
        if turns:
            f["by_turn"] = {name: group_figures(rows) for name, rows in sorted(_grouped(turns, lambda o: "follow-up" if o.follow_up else "first or new topic").items())}
        return f

    def curve(self) -> list[dict]:
        """Refusal recall and false refusals had the threshold been each of CURVE_THRESHOLDS."""
        answerable, unanswerable = self._answerable(), self._unanswerable()
        rows = []
        for threshold in CURVE_THRESHOLDS:
            rows.append(
                {
                    "threshold": threshold,
                    "refusal_recall": round(sum(o.support < threshold for o in unanswerable) / max(1, len(unanswerable)), 4),
                    "false_refusal_rate": round(sum(o.support < threshold for o in answerable) / max(1, len(answerable)), 4),
                }
            )
        return rows

    def render(self, curve: bool = False) -> str:
        f = self.figures()
        show = {key: ("  -  " if value is None else f"{value:.3f}") for key, value in f.items() if not isinstance(value, dict)}
        lines = [
            f"questions: {f['questions']} ({f['unanswerable']} without an answer in the corpus)",
            f"answer threshold {f['refusal_threshold']:.3f}",
            f"grades: answer {f['grades']['answer']}, related {f['grades']['related']}, none {f['grades']['none']}",
            f"unanswerable given no answer (refusal recall)  {show['refusal_recall']}",
            f"answerable given no answer (false refusals)    {show['false_refusal_rate']}",
            f"answer's own text shows the gold               {show['answer_shows_gold']}",
            f"first citation holds the gold                  {show['first_cites_gold']}",
            f"a cited clause holds the gold                  {show['cited_contains_gold']}",
            "",
            "by type:          n  refused(unans)  refused(ans)  shows gold  first cites",
        ]
        for name, row in f["by_type"].items():
            lines.append(_type_line(name, row))
        for name, row in f.get("by_turn", {}).items():
            lines.append(_type_line(name, row))
        if curve:
            lines += ["", "threshold  refusal recall  false refusals"]
            lines += [f"  {r['threshold']:.2f}     {r['refusal_recall']:.3f}           {r['false_refusal_rate']:.3f}" for r in self.curve()]
        wrong = [o for o in self.outcomes if o.refused == o.answerable or (o.answerable and not o.refused and not o.cites_gold)]
        if wrong:
            lines += ["", "wrong (verdict, grade, what went wrong, question):"]
            for o in wrong:
                what = "answered, should refuse" if not o.answerable else "refused" if o.refused else "gold not cited"
                lines.append(f"  {o.id} {o.support:.2f} {o.grade} {what}: {o.question}")
        return "\n".join(lines)


def _grouped(outcomes, key) -> dict:
    groups: dict[str, list] = defaultdict(list)
    for o in outcomes:
        groups[key(o)].append(o)
    return groups


def _share(rows, test) -> float | None:
    return round(sum(map(test, rows)) / len(rows), 4) if rows else None


def group_figures(outcomes: list[AnswerOutcome]) -> dict:
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    answered = [o for o in answerable if not o.refused]
    return {
        "questions": len(outcomes),
        "unanswerable": len(unanswerable),
        "grades": {g: sum(o.grade == g for o in outcomes) for g in ("answer", "related", "none")},
        "refusal_recall": _share(unanswerable, lambda o: o.refused),
        "false_refusal_rate": _share(answerable, lambda o: o.refused),
        "cited_contains_gold": _share(answered, lambda o: o.cites_gold),
        "answer_shows_gold": _share(answered, lambda o: o.shows_gold),
        "first_cites_gold": _share(answered, lambda o: o.first_cites_gold),
    }


def _type_line(name: str, row: dict) -> str:
    cells = ["   -  " if row[k] is None else f"{row[k]:.3f}" for k in ("refusal_recall", "false_refusal_rate", "answer_shows_gold", "first_cites_gold")]
    return f"  {name:<16}{row['questions']:>3}  {cells[0]:>14}  {cells[1]:>12}  {cells[2]:>10}  {cells[3]:>11}"


def cites_gold(answer, quotes: list[str]) -> bool:
    wanted = [compact(q) for q in quotes]
    return any(q in compact(c.article.text) for c in answer.citations for q in wanted)


def first_cites_gold(answer, quotes: list[str]) -> bool:
    wanted = [compact(q) for q in quotes]
    first = next((c for c in answer.citations if c.n == 1), None)
    return first is not None and any(q in compact(first.article.text) for q in wanted)


# A gold quote longer than one sentence is shown when its opening is: an extractive answer quotes
# sentence by sentence.
QUOTE_OPENING_CHARS = 12


def shows_gold(answer, quotes: list[str]) -> bool:
    """Whether the answer's text (not only a clause it cites) holds the gold quote: what a citizen
    reads without opening the citations."""
    text = compact(answer.text)
    wanted = [compact(q) for q in quotes]
    return any(q in text or (len(q) > QUOTE_OPENING_CHARS and q[:QUOTE_OPENING_CHARS] in text) for q in wanted)


def _outcome(answerer, question: Question, history=()) -> tuple[AnswerOutcome, object]:
    reading = answerer.read(question.question, history)
    answer = None
    for answer in answerer.respond(reading):
        pass
    quotes = question.quotes
    outcome = AnswerOutcome(
        id=question.id,
        answerable=bool(quotes),
        refused=answer.refused,
        support=1.0 if reading.names_article else reading.support,
        cites_gold=bool(quotes) and cites_gold(answer, quotes),
        shows_gold=bool(quotes) and shows_gold(answer, quotes),
        question=question.question,
        grade=answer.grade,
        type=question.subtype or question.type,
        first_cites_gold=bool(quotes) and first_cites_gold(answer, quotes),
    )
    return outcome, answer


def evaluate_answers(answerer, questions: list[Question]) -> AnswerReport:
    report = AnswerReport(threshold=answerer.threshold)
    for question in questions:
        report.outcomes.append(_outcome(answerer, question)[0])
    return report


def read_conversations(path: Path) -> list[list[Question]]:
    """Conversations (JSONL, one per line: id and turns of question, gold, type, follow_up) as lists
    of questions, each turn's id the conversation's with its number."""
    return _read_lines(
        path,
        lambda data, n: [question_of(turn, f"{data.get('id', n)}#{t}") for t, turn in enumerate(data["turns"], start=1)],
        "conversation",
    )


def evaluate_conversations(answerer, conversations: list[list[Question]]) -> AnswerReport:
    """Each conversation asked turn by turn, the product's own answers in the history, as the chat
    keeps it."""
    report = AnswerReport(threshold=answerer.threshold)
    for turns in conversations:
        history: list[dict] = []
        for question in turns:
            outcome, answer = _outcome(answerer, question, history)
            outcome.follow_up = question.follow_up and bool(history)
            report.outcomes.append(outcome)
            history += [{"role": "user", "content": question.question}, {"role": "assistant", "content": answer.text}]
    return report
