"""政策问答 (policy QA): answers questions about government policy from gazettes, citing clauses.

The data flows through one module per step:

    qa.loaders   files (TXT/PDF/DOCX/HTML/MD) -> text
    qa.documents gazette text -> Document records (title, 文号, issuer, date, region)
    qa.articles  Document -> Article records (第X条 / 一、/（一）/1. clauses with heading paths)
    qa.corpus    the corpus folder -> all Documents and Articles
    qa.embedding the offline sentence-transformers model (LangChain Embeddings)
    qa.index     FAISS + jieba/BM25 index on disk, incremental
    qa.retrieval hybrid retrieval, direct article lookup, filters (LangChain BaseRetriever)
    qa.evaluate  retrieval figures on a question set
    qa.cli       `python -m qa ...`
"""

__version__ = "0.1.0"
