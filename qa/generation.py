"""Answers written by an LLM over an OpenAI-compatible API (vLLM, Ollama, llama.cpp server, hosted
Qwen/DeepSeek), through LangChain's ``ChatOpenAI``, and the check every such answer goes through:
the model may only cite clauses it was given, a sentence without a citation is dropped, and so is
one the clauses it cites do not state (the answer step's ``supported``).
"""

from __future__ import annotations

import queue
import re
import threading
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
# Qwen2.5-1.5B writes 依据的条款是 [2] 和 [3]。: with the markers gone, what joins them (和, 、) is left.
POINTER = re.compile(
    r"[\s（(]*(以上|上述)?(内容)?(依据|根据|参见|参照|详见|见|出自|来源|引自|来自|(?i:see|source|sources))?(的)?[于自]?\s*"
    r"(相关|上述|以上)?(条款|规定|文件|资料|政策)?(编号)?(原文)?(是|为)?[\s：:。.，,；;、和及与）)]*"
)
# Article labels a pointer may name beside its citations (依据条款[4]第4.5条和条款[5]第8.1条。)
ARTICLE_REFERENCE = re.compile(r"(条款)?(中的)?第?\s*[\d.一二三四五六七八九十百]+\s*条|条款")
# How small models open an answer (根据条款资料，…): no claim of the clauses, so not checked against them.
PREAMBLE = re.compile(r"^(根据|依据|按照)(相关|上述|以上)?(条款|规定|文件|资料|政策)*(资料|内容|原文)?[，,：:]\s*")
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
        # LangChain sends this as max_completion_tokens (OpenAI's current name); llama.cpp's and
        # Ollama's servers read max_tokens, so it goes in the body under that name too
        max_tokens=settings.llm_max_tokens,
        extra_body={"max_tokens": settings.llm_max_tokens},
        max_retries=0,  # the extractive answer is the fallback; retrying would only keep the user waiting
        streaming=True,
    )


def probe(settings: Settings, timeout: float = 5.0) -> str:
    """One line for the operator at start-up: whether an LLM is configured and its endpoint answers
    (GET /models). Serving starts either way: the extractive answer covers a dead endpoint."""
    if not settings.llm_base_url:
        return "LLM: off (extractive answers; --llm-base-url or QA_LLM_BASE_URL turns it on)"
    import httpx

    url = settings.llm_base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, timeout=timeout, headers={"Authorization": f"Bearer {settings.llm_api_key or 'not-needed'}"})
        response.raise_for_status()
        names = [m.get("id") or m.get("name") for m in response.json().get("data", []) if isinstance(m, dict)]
    except (httpx.HTTPError, ValueError, AttributeError, TypeError) as error:  # down, or a listing not as OpenAI's
        return f"LLM: {settings.llm_model} at {settings.llm_base_url} does not answer ({type(error).__name__}); answers stay extractive until it does"
    listed = f" (serves {', '.join(str(n) for n in names[:3])})" if names else ""
    return f"LLM: {settings.llm_model} at {settings.llm_base_url}{listed}"


class Breaker:
    """After ``failures`` failed LLM calls in a row the endpoint is left alone for ``pause`` seconds
    (answers are extractive meanwhile), then one call at a time tries it again: a dead endpoint
    must not hold every request's worker for the whole timeout. Written here rather than taken from
    pybreaker, whose generator support counts a stream the reader stops early (a citizen closing
    the page) as a success, and records outcomes outside its lock against the state a call began in.

    ``allow()`` gives a permit ("closed", "trial") or None while paused; the call reports back with
    ``succeeded``, ``failed`` or ``released`` (stopped by its reader: no verdict on the endpoint)."""

    def __init__(self, failures: int, pause: float, clock: Callable[[], float] = time.monotonic):
        self.failures, self.pause, self._clock = failures, pause, clock
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._trying = False

    def allow(self) -> str | None:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._trying or self._clock() - self._opened_at < self.pause:
                return None
            self._trying = True
            return "trial"

    def succeeded(self, permit: str) -> None:
        with self._lock:
            self._failed, self._opened_at, self._trying = 0, None, False

    def failed(self, permit: str) -> None:
        with self._lock:
            if permit == "trial":
                self._trying, self._opened_at = False, self._clock()
            elif self._opened_at is None:  # a call begun before the pause ends in it: no new pause
                self._failed += 1
                if self._failed >= self.failures:
                    self._opened_at = self._clock()

    def released(self, permit: str) -> None:
        with self._lock:
            if permit == "trial":
                self._trying = False

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._opened_at is not None


def make_breaker(settings: Settings) -> Breaker:
    return Breaker(settings.llm_failures_before_pause, settings.llm_pause_seconds)


def clause_block(n: int, hit: Hit) -> str:
    """One numbered clause for the prompt. Brackets of every citation form ([1], ［1］, 【1】) become
    〔 〕 (as in a 文号) so a document cannot forge a citation marker, and the fence marks where
    data starts and ends."""
    article = hit.article
    head = article.source()
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


