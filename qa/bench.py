"""`python -m qa bench`: speed and scale on this machine, in one run (issue "Speed and scale").

Sections, each a dataclass in the report (``--json`` prints them all):

- build throughput: the product's embedder (``embedding_backend``, batch size, length sorting)
  against plain fp32 ``SentenceTransformer.encode`` on the same sampled articles and their sentence
  windows -- what a build embeds. The two run in alternating rounds so that load from other
  processes on a shared machine falls on both alike; the ratio is the figure.
- query latency: p50/p95 of ``search`` and of extractive ``ask`` against embedding the query alone.
- first build: ``python -m qa build`` on the bundled corpus into a temporary index folder (a fresh
  process, model cache warm), and the serving process's memory (a fresh process that loads the
  searcher and answerer and answers a few questions).
- scale: search latency on a synthetic corpus of N articles -- the seed index's article and window
  vectors repeated with small random perturbations, and its keyword postings repeated with some
  terms dropped -- with the FAISS type :func:`qa.index.empty_vector_index` picks for that size, and
  the memory each part takes.

Targets (README "Benchmark"): build >= 2x plain fp32; search p50 <= 1.3x the query embedding;
extractive ask p95 < 150 ms; first build < 3 min; serving RSS < 1.5 GB; search p95 < 100 ms at 1M.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.config import Settings

# Articles sampled for the throughput comparison, and rounds they are split into (alternating
# which embedder goes first) so that background load hits both alike.
DEFAULT_BUILD_ARTICLES = 96
THROUGHPUT_ROUNDS = 4
WARMUP_QUERIES = 3
DEFAULT_SCALE_SIZES = (100_000, 1_000_000)
# Synthetic corpus: a perturbed copy of a seed vector keeps about this cosine to it; a copy of a
# seed's keyword postings loses this share of its terms.
PERTURBED_COSINE = 0.95
DROPPED_TERM_SHARE = 0.1
SYNTHETIC_SEED = 0
VECTOR_CHUNK = 65_536  # synthetic vectors generated and added per step
SCALE_QUERIES = 60
SERVING_PROBE_QUESTIONS = 5
MIB = 1 << 20


# =================================================================================================
# Results
# =================================================================================================


@dataclass
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Latency":
        ms = np.array(seconds, dtype=float) * 1000.0
        if not len(ms):
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(len(ms), float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.mean()))


@dataclass
class Throughput:
    backend: str
    articles: int  # sampled articles
    texts: int  # articles + their sentence windows (what a build embeds for them)
    product_seconds: float
    baseline_seconds: float
    product_articles_per_s: float
    baseline_articles_per_s: float
    ratio: float  # product / baseline throughput
    mean_cosine: float  # product vectors against plain fp32 ones
    min_cosine: float


@dataclass
class QueryLatency:
    questions: int
    embed: Latency  # the query's embedding alone
    search: Latency
    search_p50_ratio: float  # search p50 / embed p50
    ask: Latency | None = None  # extractive answer, when qa.answering is there
    ask_p50_ratio: float | None = None
    ask_unavailable: str = ""
    # the same answers with each sentence embedded when the judge first meets it, as on Milvus or
    # an index from before sentences were embedded at build time
    ask_embedding_sentences: Latency | None = None


@dataclass
class FirstBuild:
    articles: int
    seconds: float
    peak_rss_mb: float
    summary: str


@dataclass
class ServingMemory:
    rss_mb: float
    peak_rss_mb: float
    loaded: str


@dataclass
class ScaleRun:
    articles: int
    windows: int
    article_index: str  # FAISS type chosen by size
    window_index: str
    build_seconds: float
    vector_memory_mb: float  # process RSS growth while the two FAISS indexes were built
    keyword_memory_mb: float  # the BM25 postings (exact array sizes)
    process_rss_mb: float
    search: Latency
    keyword: Latency  # the BM25 side alone
    dense: Latency  # the two FAISS searches alone
    postings_per_query: float  # BM25 postings a query reads, on average
    postings_share: float  # ... as a share of all postings: 1.0 would be a scan


@dataclass
class BenchReport:
    cpu_count: int
    embedding_backend: str
    torch_threads: int
    throughput: Throughput | None = None
    queries: QueryLatency | None = None
    first_build: FirstBuild | None = None
    serving: ServingMemory | None = None
    scale: list[ScaleRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


# =================================================================================================
# Helpers
# =================================================================================================


def rss_mb(pid: str = "self") -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc (Linux)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024.0
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _questions(path: Path, limit: int | None) -> list[str]:
    from qa.evaluate import read_questions

    texts = [q.question for q in read_questions(path)]
    return texts[:limit] if limit else texts


# =================================================================================================
# Build throughput
# =================================================================================================


def sample_build_texts(settings: Settings, count: int) -> tuple[int, list[str]]:
    """Passages and sentence windows of ``count`` articles drawn at random from the corpus."""
    from qa.corpus import load_corpus
    from qa.index import article_windows, passage_text

    articles = load_corpus(settings).articles
    rng = np.random.default_rng(SYNTHETIC_SEED)
    chosen = rng.choice(len(articles), min(count, len(articles)), replace=False)
    texts = []
    for i in sorted(chosen):
        texts.append(passage_text(articles[i]))
        texts.extend(article_windows(articles[i], settings.window_chars))
    return len(chosen), texts


def measure_throughput(settings: Settings, count: int) -> Throughput:
    """The product's ``encode_passages`` against plain fp32 ``SentenceTransformer.encode`` (its
    default batch size, ``passage: `` prefix, normalised), on the same texts, in alternating rounds."""
    from qa.embedding import PolicyEmbeddings, load_sentence_transformer

    articles, texts = sample_build_texts(settings, count)
    product = PolicyEmbeddings(settings)
    baseline = load_sentence_transformer(settings)
    product.dimension  # load both models before timing
    product.encode_passages(texts[:2])
    baseline.encode([settings.passage_prefix + t for t in texts[:2]])
    rounds = np.array_split(np.arange(len(texts)), THROUGHPUT_ROUNDS)
    product_seconds = baseline_seconds = 0.0
    product_vectors, baseline_vectors = [], []
    for n, rows in enumerate(rounds):
        chunk = [texts[i] for i in rows]
        runs = [("product", lambda: product.encode_passages(chunk)),
                ("baseline", lambda: baseline.encode([settings.passage_prefix + t for t in chunk],
                                                     normalize_embeddings=True, convert_to_numpy=True))]
        for name, run in (runs if n % 2 == 0 else runs[::-1]):
            seconds, vectors = _timed(run)
            if name == "product":
                product_seconds += seconds
                product_vectors.append(vectors)
            else:
                baseline_seconds += seconds
                baseline_vectors.append(vectors)
        _say(f"throughput round {n + 1}/{len(rounds)}: product {product_seconds:.1f}s, fp32 {baseline_seconds:.1f}s")
    cosines = np.sum(np.vstack(product_vectors) * np.vstack(baseline_vectors), axis=1)
    return Throughput(
        backend=settings.embedding_backend, articles=articles, texts=len(texts),
        product_seconds=product_seconds, baseline_seconds=baseline_seconds,
        product_articles_per_s=articles / product_seconds, baseline_articles_per_s=articles / baseline_seconds,
        ratio=baseline_seconds / product_seconds,
        mean_cosine=float(cosines.mean()), min_cosine=float(cosines.min()),
    )


# =================================================================================================
# Query latency
# =================================================================================================


def _extractive_answerer(settings: Settings, searcher):
    """qa.answering's Answerer with no LLM (extractive answers), or the reason there is none."""
    try:
        from qa.answering import Answerer
    except ImportError as error:
        return None, f"qa.answering not importable ({error})"
    if hasattr(settings, "llm_base_url"):
        settings = dataclasses.replace(settings, llm_base_url="")
    try:
        return Answerer(settings, searcher=searcher), ""
    except Exception as error:  # a half-finished module must not sink the whole benchmark
        return None, f"Answerer could not be made ({type(error).__name__}: {error})"


