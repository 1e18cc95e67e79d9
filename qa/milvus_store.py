"""The vector and keyword store past one machine: Milvus, through ``langchain-milvus``.

FAISS + bm25s (qa/index.py) stays the embedded default. With ``vector_backend = "milvus"`` the
articles go into one Milvus collection instead: a dense field (the product's embeddings, inner
product = cosine) and a sparse field that Milvus fills itself from the passage text with its BM25
function over a jieba analyzer -- so both sides of the hybrid search scale out with the cluster and
the app process keeps no index of its own (several replicas can serve behind a load balancer).

``milvus_uri`` is a local file for Milvus Lite (tests, a laptop) or ``http://host:19530`` for a
standalone server or cluster (``milvus_token`` = "user:password" or an API key); the client API is
the same. Each build writes a new collection named after the embedding fingerprint and then points
the alias ``milvus_collection`` at it (an atomic switch, like ``CURRENT`` for FAISS) before
dropping the old one, so a searcher never reads a half-built collection or vectors of another model.

Ranking: the dense and BM25 candidates are fused by the FAISS backend's own base fusion
(``qa.retrieval.fuse_scores``: a weighted sum of normalised scores, ``dense_weight``,
``keyword_weight``). The FAISS backend's sentence-window vectors, direct article lookup and
document evidence are not (yet) mirrored here.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa.config import Settings
from qa.index import ARTICLE_FIELDS, PROGRESS_CHUNK, BuildReport, IndexUnavailable, passage_text
from qa.models import Article, Document, Hit, Query
from qa.retrieval import fuse_scores

LITE_FILE = "milvus.db"  # Milvus Lite's database inside index_dir when milvus_uri is empty

# Field names in the collection.
PRIMARY_FIELD = "pk"  # the article id
TEXT_FIELD = "text"  # passage text: BM25 input
DENSE_FIELD = "dense"
SPARSE_FIELD = "sparse"  # BM25 function output
METADATA_FIELDS = ("doc_id", "region", "issuer", "title", "doc_number", "year", "article", "document")
# Milvus's analyzer for Chinese (a "type": "chinese" analyzer is refused by Milvus Lite).
JIEBA_ANALYZER = {"tokenizer": "jieba"}
DENSE_INDEX = {"index_type": "FLAT", "metric_type": "IP", "params": {}}
SPARSE_INDEX = {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "BM25", "params": {}}
# Read-your-writes: a search right after a build sees the whole build.
CONSISTENCY = "Strong"
FINGERPRINT_ID_CHARS = 10


# =================================================================================================
# Connection and naming
# =================================================================================================


def milvus_uri(settings: Settings) -> str:
    """The server URI, or Milvus Lite's file (``index_dir/milvus.db`` unless set)."""
    if settings.milvus_uri:
        return settings.milvus_uri
    return str(Path(settings.index_dir) / LITE_FILE)


def connection_args(settings: Settings) -> dict:
    uri = milvus_uri(settings)
    if "://" not in uri:  # Milvus Lite: its folder must exist
        Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
    args = {"uri": uri}
    if settings.milvus_token:
        args["token"] = settings.milvus_token
    return args


def fingerprint_id(fingerprint: str) -> str:
    return hashlib.sha1(fingerprint.encode("utf-8")).hexdigest()[:FINGERPRINT_ID_CHARS]


def collection_prefix(settings: Settings, fingerprint: str) -> str:
    """Collections built under one embedding fingerprint share this prefix."""
    return f"{settings.milvus_collection}_{fingerprint_id(fingerprint)}_"


def current_collection(client, alias: str) -> str | None:
    """The collection the alias points at, or None when there is no alias yet."""
    if alias not in client.list_aliases().get("aliases", []):
        return None
    return client.describe_alias(alias)["collection_name"]


# =================================================================================================
# Build
# =================================================================================================


def article_metadata(article: Article) -> dict:
    """What a hit needs to be cited, stored with the vectors (the app holds no corpus of its own),
    plus the fields the filters match on."""
    doc = article.document
    data = article.to_dict()
    return {
        "doc_id": article.doc_id,
        "region": doc.region or "",
        "issuer": doc.issuer or "",
        "title": doc.title or "",
        "doc_number": doc.doc_number or "",
        "year": int(doc.date[:4]) if doc.date[:4].isdigit() else 0,
        "article": json.dumps({k: data[k] for k in ARTICLE_FIELDS}, ensure_ascii=False),
        "document": json.dumps(doc.to_dict(), ensure_ascii=False),
    }