def check_citations(
    text: str,
    clauses: int,
    supported: Callable[[str, list[int]], bool] | None = None,
    attribute: Callable[[str, list[int]], list[int]] | None = None,
) -> CheckedText:
    """Keep only citations of clauses 1..clauses and only sentences that carry one. A sentence
    that only points at clauses (依据条款 [2]。) gives its citations to the sentence before it.
    ``supported(sentence, numbers)``: whether the clauses a sentence cites state it; the others
    are dropped too (``unsupported``). ``attribute(sentence, numbers)`` instead: the clauses that
    state it, which may be other clauses the model was given than those it cited (a small model
    reads the label 4.5 of clause [1] as clause [4]); none, and the sentence is dropped."""
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
        if len(bare) <= MAX_POINTER_CHARS and (POINTER.fullmatch(bare) or POINTER.fullmatch(ARTICLE_REFERENCE.sub("", bare))):
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
        if valid and attribute is not None:
            stating = attribute(PREAMBLE.sub("", bare), valid)
            if not stating:
                unsupported.append(bare)
                continue
            if stating != valid:
                valid, sentence = stating, CITATION.sub("", sentence)
        elif valid and supported is not None and not supported(PREAMBLE.sub("", bare), valid):
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


def completed_sentences(text: str) -> str:
    """The part of a growing answer whose sentences are complete: up to the last sentence end that
    something other than a citation follows (the citations after an end mark belong to the
    sentence before it, and may still be on their way)."""
    pieces = SENTENCE_END.split(text)
    if len(pieces) < 2:
        return ""
    last = pieces[-1].lstrip()
    if not last or last[0] in "[【［":
        pieces = pieces[:-1]
    return "".join(pieces[:-1])


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

    def __init__(self, llm: BaseChatModel, prompts: Prompts, settings: Settings, breaker: Breaker | None = None):
        self.llm = llm
        self.prompts = prompts
        self.settings = settings
        self.breaker = breaker or make_breaker(settings)

    def stream(self, question: str, hits: list[Hit]) -> Iterator[str]:
        """The answer text so far, growing; raises GenerationError on failure, on a timeout, or
        while the breaker holds the endpoint off after repeated failures."""
        clauses = "\n\n".join(clause_block(n, hit) for n, hit in enumerate(hits, start=1))
        messages = self.prompts.answer.format_messages(clauses=clauses, question=question)
        permit = self.breaker.allow()
        if permit is None:
            raise GenerationError(f"the endpoint failed {self.settings.llm_failures_before_pause} times in a row; paused")
        try:
            yield from self._watched(messages)
        except GenerationError:
            self.breaker.failed(permit)
            raise
        except GeneratorExit:
            self.breaker.released(permit)
            raise
        self.breaker.succeeded(permit)

    def _watched(self, messages) -> Iterator[str]:
        """The model's stream read in a thread of its own, so the deadlines hold whatever the
        endpoint does: one that sends only SSE keep-alive comments, or a token every 15 s, is given
        up on at ``llm_first_token_timeout`` / ``llm_timeout``, not when its next chunk comes."""
        chunks: queue.Queue = queue.Queue()
        stop = threading.Event()

        def produce():
            try:
                for chunk in self.llm.stream(messages):
                    if stop.is_set():
                        return
                    chunks.put(("text", chunk.content if isinstance(chunk.content, str) else ""))
                chunks.put(("end", None))
            except Exception as error:  # the endpoint's failures come as many exception types
                chunks.put(("error", error))

        threading.Thread(target=produce, name="llm-stream", daemon=True).start()
        started = time.monotonic()
        first_deadline = started + min(self.settings.llm_first_token_timeout, self.settings.llm_timeout)
        deadline = started + self.settings.llm_timeout
        text = ""
        try:
            while True:
                waiting_first = not text.strip()
                remaining = (first_deadline if waiting_first else deadline) - time.monotonic()
                try:
                    kind, value = chunks.get(timeout=max(0.0, remaining))
                except queue.Empty:
                    if waiting_first:
                        raise GenerationError(f"no first token within {self.settings.llm_first_token_timeout:g} s") from None
                    raise GenerationError(f"no complete answer within {self.settings.llm_timeout:g} s") from None
                if kind == "end":
                    break
                if kind == "error":
                    raise GenerationError(f"{type(value).__name__}: {value}") from value
                text += value
                if time.monotonic() > deadline:
                    raise GenerationError(f"no complete answer within {self.settings.llm_timeout:g} s")
                yield text
        finally:
            stop.set()  # the thread stops at its next chunk; the HTTP client's timeout ends a silent one
        if not text.strip():
            raise GenerationError("the model returned an empty answer")

    def rewrite_followup(self, question: str, history: list[tuple[str, str]]) -> str:
        messages = self.prompts.followup.format_messages(history=format_history(history), question=question)
        permit = self.breaker.allow()
        if permit is None:
            raise GenerationError("the endpoint is paused")
        try:
            reply = self.llm.invoke(messages)
        except Exception as error:
            self.breaker.failed(permit)
            raise GenerationError(f"{type(error).__name__}: {error}") from error
        self.breaker.succeeded(permit)
        content = reply.content if isinstance(reply.content, str) else ""
        lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
        if not lines or len(lines[0]) > self.settings.max_question_chars:
            raise GenerationError("the model gave no usable rewritten question")
        return lines[0]
