"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only SECTION,...]``.

Sections (see each module's docstring):

``query``       query latency, ours vs the original algorithm (benchmarks/query_latency.py)
``similarity``  exact and approximate similarity search at scale (benchmarks/similarity_scale.py)
``training``    LDA training time and coherence, gensim vs peers (benchmarks/training.py)
``dashboard``   Voilà kernel memory per session (benchmarks/dashboard.py; skipped if the
                dashboard, Voilà, Playwright or Chromium is missing)
``service``     `abstractor serve` under load: requests/s, latency, memory per worker and
                per visitor vs Voilà (benchmarks/service.py)

Prints Markdown tables and writes ``benchmarks/results/benchmarks.json`` (or
``benchmarks-quick.json`` with ``--quick``) plus the same tables as ``.md``. Running some
sections only (``--only``) updates those sections in the existing file and keeps the
others, each section carrying its own date and machine load. Models, token caches,
synthetic matrices and ANN index files are cached under ``--cache`` (default
``/tmp/abstractor-bench``), so a rerun does not retrain or rebuild.

``--quick`` uses small models and slices (a few thousand documents, ≤ 30k rows) so the
whole suite finishes in about a minute on an idle 2-core machine; CI runs it
(``tests/test_benchmarks.py``) so the suite never rots. Quick numbers are not meaningful.

Full runs take hours on a busy 2-core machine (HNSW builds at 2.7 M rows, LDA trainings
on 60k documents): run them with ``nice -n 5`` and, if needed, one section at a time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_CACHE, RESULTS, load_average, log, machine_info, write_json

SECTIONS = ("query", "similarity", "training", "dashboard", "service")
SCHEMA_VERSION = 1


def _module(section: str):
    import importlib

    name = {"query": "query_latency", "similarity": "similarity_scale", "training": "training",
            "dashboard": "dashboard", "service": "service"}[section]
    return importlib.import_module(f"benchmarks.{name}")


def _merge_similarity(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Replace measured (dataset, n) rows, keep the others (for runs split by dataset)."""
    if not old or "rows" not in old:
        return new
    fresh = {(r["dataset"], r["n"]) for r in new["rows"]}
    merged = dict(old)
    merged.update({k: v for k, v in new.items() if k != "rows"})
    merged["rows"] = [r for r in old["rows"] if (r["dataset"], r["n"]) not in fresh] + new["rows"]
    order = {name: i for i, name in enumerate(("dirichlet-k20", "dirichlet-k50", "real", "real-derived"))}
    merged["rows"].sort(key=lambda r: (order.get(r["dataset"], 9), r["n"]))
    return merged


def _merge_training(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Replace re-measured configurations (rows, builds, seed checks), keep the others."""
    from benchmarks.training import summarize

    if not old or "rows" not in old:
        return new
    merged = dict(old)
    fresh = {r["config"] for r in new["rows"]}
    merged["rows"] = [r for r in old["rows"] if r["config"] not in fresh] + new["rows"]
    for key in ("preprocessing", "meta"):
        merged[key] = new.get(key, old.get(key))
    if new.get("builds"):
        labels = {b["build"] for b in new["builds"]}
        merged["builds"] = [b for b in old.get("builds", []) if b["build"] not in labels] + new["builds"]
    if new.get("seed_variation"):
        redone = {(r["config"], r["seed"]) for r in new["seed_variation"]}
        merged["seed_variation"] = [r for r in old.get("seed_variation", [])
                                    if (r["config"], r["seed"]) not in redone] + new["seed_variation"]
    merged["remeasured"] = sorted(fresh)
    summarize(merged)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models and slices (CI)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--merge", type=Path, nargs="*", default=(),
                        help="merge the sections of these result files (e.g. from parallel runs) into --out")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache directory (models, data, ANN files)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/benchmarks[-quick].json)")
    parser.add_argument("--datasets", default=None, help="similarity: comma-separated datasets")
    parser.add_argument("--sizes", default=None, help="similarity: comma-separated N")
    parser.add_argument("--no-extras", action="store_true", help="similarity: skip the block sweep and end-to-end run")
    parser.add_argument("--no-build", action="store_true", help="training: skip the TopicModel.fit builds")
    parser.add_argument("--configs", default=None,
                        help="training: only these grid configurations (';'-separated names, 'tomotopy', 'sklearn')")
    parser.add_argument("--seeds", default=None, help="training: re-train the recommendation with these seeds (e.g. 1,2)")
    args = parser.parse_args(argv)

    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose among {SECTIONS}")
    out = args.out or RESULTS / ("benchmarks-quick.json" if args.quick else "benchmarks.json")
    args.cache.mkdir(parents=True, exist_ok=True)

    payload: dict[str, Any] = {}
    if out.is_file():
        try:
            payload = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            payload = {}
        if payload.get("schema") != SCHEMA_VERSION or payload.get("quick") != args.quick:
            payload = {}
    payload.update({"schema": SCHEMA_VERSION, "quick": args.quick, "machine": machine_info(),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    payload.setdefault("sections", {})
    for other in args.merge:
        extra = json.loads(Path(other).read_text(encoding="utf-8"))
        for section, result in extra.get("sections", {}).items():
            if section == "similarity":
                result = _merge_similarity(payload["sections"].get("similarity"), result)
            payload["sections"][section] = result
        sections = []  # merging only
    started = time.perf_counter()
    for section in sections:
        try:
            module = _module(section)
        except ImportError as exc:
            log(f"== {section}: skipped ({exc}) ==")
            continue
        if getattr(module, "available", lambda: (True, ""))()[0] is False:
            log(f"== {section}: skipped ({module.available()[1]}) ==")
            continue
        log(f"== {section} ==")
        t0 = time.perf_counter()
        load_before = load_average()
        kwargs: dict[str, Any] = {}
        if section == "similarity":
            if args.datasets:
                kwargs["datasets"] = [d.strip() for d in args.datasets.split(",") if d.strip()]
            if args.sizes:
                kwargs["sizes"] = [int(float(x)) for x in args.sizes.split(",") if x.strip()]
            kwargs["extras"] = not args.no_extras
        if section == "training":
            kwargs["build"] = not args.no_build
            if args.configs:
                kwargs["configs"] = [c.strip() for c in args.configs.split(";") if c.strip()]
            if args.seeds:
                kwargs["seeds"] = tuple(int(x) for x in args.seeds.split(","))
        result = module.run(args.cache, quick=args.quick, **kwargs)
        result["meta"] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - t0, 1),
                          "load_average_before": load_before, "load_average_after": load_average()}
        if section == "similarity":
            result = _merge_similarity(payload["sections"].get("similarity"), result)
        if section == "training" and args.configs:
            result = _merge_training(payload["sections"].get("training"), result)
        payload["sections"][section] = result
        print(module.tables(result), flush=True)
        write_json(out, payload)  # after every section: a long run keeps what it measured
    payload["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out, payload)
    tables = "\n".join(_module(s).tables(r) for s, r in payload["sections"].items())
    out.with_suffix(".md").write_text(tables, encoding="utf-8")
    log(f"wrote {out} ({payload['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