def open_store(settings: Settings, embeddings, collection: str, *, drop_old: bool = False):
    """A ``langchain_milvus.Milvus`` store: dense field from ``embeddings``, sparse BM25 field from
    the text via Milvus's jieba analyzer."""
    from langchain_milvus import BM25BuiltInFunction, Milvus

    return Milvus(
        embedding_function=embeddings,
        builtin_function=BM25BuiltInFunction(
            input_field_names=TEXT_FIELD, output_field_names=SPARSE_FIELD, analyzer_params=JIEBA_ANALYZER
        ),
        vector_field=[DENSE_FIELD, SPARSE_FIELD],
        index_params=[DENSE_INDEX, SPARSE_INDEX],
        search_params=[{"metric_type": "IP", "params": {}}, {"metric_type": "BM25", "params": {}}],
        connection_args=connection_args(settings),
        collection_name=collection,
        primary_field=PRIMARY_FIELD,
        text_field=TEXT_FIELD,
        auto_id=False,
        drop_old=drop_old,
        consistency_level=CONSISTENCY,
    )


def build_milvus_index(settings: Settings, embeddings=None, corpus=None, *, progress: bool = True) -> BuildReport:
    """Embed every article into a new collection, then switch the alias to it and drop the old one.

    Not incremental: Milvus keeps no text hashes here, and a full build is what a cluster does
    anyway (the FAISS backend's build is the incremental one)."""
    from qa.corpus import load_corpus
    from qa.embedding import PolicyEmbeddings

    embeddings = embeddings or PolicyEmbeddings(settings)
    corpus = corpus or load_corpus(settings, report=sys.stderr if progress else None)
    articles = corpus.articles
    name = collection_prefix(settings, embeddings.fingerprint) + time.strftime("%Y%m%d%H%M%S")
    embeddings.dimension  # load the model first, so its loading time is not counted
    started = time.perf_counter()
    store = open_store(settings, embeddings, name, drop_old=True)
    with tqdm(total=len(articles), unit="article", desc="embedding into Milvus", disable=not progress) as bar:
        for start in range(0, len(articles), PROGRESS_CHUNK):
            chunk = articles[start:start + PROGRESS_CHUNK]
            store.add_texts([passage_text(a) for a in chunk], metadatas=[article_metadata(a) for a in chunk],
                            ids=[a.id for a in chunk])
            bar.update(len(chunk))
    seconds = time.perf_counter() - started
    _switch_alias(store.client, settings.milvus_collection, name)
    return BuildReport(len(articles), len(articles), 0, seconds, [e.name for e in corpus.errors], False)


def _switch_alias(client, alias: str, collection: str) -> None:
    previous = current_collection(client, alias)
    if previous is None:
        client.create_alias(collection, alias)
    else:
        client.alter_alias(collection, alias)
    if previous and previous != collection:
        client.drop_collection(previous)


# =================================================================================================
# Search
# =================================================================================================


