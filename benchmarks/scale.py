"""All of arXiv on one machine: the 2.7M-paper model against the 60k one, side by side.

Measures, for a big artifact (built with ``abstractor train --staged`` from a 2.7M-record
snapshot, see ``docs/scale.md``) and the 60k default in the same run:

* **load**: ``Abstractor.load`` in a fresh process, without and with checksum
  verification, alternating the two models; ``--drop-caches`` (root) empties the page
  cache first for a truly cold start;
* **query**: ``analyze(text, n=10)`` on the same held-out abstracts, interleaved query by
  query (p50/p95/p99 wall and CPU time of the querying thread), one BLAS thread;
* **recall**: top-10 of the default hybrid ranking against the exhaustive candidates'
  hybrid ranking (every query term, whole posting lists) on ``--recall-queries`` abstracts;
* **memory**: PSS/USS of processes that loaded the model and answered 20 queries: the first
  and an extra one (the marginal memory of one more dashboard kernel or service worker);
* **disk**: bytes per component;
* **update**: ``Abstractor.update`` with ``--update-records`` new papers on a copy of each
  artifact;
* **build**: the stage timings the big artifact's manifest records, and the peak memory of
  the build process tree (``--build-memory``: the JSON ``/tmp/monitor.py``-style sampler wrote).

Usage::

    nice -n 5 python -m benchmarks.scale --big /work/big/arxiv-2.7m --small artifacts/default \\
        [--queries 300] [--recall-queries 100] [--update-records 10000] [--build-memory mem.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, load_average, log, machine_info, percentiles, shared_frame, write_json

ROOT = Path(__file__).resolve().parent.parent

_LOAD_CODE = """
import json, sys, time
t0 = time.perf_counter()
from abstractor_widgets import Abstractor
t1 = time.perf_counter()
model = Abstractor.load(sys.argv[1], verify=sys.argv[2] == "1", warm=False)
t2 = time.perf_counter()
model.analyze("Deep neural networks learn representations of images and text.", n=10)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2}))
"""

_MEMORY_CODE = """
import json, os, sys, psutil
from abstractor_widgets import Abstractor
model = Abstractor.load(sys.argv[1], verify=False)
texts = json.loads(sys.stdin.read())
for text in texts:
    model.analyze(text, n=10)
if sys.argv[3] == "1":  # what the corpus explorer adds: facets and trends (filters, the trends chart)
    model.trends()
