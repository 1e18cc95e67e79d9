"""Step 5 of the flow: a question -> ranked clauses.

Hybrid retrieval: dense (FAISS, cosine over e5 embeddings of each article and of its sentence
windows) and BM25 over jieba tokens and character bigrams, fused as a weighted sum of normalised
scores, plus small pieces of evidence about the clause's document and kind: the question's words in
the document title, the region the question names, a number in the clause when the question asks
for one. A question that names an article (《XX办法》第十六条, 放管服方案第15条, 应急预案 3.2) is
answered by direct lookup first. Filters narrow by region, issuer, document, year.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import bm25s
import numpy as np
from bm25s.selection import topk as bm25_top_k
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from qa.config import Settings
from qa.index import LoadedIndex, load_index, stored_vectors
from qa.keywords import Synonyms, asks_quantity, has_quantity, normalise, tokenize
from qa.models import Article, Hit, Query
from qa.query import analyse, as_query
from qa.text import CN_NUMERAL, cn_to_int, int_to_cn


@dataclass(frozen=True)
class Filters:
    region: str | None = None
    issuer: str | None = None
    document: str | None = None  # document id, or a part of its title / 文号
    year: int | None = None

    def active(self) -> bool:
        return any(v is not None and v != "" for v in (self.region, self.issuer, self.document, self.year))

    def allows(self, article: Article) -> bool:
        doc = article.document
        if self.region and self.region not in doc.region:
            return False
        if self.issuer and self.issuer not in doc.issuer:
            return False
        if self.document and self.document not in (doc.id, doc.doc_number) and self.document not in doc.title:
            return False
        if self.year and not doc.date.startswith(str(self.year)):
            return False
        return True


# With filters on, more candidates are fetched so enough survive the filter.
FILTERED_FETCH_FACTOR = 20
# Window hits fetched per wanted article (articles have several windows).
WINDOWS_PER_ARTICLE = 3

# A reference to an article inside a question: 第二十一条 / 第21条 / （三） / 3.2.2
ARTICLE_REF = re.compile(
    rf"第\s*([{CN_NUMERAL}]+|\d+)\s*条"
    rf"|[（(]\s*([{CN_NUMERAL}]+|\d+)\s*[）)]"
    r"|(?<![\d.])(\d{1,2}(?:\.\d{1,2}){1,3})(?![\d.])"
)
DOC_ANCHOR = re.compile(r"《([^》]{2,60})》")


def fuse_scores(settings: Settings, dense: np.ndarray, keyword: np.ndarray) -> np.ndarray:
    """Both backends' fusion (FAISS here, Milvus in qa/milvus_store.py): the weighted sum of the
    dense cosine, min-max normalised over the candidates, and the BM25 score normalised by the
    best one; the arrays (float64) and the result are aligned on the candidates. (Measured on the
    dev set against reciprocal rank fusion: Recall@1 0.78 vs 0.58.)"""
    low = float(dense.min()) if len(dense) else 0.0
    span = ((float(dense.max()) if len(dense) else 0.0) - low) or 1.0
    weights = (settings.dense_weight + settings.keyword_weight) or 1.0
    return (settings.dense_weight * (dense - low) / span + settings.keyword_weight * keyword) / weights


# Words that say "the document", common to titles, so they do not identify one.
GENERIC_TITLE_WORDS = ("关于", "印发", "的通知", "通知", "实施方案", "方案", "办法", "自治区", "人民政府", "办公厅", "办公室")


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"[\s《》（）()“”、，。]", "", normalise(text))
    return {text[i : i + 2] for i in range(len(text) - 1)}


# Suffixes dropped to get the short name of a region (惠农区 -> 惠农, 宁夏回族自治区 -> 宁夏).
REGION_SUFFIXES = ("回族自治区", "壮族自治区", "维吾尔自治区", "自治区", "地区", "市", "州", "盟", "区", "县", "旗")
# A county-level region is stored with its prefecture: 石嘴山市惠农区, 固原市泾源县.
COUNTY_IN_PREFECTURE = re.compile(r"^(.{2,5}?(?:市|州|盟|地区))(.{2,}[区县旗])$")
TOP_LEVEL_SUFFIX = "自治区"


def region_aliases(region: str) -> set[str]:
    """The names a question may use for a document's region: 石嘴山市惠农区 -> 石嘴山市惠农区,
    石嘴山市, 石嘴山, 惠农区, 惠农; 宁夏回族自治区 -> 宁夏回族自治区, 宁夏, 自治区."""
    region = normalise(region)
    match = COUNTY_IN_PREFECTURE.match(region)
    parts = [match.group(1), match.group(2)] if match else [region]
    names = {region, *parts}
    for part in parts:
        for suffix in REGION_SUFFIXES:
            if part.endswith(suffix) and len(part) - len(suffix) >= 2:
                names.add(part[: -len(suffix)])
                break
    if region.endswith(TOP_LEVEL_SUFFIX):
        names.add(TOP_LEVEL_SUFFIX)  # the 自治区 level calls itself just 自治区
    return {name for name in names if len(name) >= 2}


def _label_forms(ref: re.Match) -> list[str]:
    """The labels an article reference may carry: 第21条 -> 第二十一条; （3） -> （三）, （3）."""
    article, paren, dotted = ref.groups()
    if article:
        n = cn_to_int(article)
        return [f"第{int_to_cn(n)}条"]
    if paren:
        n = cn_to_int(paren)
        return [f"（{int_to_cn(n)}）", f"（{n}）"]
    return [dotted]


class HybridSearcher:
    """Search over a loaded index; one instance serves many queries (nothing is rebuilt per query).

    Per query the work beyond the query's embedding is done on arrays of candidates: their article
    and window vectors are read in one gather per index (numpy views of the flat indexes' own
    memory, ``reconstruct_batch`` for IVF) and scored with one matrix product each; the question is
    tokenised once for BM25 and the title evidence."""

    def __init__(self, settings: Settings, index: LoadedIndex | None = None, embeddings=None):
        from qa.embedding import PolicyEmbeddings

        self.settings = settings
        self.synonyms = Synonyms.load(settings.synonyms_file)
        self.embeddings = embeddings or PolicyEmbeddings(settings)
        self.index = index or load_index(settings, self.embeddings.fingerprint)
        self.articles = self.index.articles
        self._doc_bigrams = {}
        for article in self.articles:
            doc = article.document
            if doc.id not in self._doc_bigrams:
                names = " ".join(filter(None, [doc.title, doc.notice_title]))
                self._doc_bigrams[doc.id] = _bigrams(names)
        # Per-document evidence: each article's document (position in doc_ids), a BM25 index over
        # document titles, and the regions with the names a question may call them by.
        self._doc_ids = list(self._doc_bigrams)
        position = {doc_id: n for n, doc_id in enumerate(self._doc_ids)}
        self._article_doc = np.array([position[a.doc_id] for a in self.articles], dtype=int)
        self._titles = None
        if self._doc_ids:
            docs = {a.doc_id: a.document for a in self.articles}
            self._titles = bm25s.BM25()
            self._titles.index(
                [tokenize(" ".join(filter(None, [docs[d].title, docs[d].notice_title]))) or ["<empty>"] for d in self._doc_ids],
                show_progress=False,
            )
        regions = sorted({a.document.region for a in self.articles if a.document.region})
        self._region_aliases = {region: region_aliases(region) for region in regions}
        self._regions = regions
        region_number = {region: n for n, region in enumerate(regions)}
        self._article_region = np.array([region_number.get(a.document.region, -1) for a in self.articles], dtype=int)
        self._top_level = np.array([a.document.region.endswith(TOP_LEVEL_SUFFIX) for a in self.articles], dtype=bool)
        self._has_quantity = np.array([has_quantity(a.text) for a in self.articles], dtype=bool)
        # Vectors read back per query: flat indexes as views of FAISS's memory (None: IVF, read
        # with reconstruct_batch); self.index keeps the indexes, and so the views, alive.
        self._window_start = np.asarray(self.index.manifest.window_start, dtype=np.int64)
        self._article_vectors = stored_vectors(self.index.vectors)
        self._window_vectors = stored_vectors(self.index.windows)

    # -- the two retrievers -------------------------------------------------------------------
    def query_tokens(self, query: str) -> list[str]:
        """The question's BM25 tokens, and those of the other words of each synonym group it uses
        (回复 also searches 答复 and 反馈): the ``Query``'s own."""
        return list(analyse(query, self.synonyms).tokens)

    def dense(self, vector: np.ndarray, k: int, mask: np.ndarray | None) -> list[int]:
        """Candidate articles from the article vectors and from the sentence-window vectors."""
        fetch = k if mask is None else k * FILTERED_FETCH_FACTOR
        candidates: list[int] = []
        for index, owner in ((self.index.vectors, None), (self.index.windows, self.index.window_owner)):
            if index.ntotal == 0:
                continue
            want = fetch if owner is None else fetch * WINDOWS_PER_ARTICLE
            _, ids = index.search(vector, max(1, min(want, index.ntotal)))
            found = ids[0][ids[0] >= 0]
            if owner is not None:
                found = owner[found]
            if mask is not None:
                found = found[mask[found]]
            candidates.extend(found.tolist())
        return list(dict.fromkeys(candidates))

    def dense_score(self, i: int, vector: np.ndarray) -> float:
        """An article's cosine to the query: the best of its own vector and its windows' vectors."""
        return max(self._cosines(i, vector))

    def _cosines(self, i: int, vector: np.ndarray) -> tuple[float, float]:
        """(article vector, best window) cosines; an article without windows repeats the first."""
        ids = np.array([i], dtype=np.int64)
        article = float(self._read(self.index.vectors, self._article_vectors, ids)[0] @ vector[0])
        start, end = self._window_start[i], self._window_start[i + 1]
        if end > start:
            window_vectors = self._read(self.index.windows, self._window_vectors, np.arange(start, end))
            return article, float(np.max(window_vectors @ vector[0]))
        return article, article

    @staticmethod
    def _read(index, stored: np.ndarray | None, ids: np.ndarray) -> np.ndarray:
        """The vectors ``ids`` of ``index``, as a fresh (len(ids), d) float32 array: one gather from
        a flat index's memory; ``reconstruct_batch`` for the others (it reads through IVF's id map,
        where IVF's reconstruct_n would scan every list)."""
        return stored[ids] if stored is not None else index.reconstruct_batch(ids)

    def _all_cosines(
        self, ids: np.ndarray, vector: np.ndarray, *, article_cosines: bool = True
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """_cosines for many articles (an int64 array) as two float32 arrays, with one vector read
        and one matrix product per index: reading each candidate's vectors one at a time cost about
        half of search's time beyond the query embedding. ``article_cosines=False`` (ranking by
        windows alone) skips the article vectors, and gives None for them, unless an article
        without windows needs its own cosine."""
        query = vector[0]
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return (np.zeros(0, dtype=np.float32) if article_cosines else None), np.zeros(0, dtype=np.float32)
        starts = self._window_start[ids]
        counts = self._window_start[ids + 1] - starts
        has = counts > 0
        articles = None
        if article_cosines or not has.all():
            articles = self._read(self.index.vectors, self._article_vectors, ids) @ query
        # an article without windows repeats its own cosine
        best_window = articles.copy() if articles is not None else np.empty(len(ids), dtype=np.float32)
        total = int(counts.sum())
        if total:
            offsets = np.cumsum(counts) - counts  # where each article's windows begin in window_ids
            window_ids = np.repeat(starts - offsets, counts) + np.arange(total)
            window_cosines = self._read(self.index.windows, self._window_vectors, window_ids) @ query
            best_window[has] = np.maximum.reduceat(window_cosines, offsets[has])
        return articles, best_window

    def keyword(self, query: str, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        """(article, BM25 score) of the best ``k`` articles with a positive score, best first (the
        keyword side alone, as the benchmark times it)."""
        ids, scores = self._keyword_arrays(self.query_tokens(query), k, mask)
        return list(zip(ids.tolist(), scores.tolist()))

    def _keyword_arrays(self, tokens: list[str], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`keyword` for the query's tokens, as (article ids int64, scores float32)."""
        if not tokens:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        weight_mask = None if mask is None else mask.astype(np.float32)
        k = min(k, len(self.articles))
        # What BM25.retrieve does for one query, without its per-call batching and progress-bar
        # set-up (a third of the keyword side's time right after an embedding).
        scores = self.index.keywords.get_scores(tokens, weight_mask=weight_mask)
        scores, ids = bm25_top_k(scores, k, backend="auto", sorted=True)
        positive = scores > 0
        return ids[positive].astype(np.int64), scores[positive]

    # -- direct lookup --------------------------------------------------------------------------
    def lookup(self, query: str, mask: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Articles a query names explicitly (document name + article label) as (tier, index):
        tier 0 carries the label, 1 opens with the named heading, 2 lies under it."""
        query = unicodedata.normalize("NFKC", query)
        refs = list(ARTICLE_REF.finditer(query))
        if not refs:
            return []
        ref = refs[-1]
        name = query[: ref.start()] or query
        anchor = DOC_ANCHOR.search(query)
        if anchor:
            name = anchor.group(1)
        doc_id = self._best_document(name)
        if doc_id is None:
            return []
        forms = _label_forms(ref)
        found = []
        for i, article in enumerate(self.articles):
            if article.doc_id != doc_id or (mask is not None and not mask[i]):
                continue
            if article.label in forms:
                found.append((0, i))
            elif any(article.text.startswith(form) for form in forms):
                found.append((1, i))  # the article that opens with the named heading
            elif any(step.startswith(form) for step in article.path for form in forms):
                found.append((2, i))  # articles under the named heading
        return found

    def _best_document(self, name: str) -> str | None:
        wanted = _bigrams(name)
        for word in GENERIC_TITLE_WORDS:
            wanted -= _bigrams(word)
        if len(wanted) < 2:
            return None
        best, best_score = None, 0.0
        for doc_id, bigrams in self._doc_bigrams.items():
            score = len(wanted & bigrams) / len(wanted)
            if score > best_score:
                best, best_score = doc_id, score
        return best if best_score >= self.settings.lookup_min_overlap else None

    # -- fused search -----------------------------------------------------------------------------
    def _mask(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or not filters.active():
            return None
        return np.array([filters.allows(a) for a in self.articles], dtype=bool)

    def named_regions(self, query: str) -> set[str]:
        """The corpus regions a question names (by full or short name: 惠农区, 大武口, 宁夏, 自治区)."""
        text = normalise(query)
        return {region for region, names in self._region_aliases.items() if any(name in text for name in names)}

    def title_scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 of the question over document titles, relative to the best title (0 when none match)."""
        if self._titles is None or not tokens:
            return np.zeros(len(self._doc_ids))
        known = [t for t in tokens if t in self._titles.vocab_dict]
        scores = self._titles.get_scores(known) if known else np.zeros(len(self._doc_ids))
        top = float(np.max(scores)) if len(scores) else 0.0
        return scores / top if top > 0 else scores

    def _evidence_array(self, query: str, tokens: list[str], ids: np.ndarray) -> np.ndarray:
        """Document- and clause-kind evidence for each candidate (float64, aligned with ``ids``), in
        units of the fused score: title match, a number for a question asking for one, the named
        region (or, when none is named, the top level)."""
        s = self.settings
        extra = np.zeros(len(ids))
        if s.title_weight:
            title = self.title_scores(tokens)
            extra += s.title_weight * title[self._article_doc[ids]].astype(np.float64)
        if s.quantity_weight and asks_quantity(query):
            extra += s.quantity_weight * self._has_quantity[ids]
        named = self.named_regions(query) if (s.region_weight or s.top_level_weight) else set()
        if named:
            is_named = np.array([region in named for region in self._regions] + [False])  # [-1]: no region
            extra += s.region_weight * is_named[self._article_region[ids]]
        else:
            extra += s.top_level_weight * self._top_level[ids]
        return extra

    def search(self, query: Query | str, k: int | None = None, filters: Filters | None = None) -> list[Hit]:
        k = k or self.settings.top_k
        analysed = as_query(query, self.synonyms)
        query = analysed.text
        if not query:
            return []
        s = self.settings
        mask = self._mask(filters)
        pool = max(s.candidate_k, k)
        vector = self.embeddings.encode_queries([query])
        tokens = list(analysed.tokens)
        keyword_ids, keyword_raw = self._keyword_arrays(tokens, pool, mask)
        # Candidates: dense ones first, then keyword ones, each once, in order of first appearance.
        candidates = np.fromiter(dict.fromkeys(self.dense(vector, pool, mask) + keyword_ids.tolist()), dtype=np.int64)
        keyword_scores = np.zeros(len(candidates))
        if len(keyword_ids):
            top_keyword = float(keyword_raw.max()) or 1.0
            by_id = np.argsort(candidates, kind="stable")
            at = by_id[np.searchsorted(candidates, keyword_ids, sorter=by_id)]
            keyword_scores[at] = keyword_raw.astype(np.float64) / top_keyword
        articles, windows = self._all_cosines(candidates, vector, article_cosines=s.dense_article_vector)
        dense_scores = np.maximum(articles, windows) if s.dense_article_vector else windows
        fused = fuse_scores(self.settings, dense_scores.astype(np.float64), keyword_scores)
        extra_weights = s.title_weight + s.quantity_weight + max(s.region_weight, s.top_level_weight)
        if extra_weights:
            fused = (fused + self._evidence_array(query, tokens, candidates)) / (1.0 + extra_weights)
        # Named articles come first; several matches (（三） of each person in a list) keep the
        # order the question's other words give them.
        looked_up = self.lookup(query, mask)
        position = {i: n for n, i in enumerate(candidates.tolist())} if looked_up else {}
        looked_up = [
            i for _, i in sorted(looked_up, key=lambda t: (t[0], -(float(fused[position[t[1]]]) if t[1] in position else -1.0)))
        ]
        named = set(looked_up)
        ranked = looked_up[:k]
        for n in np.argsort(-fused, kind="stable").tolist():  # stable: ties keep candidate order
            if len(ranked) >= k:
                break
            i = int(candidates[n])
            if i not in named:
                ranked.append(i)
                position[i] = n
        hits = []
        for i in ranked:
            n = position.get(i)
            via = "lookup" if i in named else "hybrid"
            hits.append(
                Hit(
                    article=self.articles[i],
                    score=1.0 if via == "lookup" else float(fused[n]),
                    dense_score=self.dense_score(i, vector) if n is None else float(dense_scores[n]),
                    keyword_score=0.0 if n is None else float(keyword_scores[n]),
                    via=via,
                )
            )
        return hits


class PolicyRetriever(BaseRetriever):
    """The hybrid searcher as a LangChain retriever; metadata carries the whole citation."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: HybridSearcher
    k: int = 10
    filters: Filters | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        return [
            LCDocument(page_content=hit.article.text, metadata=hit.to_dict() | {"via": hit.via})
            for hit in self.searcher.search(query, self.k, self.filters)
        ]
