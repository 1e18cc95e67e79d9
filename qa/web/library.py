"""What the web app serves from: the loaded index with its answerer (swapped whole when the corpus
changes), the catalogue of documents, the feedback log, and the admin operations on the corpus."""

from __future__ import annotations

import contextlib
import logging
import hmac
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from qa.answering import Answerer
from qa.config import Settings
from qa.corpus import Corpus, ParsedFile, corpus_files, load_corpus, parse_text
from qa.index import BuildReport, build_lock
from qa.loaders import SUPPORTED_SUFFIXES, LoadError, ParseLimits, read_isolated
from qa.models import Article, Document
from qa.reranking import RerankedSearcher, reranked
from qa.scope import Scope
from qa.searchers import build_for, open_searcher


@dataclass
class Catalog:
    """The documents in the loaded index, in corpus order, with their articles."""

    documents: list[Document]
    articles_by_doc: dict[str, list[Article]]

    @classmethod
    def of(cls, articles: list[Article]) -> "Catalog":
        documents: dict[str, Document] = {}
        by_doc: dict[str, list[Article]] = {}
        for article in articles:
            documents.setdefault(article.doc_id, article.document)
            by_doc.setdefault(article.doc_id, []).append(article)
        return cls(list(documents.values()), by_doc)

    def document(self, doc_id: str) -> Document | None:
        articles = self.articles_by_doc.get(doc_id)
        return articles[0].document if articles else None

    def counts(self) -> dict[str, int]:
        return {doc_id: len(articles) for doc_id, articles in self.articles_by_doc.items()}

    def regions(self) -> list[str]:
        return sorted({d.region for d in self.documents if d.region})

    def issuers(self) -> list[str]:
        return sorted({d.issuer for d in self.documents if d.issuer})

    def years(self) -> list[str]:
        return sorted({d.date[:4] for d in self.documents if d.date}, reverse=True)

    def browse(self, region: str = "") -> list[Document]:
        """Documents of a region (all when ""), newest first."""
        chosen = [d for d in self.documents if not region or region in d.region]
        return sorted(chosen, key=lambda d: d.date or "", reverse=True)


logger = logging.getLogger("qa.web")


class Library:
    """The searcher over the current index and the answerer using it. After the corpus changes,
    :meth:`reload` swaps in a new pair; requests already running finish on the old one."""

    def __init__(self, settings: Settings, searcher=None):
        self.settings = settings
        self._lock = threading.Lock()
        # the search desk, the API and the answers all see the reranked hits (qa/reranking.py), from
        # the backend the settings choose (FAISS, or Milvus: qa/searchers.py)
        self._searcher = reranked(searcher or open_searcher(settings), settings)
        self._catalog = Catalog.of(self._searcher.articles)
        self._answerer = None
        self._scope: tuple | None = None  # (the searcher it was read from, its Scope)
        # Shared by the JSON API and both chat pages: answers are CPU bound, so past a few at once
        # they only slow each other down; the rest wait for a slot (see settings.answer_concurrency).
        self._answer_slots = threading.BoundedSemaphore(max(1, settings.answer_concurrency))

    @contextlib.contextmanager
    def answer_slot(self):
        """Held while an answer is worked out (or streamed); released however that ends."""
        self._answer_slots.acquire()
        try:
            yield
        finally:
            self._answer_slots.release()

    def answer(self, question: str, history=(), context: str = ""):
        """The final answer to ``question``, worked out in an answer slot (the JSON API, the
        OpenAI-compatible API and the page's events for programs; the chat streams its own)."""
        with self.answer_slot():
            return self.answerer.answer(question, history=history, context=context)

    @property
    def searcher(self) -> RerankedSearcher:
        return self._searcher

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def scope(self) -> Scope:
        """What the documents of the current index cover (regions, years, kinds), read from them
        without making the answerer: a page load that only shows it loads no model."""
        searcher = self._searcher
        with self._lock:
            if self._scope is None or self._scope[0] is not searcher:
                articles = searcher.corpus_articles or getattr(searcher, "articles", None) or []
                self._scope = (searcher, Scope.of(articles))
            return self._scope[1]

    @property
    def answerer(self) -> Answerer:
        """Made on first use (with its LLM client, when one is configured), so search-only use
        never loads it; remade when the searcher was swapped."""
        with self._lock:
            if self._answerer is None or self._answerer.searcher is not self._searcher:
                self._answerer = Answerer(self.settings, searcher=self._searcher)
            return self._answerer

    def reload(self) -> None:
        """Loads the index as it is now on disk. The new answerer is made here too, when one was
        in use, so the next question does not wait for it."""
        searcher = open_searcher(self.settings, embeddings=self._searcher.embeddings)
        answerer = Answerer(self.settings, searcher=searcher) if self._answerer is not None else None
        with self._lock:
            self._searcher = searcher
            self._answerer = answerer
            self._catalog = Catalog.of(searcher.articles)


