"""The searcher and the build that the settings ask for (``vector_backend``): FAISS + bm25s files
on this machine (qa/index.py, qa/retrieval.py), or a Milvus collection (qa/milvus_store.py).
Callers (CLI, app, benchmark) go through here so the choice is made in one place."""

from __future__ import annotations

from qa.config import Settings
from qa.index import BuildReport

BACKEND_FAISS = "faiss"
BACKEND_MILVUS = "milvus"


def check_vector_backend(settings: Settings) -> str:
    if settings.vector_backend not in (BACKEND_FAISS, BACKEND_MILVUS):
        raise ValueError(f"vector_backend {settings.vector_backend!r} is not {BACKEND_FAISS!r} or {BACKEND_MILVUS!r}")
    return settings.vector_backend


def open_searcher(settings: Settings, embeddings=None):
    """The searcher ``settings.vector_backend`` asks for, its hits reranked by the sentence reader
    (qa/reranking.py); raises :class:`qa.index.IndexUnavailable` when its index is missing or was
    built by another embedding model."""
    from qa.reranking import RerankedSearcher

    if check_vector_backend(settings) == BACKEND_MILVUS:
        from qa.milvus_store import MilvusSearcher

        return RerankedSearcher(MilvusSearcher(settings, embeddings=embeddings), settings)
    from qa.retrieval import HybridSearcher

    return RerankedSearcher(HybridSearcher(settings, embeddings=embeddings), settings)


def build_for(settings: Settings, embeddings=None, *, progress: bool = True) -> BuildReport:
    """Build (or bring up to date) the index ``settings.vector_backend`` asks for."""
    if check_vector_backend(settings) == BACKEND_MILVUS:
        from qa.milvus_store import build_milvus_index

        return build_milvus_index(settings, embeddings, progress=progress)
    from qa.index import build_index

    return build_index(settings, embeddings, progress=progress)
