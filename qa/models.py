"""Plain records passed between the steps of the flow; they carry citation metadata end to end."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class AnswerKind:
    """A kind of answer a question asks for (a duration, an amount, a department), and how to
    recognise one in a sentence (qa/query.py lists them)."""

    name: str
    asked_by: re.Pattern
    found_by: re.Pattern


@dataclass(frozen=True)
class Query:
    """A question analysed once (qa/query.py) and handed to retrieval, reranking, the judge and the
    answer step, so none of them works it out again from the raw string."""

    text: str  # as asked, or a follow-up put in the context of the conversation
    normalised: str  # NFKC, lower case, variant forms folded (qa.keywords.normalise)
    canonical: str = ""  # normalised, each synonym read as its group's first word (回复 -> 答复)
    tokens: tuple[str, ...] = ()  # BM25 tokens, with the other words of the synonym groups it uses
    kind: AnswerKind | None = None  # the kind of answer it asks for
    places: tuple[str, ...] = ()  # place names in it (宁夏, 银川, 利通区)
    named_places: tuple[str, ...] = ()  # the cities, counties and districts among them
    years: tuple[int, ...] = ()  # years it names (2019年)
    words: tuple[str, ...] = ()  # its content words (jieba), less words of asking
    # The content words next to the words of asking (补贴 in 政府给不给补贴？补多少, 公示 in 公告期要
    # 公示多少天): what the kind of answer is asked about, which the answering fragment must be about.
    focus: tuple[str, ...] = ()
    # What an elliptic follow-up names (投诉 in 那投诉的呢？ after 反映问题几天能回复): the earlier
    # question asked again of it, so a sentence not about it answers the earlier question, not this.
    aspect: tuple[str, ...] = ()

    @property
    def kind_name(self) -> str:
        return self.kind.name if self.kind else ""


@dataclass
class Document:
    """One government document found in a corpus file (a notice, the plan it issues, a chronicle)."""

    id: str
    source_file: str
    title: str
    notice_title: str = ""  # the 通知 that issues the plan, when `title` is the plan's title
    doc_number: str = ""  # 文号, e.g. 宁政办发〔2022〕30号
    issuer: str = ""
    date: str = ""  # ISO date, "" when the text gives none
    region: str = ""
    gazette: str = ""  # gazette name and issue
    trial: bool = False  # 试行
    effective_date: str = ""  # 施行日期, ISO
    repeals: list[str] = field(default_factory=list)  # documents it repeals (同时废止)
    start: int = 0  # character offsets of the document in the source file's text
    end: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Article:
    """One citable clause: 第X条, or a numbered section of a plan, with its heading path."""

    id: str
    doc_id: str
    label: str  # 第二十一条, （三）, 5., 3.2.2 ...
    path: list[str]  # heading path, outermost first, ending with this article's heading
    text: str
    start: int  # character offsets into the source file's text
    end: int
    part: int = 0  # >0 when a long clause was cut into parts
    document: Document | None = None

    def source(self) -> str:
        """Where the clause is: 《title》 文号 heading path (under an answer, in a refusal's list of
        related clauses, in the LLM's prompt)."""
        doc = self.document
        return " ".join(filter(None, [f"《{doc.title}》" if doc else "", doc.doc_number if doc else "", " > ".join(self.path)]))

    def to_dict(self) -> dict:
        doc = self.document
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "doc_title": doc.title if doc else "",
            "notice_title": doc.notice_title if doc else "",
            "doc_number": doc.doc_number if doc else "",
            "issuer": doc.issuer if doc else "",
            "date": doc.date if doc else "",
            "region": doc.region if doc else "",
            "trial": doc.trial if doc else False,
            "effective_date": doc.effective_date if doc else "",
            "source_file": doc.source_file if doc else "",
            "label": self.label,
            "path": list(self.path),
            "part": self.part,
            "text": self.text,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class Hit:
    """A retrieved article. ``score`` is the ranking score (0..1; 1.0 for an article the question
    names); ``dense_score`` is the absolute cosine to the question and ``keyword_score`` the BM25
    score relative to the best hit, the signals an answer step can threshold on."""

    article: Article
    score: float
    dense_score: float = 0.0
    keyword_score: float = 0.0
    via: str = "hybrid"  # "hybrid" or "lookup"

    def to_dict(self) -> dict:
        data = self.article.to_dict()
        data["score"] = round(self.score, 4)
        return data

    # The fields of a hit in the API (`python -m qa search --json`, GET /api/search).
    API_FIELDS = ("id", "doc_title", "doc_number", "issuer", "date", "region", "label", "path", "text", "score", "source_file")

    def to_api(self) -> dict:
        """This hit as the API gives it: the clause, its document's metadata (region too: it is a
        filter), its score and how it was found."""
        data = self.to_dict()
        return {key: data[key] for key in self.API_FIELDS} | {"via": self.via}


@runtime_checkable
class Searcher(Protocol):
    """What a retrieval backend offers the steps after it: FAISS + bm25s (qa.retrieval.HybridSearcher),
    a Milvus collection (qa.milvus_store.MilvusSearcher), and the reranking that wraps either
    (qa.reranking.RerankedSearcher). Callers obtain one from qa.searchers.open_searcher."""

    settings: Any  # qa.config.Settings
    embeddings: Any  # qa.embedding.PolicyEmbeddings: what embeds the questions (and new sentences)

    def search(self, query: "Query | str", k: int | None = None, filters: Any = None) -> list[Hit]:
        """The best ``k`` articles for ``query`` among those ``filters`` (qa.retrieval.Filters) allow."""
        ...


@dataclass
class Citation:
    """A clause an answer rests on, numbered as the answer cites it: ``[n]``."""

    n: int
    hit: Hit

    @property
    def article(self) -> Article:
        return self.hit.article

    def notes(self) -> list[str]:
        """Validity notes a reader must see next to the clause (试行, 施行日期, what it repealed)."""
        doc = self.article.document
        notes = []
        if doc is None:
            return notes
        if doc.trial:
            notes.append("试行")
        if doc.effective_date:
            notes.append(f"自{doc.effective_date}起施行")
        return notes

    def reference(self) -> str:
        """The line that names the clause under an answer: [n] 《title》 文号 heading path（validity notes）."""
        notes = "，".join(self.notes())
        return f"[{self.n}] {self.article.source()}" + (f"（{notes}）" if notes else "")

    def to_dict(self) -> dict:
        data = self.article.to_dict()
        keys = ("id", "doc_title", "doc_number", "issuer", "date", "region", "label", "path", "text", "source_file", "trial", "effective_date")
        return {"n": self.n} | {key: data[key] for key in keys} | {"notes": self.notes(), "score": round(self.hit.score, 4)}


@dataclass
class Answer:
    """What the answer step returns: the text with ``[n]`` markers, whether it is a refusal, and the
    clauses cited (for a refusal: the closest clauses, shown as 可能相关 and not asserted)."""

    question: str
    text: str
    refused: bool  # no answer asserted: grade "related" or "none"
    citations: list[Citation] = field(default_factory=list)
    mode: str = "extractive"  # "extractive", "llm", "lookup" or "greeting"
    standalone_question: str = ""  # the question as searched, after a follow-up is put in context
    notes: list[str] = field(default_factory=list)  # e.g. "LLM unavailable, extractive answer given"
    # "answer": a cited sentence states what was asked; "related": no clause states it, the closest
    # are listed as 可能相关; "none": nothing related, or the question is outside the corpus's scope.
    grade: str = "answer"

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "grade": self.grade,
            "refused": self.refused,
            "mode": self.mode,
            "standalone_question": self.standalone_question or self.question,
            "citations": [c.to_dict() for c in self.citations],
            "notes": list(self.notes),
        }

    # The fields of a citation in the API (`python -m qa ask --json`, POST /api/ask).
    CITATION_API_FIELDS = ("n", "doc_title", "doc_number", "issuer", "date", "region", "label", "path", "text", "source_file", "notes")

    def to_api(self, question_id: str | None = None) -> dict:
        """This answer as the API gives it (with the question's id for a --batch line)."""
        data = self.to_dict()
        citations = [{key: c[key] for key in self.CITATION_API_FIELDS} for c in data["citations"]]
        head = {} if question_id is None else {"id": question_id}
        keys = ("answer", "grade", "refused", "mode")
        return head | {key: data[key] for key in keys} | {"citations": citations, "notes": data["notes"]}
