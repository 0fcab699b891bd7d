"""The ``abstractor`` command.

::

    abstractor train --corpus PATH --topics K --out artifacts/NAME
    abstractor info artifacts/NAME
    abstractor query artifacts/NAME "text" [-n 5] [--json]
    abstractor fetch arxiv --category stat.ML --out corpus.parquet
    abstractor update artifacts/NAME --corpus new.parquet

Errors (bad files, corrupt models, bad arguments) print one clear line to stderr and
exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .corpus import CORPUS_ENV_VAR, CorpusError


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _cmd_train(args: argparse.Namespace) -> int:
    from .abstractor import Abstractor
    from .corpus import load_corpus

    corpus = load_corpus(args.corpus, categories=args.categories, limit=args.limit, progress=True)
    print(f"corpus: {len(corpus):,} documents from {corpus.name}", file=sys.stderr)
    params = {"random_state": args.seed}
    for name in ("passes", "iterations", "chunksize"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.workers is not None:
        params["workers"] = args.workers or None  # 0 = LdaModel, as TopicModel's None
    start = time.perf_counter()
    ab = Abstractor.train(corpus, args.topics, out=args.out, metric=args.metric, lexical=not args.no_lexical,
                          progress=True, **params)
    elapsed = time.perf_counter() - start
    print(f"trained {args.topics} topics on {len(corpus):,} documents in {elapsed:.1f} s -> {args.out}")
    if not args.no_coherence:
        words = ab.model.preprocessor_.transform(corpus.texts[: args.coherence_docs], progress=False)
        for measure in ("c_v", "u_mass"):
            print(f"coherence {measure}: {ab.model.coherence(measure, texts=words):.4f}")
    _print_topics(ab)
    return 0


def _print_topics(ab) -> None:
    for topic in ab.topics:
        terms = ", ".join(t for t, _ in topic["terms"])
        print(f"  {topic['id']:>2} {topic['label']}: {terms}")


def _cmd_info(args: argparse.Namespace) -> int:
    from .abstractor import Abstractor

    ab = Abstractor.load(args.artifact)
    manifest = ab.manifest
    if args.json:
        print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2, ensure_ascii=False))
        return 0
    corpus = manifest.get("corpus", {})
    print(f"{args.artifact}: {ab.n_topics} topics, {len(ab):,} documents, metric {manifest['metric']}")
    print(f"created {manifest['created']} with " + ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))
    print(f"corpus: {corpus.get('name', '?')} ({corpus.get('size', '?')} documents, sha256 {str(corpus.get('sha256', '?'))[:12]})")
    _print_topics(ab)
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from .abstractor import Abstractor

    ab = Abstractor.load(args.artifact)
    text = sys.stdin.read() if args.text == "-" else args.text
    analysis = ab.analyze(text, n=args.n, method=args.method)
    if args.json:
        print(json.dumps({"spans": analysis.spans, "doc_topics": analysis.doc_topics, "similar": analysis.similar,
                          "reason": analysis.reason}, ensure_ascii=False))
        return 0
    if analysis.reason:
        print(analysis.reason)
        return 0
    labels = ab.model.labels_
    mix = sorted(enumerate(analysis.doc_topics), key=lambda kv: -kv[1])
    print("topics: " + ", ".join(f"{labels[k]} {w:.0%}" for k, w in mix if w >= 0.05))
    print("words:  " + " ".join(f"{s['text']}[{s['topic']}]" for s in analysis.spans if s["topic"] is not None))
    print("similar:")
    for hit in analysis.similar:
        print(f"  {hit['score']:.3f}  {hit['title']}  {hit['url']}")
        if hit["shared_terms"]:
            print(f"         shared terms: {', '.join(hit['shared_terms'])}")
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    from .abstractor import Abstractor

    ab = Abstractor.load(args.artifact)
    before = len(ab)
    start = time.perf_counter()
    added = ab.update(args.corpus)
    print(f"added {added:,} documents to {args.artifact} ({before:,} -> {len(ab):,}) in {time.perf_counter() - start:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``abstractor``."""
    parser = argparse.ArgumentParser(prog="abstractor", description="LDA topics and similar papers for research abstracts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on a corpus and save it")
    train.add_argument("--corpus", help=f"corpus file (.parquet/.csv/.jsonl/arXiv snapshot); default: ${CORPUS_ENV_VAR} or the shared arXiv corpus")
    train.add_argument("--topics", type=_positive, default=20, help="number of topics (default 20)")
    train.add_argument("--out", required=True, type=Path, help="artifact directory to write, e.g. artifacts/NAME")
    train.add_argument("--passes", type=_positive, default=None, help="passes over the corpus (default: TopicModel's, 2)")
    train.add_argument("--iterations", type=_positive, default=None)
    train.add_argument("--chunksize", type=_positive, default=None, help="documents per online update (default 2000)")
    train.add_argument("--workers", type=int, default=None, help="LdaMulticore workers (default 0 = LdaModel)")
    train.add_argument("--no-lexical", action="store_true", help="no BM25 index: similar papers ranked by topics only")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--metric", choices=("hellinger", "cosine"), default="hellinger")
    train.add_argument("--categories", nargs="*", help="keep only these arXiv categories (cs.* for an archive)")
    train.add_argument("--limit", type=_positive, help="use at most this many documents")
    train.add_argument("--no-coherence", action="store_true", help="skip the coherence report")
    train.add_argument("--coherence-docs", type=_positive, default=20_000, help="documents used for coherence")
    train.set_defaults(func=_cmd_train)

    info = sub.add_parser("info", help="describe a saved model")
    info.add_argument("artifact", type=Path)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_info)

    query = sub.add_parser("query", help="colour a text and list similar papers")
    query.add_argument("artifact", type=Path)
    query.add_argument("text", help="the text, or - to read standard input")
    query.add_argument("-n", type=_positive, default=5, help="number of similar papers")
    query.add_argument("--method", choices=("hybrid", "lexical", "lda"), default=None,
                       help="ranking of similar papers (default: hybrid when the model has a lexical index)")
    query.add_argument("--json", action="store_true")
    query.set_defaults(func=_cmd_query)

    update = sub.add_parser("update", help="add documents to a saved model (online LDA update, no retraining)")
    update.add_argument("artifact", type=Path)
    update.add_argument("--corpus", required=True, type=Path, help="file with the new documents")
    update.set_defaults(func=_cmd_update)

    for name in ("harvest",):
        module = _optional(name)
        if module is not None:
            module.register_cli(sub)
    return parser


def _optional(name: str):
    from importlib import import_module

    try:
        return import_module(f".{name}", __package__)
    except ModuleNotFoundError as exc:
        if exc.name == f"{__package__}.{name}":
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    from .store import ArtifactError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (CorpusError, ArtifactError, ValueError, TypeError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"abstractor: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("abstractor: interrupted (nothing was written)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
