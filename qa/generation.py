"""Answers written by an LLM over an OpenAI-compatible API (vLLM, Ollama, llama.cpp server, hosted
Qwen/DeepSeek), through LangChain's ``ChatOpenAI``, and the check every such answer goes through:
the model may only cite clauses it was given, a sentence without a citation is dropped, and so is
one the clauses it cites do not state (the answer step's ``supported``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from qa.config import Settings
from qa.models import Hit
from qa.prompts import Prompts

CITATION = re.compile(r"\[(\d{1,3})\]")
# Citation forms models write besides [1]: 【1】, ［1］, [1,2], [1、2] (read as [1][2]). Item numbers
# inside clauses (29.) carry no brackets, and clauses are labelled 条款[n], so they are not read as these.
CITATION_FORM = re.compile(r"[\[【［]\s*(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]】］]")
# A pointer sentence is short; longer text is not matched against POINTER at all (its optional
# parts backtrack on long runs of spaces).
MAX_POINTER_CHARS = 30
# What those brackets become in clause text given to the model.
CLAUSE_BRACKETS = str.maketrans({"[": "〔", "]": "〕", "［": "〔", "］": "〕", "【": "〔", "】": "〕"})
# Sentence ends, keeping the end mark (and any citations right after it) with the sentence; an
# English full stop ends a sentence when a space or a line end follows it.
SENTENCE_END = re.compile(r"(?:(?<=[。！？!?；;\n])|(?<=[a-zA-Z\u4e00-\u9fff\)）\]]\.)(?=\s))(?!\s*\[\d)")
# A sentence that only points at its sources (依据条款 [2]。): its citations belong to the sentence
# before it, which states what they support.
POINTER = re.compile(r"[\s（(]*(以上|上述)?(内容)?(依据|根据|参见|参照|详见|见|出自|来源|引自|来自|(?i:see|source|sources))?[于自]?\s*(相关|上述|以上)?(条款|规定|文件|资料|政策)?(原文)?[\s：:。.，,；;）)]*")
# A piece this short without a citation, ending like a heading ("依据如下："), is a connective, not a
# claim; a short uncited claim (不收费。) is dropped like a long one.
MAX_UNCITED_CHARS = 8
CONNECTIVE_END = re.compile(r"[：:]\s*$")
# Markers our clause fences use; removed from clause text so a document cannot close a fence early.
FENCE = re.compile(r"<<<|>>>")


class GenerationError(Exception):
    """The LLM endpoint failed, timed out, or returned nothing usable."""


def make_llm(settings: Settings) -> BaseChatModel | None:
    """The configured chat model, or None when no endpoint is configured."""
    if not settings.llm_base_url:
        return None
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key or "not-needed",
        temperature=settings.llm_temperature,
        timeout=settings.llm_timeout,
        max_retries=0,  # the extractive answer is the fallback; retrying would only keep the user waiting
        streaming=True,
    )


def clause_block(n: int, hit: Hit) -> str:
    """One numbered clause for the prompt. Brackets of every citation form ([1], ［1］, 【1】) become
    〔 〕 (as in a 文号) so a document cannot forge a citation marker, and the fence marks where
    data starts and ends."""
    article = hit.article
    doc = article.document
    head = " ".join(filter(None, [f"《{doc.title}》" if doc else "", doc.doc_number if doc else "", " > ".join(article.path)]))
    text = FENCE.sub("", article.text).translate(CLAUSE_BRACKETS)
    return f"<<<条款[{n}] {FENCE.sub('', head).translate(CLAUSE_BRACKETS)}\n{text}\n>>>"


def format_history(history: list[tuple[str, str]]) -> str:
    return "\n".join(f"{'群众' if role == 'user' else '助手'}：{content}" for role, content in history)


@dataclass
class CheckedText:
    text: str
    cited: list[int]  # clause numbers cited, in order of first citation
    dropped: list[str] = field(default_factory=list)  # sentences removed for having no citation
    unknown: list[int] = field(default_factory=list)  # [n] markers removed: no clause n was given
    # The sentences that state something, without their markers, each with the clauses it cites:
    # what the answer step checks against those clauses.
    claims: list[tuple[str, list[int]]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # cited sentences their clauses do not state


def normalise_citations(text: str) -> str:
    """Every citation form a model writes (【1】, ［1］, [1,2]) as [1] or [1][2]."""
    return CITATION_FORM.sub(lambda m: "".join(f"[{n}]" for n in re.findall(r"\d{1,3}", m.group(1))), text)


def check_citations(text: str, clauses: int, supported: Callable[[str, list[int]], bool] | None = None) -> CheckedText:
    """Keep only citations of clauses 1..clauses and only sentences that carry one. A sentence
    that only points at clauses (依据条款 [2]。) gives its citations to the sentence before it.
    ``supported(sentence, numbers)``: whether the clauses a sentence cites state it; the others
    are dropped too (``unsupported``)."""
    pieces: list[list] = []  # [sentence as kept, its valid citations, its text without markers]
    dropped, unknown = [], []
    for sentence in SENTENCE_END.split(normalise_citations(text)):
        if not sentence.strip():
            pieces.append([sentence, [], ""])
            continue
        numbers = [int(n) for n in CITATION.findall(sentence)]
        unknown += [n for n in numbers if not 1 <= n <= clauses]
        valid = list(dict.fromkeys(n for n in numbers if 1 <= n <= clauses))
        sentence = CITATION.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= clauses else "", sentence)
        bare = CITATION.sub("", sentence).strip()
        if len(bare) <= MAX_POINTER_CHARS and POINTER.fullmatch(bare):
            claim = next((p for p in reversed(pieces) if p[2]), None)
            if claim is not None:
                claim[1] += [n for n in valid if n not in claim[1]]
            continue  # a pointer states nothing of its own
        pieces.append([sentence, valid, bare])
    kept, cited, claims, unsupported = [], [], [], []
    for sentence, valid, bare in pieces:
        if not bare:
            kept.append(sentence)
            continue
        if not valid and (len(bare) > MAX_UNCITED_CHARS or not CONNECTIVE_END.search(bare)):
            dropped.append(bare)
            continue
        if valid and supported is not None and not supported(bare, valid):
            unsupported.append(bare)
            continue
        if valid and not CITATION.search(sentence):  # citations handed on by a pointer sentence
            sentence = _with_citations(sentence, valid)
        elif valid:
            sentence = _with_citations(CITATION.sub("", sentence), valid)
        cited += [n for n in valid if n not in cited]
        kept.append(sentence)
        if valid:
            claims.append((bare, valid))
    return CheckedText("".join(kept).strip(), cited, dropped, unknown, claims, unsupported)


def _with_citations(sentence: str, numbers: list[int]) -> str:
    """``sentence`` with ``numbers`` cited at its end, before its end mark and line break."""
    body = sentence.rstrip()
    tail = sentence[len(body) :]
    mark = body[-1] if body and body[-1] in "。！？!?；;." else ""
    body = body[: len(body) - len(mark)].rstrip()
    return f"{body}{''.join(f'[{n}]' for n in numbers)}{mark}{tail}"


def renumber(text: str, order: list[int]) -> str:
    """Citations renumbered 1, 2, … in order of first appearance."""
    mapping = {old: new for new, old in enumerate(order, start=1)}
    return CITATION.sub(lambda m: f"[{mapping.get(int(m.group(1)), int(m.group(1)))}]", text)


class Generator:
    """Streams an LLM answer over numbered clauses; rewrites follow-ups into standalone questions."""

    def __init__(self, llm: BaseChatModel, prompts: Prompts, settings: Settings):
        self.llm = llm
        self.prompts = prompts
        self.settings = settings

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str]:
        """The answer text so far, growing; raises GenerationError on failure or timeout."""
        clauses = "\n\n".join(clause_block(n, hit) for n, hit in enumerate(hits, start=1))
        messages = self.prompts.answer.format_messages(clauses=clauses, question=question)
        deadline = time.monotonic() + self.settings.llm_timeout
        text = ""
        try:
            for chunk in self.llm.stream(messages):
                text += chunk.content if isinstance(chunk.content, str) else ""
                if time.monotonic() > deadline:
                    raise GenerationError(f"no complete answer within {self.settings.llm_timeout:g} s")
                yield text
        except GenerationError:
            raise
        except Exception as error:  # the endpoint's failures come as many exception types
            raise GenerationError(f"{type(error).__name__}: {error}") from error
        if not text.strip():
            raise GenerationError("the model returned an empty answer")

    def rewrite_followup(self, question: str, history: list[tuple[str, str]]) -> str:
        messages = self.prompts.followup.format_messages(history=format_history(history), question=question)
        try:
            reply = self.llm.invoke(messages)
        except Exception as error:
            raise GenerationError(f"{type(error).__name__}: {error}") from error
        content = reply.content if isinstance(reply.content, str) else ""
        lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
        if not lines or len(lines[0]) > self.settings.max_question_chars:
            raise GenerationError("the model gave no usable rewritten question")
        return lines[0]
