"""Step 5b of the flow, between retrieval and answering: the first clauses of the ranking reordered
by how well their best sentence answers the question.

Retrieval (qa/retrieval.py, qa/milvus_store.py) scores a clause as a whole: its best sentence
window's cosine and its BM25 score. The sentence reader (qa/extractive.py) looks inside: which
sentence holds the question's content, and whether it holds the kind of answer asked for (a time
limit for "几天能回复", a department for "哪个部门"). A clause on the 12345 hotline's staffing shares
the question's topic; the one stating 2个工作日内办结反馈 answers it. The reranked score is
(retrieval score + ``rerank_weight`` x best sentence's support) / (1 + ``rerank_weight``) for the
first ``rerank_clauses`` hits, and the retrieval score / (1 + ``rerank_weight``) for the rest, so
scores stay in 0..1 and in ranking order. An article the question names (direct lookup) stays first
and nothing is reordered.
"""

from __future__ import annotations

from dataclasses import replace

from qa.config import Settings
from qa.extractive import AnswerKind, ClauseReader, asked_kind
from qa.models import Hit


class RerankedSearcher:
    """A searcher (FAISS ``HybridSearcher`` or ``MilvusSearcher``) whose hits come reranked by the
    sentence reader. Everything else (``articles``, ``embeddings``, ``index``, ``lookup`` …) is
    the searcher's own; ``reader`` is shared with the answer step, which reads the same clauses."""

    def __init__(self, searcher, settings: Settings, reader: ClauseReader | None = None):
        self.inner = searcher
        self.settings = settings
        self.reader = reader or ClauseReader(_corpus_articles(searcher, settings), settings)

    def __getattr__(self, name: str):
        # only called for attributes this wrapper lacks: they are the inner searcher's
        if name == "inner":  # not set yet (a copy being made): no inner searcher to ask
            raise AttributeError(name)
        return getattr(self.inner, name)

    def search(self, query: str, k: int | None = None, filters=None, kind: AnswerKind | None = None) -> list[Hit]:
        """The inner searcher's hits, reranked; ``kind`` as in :meth:`rerank`."""
        k = k or self.settings.top_k
        hits = self.inner.search(query, k=max(k, self.settings.rerank_clauses), filters=filters)
        return self.rerank(query, hits, kind)[:k]

    def rerank(self, question: str, hits: list[Hit], kind: AnswerKind | None = None) -> list[Hit]:
        """``hits`` reordered as the module says; ``kind`` is the kind of answer wanted (default:
        the one the question asks for)."""
        s = self.settings
        if not s.rerank_weight or s.rerank_clauses < 2 or len(hits) < 2 or hits[0].via == "lookup":
            return hits
        head, tail = hits[: s.rerank_clauses], hits[s.rerank_clauses :]
        support: dict[str, float] = {}
        for quote in self.reader.quotes(question, head, kind or asked_kind(question)):  # best first
            support.setdefault(quote.hit.article.id, quote.support)
        scale = 1.0 + s.rerank_weight
        rescored = [replace(hit, score=(hit.score + s.rerank_weight * support.get(hit.article.id, 0.0)) / scale) for hit in head]
        rescored.sort(key=lambda hit: -hit.score)  # stable: ties keep the retrieval order
        return rescored + [replace(hit, score=hit.score / scale) for hit in tail]


def reranked(searcher, settings: Settings) -> RerankedSearcher:
    """``searcher`` with its hits reranked (as it is, when it already is a ``RerankedSearcher``)."""
    return searcher if isinstance(searcher, RerankedSearcher) else RerankedSearcher(searcher, settings)


def _corpus_articles(searcher, settings: Settings) -> list:
    """The articles the reader's word statistics come from: the FAISS index's own, or, for a
    searcher that keeps none in memory (Milvus), the corpus folder the collection was built from."""
    articles = getattr(searcher, "articles", None)
    if articles is not None:
        return articles
    from qa.corpus import load_corpus

    return load_corpus(settings, report=None).articles