def measure_queries(settings: Settings, searcher, questions: list[str]) -> QueryLatency:
    """Per question, in turn: embed alone, search, extractive ask -- interleaved, so background load
    falls on all three alike."""
    embeddings = searcher.embeddings
    answerer, unavailable = _extractive_answerer(settings, searcher)
    unstored = _answerer_embedding_sentences(settings, searcher) if answerer is not None else None
    embed, search, ask, ask_unstored = [], [], [], []
    for n, question in enumerate(questions[:WARMUP_QUERIES] + questions):
        warming = n < min(WARMUP_QUERIES, len(questions))
        timings = [_timed_afresh(embeddings, embeddings.encode_queries, [question]), _timed_afresh(embeddings, searcher.search, question)]
        if answerer is not None:
            try:
                timings.append(_timed_afresh(embeddings, answerer.answer, question))
                if unstored is not None:
                    timings.append(_timed_afresh(embeddings, unstored.answer, question))
            except Exception as error:  # a module being written must not sink the whole benchmark
                answerer, unavailable = None, f"answer() failed ({type(error).__name__}: {error})"
                ask = []
        if not warming:
            embed.append(timings[0])
            search.append(timings[1])
            if answerer is not None:
                ask.append(timings[2])
                if unstored is not None:
                    ask_unstored.append(timings[3])
    embed_latency, search_latency = Latency.of(embed), Latency.of(search)
    result = QueryLatency(len(questions), embed_latency, search_latency,
                          search_latency.p50_ms / embed_latency.p50_ms, ask_unavailable=unavailable)
    if ask:
        result.ask = Latency.of(ask)
        result.ask_p50_ratio = result.ask.p50_ms / embed_latency.p50_ms
    if ask and ask_unstored:
        result.ask_embedding_sentences = Latency.of(ask_unstored)
    return result


