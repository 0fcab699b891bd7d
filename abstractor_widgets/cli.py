"""The ``abstractor`` command.

::

    abstractor train --corpus PATH --topics K --out artifacts/NAME
    abstractor info artifacts/NAME [--verify] [--json]
    abstractor convert OLD NEW --trust-pickles
    abstractor query artifacts/NAME "text" [-n 5] [--json]
    abstractor fetch arxiv --category stat.ML --out corpus.parquet
    abstractor update artifacts/NAME --corpus new.parquet
    abstractor serve artifacts/NAME [--port 8000] [--workers N]
    abstractor dashboard artifacts/NAME [--port 8866] [--max-kernels N] [--edit-labels]

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
    """Describe an artifact from its manifest alone: no model file is opened."""
    from .store import artifact_digest, check_digest, read_manifest, verify_artifacts

    manifest = read_manifest(args.artifact)
    check_digest(manifest, args.digest, args.artifact)
    if args.verify:
        verify_artifacts(args.artifact, manifest, checksums=True)
    digest = artifact_digest(manifest)
    if args.json:
        print(json.dumps({**{k: v for k, v in manifest.items() if k != "files"}, "digest": digest},
                         indent=2, ensure_ascii=False))
        return 0
    corpus = manifest.get("corpus", {})
    print(f"{args.artifact}: {manifest['n_topics']} topics, {manifest.get('n_documents', '?'):,} documents, "
          f"metric {manifest['metric']}, format {manifest['format_version']}")
    print(f"created {manifest.get('created', '?')} with " + ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items()))
    print(f"corpus: {corpus.get('name', '?')} ({corpus.get('size', '?')} documents, sha256 {str(corpus.get('sha256', '?'))[:12]})")
    size = sum(int(f.get("bytes", 0)) for f in manifest["files"].values())
    print(f"files: {len(manifest['files'])}, {size / 2**20:,.1f} MiB" + (" (all checksums verified)" if args.verify else ""))
    print(f"digest: {digest}  (pin it: --digest or $ABSTRACTOR_ARTIFACT_SHA256)")
    for k, label in enumerate(manifest["labels"]):
        print(f"  {k:>2} {label}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .legacy import convert_pickled_artifact
    from .store import artifact_digest

    if not args.trust_pickles:
        print("abstractor: error: converting runs the code stored in the old model's pickles; add --trust-pickles "
              "only for a model from a source you trust", file=sys.stderr)
        return 2
    out = convert_pickled_artifact(args.source, args.target, trust_pickles=True)
    print(f"converted {args.source} -> {out} (pickle-free format); digest {artifact_digest(out)}")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from .abstractor import Abstractor

    ab = Abstractor.load(args.artifact, expected_digest=args.digest)
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

    ab = Abstractor.load(args.artifact, expected_digest=args.digest)
    before = len(ab)
    start = time.perf_counter()
    added = ab.update(args.corpus)
    print(f"added {added:,} documents to {args.artifact} ({before:,} -> {len(ab):,}) in {time.perf_counter() - start:.1f} s")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .service import serve

    serve(args.artifact, host=args.host, port=args.port, workers=args.workers, cors_origins=args.cors_origin,
          rate_limit=args.rate_limit, rate_burst=args.rate_burst, access_log=args.access_log)
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

    digest_help = "refuse the model unless its manifest digest is this (see `abstractor info`; default $ABSTRACTOR_ARTIFACT_SHA256)"
    info = sub.add_parser("info", help="describe a saved model (reads its manifest only)")
    info.add_argument("artifact", type=Path)
    info.add_argument("--json", action="store_true")
    info.add_argument("--verify", action="store_true", help="also check every file's size and sha256")
    info.add_argument("--digest", default=None, help=digest_help)
    info.set_defaults(func=_cmd_info)

    convert = sub.add_parser("convert", help="convert a model of the old pickled format (trusted models only)")
    convert.add_argument("source", type=Path, help="the old (format 1) artifact")
    convert.add_argument("target", type=Path, help="where to write the pickle-free artifact (may be the same)")
    convert.add_argument("--trust-pickles", action="store_true",
                         help="required: loading the old format runs code stored in its files")
    convert.set_defaults(func=_cmd_convert)

    query = sub.add_parser("query", help="colour a text and list similar papers")
    query.add_argument("artifact", type=Path)
    query.add_argument("text", help="the text, or - to read standard input")
    query.add_argument("-n", type=_positive, default=5, help="number of similar papers")
    query.add_argument("--method", choices=("hybrid", "lexical", "lda"), default=None,
                       help="ranking of similar papers (default: hybrid when the model has a lexical index)")
    query.add_argument("--json", action="store_true")
    query.add_argument("--digest", default=None, help=digest_help)
    query.set_defaults(func=_cmd_query)

    update = sub.add_parser("update", help="add documents to a saved model (online LDA update, no retraining)")
    update.add_argument("artifact", type=Path)
    update.add_argument("--corpus", required=True, type=Path, help="file with the new documents")
    update.add_argument("--digest", default=None, help=digest_help)
    update.set_defaults(func=_cmd_update)

    serve = sub.add_parser("serve", help="HTTP API and web dashboard over a saved model (uvicorn; see docs/service.md)")
    serve.add_argument("artifact", type=Path)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes sharing the memory-mapped model")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser calls from this origin (repeatable; '*' for any); none by default")
    serve.add_argument("--rate-limit", default=None, metavar="R/s",
                       help="requests per client IP and worker, e.g. 20/s or 600/min; off by default")
    serve.add_argument("--rate-burst", type=_positive, default=None, help="bucket size of the rate limit (default 2x the rate)")
    serve.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    serve.set_defaults(func=_cmd_serve)

    for name in ("harvest", "voila"):  # fetch; dashboard (abstractor_widgets.voila)
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