def limit_compute_threads(threads: int) -> None:
    """Threads torch and FAISS may use per call while serving (settings.serve_compute_threads):
    requests already run in parallel threads, and a call spreading over every core as well only
    makes the calls of concurrent requests wait on each other."""
    import faiss
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)


def serving_settings(settings: Settings) -> Settings:
    """The settings to serve with: ONNX Runtime's threads per call limited like torch's (its
    sessions take their thread count when made, so serving gets a session of its own)."""
    if settings.serve_compute_threads <= 0:
        return settings
    return replace(settings, onnx_threads=settings.serve_compute_threads)


# -- feedback -------------------------------------------------------------------------------------
@dataclass
class Feedback:
    """A like or dislike on one answer, with what staff need to review it (no client address)."""

    rating: str  # "like" or "dislike"
    question: str
    answer: dict  # Answer.to_dict(): text, refused, citations
    page: str  # "chat" or "widget"
    context: str = ""  # the host page context of the widget
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


class FeedbackLog:
    """Feedback appended as JSON lines to ``data_dir/feedback.jsonl``."""

    FILE_NAME = "feedback.jsonl"

    def __init__(self, data_dir: Path):
        self.path = data_dir / self.FILE_NAME
        self._lock = threading.Lock()

    def record(self, feedback: Feedback) -> None:
        line = json.dumps(asdict(feedback), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- admin ----------------------------------------------------------------------------------------
class AdminError(Exception):
    """An admin action that cannot be done; the message (Chinese) says why. Nothing was changed."""


def admin_enabled(settings: Settings) -> bool:
    return bool(settings.admin_token)


def token_matches(settings: Settings, given: str | None) -> bool:
    """Constant-time comparison, so the token cannot be guessed from response times."""
    if not settings.admin_token or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), settings.admin_token.encode("utf-8"))


UNSAFE_NAME_CHARS = re.compile(r"[^\w.\-（）()〔〕【】]")
# Longest stored name, in UTF-8 bytes: file systems allow 255, and the staging suffix and the
# index's own names are added to it.
MAX_NAME_BYTES = 150