def _timed_afresh(embeddings, fn, *args) -> float:
    """Seconds ``fn`` takes with the question's vector not yet kept (each step embeds it, as the
    first time it is asked)."""
    if hasattr(embeddings, "forget_queries"):
        embeddings.forget_queries()
    return _timed(fn, *args)[0]


def _answerer_embedding_sentences(settings: Settings, searcher):
    """An extractive Answerer over the same index whose judge embeds sentences as it meets them
    (its own cache), or None where the searcher is not the reranked one or keeps no sentences."""
    try:
        from qa.judging import SentenceCosines
        from qa.reranking import RerankedSearcher
    except ImportError:
        return None
    if not isinstance(searcher, RerankedSearcher) or searcher.cosines.stored is None:
        return None
    plain = RerankedSearcher(searcher.inner, searcher.settings)
    plain.cosines = SentenceCosines(searcher.cosines.embeddings, None)
    answerer, _ = _extractive_answerer(settings, plain)
    return answerer


# =================================================================================================
# First build and serving memory (fresh processes)
# =================================================================================================


def _child_env(settings: Settings, **extra: str) -> dict[str, str]:
    from qa.config import PROJECT_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.update({"QA_CORPUS_DIR": str(settings.corpus_dir), "QA_MODEL_CACHE_DIR": str(settings.model_cache_dir),
                "QA_EMBEDDING_MODEL": settings.embedding_model, "QA_EMBEDDING_BACKEND": settings.embedding_backend})
    env.update(extra)
    return env


