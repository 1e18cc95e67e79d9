"""The benchmark's machinery and the large-corpus index types, on the small hand-made corpus with
the real model. No timing targets here: those are the benchmark's to report."""

from __future__ import annotations

import dataclasses
import json
import math

import faiss
import numpy as np
import pytest

pytest.register_assert_rewrite("fixtures_index")

from fixtures_index import QUESTIONS  # noqa: E402
from qa import bench  # noqa: E402
from qa.cli import build_parser  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.index import make_vector_index  # noqa: E402
from qa.keywords import tokenize  # noqa: E402
from qa.retrieval import HybridSearcher  # noqa: E402

pytest_plugins = ["fixtures_index"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unit_vectors(n: int, d: int = 32, seed: int = 3) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- IVF for the largest corpora ------------------------------------------------------------------


def test_ivf_is_chosen_past_its_threshold_and_reads_vectors_back(tmp_path):
    vectors = _unit_vectors(4000)
    settings = Settings(hnsw_threshold=100, ivf_threshold=2000, ivf_nprobe=8)
    index, kind = make_vector_index(vectors, settings)
    assert kind == f"IVF{round(math.sqrt(4000))},SQ8" and isinstance(index, faiss.IndexIVFScalarQuantizer)
    assert index.ntotal == 4000 and index.nprobe == 8 and index.metric_type == faiss.METRIC_INNER_PRODUCT
    path = str(tmp_path / "ivf.faiss")
    faiss.write_index(index, path)
    loaded = faiss.read_index(path)
    assert faiss.extract_index_ivf(loaded).nprobe == 8  # the search setting travels with the file
    # retrieval reads article vectors back by number: 8-bit storage, so close but not exact
    assert np.abs(loaded.reconstruct(123) - vectors[123]).max() < 0.02
    assert np.allclose(loaded.reconstruct_n(10, 5), vectors[10:15], atol=0.02)
    scores, ids = loaded.search(vectors[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95
    assert scores[0][0] == pytest.approx(1.0, abs=0.02)


def test_size_tiers_flat_hnsw_ivf():
    settings = Settings(hnsw_threshold=50, ivf_threshold=1000)
    kinds = [make_vector_index(_unit_vectors(n), settings)[1] for n in (49, 50, 999, 1000)]
    assert kinds[:3] == ["FlatIP", "HNSWFlat", "HNSWFlat"] and kinds[3].startswith("IVF")


# -- the synthetic corpus -------------------------------------------------------------------------


def test_synthetic_bm25_matches_bm25s_when_nothing_is_perturbed(small_searcher, monkeypatch):
    """With no terms dropped and one copy, the benchmark's BM25 postings are the index's own: the
    scores it times are real BM25 scores."""
    import bm25s

    from qa.index import passage_text

    monkeypatch.setattr(bench, "DROPPED_TERM_SHARE", 0.0)
    seed = small_searcher.index
    # jieba's user dictionary is global and only grows: another test's index (region_searcher in
    # test_retrieval.py) may have changed how the seed's passages tokenise since the seed was built.
    # So the seed's BM25 is made again here as the build makes it, with the tokens of this moment,
    # the ones synthetic_keywords reads.
    keywords = bm25s.BM25(k1=seed.keywords.k1, b=seed.keywords.b)
    keywords.index([tokenize(passage_text(a)) or ["<empty>"] for a in seed.articles], show_progress=False)
    seed = dataclasses.replace(seed, keywords=keywords)
    synthetic = bench.synthetic_keywords(seed, len(seed.articles), Settings(), np.random.default_rng(0))
    for question, *_ in QUESTIONS:
        tokens = [t for t in tokenize(question) if t in seed.keywords.vocab_dict]
        assert np.allclose(synthetic.get_scores(tokens), seed.keywords.get_scores(tokens), rtol=1e-4, atol=1e-5)


def test_a_synthetic_corpus_repeats_the_seed_and_is_searchable(small_searcher, small_settings):
    seed = small_searcher.index
    total = len(seed.articles) * 3 + 2
    loaded, kinds, seconds, vector_mb, keyword_mb = bench.synthetic_index(seed, total, small_settings)
    assert loaded.vectors.ntotal == len(loaded.articles) == total
    assert loaded.windows.ntotal == loaded.manifest.window_start[-1] == len(loaded.window_owner)
    assert loaded.keywords.scores["num_docs"] == total and keyword_mb > 0
    # copy j of seed article i: same article, a nearby vector, its own seed's windows
    j = len(seed.articles) + 1
    assert loaded.articles[j] is seed.articles[1]
    assert float(loaded.vectors.reconstruct(j) @ seed.vectors.reconstruct(1)) == pytest.approx(
        bench.PERTURBED_COSINE, abs=0.03)
    start, end = loaded.manifest.window_start[j], loaded.manifest.window_start[j + 1]
    assert end - start == seed.manifest.window_start[2] - seed.manifest.window_start[1]
    assert set(loaded.window_owner[start:end]) == {j}
    searcher = HybridSearcher(small_settings, index=loaded, embeddings=small_searcher.embeddings)
    question, source_file, _, quote = QUESTIONS[0]
    hits = searcher.search(question, k=3)
    assert any(h.article.document.source_file == source_file and quote in h.article.text for h in hits)


# -- a whole (small) run and the command line -----------------------------------------------------


def test_a_small_run_reports_every_section(small_settings, small_searcher, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{n}", "question": q, "gold": [{"quote": g}]}, ensure_ascii=False) + "\n"
                                 for n, (q, _, _, g) in enumerate(QUESTIONS)), encoding="utf-8")
    options = bench.BenchOptions(questions, build_articles=3, first_build=False, scale_sizes=(60,), scale_queries=3)
    report = bench.run_bench(small_settings, options, lambda settings: small_searcher)
    t = report.throughput
    assert t.articles == 3 and t.texts >= 3 and t.ratio > 0 and t.min_cosine > 0.9
    q = report.queries
    assert q.questions == len(QUESTIONS) and q.search.p50_ms > 0 and q.search_p50_ratio > 0
    assert (q.ask is not None) != bool(q.ask_unavailable)
    assert report.serving.rss_mb > 0
    assert report.first_build is None and "first_build" in report.skipped
    (run,) = report.scale
    assert run.articles == 60 and run.article_index == "FlatIP" and run.search.count == 3
    assert 0 < run.postings_share < 1  # BM25 reads the query terms' postings, not every article
    assert json.loads(report.to_json())["scale"][0]["articles"] == 60
    text = bench.render(report)
    assert "build throughput" in text and "scale 60 articles" in text


def test_bench_is_a_cli_command():
    args = build_parser().parse_args(["bench", "--quick", "--json", "--sizes", "1000,5000", "--skip-first-build"])
    assert args.func.__name__ == "cmd_bench" and args.quick and args.json and args.sizes == "1000,5000"
