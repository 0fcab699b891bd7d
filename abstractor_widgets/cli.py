"""The ``abstractor`` command.

::

    abstractor train --corpus PATH --topics K --out artifacts/NAME
    abstractor info artifacts/NAME [--verify] [--json]
    abstractor convert OLD NEW --trust-pickles
    abstractor map artifacts/NAME [--copy-to DIR]
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
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .corpus import CORPUS_ENV_VAR, CorpusError


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


#: ``abstractor train`` builds in stages (streamed, resumable) from corpus files this large up.
STAGED_MIN_BYTES = 256 * 2**20


def _wants_staged(args: argparse.Namespace) -> bool:
    if args.staged is not None:
        return args.staged
    if not args.corpus:
        return False
    path = Path(args.corpus)
    return path.is_file() and path.stat().st_size >= STAGED_MIN_BYTES


def _cmd_train_staged(args: argparse.Namespace) -> int:
    from .build import BuildSettings, StagedBuild

    if not args.corpus:
        raise CorpusError("a staged build needs --corpus FILE")
    if args.static_model is not None or args.workers:
        raise CorpusError("--static-model and --workers are not available in a staged build: "
                          "add embeddings afterwards with `abstractor embed`")
    values = {"n_topics": args.topics, "seed": args.seed, "metric": args.metric, "lexical": not args.no_lexical,
              "categories": tuple(args.categories) if args.categories else None, "limit": args.limit}
    for name in ("passes", "iterations", "chunksize", "lda_sample"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.jobs is not None:
        values["jobs"] = args.jobs
    build = StagedBuild(args.corpus, args.out, BuildSettings(**values), work_dir=args.work_dir, restart=args.restart)
    done = build.finished_stages()
    if done:
        print(f"resuming the build in {build.work}: finished stages {', '.join(done)}", file=sys.stderr)
    start = time.perf_counter()
    try:
        build.run()
    except KeyboardInterrupt:
        done = build.finished_stages()
        print(f"\ninterrupted; finished stages: {', '.join(done) or 'none'}. Rerun the same command to resume "
              f"(the work files are in {build.work}); no artifact was written.", file=sys.stderr)
        return 130
    from .store import read_manifest

    manifest = read_manifest(args.out)
    print(f"trained {args.topics} topics on {manifest['n_documents']:,} documents in {time.perf_counter() - start:.1f} s "
          f"(staged build) -> {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .abstractor import Abstractor
    from .corpus import load_corpus

    if _wants_staged(args):
        return _cmd_train_staged(args)
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
                          static_model=args.static_model, progress=True, **params)
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
    embedding = manifest.get("embedding")
    if isinstance(embedding, dict):
        source = embedding.get("source") or {}
        print(f"static embeddings: {embedding.get('dim')} dimensions, {embedding.get('vocabulary', '?'):,} tokens "
              f"(teacher {source.get('teacher', '?')})")
    elif manifest.get("lexical"):
        print("static embeddings: none (add them: scripts/distill_static.sh, then abstractor embed ARTIFACT)")
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


def _load_target(args: argparse.Namespace):
    """``(path, Abstractor)`` of the artifact a command rewrites: ``--copy-to`` (a copy of
    ARTIFACT, which stays unchanged) or ARTIFACT itself."""
    import shutil

    from .abstractor import Abstractor

    path = Path(args.artifact)
    if args.copy_to:
        shutil.copytree(path, args.copy_to)
        path = Path(args.copy_to)
    return path, Abstractor.load(path, warm=False, expected_digest=args.digest)


def _cmd_map(args: argparse.Namespace) -> int:
    path, ab = _load_target(args)
    corpus_map = ab.build_map(n_neighbors=args.n_neighbors, max_fit=args.max_fit)
    print(f"{path}: corpus map of {len(corpus_map):,} papers in {corpus_map.fit_seconds_:.1f} s")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    path, ab = _load_target(args)
    start = time.perf_counter()
    embedding = ab.add_embedding(args.static_model)
    print(f"{path}: static embeddings of {len(embedding):,} papers ({embedding.dim} dimensions) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def _add_fetch(sub: Any) -> None:
    """``abstractor fetch arxiv ...``: the OAI-PMH harvester (abstractor_widgets.harvest)."""
    from .harvest import (
        ARXIV_MIN_DELAY,
        CONTACT_ENV_VAR,
        DEFAULT_BASE_URL,
        MAX_DECOMPRESSED_BYTES,
        MAX_RESPONSE_BYTES,
    )

    fetch = sub.add_parser(
        "fetch", help="download a corpus", description="Download a corpus of abstracts."
    )
    sources = fetch.add_subparsers(dest="fetch_source", metavar="SOURCE", required=True)
    arxiv = sources.add_parser(
        "arxiv",
        help="harvest arXiv metadata over OAI-PMH (resumable)",
        description=(
            "Harvest arXiv abstracts over OAI-PMH into a corpus file. Polite (one request every "
            "--delay seconds, honours Retry-After), retries transient failures, and resumes an "
            "interrupted harvest when the same command is run again."
        ),
    )
    arxiv.add_argument("--category", default="stat.ML", metavar="CAT", help="category to keep, e.g. stat.ML, 'cs.*', or '*' for the whole --set (default: stat.ML)")
    arxiv.add_argument("--set", dest="set_spec", default=None, metavar="SET", help="OAI set to request (default: derived from --category)")
    arxiv.add_argument("--from", dest="from_date", metavar="DATE", default=None, help="first datestamp, YYYY-MM-DD")
    arxiv.add_argument("--until", metavar="DATE", default=None, help="last datestamp, YYYY-MM-DD")
    arxiv.add_argument("--max", dest="max_records", metavar="N", type=int, default=None, help="stop after N documents")
    arxiv.add_argument("--out", required=True, type=Path, metavar="PATH", help="corpus file to write (.parquet)")
    arxiv.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL", help=f"OAI-PMH endpoint (default: {DEFAULT_BASE_URL})")
    arxiv.add_argument("--delay", type=float, default=ARXIV_MIN_DELAY, metavar="S", help="seconds between requests (default: 3)")
    arxiv.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds (default: 30)")
    arxiv.add_argument("--retries", dest="max_retries", type=int, default=5, metavar="N", help="retries per request (default: 5)")
    arxiv.add_argument("--backoff", type=float, default=None, metavar="S", help="first retry wait (default: --delay)")
    arxiv.add_argument("--contact", default=None, metavar="EMAIL|URL",
                       help=f"a contact address for the User-Agent, as arXiv asks (default: ${CONTACT_ENV_VAR})")
    arxiv.add_argument("--max-response-mib", type=float, default=MAX_RESPONSE_BYTES / 2**20, metavar="MiB",
                       help=f"largest response accepted (default {MAX_RESPONSE_BYTES // 2**20})")
    arxiv.add_argument("--max-decompressed-mib", type=float, default=MAX_DECOMPRESSED_BYTES / 2**20, metavar="MiB",
                       help=f"largest gzip body accepted once decompressed (default {MAX_DECOMPRESSED_BYTES // 2**20})")
    arxiv.add_argument("--restart", action="store_true", help="discard an unfinished harvest into --out instead of resuming it")
    arxiv.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    arxiv.set_defaults(func=_cmd_fetch_arxiv)


def _cmd_fetch_arxiv(args: argparse.Namespace) -> int:
    """Handle ``fetch arxiv``: harvest, print a summary, return an exit code.

    Returns
    -------
    int
        0 on success (also when no record matched), 1 on errors (a one-line message on
        stderr), 130 when interrupted.
    """
    from .harvest import HarvestError, harvest_arxiv

    try:
        result = harvest_arxiv(
            args.out,
            category=args.category or None,
            set_spec=args.set_spec,
            from_date=args.from_date,
            until=args.until,
            max_records=args.max_records,
            base_url=args.base_url,
            delay=args.delay,
            timeout=args.timeout,
            max_retries=args.max_retries,
            backoff=args.backoff,
            progress=args.progress,
            restart=args.restart,
            contact=args.contact,
            max_response_bytes=max(1, int(args.max_response_mib * 2**20)),
            max_decompressed_bytes=max(1, int(args.max_decompressed_mib * 2**20)),
        )
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (HarvestError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _add_dashboard(sub: Any) -> None:
    """``abstractor dashboard ARTIFACT``: the Voilà dashboard in public mode (abstractor_widgets.voila)."""
    from .voila import DEFAULT_HOST, DEFAULT_PORT

    parser = sub.add_parser(
        "dashboard",
        help="serve the Voilà dashboard of a model (public mode: read-only labels, kernel cap)",
        description=(
            "Verify a model's checksums once, then serve the dashboard notebook with Voilà: XSRF checks "
            "on, at most --max-kernels kernels (one more visitor gets a 'busy, try again' page), idle "
            "kernels culled after 10 minutes, topic labels read-only unless --edit-labels. Everything after "
            "--voila goes to Voilà (e.g. --voila --theme=dark)."
        ),
    )
    parser.add_argument("artifact", type=Path, help="the model directory, e.g. artifacts/default")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 publishes)")
    parser.add_argument("--max-kernels", type=int, default=None, metavar="N",
                        help="concurrent kernels at most, preheated ones included (default $ABSTRACTOR_MAX_KERNELS or 20)")
    parser.add_argument("--edit-labels", action="store_true",
                        help="let visitors rename topics (saved into the model for everybody)")
    parser.add_argument("--voila", dest="voila_args", nargs=argparse.REMAINDER, default=[], metavar="ARG",
                        help="the rest of the line: options for Voilà, e.g. --voila --theme=dark")
    parser.set_defaults(func=_cmd_dashboard)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .voila import serve

    return serve(args.artifact, port=args.port, host=args.host, max_kernels=args.max_kernels,
                 edit_labels=args.edit_labels, voila_args=list(args.voila_args or []))


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
    train.add_argument("--static-model", type=Path, default=None,
                       help="a distilled static embedding model (scripts/distill_static.sh): the hybrid's fourth signal")
    staged = train.add_argument_group(
        "staged build", f"streamed and resumable, for big corpora (default for files of {STAGED_MIN_BYTES // 2**20} MiB and more; "
        "rerun the same command to resume an interrupted build, see docs/scale.md)")
    staged.add_argument("--staged", dest="staged", action="store_true", default=None, help="build in stages whatever the size")
    staged.add_argument("--in-memory", dest="staged", action="store_false", help="train in memory whatever the size")
    staged.add_argument("--work-dir", type=Path, default=None, help="where the stages' files go (default: .NAME.build beside --out)")
    staged.add_argument("--restart", action="store_true", help="discard an earlier unfinished build and start over")
    staged.add_argument("--lda-sample", type=_positive, default=None, help="papers LDA is trained on (default 1,000,000)")
    staged.add_argument("--jobs", type=_positive, default=None, help="worker processes (default: all cores)")
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

    corpus_map = sub.add_parser("map", help="add the corpus map (2-D layout of the papers) to a saved model")
    corpus_map.add_argument("artifact", type=Path)
    corpus_map.add_argument("--copy-to", type=Path, default=None, help="write the model with its map here, leaving ARTIFACT unchanged")
    corpus_map.add_argument("--n-neighbors", type=_positive, default=15, help="UMAP neighbours (default 15)")
    corpus_map.add_argument("--max-fit", type=_positive, default=None, help="fit the layout on a sample of this many papers")
    corpus_map.add_argument("--digest", default=None, help=digest_help)
    corpus_map.set_defaults(func=_cmd_map)

    embed = sub.add_parser("embed", help="add static sentence embeddings (the hybrid's fourth signal) to a saved model")
    embed.add_argument("artifact", type=Path)
    embed.add_argument("--static-model", type=Path, required=True,
                       help="a distilled Model2Vec directory (scripts/distill_static.sh makes artifacts/static-minilm)")
    embed.add_argument("--copy-to", type=Path, default=None, help="write the model with its embeddings here, leaving ARTIFACT unchanged")
    embed.add_argument("--digest", default=None, help=digest_help)
    embed.set_defaults(func=_cmd_embed)

    _add_fetch(sub)
    _add_dashboard(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    from .store import ArtifactError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`abstractor info ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CorpusError, ArtifactError, ValueError, TypeError, KeyError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"abstractor: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("abstractor: interrupted (nothing was written)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
