"""Step 4 of the flow: articles -> a FAISS vector index and a BM25 keyword index on disk.

Layout of ``index/``: each build is written into a fresh ``v-<id>/`` folder, then the ``CURRENT``
file is atomically replaced to point at it, so a build killed half-way leaves the previous index in
use. A build re-embeds only articles whose passage text (or the model) changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np
from tqdm import tqdm

from qa.articles import SENTENCE_SPLIT, sentences
from qa.config import Settings
from qa.corpus import Corpus, load_corpus
from qa.keywords import TOKENIZER_VERSION, corpus_terms, load_user_dictionary, tokenize, write_user_dictionary
from qa.models import Article, Document

FORMAT_VERSION = 1
# Articles embedded per progress-bar step (large enough for length bucketing to pay off).
PROGRESS_CHUNK = 128
CURRENT_POINTER = "CURRENT"


class IndexUnavailable(Exception):
    """The index is missing, corrupt, or was built by another model; the message says which."""


def passage_text(article: Article) -> str:
    """What is embedded and keyword-indexed for an article: its document title and heading path give
    a clause the context a reader has (a bare "（三）按时办结。" says little on its own)."""
    doc = article.document
    head = " ".join(filter(None, [doc.title if doc else "", " > ".join(article.path[:-1])]))
    return f"{head}\n{article.text}" if head else article.text


def article_windows(article: Article, window_chars: int) -> list[str]:
    """Short runs of whole sentences of an article, each embedded on its own (multi-vector): one
    clause often holds several provisions, and a question usually asks about one of them. Each
    window keeps the document title and the article's heading for context."""
    if window_chars <= 0:
        return []
    doc = article.document
    head = f"{doc.title if doc else ''} {article.path[-1] if article.path else ''}：".lstrip()
    windows, current = [], ""
    for sentence in SENTENCE_SPLIT.split(article.text):
        if not sentence.strip():
            continue
        if current and len(current) + len(sentence) > window_chars:
            windows.append(head + current.strip())
            current = ""
        current += sentence
    if current.strip():
        windows.append(head + current.strip())
    return windows


def keyword_index_version(settings: Settings) -> str:
    """The tokeniser version and the BM25 parameters (bm25s bakes k1 and b into the index it saves):
    a change to either rebuilds the keyword index."""
    return f"{TOKENIZER_VERSION};k1={settings.bm25_k1:g};b={settings.bm25_b:g}"


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@dataclass
class Manifest:
    fingerprint: str
    dimension: int
    files: dict[str, str]  # corpus file name -> sha256 of its text
    article_ids: list[str]
    passage_hashes: list[str]
    faiss_type: str
    built_at: float
    tokenizer: str = ""  # keyword_index_version() at build time: tokeniser and BM25 parameters
    window_chars: int = 0
    window_hashes: list[str] = field(default_factory=list)
    # window_start[i]..window_start[i+1] are article i's windows in the window index.
    window_start: list[int] = field(default_factory=list)
    # sha256 of each distinct clause sentence, in the order of sentence_embeddings.npy; empty in
    # indexes built before sentences were embedded (the judge then embeds them as it meets them).
    sentence_hashes: list[str] = field(default_factory=list)
    version: int = FORMAT_VERSION
    # Every other file of the folder -> "size:sha256", checked on load (a truncated or damaged file
    # is found before it is used); empty in indexes built before checksums were kept.
    checksums: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        return cls(**json.loads(text))


class SentenceVectors:
    """The e5 vector of every clause sentence, embedded at build time. The judge compares each
    candidate sentence with the question (qa/judging.py); embedding the sentences it met for the
    first time was about 98 % of an answer's time (2 cores, 2026-12-02)."""

    def __init__(self, hashes: list[str], vectors: np.ndarray):
        self._rows = {h: n for n, h in enumerate(hashes)}
        self._vectors = vectors

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, sentence: str) -> np.ndarray | None:
        """The sentence's vector (float32), or None for a sentence the index has not embedded."""
        row = self._rows.get(_sha(sentence))
        return None if row is None else np.asarray(self._vectors[row], dtype=np.float32)


def clause_sentences(articles: list[Article]) -> list[str]:
    """The distinct sentences of the articles, as the reader quotes them."""
    return list(dict.fromkeys(s for a in articles for s in sentences(a.text)))


@dataclass
class LoadedIndex:
    manifest: Manifest
    articles: list[Article]
    vectors: faiss.Index
    windows: faiss.Index
    window_owner: np.ndarray  # article index of each window
    keywords: bm25s.BM25
    folder: Path
    sentences: SentenceVectors | None = None  # None: an index from before sentences were embedded


