"""The answer step's prompts, read from the files in ``prompts/`` into LangChain templates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate

from qa.config import Settings


@dataclass(frozen=True)
class Prompts:
    answer: ChatPromptTemplate  # system rules + numbered clauses + question
    followup: ChatPromptTemplate  # conversation + follow-up -> standalone question
    refusal: str  # shown when the documents do not cover a question (grade "none")
    related: str  # shown when clauses are related but none states the answer (grade "related")
    greeting: str  # the reply to a greeting alone
    thanks: str  # the reply to thanks or a goodbye alone

    @property
    def refusal_marker(self) -> str:
        """The refusal's first sentence: an LLM reply that contains it is a refusal."""
        return self.refusal.split("。", 1)[0]


def _read(folder: Path, name: str) -> str:
    path = folder / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise FileNotFoundError(f"prompt file missing: {path} ({error.strerror})") from error


def load_prompts(settings: Settings) -> Prompts:
    folder = settings.prompts_dir
    return Prompts(
        answer=ChatPromptTemplate.from_messages([("system", _read(folder, "system.md")), ("human", _read(folder, "answer.md"))]),
        followup=ChatPromptTemplate.from_messages([("human", _read(folder, "followup.md"))]),
        refusal=_read(folder, "refusal.md"),
        related=_read(folder, "related.md"),
        greeting=_read(folder, "greeting.md"),
        thanks=_read(folder, "thanks.md"),
    )
