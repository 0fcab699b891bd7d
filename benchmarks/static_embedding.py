"""What the static embeddings cost: query encoding, ``analyze``, memory per process, disk.

``python -m benchmarks.static_embedding --artifact artifacts/default [--texts 300]``

The artifact must have static embeddings (``abstractor embed``). Measured side by side:

1. **Encoding one query** (``StaticEmbedding.encode_one``): ``--texts`` held-out abstracts
   (the last papers of the shared corpus are not used by any choice here; they are
   simply texts), p50 / p95 in ms.
2. **``analyze(text, n=5)``**: the same artifact loaded twice in one process, with and
   without its embeddings, queried in alternation text by text (one BLAS thread), so the
   ratio is free of the machine's speed of the moment.
3. **Memory per process**: a fresh process loads the artifact (memory-mapped, as every
   kernel and worker does) and answers ``--texts`` queries, once with and once without the
   embeddings; PSS (proportional set size: shared pages divided among the processes that
   map them) and RSS after the queries, and their difference.
4. **Disk**: the ``embedding.*`` files' sizes.

Writes ``benchmarks/results/static_embedding.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, load_average, log, machine_info, percentiles, time_calls, write_json

ROOT = Path(__file__).resolve().parent.parent


def held_out_texts(n: int, offset: int = 0) -> list[str]:
    """``n`` abstracts from the end of the shared corpus (``offset`` more before them)."""
    import pandas as pd

    from abstractor_widgets.corpus import default_corpus_path

    frame = pd.read_parquet(default_corpus_path(), columns=["abstract"])
    end = len(frame) - offset
    return frame["abstract"].iloc[end - n : end].tolist()


#: Other abstracts analysed before any timing: the tokenizer's word cache in the steady
#: state of a server that has seen some queries, but not the timed texts.
WARM_TEXTS = 1000


def memory_child(artifact: str, with_embedding: bool, n_texts: int) -> dict[str, float]:
    """Run in a fresh process: load, query, report PSS and RSS (MiB)."""
    import psutil

    from abstractor_widgets import Abstractor

    if not with_embedding:  # as if the artifact had none: its files are never opened
        import abstractor_widgets.abstractor as facade

        facade.load_embedding = lambda *args, **kwargs: None
    ab = Abstractor.load(artifact)
    for text in held_out_texts(n_texts):
        ab.analyze(text, n=5)
    info = psutil.Process().memory_full_info()
    return {"pss_mib": info.pss / 2**20, "rss_mib": info.rss / 2**20}


def measure_memory(artifact: Path, n_texts: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, flag in (("without", "0"), ("with", "1")):
        code = ("import json, sys; from benchmarks.static_embedding import memory_child; "
                f"print(json.dumps(memory_child({str(artifact)!r}, {flag} == '1', {n_texts})))")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    out["pss_added_mib"] = round(out["with"]["pss_mib"] - out["without"]["pss_mib"], 1)
    out["rss_added_mib"] = round(out["with"]["rss_mib"] - out["without"]["rss_mib"], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=ROOT / "artifacts" / "default")
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS / "static_embedding.json")
    args = parser.parse_args(argv)

    from abstractor_widgets import Abstractor
    from abstractor_widgets.ranking import single_threaded_blas
    from abstractor_widgets.store import read_manifest

    manifest = read_manifest(args.artifact)
    if not manifest.get("embedding"):
        raise SystemExit(f"{args.artifact} has no static embeddings: run abstractor embed first")
    report: dict[str, Any] = {"machine": machine_info(), "artifact": str(args.artifact), "load_before": load_average()}
    texts = held_out_texts(args.texts)
    with_embedding = Abstractor.load(args.artifact)
    without = Abstractor.load(args.artifact)
    without.embedding = None
    embedding = with_embedding.embedding
    with single_threaded_blas():
        log(f"warming both models' tokenizers with {WARM_TEXTS} other abstracts")
        for text in held_out_texts(WARM_TEXTS, offset=args.texts):
            with_embedding.analyze(text, n=5)
            without.analyze(text, n=5)
        log(f"encoding {len(texts)} texts one by one (first sight of each text's new words included)")
        report["encode_ms"] = percentiles(time_calls(embedding.encode_one, texts, warmup=0))
        report["encode_library_ms"] = percentiles(time_calls(lambda t: embedding.encode([t]), texts, warmup=0))
        times: dict[str, list[float]] = {"with": [], "without": []}
        for i, text in enumerate(texts):
            order = (("with", with_embedding), ("without", without)) if i % 2 else (("without", without), ("with", with_embedding))
            for label, ab in order:
                times[label] += time_calls(lambda t: ab.analyze(t, n=5), [text], warmup=0)
    report["analyze_ms"] = {label: percentiles(values) for label, values in times.items()}
    report["analyze_ratio_p50"] = round(report["analyze_ms"]["with"]["p50"] / report["analyze_ms"]["without"]["p50"], 3)
    log("memory: two fresh processes")
    report["memory"] = measure_memory(args.artifact, args.texts)
    entry = manifest["embedding"]
    report["disk_mib"] = {name: round(manifest["files"][name]["bytes"] / 2**20, 2) for name in entry["files"]}
    report["embedding"] = {k: v for k, v in entry.items() if k != "files"}
    report["load_after"] = load_average()
    write_json(args.out, report)
    print(f"encode one query: p50 {report['encode_ms']['p50']:.3f} ms, p95 {report['encode_ms']['p95']:.3f} ms "
          f"(model2vec's own encode: {report['encode_library_ms']['p50']:.3f} / {report['encode_library_ms']['p95']:.3f} ms)")
    a = report["analyze_ms"]
    print(f"analyze(n=5): with {a['with']['p50']:.2f} ms p50 / {a['with']['p95']:.2f} p95; without "
          f"{a['without']['p50']:.2f} / {a['without']['p95']:.2f} ms (ratio {report['analyze_ratio_p50']})")
    m = report["memory"]
    print(f"memory per process after {args.texts} queries: PSS +{m['pss_added_mib']} MiB, RSS +{m['rss_added_mib']} MiB")
    print(f"disk: {report['disk_mib']}; load {report['load_before']} -> {report['load_after']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