def make_vector_index(vectors: np.ndarray, settings: Settings) -> tuple[faiss.Index, str]:
    """Exact inner product (cosine on normalised vectors) for small corpora; HNSW past a size where
    a flat scan stops being fast; IVF with 8-bit vectors past the size where HNSW's build time and
    float32 memory stop being practical (see :func:`empty_vector_index`)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index, kind = empty_vector_index(len(vectors), vectors.shape[1], settings)
    train_vector_index(index, vectors, settings)
    for start in range(0, len(vectors), VECTOR_ADD_CHUNK):
        index.add(vectors[start : start + VECTOR_ADD_CHUNK])
    finish_vector_index(index)
    return index, kind


# Vectors added per call, so a large build never needs a second full-size temporary copy.
VECTOR_ADD_CHUNK = 65_536
TRAINING_SEED = 0  # the IVF training sample is drawn reproducibly


def empty_vector_index(count: int, dimension: int, settings: Settings) -> tuple[faiss.Index, str]:
    """The index type for ``count`` vectors, empty (and untrained for IVF). Split from
    :func:`make_vector_index` so a caller holding more vectors than memory can add them in chunks."""
    if count >= settings.ivf_threshold:
        kind = f"IVF{max(1, int(round(math.sqrt(count))))},SQ8"
        index = faiss.index_factory(dimension, kind, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = settings.ivf_nprobe
        return index, kind
    if count >= settings.hnsw_threshold:
        index = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        index.hnsw.efSearch = settings.hnsw_ef_search
        return index, "HNSWFlat"
    return faiss.IndexFlatIP(dimension), "FlatIP"


def train_vector_index(index: faiss.Index, vectors: np.ndarray, settings: Settings) -> None:
    """IVF learns its cells and 8-bit ranges from a random sample (ivf_train_per_list points a
    cell); the other types need no training."""
    if index.is_trained or not len(vectors):
        return
    wanted = settings.ivf_train_per_list * faiss.extract_index_ivf(index).nlist
    if len(vectors) > wanted:
        rows = np.sort(np.random.default_rng(TRAINING_SEED).choice(len(vectors), wanted, replace=False))
        vectors = vectors[rows]
    index.train(np.ascontiguousarray(vectors, dtype=np.float32))


def finish_vector_index(index: faiss.Index) -> None:
    """IVF keeps an id -> list position map, so retrieval can read a vector back by article number
    (``reconstruct``), as it does from the flat and HNSW types."""
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()


def stored_vectors(index: faiss.Index) -> np.ndarray | None:
    """The float32 vectors a flat index (or HNSW's flat storage) holds, as a read-only (ntotal, d)
    numpy view of FAISS's own memory, no copy; None for types that keep codes (IVF with SQ8), which
    are read back with ``reconstruct_batch``. The view is only valid while ``index`` lives and is
    not added to: keep a reference to the index next to it."""
    flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSWFlat) else index
    if not isinstance(flat, faiss.IndexFlat) or flat.ntotal == 0:
        return None
    view = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
    view.flags.writeable = False
    return view


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return f"{path.stat().st_size}:{digest.hexdigest()}"


def seal_folder(folder: Path) -> dict[str, str]:
    """Checksums of every file in ``folder``, each flushed to disk on the way (so the folder is
    whole on disk before CURRENT points at it, even after a power cut)."""
    sums = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as written:
            os.fsync(written.fileno())
        sums[path.relative_to(folder).as_posix()] = file_checksum(path)
    return sums


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def verify_checksums(folder: Path, checksums: dict[str, str], only: tuple[str, ...] = ()) -> None:
    """Raises IndexUnavailable naming the first file that is missing, truncated or damaged."""
    for name, expected in checksums.items():
        if only and name not in only:
            continue
        path = folder / name
        if not path.is_file():
            raise IndexUnavailable(f"index file {path} is missing; rebuild it")
        if file_checksum(path) != expected:
            raise IndexUnavailable(f"index file {path} is damaged (its size or checksum differs from the manifest); rebuild it")


def current_folder(index_dir: Path) -> Path | None:
    pointer = index_dir / CURRENT_POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
        folder = index_dir / name
        # Only a version folder of this index counts: a damaged pointer reads as "no index".
        return folder if name.startswith("v-") and "/" not in name and folder.is_dir() else None
    except (OSError, ValueError):  # missing, unreadable, not text, a NUL in the name
        return None


def _read_articles(folder: Path) -> list[Article]:
    documents: dict[str, Document] = {}
    for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        documents[data["id"]] = Document(**data)
    articles = []
    for line in (folder / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        articles.append(
            Article(
                id=data["id"],
                doc_id=data["doc_id"],
                label=data["label"],
                path=data["path"],
                text=data["text"],
                start=data["start"],
                end=data["end"],
                part=data["part"],
                document=documents[data["doc_id"]],
            )
        )
    return articles


def load_index(settings: Settings, fingerprint: str | None = None) -> LoadedIndex:
    """Load the current index; raises :class:`IndexUnavailable` with a clear reason otherwise."""
    folder = current_folder(settings.index_dir)
    if folder is None:
        raise IndexUnavailable(f"no index in {settings.index_dir}; run `python -m qa build`")
    try:
        manifest = Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.version != FORMAT_VERSION:
            raise IndexUnavailable(f"index format {manifest.version} is not {FORMAT_VERSION}; rebuild it")
        if fingerprint is not None and manifest.fingerprint != fingerprint:
            raise IndexUnavailable(
                f"index was built with {manifest.fingerprint}, not the configured {fingerprint}; rebuild it"
            )
        verify_checksums(folder, manifest.checksums)
        articles = _read_articles(folder)
        vectors = faiss.read_index(str(folder / "vectors.faiss"))
        windows = faiss.read_index(str(folder / "windows.faiss"))
        keywords = bm25s.BM25.load(str(folder / "keywords"))
        load_user_dictionary(folder / "userdict.txt")
        if (
            [a.id for a in articles] != manifest.article_ids
            or vectors.ntotal != len(articles)
            or windows.ntotal != len(manifest.window_hashes)
            or len(manifest.window_start) != len(articles) + 1
        ):
            raise IndexUnavailable(f"index in {folder} is inconsistent (articles and vectors differ); rebuild it")
        owner = np.repeat(np.arange(len(articles)), np.diff(manifest.window_start))
        sentence_vectors = None
        if manifest.sentence_hashes:
            # memory-mapped: a large corpus's sentences are read as candidates need them
            stored = np.load(folder / "sentence_embeddings.npy", mmap_mode="r")
            if stored.shape != (len(manifest.sentence_hashes), manifest.dimension):
                raise IndexUnavailable(f"index in {folder} is inconsistent (sentences and their vectors differ); rebuild it")
            sentence_vectors = SentenceVectors(manifest.sentence_hashes, stored)
    except IndexUnavailable:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexUnavailable(f"index in {folder} is unreadable ({error}); rebuild it") from error
    return LoadedIndex(manifest, articles, vectors, windows, owner, keywords, folder, sentence_vectors)


@dataclass
class BuildReport:
    articles: int
    embedded: int
    reused: int
    seconds: float
    skipped_files: list[str]
    unchanged: bool
    sentences_embedded: int = 0  # the judge's sentence vectors embedded (the rest reused)

    def summary(self) -> str:
        if self.unchanged:
            return f"index up to date ({self.articles} articles); nothing embedded"
        rate = self.embedded / self.seconds if self.seconds else 0.0
        return (
            f"indexed {self.articles} articles: embedded {self.embedded}, reused {self.reused} "
            f"in {self.seconds:.1f}s ({rate:.1f} articles/s)"
            + (f"; {self.sentences_embedded} sentences embedded for the judge" if self.sentences_embedded else "")
        )


def _previous_vectors(settings: Settings, fingerprint: str) -> dict[str, np.ndarray]:
    """Vectors of the current index (articles, windows, sentences) by text hash, when it was built by the
    same model, so a rebuild embeds only new or changed text."""
    folder = current_folder(settings.index_dir)
    if folder is None:
        return {}
    try:
        manifest = Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.fingerprint != fingerprint or not manifest.checksums:
            return {}
        # Damaged vectors must not be carried into the new index: reused only when they check out
        # (an index without checksums, from before they were kept, or with them removed, is not).
        verify_checksums(folder, manifest.checksums, only=("embeddings.npy", "window_embeddings.npy"))
        articles = np.load(folder / "embeddings.npy")
        windows = np.load(folder / "window_embeddings.npy")
        if len(articles) != len(manifest.passage_hashes) or len(windows) != len(manifest.window_hashes):
            return {}
        previous = dict(zip(manifest.passage_hashes, articles)) | dict(zip(manifest.window_hashes, windows))
    except (OSError, ValueError, KeyError, TypeError, IndexUnavailable):
        return {}
    return previous | _previous_sentence_vectors(folder, manifest)


def _previous_sentence_vectors(folder: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """The sentence vectors of the current index by hash; none when they do not check out (the
    article and window vectors are still reused: damaged sentences cost only their own embedding)."""
    if not manifest.sentence_hashes:
        return {}
    try:
        verify_checksums(folder, manifest.checksums, only=("sentence_embeddings.npy",))
        vectors = np.load(folder / "sentence_embeddings.npy")
    except (OSError, ValueError, KeyError, TypeError, IndexUnavailable):
        return {}
    return dict(zip(manifest.sentence_hashes, vectors)) if len(vectors) == len(manifest.sentence_hashes) else {}


def _embed_reusing(texts, hashes, previous, embeddings, *, desc: str, unit: str, progress: bool):
    """Vectors for ``texts``, reusing ``previous`` ones by hash; returns (vectors, how many embedded)."""
    vectors = np.zeros((len(texts), embeddings.dimension), dtype=np.float32)
    todo = []
    for i, h in enumerate(hashes):
        if h in previous:
            vectors[i] = previous[h]
        else:
            todo.append(i)
    with tqdm(total=len(todo), unit=unit, desc=desc, disable=not progress or not todo) as bar:
        for start in range(0, len(todo), PROGRESS_CHUNK):
            chunk = todo[start : start + PROGRESS_CHUNK]
            vectors[chunk] = embeddings.encode_passages([texts[i] for i in chunk])
            bar.update(len(chunk))
    return vectors, len(todo)


def _is_up_to_date(settings: Settings, fingerprint: str, files: dict[str, str], article_ids: list[str], sentence_hashes: list[str]) -> bool:
    """Same files, same articles (a change to how articles are cut changes their ids), same
    tokeniser and windows, and an index that loads."""
    try:
        manifest = load_index(settings, fingerprint).manifest
    except IndexUnavailable:
        return False
    return (
        bool(manifest.checksums)  # an index from before checksums is rewritten once, with them
        and manifest.files == files
        and manifest.article_ids == article_ids
        and manifest.tokenizer == keyword_index_version(settings)
        and manifest.window_chars == settings.window_chars
        # the judge's sentences as the reader now splits them: an index from before sentences were
        # embedded, or from another split, gets them (the rest is reused)
        and manifest.sentence_hashes == sentence_hashes
    )


BUILD_LOCK = ".build.lock"
# Index folders this process holds the build lock of, by thread: an admin change holds it while it
# reads the corpus and builds, and the build it calls takes it again.
_holding = threading.local()


@contextlib.contextmanager
def build_lock(settings: Settings, *, progress: bool = False):
    """One build of an index folder at a time, across processes (a CLI build beside the app's admin
    upload): an exclusive lock on a file in the folder, waited for. Re-entrant in its thread.
    Without it the build finishing last switched in an index without the other's new file."""
    held = getattr(_holding, "folders", None)
    if held is None:
        held = _holding.folders = set()
    folder = str(Path(settings.index_dir).resolve())
    if folder in held:
        yield
        return
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.index_dir / BUILD_LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print("another build of this index is running; waiting for it to finish…", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        held.add(folder)
        try:
            yield
        finally:
            held.discard(folder)
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_index(settings: Settings, embeddings=None, corpus: Corpus | None = None, *, progress=True) -> BuildReport:
    """Build (or bring up to date) the index for the corpus folder, read once this build holds
    the build lock (so a build that waited for another sees that one's files)."""
    with build_lock(settings, progress=progress):
        return _build_index(settings, embeddings, corpus, progress=progress)


def _build_index(settings: Settings, embeddings, corpus: Corpus | None, *, progress: bool) -> BuildReport:
    from qa.embedding import PolicyEmbeddings

    started = time.perf_counter()
    embeddings = embeddings or PolicyEmbeddings(settings)
    corpus = corpus or load_corpus(settings, report=sys.stderr if progress else None)
    fingerprint = embeddings.fingerprint
    files = {parsed.name: parsed.sha256 for parsed in corpus.files}
    skipped = [error.name for error in corpus.errors]
    articles = corpus.articles
    sentence_texts = clause_sentences(articles)
    sentence_hashes = [_sha(s) for s in sentence_texts]
    if _is_up_to_date(settings, fingerprint, files, [a.id for a in articles], sentence_hashes):
        return BuildReport(len(articles), 0, len(articles), 0.0, skipped, unchanged=True)

    passages = [passage_text(a) for a in articles]
    hashes = [_sha(p) for p in passages]
    windows_per_article = [article_windows(a, settings.window_chars) for a in articles]
    windows = [w for ws in windows_per_article for w in ws]
    window_hashes = [_sha(w) for w in windows]
    window_start = np.concatenate([[0], np.cumsum([len(ws) for ws in windows_per_article])]).astype(int).tolist()
    previous = _previous_vectors(settings, fingerprint)
    embeddings.dimension  # loads the model now, so its loading time is not counted as embedding
    embed_started = time.perf_counter()
    vectors, embedded = _embed_reusing(
        passages, hashes, previous, embeddings, desc="embedding articles", unit="article", progress=progress
    )
    window_vectors, _ = _embed_reusing(
        windows, window_hashes, previous, embeddings, desc="embedding clause windows", unit="window", progress=progress
    )
    # Embedded here, not at answer time (SentenceVectors): about 60 % of the windows' time again.
    sentence_vectors, sentences_embedded = _embed_reusing(
        sentence_texts, sentence_hashes, previous, embeddings, desc="embedding sentences", unit="sentence", progress=progress
    )
    embed_seconds = time.perf_counter() - embed_started

    index, kind = make_vector_index(vectors, settings)
    window_index, _ = make_vector_index(window_vectors, settings)
    manifest = Manifest(
        fingerprint=fingerprint,
        dimension=embeddings.dimension,
        files=files,
        article_ids=[a.id for a in articles],
        passage_hashes=hashes,
        faiss_type=kind,
        built_at=time.time(),
        tokenizer=keyword_index_version(settings),
        window_chars=settings.window_chars,
        window_hashes=window_hashes,
        window_start=window_start,
        sentence_hashes=sentence_hashes,
    )
    _write_atomically(settings, corpus, articles, passages, (vectors, index), (window_vectors, window_index), sentence_vectors, manifest)
    seconds = embed_seconds or time.perf_counter() - started
    return BuildReport(len(articles), embedded, len(articles) - embedded, seconds, skipped, False, sentences_embedded)


def _write_atomically(settings, corpus, articles, passages, article_vectors, window_vectors, sentence_vectors, manifest) -> None:
    """``article_vectors`` and ``window_vectors`` are (vectors, FAISS index) pairs; ``sentence_vectors`` an array."""
    vectors, index = article_vectors
    windows, window_index = window_vectors
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    name = f"v-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    staging = settings.index_dir / f".{name}.partial"
    staging.mkdir()
    try:
        user_dict = staging / "userdict.txt"
        write_user_dictionary(corpus_terms(corpus.documents, articles), user_dict)
        load_user_dictionary(user_dict)
        with open(staging / "documents.jsonl", "w", encoding="utf-8") as out:
            for doc in corpus.documents:
                out.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
        with open(staging / "articles.jsonl", "w", encoding="utf-8") as out:
            for article in articles:
                data = article.to_dict()
                out.write(json.dumps({k: data[k] for k in ARTICLE_FIELDS}, ensure_ascii=False) + "\n")
        np.save(staging / "embeddings.npy", vectors)
        faiss.write_index(index, str(staging / "vectors.faiss"))
        np.save(staging / "window_embeddings.npy", windows)
        faiss.write_index(window_index, str(staging / "windows.faiss"))
        np.save(staging / "sentence_embeddings.npy", sentence_vectors)
        keywords = bm25s.BM25(k1=settings.bm25_k1, b=settings.bm25_b)
        keywords.index([tokenize(p) or ["<empty>"] for p in passages], show_progress=False)
        keywords.save(str(staging / "keywords"))
        manifest.checksums = seal_folder(staging)
        with open(staging / "manifest.json", "w", encoding="utf-8") as out:
            out.write(manifest.to_json())
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(staging)
        os.replace(staging, settings.index_dir / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer_tmp = settings.index_dir / f".{CURRENT_POINTER}.{uuid.uuid4().hex[:6]}"
    with open(pointer_tmp, "w", encoding="utf-8") as pointer:
        pointer.write(name)
        pointer.flush()
        os.fsync(pointer.fileno())
    os.replace(pointer_tmp, settings.index_dir / CURRENT_POINTER)
    fsync_dir(settings.index_dir)
    _remove_old_versions(settings.index_dir, keep=name)


ARTICLE_FIELDS = ("id", "doc_id", "label", "path", "text", "start", "end", "part")


def _remove_old_versions(index_dir: Path, keep: str) -> None:
    """Earlier versions, and what killed builds left: staging folders and CURRENT pointer drafts."""
    for child in index_dir.iterdir():
        if child.is_dir() and child.name != keep and (child.name.startswith("v-") or child.name.endswith(".partial")):
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and child.name.startswith(f".{CURRENT_POINTER}."):
            child.unlink(missing_ok=True)
