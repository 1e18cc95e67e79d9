"""The corpus folder -> all documents and articles (steps 1-3 of the flow, for every file)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from qa.articles import split_articles
from qa.config import Settings
from qa.documents import gazette_name, split_documents
from qa.loaders import SUPPORTED_SUFFIXES, LoadError, ParseLimits, read_file
from qa.models import Article, Document


@dataclass
class ParsedFile:
    name: str
    sha256: str
    text: str
    documents: list[Document]
    articles: list[Article]


@dataclass
class Corpus:
    files: list[ParsedFile] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)

    @property
    def documents(self) -> list[Document]:
        return [doc for parsed in self.files for doc in parsed.documents]

    @property
    def articles(self) -> list[Article]:
        return [article for parsed in self.files for article in parsed.articles]

    def file(self, name: str) -> ParsedFile | None:
        return next((parsed for parsed in self.files if parsed.name == name), None)


def parse_text(text: str, name: str, settings: Settings) -> ParsedFile:
    documents = split_documents(text, name)
    # The gazette's name repeated inside its pages is a running head, not text.
    masthead = gazette_name(text)
    running_heads = frozenset({masthead}) if masthead else frozenset()
    articles: list[Article] = []
    for document in documents:
        articles.extend(
            split_articles(
                document,
                text,
                target_chars=settings.article_target_chars,
                max_chars=settings.max_article_chars,
                running_heads=running_heads,
            )
        )
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return ParsedFile(name, sha, text, documents, articles)


def corpus_files(corpus_dir: Path) -> list[Path]:
    return sorted(
        p for p in corpus_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")
    )


def load_corpus(settings: Settings, *, report=sys.stderr) -> Corpus:
    """Parse every supported file in the corpus folder; unreadable files are reported and skipped."""
    corpus = Corpus()
    if not settings.corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {settings.corpus_dir}")
    limits = ParseLimits.of(settings)
    for path in corpus_files(settings.corpus_dir):
        try:
            corpus.files.append(parse_text(read_file(path, limits), path.name, settings))
        except LoadError as error:
            corpus.errors.append(error)
        except Exception as error:  # a splitter bug on one odd file must not stop the build
            corpus.errors.append(LoadError(path.name, f"无法切分条款（{type(error).__name__}）"))
        else:
            continue
        if report:
            print(f"skipped {corpus.errors[-1]}", file=report)
    return corpus
