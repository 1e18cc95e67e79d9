"""`python -m qa bench --llm`: the LLM path measured against the endpoint configured
(``--llm-base-url``/``QA_LLM_BASE_URL``), next to the extractive answers on the same questions.

A benchmark, not a test: it needs a real model (the README's "LLM answers" says how to serve a
small one on this machine) and takes tens of seconds a question on a CPU. For each question of a
committed set it reports whether the final answer states the gold, what the model wrote and how
much of it survived the check, whether an unanswerable question was refused, the time to the
model's first token and the whole time.

"States the gold": the answer cites the clause holding the gold quote and its text holds most of
the quote's character pairs (``GOLD_PAIRS_SHOWN``), or the quote itself: a model paraphrases, so
the verbatim test of ``qa.evaluate.shows_gold`` would miss right answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from qa.config import Settings
from qa.evaluate import Question, cites_gold, read_questions, shows_gold
from qa.extractive import han_bigrams
from qa.generation import check_citations, make_breaker
from qa.text import compact

GOLD_PAIRS_SHOWN = 0.6


@dataclass
class LLMRun:
    question: Question
    mode: str  # "llm", or "extractive" when the check or the endpoint sent it back
    refused: bool
    states_gold: bool
    extractive_states_gold: bool
    extractive_refused: bool
    sentences: int  # sentences the model wrote that state something
    kept: int  # of those, the ones the check kept (cited, and stated by the clauses cited)
    first_token_s: float | None  # None when the model was not asked (refused before, or no answer)
    total_s: float
    raw: str  # what the model wrote


def states_gold(answer, quotes: list[str]) -> bool:
    if not quotes or answer.refused:
        return False
    if shows_gold(answer, quotes):
        return True
    text = han_bigrams(compact(answer.text))
    return cites_gold(answer, quotes) and any(
        len(pairs := han_bigrams(compact(q))) and len(pairs & text) / len(pairs) >= GOLD_PAIRS_SHOWN for q in quotes
    )


def measure(settings: Settings, searcher, questions: list[Question], log=print) -> list[LLMRun]:
    """Each question answered twice, extractively and through the LLM, on one searcher."""
    from qa.answering import Answerer

    extractive = Answerer(replace(settings, llm_base_url=""), searcher=searcher)
    llm = Answerer(settings, searcher=searcher)
    if llm.generator is None:
        raise ValueError("no LLM endpoint configured: give --llm-base-url or QA_LLM_BASE_URL")
    runs = []
    for n, question in enumerate(questions, start=1):
        plain = extractive.answer(question.question)
        seen: dict = {}
        original = llm.generator.stream

        def timed(asked, hits, seen=seen, original=original):
            started = time.monotonic()
            for text in original(asked, hits):
                if text:  # the first text, not the empty role chunk
                    seen.setdefault("first", time.monotonic() - started)
                seen["raw"], seen["hits"] = text, hits
                yield text

        llm.generator.stream = timed
        llm.generator.breaker = make_breaker(settings)  # each question on its own: a slow one pauses no other
        started = time.monotonic()
        answer = llm.answer(question.question)
        total = time.monotonic() - started
        llm.generator.stream = original
        raw, hits = seen.get("raw", ""), seen.get("hits", [])
        checked = check_citations(raw, len(hits), attribute=lambda claim, numbers, hits=hits: llm.stating(claim, hits, numbers)) if raw else None
        written = len(checked.claims) + len(checked.dropped) + len(checked.unsupported) if checked else 0
        run = LLMRun(
            question,
            answer.mode,
            answer.refused,
            states_gold(answer, question.quotes),
            states_gold(plain, question.quotes),
            plain.refused,
            written,
            len(checked.claims) if checked else 0,
            seen.get("first"),
            total,
            raw,
        )
        runs.append(run)
        log(f"[{n}/{len(questions)}] {question.id} {answer.mode} {'refused' if answer.refused else 'answered'} {total:.1f}s")
    return runs


def render(runs: list[LLMRun]) -> str:
    answerable = [r for r in runs if r.question.quotes]
    unanswerable = [r for r in runs if not r.question.quotes]
    asked = [r for r in runs if r.first_token_s is not None]
    share = lambda rows, test: f"{sum(map(test, rows))}/{len(rows)}" if rows else "-"  # noqa: E731
    written = sum(r.sentences for r in runs)
    lines = [
        f"questions: {len(runs)} ({len(unanswerable)} unanswerable); the model was asked {len(asked)} times",
        f"answerable, final answer states the gold:      LLM {share(answerable, lambda r: r.states_gold)}   extractive {share(answerable, lambda r: r.extractive_states_gold)}",
        f"answerable, answered by the model itself:       {share(answerable, lambda r: r.mode == 'llm' and not r.refused)}",
        f"unanswerable, refused:                          LLM {share(unanswerable, lambda r: r.refused)}   extractive {share(unanswerable, lambda r: r.extractive_refused)}",
        f"model's sentences kept by the check:            {sum(r.kept for r in runs)}/{written}",
    ]
    if asked:
        firsts = sorted(r.first_token_s for r in asked)
        totals = sorted(r.total_s for r in asked)
        lines.append(f"time to first token (s): median {firsts[len(firsts) // 2]:.1f}, max {firsts[-1]:.1f}; whole answer: median {totals[len(totals) // 2]:.1f}, max {totals[-1]:.1f}")
    lines.append("")
    for r in runs:
        mark = "gold" if r.states_gold else ("refused" if r.refused else "-")
        lines.append(f"  {r.question.id:<8} {r.mode:<10} {mark:<8} kept {r.kept}/{r.sentences}  {r.question.question[:40]}")
        if r.raw:
            lines.append(f"           model: {' '.join(r.raw.split())[:160]}")
    return "\n".join(lines)


def run(settings: Settings, searcher, path: Path, limit: int | None) -> str:
    questions = read_questions(path)
    if limit:
        # answerable and unanswerable alike: the first ``limit`` of each half of the set
        answerable = [q for q in questions if q.quotes][: (limit + 1) // 2]
        unanswerable = [q for q in questions if not q.quotes][: limit // 2]
        questions = answerable + unanswerable
    return render(measure(settings, searcher, questions))
