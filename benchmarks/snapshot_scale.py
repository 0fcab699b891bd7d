#!/usr/bin/env python
"""Snapshot at scale: stream a full-size arXiv metadata snapshot through the reader.

Generates (once, under ``/tmp``) a file in the format of Kaggle's
``arxiv-metadata-oai-snapshot.json`` with ``benchmarks/make_snapshot.py`` (2.7 M records,
about 4.6 GB by default), then runs each case below in its own subprocess and measures
the wall and CPU time, the lines scanned per second (of wall and of CPU time: other jobs
may share the machine), the records kept and the peak RSS of that
process (``VmHWM`` of the child, cross-checked by polling its RSS with psutil):

``lines``
    only iterate over the raw lines (the I/O floor; also warms the page cache);
``iter``
    ``iter_arxiv_snapshot(path, categories)``, counting the documents without holding them;
``corpus``
    ``Corpus.from_arxiv_snapshot(path, categories, progress=False)``, which holds the kept
    documents (its memory grows with what is kept, not with the file);
``json_loads``
    a plain loop that ``json.loads`` every line and tests its categories: what the reader
    would cost without its raw-bytes pre-filter;
(The reader's raw pre-filter on the ``"categories":"..."`` value, once prototyped here as
a ``proposed`` case, is part of ``corpus.py`` now: the ``iter`` cases measure it.)

The kept counts are checked against the generator's ground truth
(``<snapshot>.meta.json``). The table is printed and the results are written as JSON to
``benchmarks/results/snapshot_scale.json`` (``snapshot_scale_quick.json`` with
``--quick``).

Usage::

    nice -n 10 python -m benchmarks.snapshot_scale              # 2.7 M records
    python -m benchmarks.snapshot_scale --quick                 # 50 k records, < 30 s
    python -m benchmarks.snapshot_scale --records 500000 --snapshot /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
QUICK_RECORDS = 50_000

#: (mode, categories) run by default, in this order; ``lines`` must come first.
CASES = (
    ("lines", ""),
    ("iter", "stat.ML"),
    ("iter", "cs.LG"),
    ("iter", "cs.*"),
    ("corpus", "stat.ML"),
    ("corpus", "cs.LG"),
    ("json_loads", "stat.ML"),
)


# --------------------------------------------------------------------------------------
# the measured work (runs in the child process)
# --------------------------------------------------------------------------------------
def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MiB, from /proc/self/status.

    ``VmHWM`` is the high-water mark of this process's own address space. (``ru_maxrss``
    is not used: Linux carries the parent's peak over ``fork``/``exec`` into it, so a
    child of a big parent reports the parent's size.)
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_child(mode: str, snapshot: str, categories: str) -> dict:
    """Run one case in this process and return its measurements."""
    from abstractor_widgets.corpus import CategoryFilter, Corpus, iter_arxiv_snapshot

    cats = categories.split() or None
    rss_start = _status_mb("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    kept = lines = None
    if mode == "lines":
        lines = 0
        with open(snapshot, "rb") as handle:
            for _ in handle:
                lines += 1
    elif mode == "iter":
        kept = sum(1 for _ in iter_arxiv_snapshot(snapshot, categories=cats))
    elif mode == "corpus":
        kept = len(Corpus.from_arxiv_snapshot(snapshot, categories=cats, progress=False))
    elif mode == "json_loads":
        match = CategoryFilter(cats)
        kept = 0
        with open(snapshot, "rb") as handle:
            for raw in handle:
                record = json.loads(raw)
                if match(record.get("categories") or ""):
                    kept += 1
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {
        "mode": mode,
        "categories": categories,
        "kept": kept,
        "lines": lines,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
        "rss_end_mb": round(_status_mb("VmRSS"), 1),
    }


# --------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------
def measure(mode: str, snapshot: Path, categories: str, poll: float = 0.02) -> dict:
    """Run one case in a subprocess, polling its RSS with psutil; return its result."""
    import psutil

    cmd = [sys.executable, "-m", "benchmarks.snapshot_scale", "--child", mode, "--snapshot", str(snapshot), "--categories", categories]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO), text=True)
    polled = 0
    try:
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                polled = max(polled, watched.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(poll)
    finally:
        out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {categories!r} failed ({proc.returncode}):\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds_with_startup"] = round(wall, 2)
    result["polled_peak_rss_mb"] = round(polled / 2**20, 1)
    return result


def hold_all_estimate(snapshot: Path, sample: int = 20_000) -> dict:
    """Memory of ``sample`` lines as bytes and as parsed dicts (to extrapolate "hold it all")."""
    import tracemalloc

    tracemalloc.start()
    with open(snapshot, "rb") as handle:
        raw = [line for _, line in zip(range(sample), handle)]
    as_bytes = tracemalloc.get_traced_memory()[0]
    parsed = [json.loads(line) for line in raw]
    as_dicts = tracemalloc.get_traced_memory()[0] - as_bytes
    tracemalloc.stop()
    n = len(parsed)
    del raw, parsed
    return {"sample_lines": n, "bytes_per_line_as_bytes": as_bytes / max(n, 1), "bytes_per_line_as_dicts": as_dicts / max(n, 1)}


def ensure_snapshot(path: Path, records: int, seed: int, pool_limit: int | None, regenerate: bool) -> dict:
    """Generate the snapshot unless a file with the same records and seed exists."""
    from benchmarks import make_snapshot

    meta_path = Path(str(path) + ".meta.json")
    if path.is_file() and meta_path.is_file() and not regenerate:
        meta = json.loads(meta_path.read_text())
        if meta.get("records") == records and meta.get("seed") == seed and meta.get("bytes") == path.stat().st_size:
            print(f"using {path} ({meta['bytes'] / 1e9:.2f} GB, generated in {meta['seconds']} s)", file=sys.stderr)
            return meta
    print(f"generating {records:,} records into {path} ...", file=sys.stderr, flush=True)
    pool = make_snapshot.load_pool(limit=pool_limit)
    meta = make_snapshot.write_snapshot(path, records, seed, pool)
    print(f"  {meta['bytes'] / 1e9:.2f} GB in {meta['seconds']} s", file=sys.stderr)
    return meta


def expected_kept(meta: dict, categories: str) -> int | None:
    """Ground truth: records listing at least one of ``categories`` (single term only)."""
    terms = categories.split()
    if len(terms) != 1:
        return None
    term = terms[0]
    if term.endswith(".*"):
        return meta["archives"].get(term[:-2], 0)
    return meta["listed"].get(term, 0)


def _table(rows: list[dict], file_mb: float) -> str:
    head = (f"{'case':<11} {'filter':<8} {'kept':>9} {'time s':>7} {'cpu s':>7} {'lines/s':>9} {'lines/cpu-s':>11} "
            f"{'MB/s':>6} {'peak RSS MB':>11} {'growth MB':>9} {'polled MB':>9}")
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(
            f"{r['mode']:<11} {r['categories'] or '-':<8} {'' if r['kept'] is None else format(r['kept'], ','):>9} "
            f"{r['seconds']:>7.1f} {r['cpu_seconds']:>7.1f} {r['lines_per_second']:>9,.0f} {r['lines_per_cpu_second']:>11,.0f} "
            f"{file_mb / r['seconds']:>6.0f} "
            f"{r['peak_rss_mb']:>11.0f} {r['peak_rss_mb'] - r['rss_start_mb']:>9.0f} {r['polled_peak_rss_mb']:>9.0f}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=None, help="records to generate (default 2,700,000; 50,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RECORDS:,} records, for CI (< 30 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snapshot", type=Path, default=None, help="snapshot file (generated when missing)")
    parser.add_argument("--regenerate", action="store_true", help="generate the snapshot even if it exists")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/snapshot_scale[_quick].json)")
    parser.add_argument("--cases", default=None, help="comma-separated mode:categories, e.g. 'lines:,iter:stat.ML'")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--categories", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, str(args.snapshot), args.categories)))
        return 0

    records = args.records or (QUICK_RECORDS if args.quick else 2_700_000)
    snapshot = args.snapshot or Path("/tmp/abstractor-snapshot") / f"arxiv-metadata-oai-snapshot-{records}-seed{args.seed}.json"
    out = args.out or RESULTS / ("snapshot_scale_quick.json" if args.quick else "snapshot_scale.json")
    cases = CASES
    if args.cases:
        cases = tuple(tuple(c.split(":", 1)) if ":" in c else (c, "") for c in args.cases.split(","))
        if cases[0][0] != "lines":
            cases = (("lines", ""), *cases)

    load_start = os.getloadavg()
    meta = ensure_snapshot(snapshot, records, args.seed, 3000 if args.quick else None, args.regenerate)
    file_bytes = snapshot.stat().st_size
    rows: list[dict] = []
    lines = None
    failures = []
    for mode, categories in cases:
        result = measure(mode, snapshot, categories)
        if mode == "lines":
            lines = result["lines"]
        result["lines_per_second"] = round(lines / result["seconds"]) if lines else None
        result["lines_per_cpu_second"] = round(lines / result["cpu_seconds"]) if lines else None
        result["seconds"] = round(result["seconds"], 2)
        result["cpu_seconds"] = round(result["cpu_seconds"], 2)
        want = expected_kept(meta, categories) if mode != "lines" else None
        result["expected_kept"] = want
        if want is not None and result["kept"] != want:
            failures.append(f"{mode} {categories}: kept {result['kept']}, expected {want}")
        rows.append(result)
        print(f"  {mode:<10} {categories or '-':<8} kept={result['kept']} {result['seconds']:.1f} s "
              f"peak {result['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    hold = hold_all_estimate(snapshot)
    report = {
        "benchmark": "snapshot_scale",
        "quick": bool(args.quick),
        "snapshot": str(snapshot),
        "records": meta["records"],
        "lines": lines,
        "file_bytes": file_bytes,
        "file_gb": round(file_bytes / 1e9, 3),
        "generation_seconds": meta.get("seconds"),
        "ground_truth": {
            "stat.ML": meta["listed"].get("stat.ML"),
            "cs.LG": meta["listed"].get("cs.LG"),
            "cs.*": meta["archives"].get("cs"),
            "decoys": meta.get("decoys"),
            "old_style_ids": meta.get("old_style_ids"),
        },
        "hold_all_estimate": {
            **{k: round(v, 1) if isinstance(v, float) else v for k, v in hold.items()},
            "all_lines_as_bytes_gb": round(hold["bytes_per_line_as_bytes"] * lines / 1e9, 2),
            "all_lines_as_dicts_gb": round(hold["bytes_per_line_as_dicts"] * lines / 1e9, 2),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "niceness": os.nice(0),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "cases": rows,
        "kept_mismatches": failures,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print()
    print(f"{meta['records']:,} records, {file_bytes / 1e9:.2f} GB ({snapshot}); "
          f"{os.cpu_count()} CPUs, load average {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print(_table(rows, file_bytes / 2**20))
    print(f"holding every line would take ~{report['hold_all_estimate']['all_lines_as_bytes_gb']} GB as bytes, "
          f"~{report['hold_all_estimate']['all_lines_as_dicts_gb']} GB as parsed dicts")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    if failures:
        print("KEPT COUNTS DIFFER FROM THE GROUND TRUTH:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