def _quoted(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_expression(filters) -> str:
    """``qa.retrieval.Filters`` as a Milvus boolean expression ("" when no filter is set); the same
    matching as ``Filters.allows`` (substring for region, issuer and title)."""
    if filters is None or not filters.active():
        return ""
    parts = []
    if filters.region:
        parts.append(f"region like {_quoted('%' + filters.region + '%')}")
    if filters.issuer:
        parts.append(f"issuer like {_quoted('%' + filters.issuer + '%')}")
    if filters.document:
        d = filters.document
        parts.append(f"(doc_id == {_quoted(d)} or doc_number == {_quoted(d)} or title like {_quoted('%' + d + '%')})")
    if filters.year:
        parts.append(f"year == {int(filters.year)}")
    return " and ".join(parts)


def article_from(entity: dict) -> Article:
    document = Document(**json.loads(entity["document"]))
    return Article(**json.loads(entity["article"]), document=document)


@dataclass
class Candidate:
    dense: float | None = None  # cosine, when the dense search returned it
    keyword: float = 0.0  # BM25 relative to the best
    vector: list[float] | None = None  # for keyword-only candidates, to compute their cosine


class MilvusSearcher:
    """Hybrid search over the Milvus collection; same ``search(query, k, filters) -> list[Hit]`` as
    :class:`qa.retrieval.HybridSearcher`. Raises :class:`qa.index.IndexUnavailable` when there is no
    collection, or it was built under another embedding fingerprint."""

    def __init__(self, settings: Settings, embeddings=None):
        from pymilvus import MilvusClient

        from qa.embedding import PolicyEmbeddings

        self.settings = settings
        self.embeddings = embeddings or PolicyEmbeddings(settings)
        self.client = MilvusClient(**connection_args(settings))
        self.collection = self._check_collection()
        self.client.load_collection(self.collection)

    def _check_collection(self) -> str:
        alias = self.settings.milvus_collection
        name = current_collection(self.client, alias)
        if name is None:
            raise IndexUnavailable(f"no Milvus collection {alias!r} at {milvus_uri(self.settings)}; run `python -m qa build`")
        if not name.startswith(collection_prefix(self.settings, self.embeddings.fingerprint)):
            raise IndexUnavailable(
                f"Milvus collection {name} was built with another embedding model or backend than "
                f"{self.embeddings.fingerprint}; rebuild it"
            )
        return name

    def dense(self, vector: np.ndarray, k: int, expression: str) -> list[tuple[str, float]]:
        results = self.client.search(
            self.collection, data=[vector.tolist()], anns_field=DENSE_FIELD, limit=k, filter=expression,
            search_params={"metric_type": "IP"}, output_fields=[PRIMARY_FIELD],
        )
        return [(hit[PRIMARY_FIELD], float(hit["distance"])) for hit in results[0]]

    def keyword(self, query: str, k: int, expression: str) -> list[tuple[str, float, list[float]]]:
        """BM25 by Milvus (jieba analyzer). Milvus Lite reports BM25 as a negative distance and a
        server as a positive score; BM25 itself is never negative, so its magnitude is the score."""
        results = self.client.search(
            self.collection, data=[query], anns_field=SPARSE_FIELD, limit=k, filter=expression,
            search_params={"metric_type": "BM25"}, output_fields=[PRIMARY_FIELD, DENSE_FIELD],
        )
        return [(hit[PRIMARY_FIELD], abs(float(hit["distance"])), hit["entity"][DENSE_FIELD]) for hit in results[0]]

    def search(self, query: Query | str, k: int | None = None, filters=None) -> list[Hit]:
        k = k or self.settings.top_k
        query = query.text if isinstance(query, Query) else query.strip()
        if not query:
            return []
        pool = max(self.settings.candidate_k, k)
        expression = filter_expression(filters)
        vector = self.embeddings.encode_queries([query])[0]
        candidates: dict[str, Candidate] = {}
        for key, cosine in self.dense(vector, pool, expression):
            candidates[key] = Candidate(dense=cosine)
        keyword = self.keyword(query, pool, expression)
        top = max((score for _, score, _ in keyword), default=0.0) or 1.0
        for key, score, dense_vector in keyword:
            candidate = candidates.setdefault(key, Candidate(vector=dense_vector))
            candidate.keyword = score / top
        dense_scores = {
            key: c.dense if c.dense is not None else float(np.dot(np.asarray(c.vector, dtype=np.float32), vector))
            for key, c in candidates.items()
        }
        keys = list(candidates)
        dense = np.array([dense_scores[key] for key in keys], dtype=np.float64)
        keyword = np.array([candidates[key].keyword for key in keys], dtype=np.float64)
        fused = dict(zip(keys, fuse_scores(self.settings, dense, keyword).tolist()))
        ranked = sorted(fused, key=lambda key: -fused[key])[:k]
        articles = self._articles(ranked)
        return [
            Hit(article=articles[key], score=fused[key], dense_score=dense_scores[key],
                keyword_score=candidates[key].keyword, via="hybrid")
            for key in ranked if key in articles
        ]

    def _articles(self, keys: list[str]) -> dict[str, Article]:
        """The citable articles of the final hits only (candidates carry just their ids)."""
        if not keys:
            return {}
        rows = self.client.get(self.collection, ids=keys, output_fields=[PRIMARY_FIELD, "article", "document"])
        return {row[PRIMARY_FIELD]: article_from(row) for row in rows}
