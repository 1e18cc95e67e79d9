"""The searcher and the build that the settings ask for (``vector_backend``): FAISS + bm25s files
on this machine (qa/index.py, qa/retrieval.py), or a Milvus collection (qa/milvus_store.py).
Callers (CLI, the web app and its admin, answers, benchmark) go through here so the choice is made
in one place."""

from __future__ import annotations

import sys

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


def build_for(settings: Settings, embeddings=None, corpus=None, *, progress: bool = True) -> BuildReport:
    """Build (or bring up to date) the index ``settings.vector_backend`` asks for, of ``corpus``
    (default: the corpus folder), one build at a time (qa.index.build_lock)."""
    from qa.index import build_index, build_lock

    if check_vector_backend(settings) == BACKEND_MILVUS:
        from qa.milvus_store import build_milvus_index

        with build_lock(settings, progress=progress):
            return build_milvus_index(settings, embeddings, corpus, progress=progress)
    return build_index(settings, embeddings, corpus, progress=progress)


def say_why_index_is_rebuilt(settings: Settings, embeddings=None) -> None:
    """A missing or damaged FAISS index is rebuilt by the build; say so, and why, first (the
    build itself would silently start over)."""
    from qa.index import CURRENT_POINTER, IndexUnavailable, current_folder, load_index

    if settings.vector_backend != "faiss":
        return
    if current_folder(settings.index_dir) is None:
        if (settings.index_dir / CURRENT_POINTER).exists():
            print(f"{settings.index_dir / CURRENT_POINTER} names no index version — rebuilding it", file=sys.stderr)
        return  # otherwise a first build: nothing to explain
    if embeddings is None:
        from qa.embedding import PolicyEmbeddings

        embeddings = PolicyEmbeddings(settings)
    try:
        load_index(settings, embeddings.fingerprint)
    except IndexUnavailable as reason:
        print(f"{reason} — rebuilding it", file=sys.stderr)


def ready_index(settings: Settings, embeddings=None, *, progress: bool = True) -> BuildReport | None:
    """What app.py does before it serves: the FAISS index brought up to date (incremental: instant
    when current; a damaged one named, then rebuilt), a Milvus collection built only when there is
    none (its build is a full one, and a cluster's collection is shared by every replica)."""
    from qa.index import IndexUnavailable

    if check_vector_backend(settings) == BACKEND_FAISS:
        say_why_index_is_rebuilt(settings, embeddings)
        return build_for(settings, embeddings, progress=progress)
    try:
        open_searcher(settings, embeddings=embeddings)
        return None
    except IndexUnavailable as reason:
        print(f"{reason} — building it now", file=sys.stderr)
        return build_for(settings, embeddings, progress=progress)