info = psutil.Process().memory_full_info()
print(json.dumps({"pss_mb": info.pss / 2**20, "uss_mb": info.uss / 2**20, "rss_mb": info.rss / 2**20}), flush=True)
sys.stdin.close()
import time; time.sleep(float(sys.argv[2]))
"""


def _drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def measure_load(paths: dict[str, Path], repeat: int, drop: bool) -> dict[str, Any]:
    """Fresh-process load times, alternating the models; the first of each is after a cache drop if asked."""
    out: dict[str, Any] = {}
    for verify in (False, True):
        for name in paths:
            out.setdefault(name, {}).setdefault("verify" if verify else "mmap", [])
        for i in range(repeat):
            for name, path in paths.items():
                cold = drop and i == 0 and _drop_caches()
                result = subprocess.run([sys.executable, "-c", _LOAD_CODE, str(path), "1" if verify else "0"], cwd=ROOT,
                                        capture_output=True, text=True, check=True)
                row = json.loads(result.stdout.strip().splitlines()[-1])
                row["cold_cache"] = cold
                out[name]["verify" if verify else "mmap"].append(row)
                log(f"load {name} verify={verify} cold={cold}: {row['load_s']:.2f} s")
    return out


def measure_queries(models: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """analyze(n=10) of every text on every model, interleaved (rotating order)."""
    from threadpoolctl import threadpool_limits

    names = list(models)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    with threadpool_limits(limits=1):
        for text in texts[:20]:  # warm-up
            for name in names:
                models[name].analyze(text, n=10)
        for i, text in enumerate(texts):
            for name in names[i % len(names):] + names[:i % len(names)]:
                c0, t0 = time.thread_time(), time.perf_counter()
                models[name].analyze(text, n=10)
                wall[name].append((time.perf_counter() - t0) * 1000)
                cpu[name].append((time.thread_time() - c0) * 1000)
    return {name: {"wall_ms": percentiles(wall[name]), "cpu_ms": percentiles(cpu[name])} for name in names}


def measure_recall(model: Any, texts: list[str]) -> dict[str, Any]:
    """Top-10 of the model's default ranking against the exhaustive candidate stage's."""
    import copy

    lexical = model.lexical
    exact = copy.copy(lexical)
    exact.posting_depth, exact.max_query_terms = None, None
    recalls, fast_ms, exact_ms = [], [], []
    for text in texts:
        t0 = time.perf_counter()
        fast = [h["id"] for h in model.similar(text, n=10)]
        t1 = time.perf_counter()
        model.ranker.lexical = exact
        try:
            reference = [h["id"] for h in model.similar(text, n=10)]
        finally:
            model.ranker.lexical = lexical
        t2 = time.perf_counter()
        fast_ms.append((t1 - t0) * 1000)
        exact_ms.append((t2 - t1) * 1000)
        if reference:
            recalls.append(len(set(fast) & set(reference)) / len(reference))
    return {"queries": len(recalls), "recall_at_10": round(float(np.mean(recalls)), 4),
            "min_recall": round(float(np.min(recalls)), 3), "default_ms": percentiles(fast_ms), "exhaustive_ms": percentiles(exact_ms),
            "params": {k: getattr(lexical, k, None) for k in ("posting_depth", "max_query_terms", "rescore_factor")}}


def measure_memory(path: Path, texts: list[str], processes: int = 2, explorer: bool = False) -> dict[str, Any]:
    """PSS/USS of ``processes`` processes that each loaded the model and answered the texts (all alive
    at once); ``explorer``: each also computed the explorer's facets and trends."""
    running, rows = [], []
    try:
        for _ in range(processes):
            proc = subprocess.Popen([sys.executable, "-c", _MEMORY_CODE, str(path), "60", "1" if explorer else "0"], cwd=ROOT,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            proc.stdin.write(json.dumps(texts))
            proc.stdin.close()
            rows.append(json.loads(proc.stdout.readline()))
            running.append(proc)
    finally:
        for proc in running:
            proc.kill()
            proc.wait()
    return {"processes": rows, "marginal_pss_mb": round(rows[-1]["pss_mb"], 1), "marginal_uss_mb": round(rows[-1]["uss_mb"], 1)}


def disk_usage(path: Path) -> dict[str, Any]:
    manifest = json.loads((path / "manifest.json").read_text())
    groups: dict[str, int] = {}
    for name, info in manifest["files"].items():
        group = name.split(".")[0] if name.split(".")[0] in ("docs", "lexical", "map", "embedding", "lda", "dictionary") else name
        groups[group] = groups.get(group, 0) + int(info["bytes"])
    return {"total_mb": round(sum(groups.values()) / 2**20, 1), "by_component_mb": {k: round(v / 2**20, 1) for k, v in sorted(groups.items())}}


def update_records(count: int, taken: Any, seed: int = 99) -> Path:
    """``count`` new papers in the snapshot's format, with ids no model holds (``2612.90000`` on)."""
    from benchmarks import make_snapshot

    directory = Path(tempfile.mkdtemp(prefix="abstractor-scale-"))
    raw = directory / "raw.json"
    make_snapshot.write_snapshot(raw, count, seed=seed)
    out = directory / "new-papers.jsonl"
    with open(raw, encoding="utf-8") as source, open(out, "w", encoding="utf-8") as target:
        for i, line in enumerate(source):
            record = json.loads(line)
            record["id"] = f"2612.{90000 + i}"
            if any(record["id"] in model.documents for model in taken):
                raise SystemExit(f"update id {record['id']} already in a model")
            target.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out


def measure_update(path: Path, records: Path, workdir: Path) -> dict[str, Any]:
    """``Abstractor.update`` of a copy of the artifact (copy time excluded)."""
    from abstractor_widgets import Abstractor

    copy = workdir / path.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    model = Abstractor.load(copy, verify=False)
    before = len(model)
    t0 = time.perf_counter()
    added = model.update(records)
    seconds = time.perf_counter() - t0
    after = len(Abstractor.load(copy, verify=False))
    shutil.rmtree(copy, ignore_errors=True)
    return {"added": added, "seconds": round(seconds, 1), "documents_before": before, "documents_after": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=Path, required=True)
    parser.add_argument("--small", type=Path, default=ROOT / "artifacts" / "default")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--update-records", type=int, default=10_000)
    parser.add_argument("--load-repeat", type=int, default=3)
    parser.add_argument("--drop-caches", action="store_true", help="empty the page cache before the first load of each model (root)")
    parser.add_argument("--only", nargs="*", default=["disk", "load", "query", "recall", "memory", "update", "build"])
    parser.add_argument("--build-memory", type=Path, default=None, help="the build's memory samples (JSON with peak_* keys)")
    parser.add_argument("--update-dir", type=Path, default=Path("/work/big/update-copies"))
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args(argv)

    from abstractor_widgets import Abstractor

    paths = {"60k": args.small, "2.7M": args.big}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result: dict[str, Any] = {**previous, "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M"),
                              "load_average_at_start": load_average()}
    frame = shared_frame()
    rng = np.random.default_rng(0)
    texts = [str(t) for t in frame["abstract"].to_numpy()[rng.choice(len(frame), args.queries, replace=False)]]
    if "disk" in args.only:
        result["disk"] = {name: disk_usage(path) for name, path in paths.items()}
    if "load" in args.only:
        result["load"] = measure_load(paths, args.load_repeat, args.drop_caches)
    models = {name: Abstractor.load(path, verify=False) for name, path in paths.items()}
    result["documents"] = {name: len(model) for name, model in models.items()}
    if "query" in args.only:
        log(f"queries: {len(texts)} abstracts x {len(models)} models")
        result["query"] = {**measure_queries(models, texts), "load_average": load_average()}
    if "recall" in args.only:
        log(f"recall: {args.recall_queries} abstracts")
        result["recall"] = {name: measure_recall(model, texts[: args.recall_queries]) for name, model in models.items()}
    if "memory" in args.only:
        result["memory"] = {name: measure_memory(path, texts[:20]) for name, path in paths.items()}
        result["memory_explorer"] = {name: measure_memory(path, texts[:20], explorer=True) for name, path in paths.items()}
    if "update" in args.only:
        records = update_records(args.update_records, list(models.values()))
        del models
        args.update_dir.mkdir(parents=True, exist_ok=True)
        result["update"] = {name: measure_update(path, records, args.update_dir) for name, path in paths.items()}
        result["update"]["load_average"] = load_average()
    if "build" in args.only:
        manifest = json.loads((args.big / "manifest.json").read_text())
        build = (manifest.get("corpus") or {}).get("build") or {}
        memory = json.loads(args.build_memory.read_text()) if args.build_memory and args.build_memory.is_file() else {}
        result["build"] = {"stages_s": build.get("stages"), "total_s": round(sum(v or 0 for v in (build.get("stages") or {}).values()), 1),
                           "settings": build.get("settings"),
                           "peak_memory_gb": {k: round(v / 2**30, 2) for k, v in memory.items() if k.startswith("peak")}}
    result["load_average_at_end"] = load_average()
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1, default=str)[:6000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
