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


def read_questions(path: Path) -> list[Question]:
    questions = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            questions.append(
                Question(
                    id=str(data.get("id", n)),
                    question=data["question"],
                    type=data.get("type", ""),
                    quotes=[gold["quote"] for gold in data.get("gold", []) if gold.get("quote")],
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{n}: not a question line ({error})") from error
    return questions


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
