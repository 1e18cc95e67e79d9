"""`python app.py [--host 127.0.0.1] [--port 7860] [--llm-base-url URL --llm-model NAME]`: the product
on the corpus in corpus/.

Builds what is missing first (the embedding model and the index, with progress in the terminal),
then serves on one server (qa/web): the citizens' chat, the staff search desk, the document browser
and the admin tab at /, the embeddable widget at /widget, and the JSON API under /api.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Nothing may leave the machine at run time (Gradio would otherwise send usage analytics).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="政策问答 web app")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--llm-base-url", help="OpenAI-compatible endpoint for written answers, e.g. http://127.0.0.1:8000/v1 (default: none, extractive answers)")
    parser.add_argument("--llm-model", help="model name at that endpoint")
    args = parser.parse_args(argv)

    import uvicorn

    from qa.config import load_settings
    from qa.embedding import PolicyEmbeddings
    from qa.generation import probe
    from qa.searchers import open_searcher, ready_index
    from qa.web import create_app
    from qa.web.server import raise_open_file_limit, uvicorn_config
    from qa.web.library import Library, limit_compute_threads, serving_settings

    settings = load_settings(llm_base_url=args.llm_base_url, llm_model=args.llm_model)
    embeddings = PolicyEmbeddings(settings)  # one model for the build and for serving
    print("checking the index (first run builds it)…", file=sys.stderr)
    report = ready_index(settings, embeddings, progress=True)  # a missing or damaged index is named, then rebuilt
    print(report.summary() if report else f"{settings.vector_backend} index ready", file=sys.stderr)
    # The build used every core; serving runs requests in parallel, one compute thread each.
    limit_compute_threads(settings.serve_compute_threads)
    settings = serving_settings(settings)
    library = Library(settings, open_searcher(settings, embeddings=PolicyEmbeddings(settings)))
    app = create_app(settings, library)
    print(probe(settings), file=sys.stderr)
    warm_up(library)
    admin = "on" if settings.admin_token else "off (set QA_ADMIN_TOKEN to enable)"
    origins = settings.allowed_frame_ancestors.split() or ["none (set QA_ALLOWED_FRAME_ANCESTORS to let a site embed the widget)"]
    print(f"widget may be embedded by: {', '.join(origins)}", file=sys.stderr)
    print(f"政策问答 on http://{args.host}:{args.port}/  widget: /widget  API: /api/ask, /api/search  admin: {admin}", file=sys.stderr)
    # Access lines (with client addresses) are logged at INFO: only when QA_ACCESS_LOG asks for them.
    level = "info" if settings.access_log else "warning"
    raise_open_file_limit()
    config = uvicorn_config(app, settings, args.host, args.port, log_level=level, access_log=settings.access_log)
    uvicorn.Server(config).run()
    return 0


WARM_UP_QUESTION = "12345热线的通话录音保存多久？"


def warm_up(library) -> None:
    """One extractive answer before the address is announced: it loads what the first citizen's
    question would otherwise wait for (the serving model, the judge, the word statistics; 11-17 s
    measured on 2 cores), and never calls an LLM endpoint."""
    from dataclasses import replace

    from qa.answering import Answerer

    started = time.perf_counter()
    try:
        Answerer(replace(library.settings, llm_base_url=""), searcher=library.searcher).answer(WARM_UP_QUESTION)
        library.answerer  # made now too (its LLM client, when one is configured)
    except Exception as error:  # a corpus without that clause, say: serve anyway, the first answer warms up
        print(f"warm-up answer failed ({type(error).__name__}: {error}); serving anyway", file=sys.stderr)
        return
    print(f"ready to answer (warmed up in {time.perf_counter() - started:.1f}s)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