def _run_child(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of a child process; its own rusage via wait4."""
    started = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {child.returncode}")
    return seconds, usage.ru_maxrss / 1024.0, output


def measure_first_build(settings: Settings) -> FirstBuild:
    """``python -m qa build`` into an empty temporary index folder (the model cache stays warm)."""
    with tempfile.TemporaryDirectory(prefix="qa-bench-index-") as folder:
        seconds, peak, output = _run_child([sys.executable, "-m", "qa", "--index-dir", folder, "build"],
                                           _child_env(settings))
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    articles = int(summary.split()[1]) if summary.startswith("indexed ") else 0
    return FirstBuild(articles=articles, seconds=seconds, peak_rss_mb=peak, summary=summary)


SERVING_PROBE = """
import json, sys
from pathlib import Path
from qa.bench import rss_mb, _extractive_answerer, _questions
from qa.config import load_settings
from qa.retrieval import HybridSearcher
settings = load_settings()
searcher = HybridSearcher(settings)
answerer, why = _extractive_answerer(settings, searcher)
for question in _questions(Path(sys.argv[1]), int(sys.argv[2])):
    searcher.search(question)
    if answerer is not None:
        answerer.answer(question)
rss, peak = rss_mb()
print(json.dumps({"rss_mb": rss, "peak_rss_mb": peak, "loaded": "searcher + answerer" if answerer else "searcher (" + why + ")"}))
"""


def measure_serving(settings: Settings, questions_file: Path) -> ServingMemory:
    """RSS of a fresh process that serves: searcher and extractive answerer loaded, a few answers."""
    _, _, output = _run_child(
        [sys.executable, "-c", SERVING_PROBE, str(questions_file), str(SERVING_PROBE_QUESTIONS)],
        _child_env(settings, QA_INDEX_DIR=str(settings.index_dir)),
    )
    return ServingMemory(**json.loads(output.strip().splitlines()[-1]))


# =================================================================================================
# Scale: a synthetic corpus from the seed index
# =================================================================================================


def _perturbed(seed_vectors: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``seed_vectors[rows]`` moved by Gaussian noise to about PERTURBED_COSINE, renormalised."""
    dimension = seed_vectors.shape[1]
    sigma = np.sqrt((1.0 / PERTURBED_COSINE**2 - 1.0) / dimension)
    out = seed_vectors[rows] + rng.standard_normal((len(rows), dimension), dtype=np.float32) * np.float32(sigma)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def synthetic_vector_index(seed_vectors: np.ndarray, sources: np.ndarray, settings: Settings, rng):
    """The FAISS index :func:`qa.index.empty_vector_index` picks for ``len(sources)`` vectors, filled
    with perturbed copies of ``seed_vectors[sources]``, generated and added in chunks."""
    from qa.index import empty_vector_index, finish_vector_index, train_vector_index

    index, kind = empty_vector_index(len(sources), seed_vectors.shape[1], settings)
    if not index.is_trained:
        sample = rng.choice(len(sources), min(len(sources), settings.ivf_train_per_list * index.nlist), replace=False)
        train_vector_index(index, _perturbed(seed_vectors, sources[np.sort(sample)], rng), settings)
    for start in range(0, len(sources), VECTOR_CHUNK):
        index.add(_perturbed(seed_vectors, sources[start:start + VECTOR_CHUNK], rng))
    finish_vector_index(index)
    return index, kind


def seed_term_counts(loaded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed corpus as (term-major) postings of term counts in the seed keyword index's own term
    ids: (indptr over terms, seed article of each posting, count). Tokenised again the way the
    build does, because bm25s keeps only the final scores."""
    from qa.index import passage_text
    from qa.keywords import tokenize

    vocab = loaded.keywords.vocab_dict
    rows, cols = [], []
    for n, article in enumerate(loaded.articles):
        ids = [vocab[t] for t in (tokenize(passage_text(article)) or ["<empty>"]) if t in vocab]
        rows.extend([n] * len(ids))
        cols.extend(ids)
    pairs = np.unique(np.array(cols, dtype=np.int64) * len(loaded.articles) + np.array(rows, dtype=np.int64),
                      return_counts=True)
    keys, counts = pairs
    terms, docs = keys // len(loaded.articles), keys % len(loaded.articles)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.add.at(indptr, terms + 1, 1)
    return np.cumsum(indptr), docs.astype(np.int64), counts.astype(np.float32)


def synthetic_keywords(loaded, total: int, settings: Settings, rng):
    """A bm25s index over ``total`` synthetic articles: article j is seed article j mod n with
    DROPPED_TERM_SHARE of its terms dropped; scored with bm25s's default (Lucene) BM25 formula."""
    import copy

    seeds = len(loaded.articles)
    indptr, docs, counts = seed_term_counts(loaded)
    copies = -(-total // seeds)
    posting_docs, posting_counts, lengths = [], [], np.zeros(len(indptr), dtype=np.int64)
    for term in range(len(indptr) - 1):
        seed_docs = docs[indptr[term]:indptr[term + 1]]
        if not len(seed_docs):
            continue
        expanded = (np.arange(copies, dtype=np.int64)[:, None] * seeds + seed_docs[None, :]).ravel()
        tf = np.tile(counts[indptr[term]:indptr[term + 1]], copies)
        keep = (expanded < total) & (rng.random(len(expanded)) >= DROPPED_TERM_SHARE)
        posting_docs.append(expanded[keep].astype(np.int32))
        posting_counts.append(tf[keep])
        lengths[term + 1] = int(keep.sum())
    doc_ids = np.concatenate(posting_docs)
    tf = np.concatenate(posting_counts)
    del posting_docs, posting_counts
    term_indptr = np.cumsum(lengths)
    doc_lengths = np.bincount(doc_ids, weights=tf, minlength=total).astype(np.float32)
    k1, b = loaded.keywords.k1, loaded.keywords.b
    document_frequency = np.diff(term_indptr).astype(np.float64)
    idf = np.log(1.0 + (total - document_frequency + 0.5) / (document_frequency + 0.5)).astype(np.float32)
    term_of_posting = np.repeat(np.arange(len(document_frequency), dtype=np.int32), np.diff(term_indptr))
    norm = k1 * (1.0 - b + b * doc_lengths[doc_ids] / doc_lengths.mean())
    tf /= tf + norm
    tf *= idf[term_of_posting]
    del term_of_posting, norm
    keywords = copy.copy(loaded.keywords)
    keywords.scores = {"data": tf, "indices": doc_ids, "indptr": term_indptr, "num_docs": total}
    return keywords


def synthetic_index(seed, total: int, settings: Settings):
    """A LoadedIndex of ``total`` articles built from the seed index (see module doc); returns it
    with (build seconds, vector MiB, keyword MiB)."""
    rng = np.random.default_rng(SYNTHETIC_SEED)
    started = time.perf_counter()
    seeds = len(seed.articles)
    article_seed_vectors = np.vstack([seed.vectors.reconstruct(i) for i in range(seeds)])
    window_seed_vectors = seed.windows.reconstruct_n(0, seed.windows.ntotal)
    article_sources = np.arange(total, dtype=np.int64) % seeds
    window_counts = np.diff(seed.manifest.window_start)[article_sources]
    window_start = np.concatenate([[0], np.cumsum(window_counts)])
    # Window k of synthetic article j is window k of its seed article.
    seed_first = np.asarray(seed.manifest.window_start[:-1])[article_sources]
    window_sources = np.repeat(seed_first - window_start[:-1], window_counts) + np.arange(window_start[-1])
    gc.collect()
    before = rss_mb()[0]
    vectors, vector_kind = synthetic_vector_index(article_seed_vectors, article_sources, settings, rng)
    windows, window_kind = synthetic_vector_index(window_seed_vectors, window_sources, settings, rng)
    gc.collect()
    vector_mb = rss_mb()[0] - before
    keywords = synthetic_keywords(seed, total, settings, rng)
    keyword_mb = sum(keywords.scores[k].nbytes for k in ("data", "indices", "indptr")) / MIB
    manifest = dataclasses.replace(seed.manifest, window_start=window_start.tolist(), faiss_type=vector_kind,
                                   article_ids=[], passage_hashes=[], window_hashes=[])
    loaded = dataclasses.replace(
        seed, manifest=manifest, articles=[seed.articles[i] for i in article_sources],
        vectors=vectors, windows=windows, window_owner=np.repeat(np.arange(total), window_counts),
        keywords=keywords,
    )
    return loaded, (vector_kind, window_kind), time.perf_counter() - started, vector_mb, keyword_mb


def measure_scale(settings: Settings, seed, embeddings, total: int, questions: list[str]) -> ScaleRun:
    from qa.keywords import tokenize
    from qa.retrieval import HybridSearcher

    _say(f"scale: building a synthetic corpus of {total:,} articles")
    loaded, kinds, build_seconds, vector_mb, keyword_mb = synthetic_index(seed, total, settings)
    _say(f"scale: built in {build_seconds:.0f}s ({kinds[0]} articles, {kinds[1]} windows); searching")
    searcher = HybridSearcher(settings, index=loaded, embeddings=embeddings)
    scores = loaded.keywords.scores
    all_postings = len(scores["data"])
    for question in questions[:WARMUP_QUERIES]:
        searcher.search(question)
    search, keyword, dense, postings = [], [], [], []
    for question in questions:
        vector = embeddings.encode_queries([question])
        dense.append(_timed(searcher.dense, vector, settings.candidate_k, None)[0])
        keyword.append(_timed(searcher.keyword, question, settings.candidate_k, None)[0])
        search.append(_timed(searcher.search, question)[0])
        ids = np.array(loaded.keywords.get_tokens_ids(tokenize(question)), dtype=np.int64)
        postings.append(int(np.sum(scores["indptr"][ids + 1] - scores["indptr"][ids])) if len(ids) else 0)
    return ScaleRun(
        articles=total, windows=loaded.windows.ntotal, article_index=kinds[0], window_index=kinds[1],
        build_seconds=build_seconds, vector_memory_mb=vector_mb, keyword_memory_mb=keyword_mb,
        process_rss_mb=rss_mb()[0], search=Latency.of(search), keyword=Latency.of(keyword), dense=Latency.of(dense),
        postings_per_query=float(np.mean(postings)), postings_share=float(np.mean(postings)) / all_postings,
    )


# =================================================================================================
# The whole run
# =================================================================================================


@dataclass
class BenchOptions:
    questions_file: Path
    build_articles: int = DEFAULT_BUILD_ARTICLES
    query_limit: int | None = None
    first_build: bool = True
    scale_sizes: tuple[int, ...] = DEFAULT_SCALE_SIZES
    scale_queries: int = SCALE_QUERIES


def run_bench(settings: Settings, options: BenchOptions, searcher_factory) -> BenchReport:
    """``searcher_factory(settings)`` gives the serving searcher (building the index if needed)."""
    import torch

    report = BenchReport(cpu_count=os.cpu_count() or 0, embedding_backend=settings.embedding_backend,
                         torch_threads=torch.get_num_threads())
    questions = _questions(options.questions_file, options.query_limit)
    searcher = searcher_factory(settings)
    if options.build_articles > 0:
        _say(f"build throughput on {options.build_articles} articles and their windows")
        report.throughput = measure_throughput(settings, options.build_articles)
    else:
        report.skipped.append("throughput")
    _say(f"query latency over {len(questions)} questions")
    report.queries = measure_queries(settings, searcher, questions)
    _say("serving memory (fresh process)")
    report.serving = measure_serving(settings, options.questions_file)
    if options.first_build:
        _say("first build of the bundled corpus (fresh process, temporary index)")
        report.first_build = measure_first_build(settings)
    else:
        report.skipped.append("first_build")
    seed = getattr(searcher, "index", None)  # the synthetic corpus grows from the FAISS index
    if seed is None and options.scale_sizes:
        report.skipped.append("scale (FAISS backend only: a Milvus cluster is scaled by Milvus)")
        return report
    for total in options.scale_sizes:
        report.scale.append(measure_scale(settings, seed, searcher.embeddings, total, questions[:options.scale_queries]))
        gc.collect()
    if not options.scale_sizes:
        report.skipped.append("scale")
    return report


# =================================================================================================
# Text report
# =================================================================================================


def _latency(latency: Latency | None) -> str:
    if latency is None:
        return "unavailable"
    return f"p50 {latency.p50_ms:.1f} ms, p95 {latency.p95_ms:.1f} ms"


def render(report: BenchReport) -> str:
    lines = [f"machine: {report.cpu_count} CPUs, torch threads {report.torch_threads}, "
             f"embedding backend {report.embedding_backend}"]
    t = report.throughput
    if t:
        lines.append(
            f"build throughput: {t.product_articles_per_s:.2f} articles/s vs plain fp32 "
            f"{t.baseline_articles_per_s:.2f} articles/s = {t.ratio:.2f}x  ({t.articles} articles, {t.texts} texts; "
            f"cosine to fp32 mean {t.mean_cosine:.4f}, min {t.min_cosine:.4f})  [target >= 2x]")
    q = report.queries
    if q:
        lines.append(f"query embedding alone: {_latency(q.embed)}  ({q.questions} questions)")
        lines.append(f"search: {_latency(q.search)}; p50 = {q.search_p50_ratio:.2f}x the embedding  [target <= 1.3x]")
        if q.ask:
            lines.append(f"extractive ask: {_latency(q.ask)}; p50 = {q.ask_p50_ratio:.2f}x the embedding  [target p95 < 150 ms]")
            if q.ask_embedding_sentences:
                u = q.ask_embedding_sentences
                lines.append(f"extractive ask, sentences embedded as met (Milvus): {_latency(u)}; "
                             f"with the index's sentence vectors p50 {q.ask.p50_ms / u.p50_ms:.2f}x, p95 {q.ask.p95_ms / u.p95_ms:.2f}x of it")
        else:
            lines.append(f"extractive ask: unavailable ({q.ask_unavailable})")
    if report.first_build:
        b = report.first_build
        lines.append(f"first build: {b.seconds:.1f} s for {b.articles} articles, peak RSS {b.peak_rss_mb:.0f} MiB  [target < 3 min]")
    if report.serving:
        s = report.serving
        lines.append(f"serving process: RSS {s.rss_mb:.0f} MiB (peak {s.peak_rss_mb:.0f}), {s.loaded}  [target < 1.5 GB]")
    for run in report.scale:
        lines.append(
            f"scale {run.articles:,} articles / {run.windows:,} windows ({run.article_index} + {run.window_index}, "
            f"built in {run.build_seconds:.0f} s): search {_latency(run.search)}  [target p95 < 100 ms]; "
            f"dense {_latency(run.dense)}; keyword {_latency(run.keyword)}, reading {run.postings_per_query:,.0f} "
            f"postings a query ({run.postings_share:.2%} of all); memory: vectors {run.vector_memory_mb:.0f} MiB, "
            f"keywords {run.keyword_memory_mb:.0f} MiB, process RSS {run.process_rss_mb:.0f} MiB")
    if report.skipped:
        lines.append(f"skipped: {', '.join(report.skipped)}")
    return "\n".join(lines)