def safe_file_name(name: str) -> str:
    """The upload's own name, without any folder, with only safe characters, never hidden."""
    base = Path((name or "").replace("\\", "/")).name
    cleaned = UNSAFE_NAME_CHARS.sub("_", base).lstrip("._")
    suffix = Path(cleaned).suffix.lower()
    if not cleaned or not Path(cleaned).stem:
        raise AdminError("文件名无效")
    if suffix not in SUPPORTED_SUFFIXES:
        raise AdminError(f"不支持的文件类型 {suffix or '（无扩展名）'}；支持 {'、'.join(SUPPORTED_SUFFIXES)}")
    stem, as_given = Path(cleaned).stem, Path(cleaned).suffix
    while len((stem + as_given).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + as_given


@dataclass
class UploadPreview:
    file_name: str
    sha256: str
    documents: list[Document]
    articles: list[Article]
    parsed: ParsedFile | None = None  # what the index is built from when the file is added


# An upload is written under this hidden name (the corpus skips hidden files) until the index that
# includes it is in place; one left behind by a killed process was never confirmed, and is removed.
STAGING_SUFFIX = ".uploading"


def write_durably(path: Path, data: bytes) -> None:
    """Write and flush to disk, so a file renamed into the corpus after this is whole."""
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


@dataclass
class CorpusFile:
    name: str
    titles: list[str]

    def label(self) -> str:
        return f"{self.name}（{'；'.join(self.titles) or '未索引'}）"


class CorpusAdmin:
    """Adds and removes corpus files and brings the index up to date (incrementally). One change
    at a time; a change that fails leaves the corpus folder and the index as they were.

    The index is built first, from the corpus as it will be, and the corpus folder is changed only
    once that index is in place: a process killed during the build (the long part) leaves both as
    they were. Killed in the instant between the two, the next start's index check brings the
    index back in line with the folder (nothing in the folder is ever lost)."""

    def __init__(self, library: Library, settings: Settings | None = None):
        self.library = library
        # The web app's settings (its upload limit); the library's when none are given.
        self.settings = settings or library.settings
        self._lock = threading.Lock()
        self.discard_unconfirmed_uploads()

    def discard_unconfirmed_uploads(self) -> list[str]:
        """Removes uploads a killed process left staged; returns their names."""
        if not self.settings.corpus_dir.is_dir():
            return []
        left = [p for p in self.settings.corpus_dir.glob(f".*{STAGING_SUFFIX}") if p.is_file()]
        for path in left:
            path.unlink(missing_ok=True)
        return [p.name for p in left]

    def files(self) -> list[CorpusFile]:
        titles: dict[str, list[str]] = {}
        for document in self.library.catalog.documents:
            titles.setdefault(document.source_file, []).append(document.title)
        return [CorpusFile(p.name, titles.get(p.name, [])) for p in corpus_files(self.settings.corpus_dir)]

    def preview(self, name: str, data: bytes) -> UploadPreview:
        file_name = safe_file_name(name)
        if not data:
            raise AdminError(f"{file_name} 是空文件")
        if len(data) > self.settings.max_upload_bytes:
            limit = self.settings.max_upload_bytes // (1024 * 1024)
            raise AdminError(f"文件太大（{len(data) / 1024 / 1024:.1f} MB），上限 {limit} MB")
        try:
            text = read_isolated(data, file_name, ParseLimits.of(self.settings))
        except LoadError as error:
            raise AdminError(f"无法读取 {file_name}：{error.reason}") from error
        try:
            parsed = parse_text(text, file_name, self.settings)
        except Exception as error:  # a splitter bug on one odd file: refused, logged, nothing changed
            logger.exception("splitting %s failed", file_name)
            raise AdminError(f"无法切分 {file_name} 的条款，请检查文件内容") from error
        if not parsed.articles:
            raise AdminError(f"{file_name} 中没有找到可引用的条款（第X条、一、（一）等）")
        return UploadPreview(file_name, parsed.sha256, parsed.documents, parsed.articles, parsed)

    def add(self, name: str, data: bytes) -> tuple[UploadPreview, BuildReport]:
        with self._lock, build_lock(self.settings):  # the corpus read and built by one builder at a time
            preview = self.preview(name, data)
            target = self.settings.corpus_dir / preview.file_name
            if target.exists():
                raise AdminError(f"资料库中已有同名文件 {preview.file_name}，请先删除旧文件或改名")
            corpus = self._corpus_now()
            same = [parsed.name for parsed in corpus.files if parsed.sha256 == preview.sha256]
            if same:
                raise AdminError(f"资料库中已有内容相同的文件 {same[0]}")
            staging = target.with_name(f".{target.name}{STAGING_SUFFIX}")  # hidden: the corpus skips it
            write_durably(staging, data)
            try:
                corpus.files = sorted([*corpus.files, preview.parsed], key=lambda parsed: parsed.name)
                report = self._build(corpus)
                os.replace(staging, target)
            except BaseException:
                staging.unlink(missing_ok=True)
                raise
            self.library.reload()
            return preview, report

    def remove(self, name: str) -> BuildReport:
        with self._lock, build_lock(self.settings):  # the corpus read and built by one builder at a time
            names = [p.name for p in corpus_files(self.settings.corpus_dir)]
            if name not in names:
                raise AdminError(f"资料库中没有文件 {name}")
            if len(names) == 1:
                raise AdminError("不能删除资料库中的最后一个文件")
            corpus = self._corpus_now()
            corpus.files = [parsed for parsed in corpus.files if parsed.name != name]
            report = self._build(corpus)
            (self.settings.corpus_dir / name).unlink()
            self.library.reload()
            return report

    def rebuild(self) -> BuildReport:
        with self._lock, build_lock(self.settings):  # the corpus read and built by one builder at a time
            report = self._build(self._corpus_now())
            self.library.reload()
            return report

    def _corpus_now(self) -> Corpus:
        try:
            return load_corpus(self.settings, report=None)
        except OSError as error:
            raise AdminError(f"无法读取资料库：{error}") from error

    def _build(self, corpus: Corpus) -> BuildReport:
        """The index for ``corpus`` (which may differ from the folder by the change being made),
        written aside and switched in whole."""
        try:
            return build_for(self.settings, self.library.searcher.embeddings, corpus, progress=False)
        except (OSError, ValueError, RuntimeError) as error:
            raise AdminError(f"更新索引失败：{error}") from error
        except Exception as error:  # a backend's own errors (MilvusException, a lost connection…)
            logger.exception("building the index failed")
            raise AdminError(f"更新索引失败（{type(error).__name__}），请查看服务日志") from error
