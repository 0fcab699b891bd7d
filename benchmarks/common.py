"""Shared helpers of the benchmark suite: data splits, cached models, timing, machine info.

Everything big (trained models, token caches, ANN index files, synthetic matrices) lives
under one cache directory (``/tmp/abstractor-bench`` by default, ``ABSTRACTOR_BENCH_CACHE``
or ``--cache`` overrides it), so reruns reuse what earlier runs built.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CACHE = Path(os.environ.get("ABSTRACTOR_BENCH_CACHE", "/tmp/abstractor-bench"))

#: Held-out abstracts (never trained on): drawn with this seed from the shared corpus.
HELD_OUT = 400
SPLIT_SEED = 0


def log(message: str) -> None:
    """Progress line on stderr (tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- machine ------------------------------------------------------------------------
def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (what ``uptime`` prints)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def machine_info() -> dict[str, Any]:
    """The machine the numbers come from."""
    import numpy

    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cpus": os.cpu_count(),
        "load_average_at_start": load_average(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:  # pragma: no cover
        pass
    try:
        info["l2_l3_cache"] = subprocess.run(
            ["sh", "-c", "lscpu | grep -E 'L2|L3'"], capture_output=True, text=True, timeout=5
        ).stdout.split("\n")
        info["l2_l3_cache"] = [" ".join(x.split()) for x in info["l2_l3_cache"] if x.strip()]
    except Exception:  # pragma: no cover
        pass
    for name in ("gensim", "hnswlib", "tomotopy", "sklearn", "scipy", "faiss"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except Exception:
            pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")} for p in threadpool_info()
        ]
    except Exception:  # pragma: no cover
        pass
    return info


# -- timing -------------------------------------------------------------------------
def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/min of timings in milliseconds (rounded to the microsecond)."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p95": round(float(np.percentile(arr, 95)), 4),
        "p99": round(float(np.percentile(arr, 99)), 4),
        "mean": round(float(arr.mean()), 4),
        "min": round(float(arr.min()), 4),
    }


def time_calls(fn: Callable[[Any], Any], inputs: Sequence[Any], warmup: int = 20, repeat: int = 1) -> list[float]:
    """Milliseconds of ``fn(x)`` for every input (``repeat`` rounds), after ``warmup`` calls.

    The garbage collector is left as the application leaves it (``Abstractor.load``
    freezes the model's objects); a collection is forced before the timed loop.
    """
    for x in list(inputs)[: max(0, warmup)]:
        fn(x)
    gc.collect()
    out: list[float] = []
    clock = time.perf_counter
    for _ in range(repeat):
        for x in inputs:
            t0 = clock()
            fn(x)
            out.append((clock() - t0) * 1000.0)
    return out


def median_seconds(fn: Callable[[], Any], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextmanager
def one_thread():
    """Pin BLAS/OpenMP pools to one thread (the query path is single-threaded by design)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def rss_mb() -> float:
    """Resident set size of this process, MB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# -- data ---------------------------------------------------------------------------
def corpus_path() -> Path:
    from abstractor_widgets.corpus import default_corpus_path

    path = default_corpus_path()
    if path is None or not Path(path).is_file():
        path = ROOT.parent / "shared" / "data" / "arxiv_ml_abstracts.parquet"
    if not path.is_file():
        raise SystemExit(f"the shared corpus is missing ({path}); set ABSTRACTOR_CORPUS")
    return Path(path)


_FRAME = None


def shared_frame():
    """The shared corpus as a DataFrame (read once per process)."""
    global _FRAME
    if _FRAME is None:
        import pandas as pd

        _FRAME = pd.read_parquet(corpus_path())
    return _FRAME


def split(n_train: int | None, held_out: int = HELD_OUT):
    """``(train_frame, held_out_frame)``: disjoint, reproducible.

    ``held_out`` rows are drawn at random (seed 0) from the whole corpus; the training
    rows are the first ``n_train`` of a seeded permutation of the rest (all of them
    when ``n_train`` is ``None``), kept in corpus order.
    """
    frame = shared_frame()
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(frame))
    held = np.sort(order[:held_out])
    rest = order[held_out:]
    train = np.sort(rest if n_train is None else rest[:n_train])
    return frame.iloc[train].reset_index(drop=True), frame.iloc[held].reset_index(drop=True)


def model_dir(cache: Path, n_train: int | None, n_topics: int, passes: int) -> Path:
    label = "all" if n_train is None else str(n_train)
    return Path(cache) / "models" / f"arxiv-{label}-k{n_topics}-p{passes}-h{HELD_OUT}"


def trained_model(cache: Path, n_train: int | None, n_topics: int = 20, passes: int = 5, **params: Any):
    """``Abstractor`` trained once on ``split(n_train)`` and cached (train seconds in a sidecar)."""
    from abstractor_widgets import Abstractor
    from abstractor_widgets.corpus import Corpus

    out = model_dir(cache, n_train, n_topics, passes)
    info = out.parent / (out.name + ".json")
    if not (out / "manifest.json").is_file():
        train, _ = split(n_train)
        log(f"training K={n_topics} on {len(train):,} documents into {out} (once; reused afterwards)")
        t0 = time.perf_counter()
        Abstractor.train(Corpus.from_frame(train, name="arxiv-bench"), n_topics, out=out, passes=passes,
                         progress=False, **params)
        seconds = time.perf_counter() - t0
        info.write_text(json.dumps({"train_seconds": round(seconds, 1), "documents": len(train),
                                    "load_average": load_average()}))
        log(f"trained in {seconds:.0f} s")
    ab = Abstractor.load(out)
    if ab.lexical is None:  # cached before lexical indexes existed: add one (same recipe as train)
        from abstractor_widgets.lexical import build_lexical_index

        train, _ = split(n_train)
        log(f"adding a lexical index to {out}")
        ab.lexical = build_lexical_index(ab.model, titles=train["title"].fillna("").tolist(),
                                         texts=train["abstract"].tolist())
        ab.save(out)
        ab = Abstractor.load(out)
    return ab


def cached_pickle(path: Path, build: Callable[[], Any]) -> Any:
    """``build()`` once, pickled to ``path``."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as handle:
            return pickle.load(handle)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return value


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- tables -------------------------------------------------------------------------
def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, title: str | None = None) -> str:
    """A Markdown table of dict rows (also readable as plain text)."""
    if not rows:
        return f"{title}\n(no rows)\n" if title else "(no rows)\n"
    columns = list(columns or rows[0].keys())

    def cell(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            if value == 0:
                return "0"
            if abs(value) >= 100:
                return f"{value:,.0f}"
            if abs(value) >= 10:
                return f"{value:.1f}"
            if abs(value) >= 0.1:
                return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
            return f"{value:.3g}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = []
    if title:
        lines.append(f"\n{title}\n")
    lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(b, widths)) + " |")
    return "\n".join(lines) + "\n"
