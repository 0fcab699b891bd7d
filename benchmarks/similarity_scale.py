"""Similarity at scale: exact scans and approximate indexes over doc-topic matrices.

Datasets (rows are topic mixtures; every index stores ``sqrt(p)``, unit-norm, so Hellinger
ranking = inner-product ranking):

``dirichlet-k20`` / ``dirichlet-k50``
    ``Dirichlet(0.1)`` samples with K = 20 / 50; queries are fresh samples.
``real``
    the trained 60k model's own document vectors (K = 20); queries are the held-out
    abstracts' inferred vectors.
``real-derived``
    those real vectors resampled with noise up to 2.7 M rows: a random real row ``p`` is
    replaced by a draw from ``Dirichlet(100 p + 0.02)``, which keeps the clustered shape of
    real topic mixtures (recall on pure Dirichlet data proves little); same queries.

Methods, all single-threaded at query time (threadpoolctl):

``floor``        one read of the matrix: ``X.sum()`` (and, for reference, a plain ``X @ q``)
``numpy``        ``X @ q`` + ``argpartition`` + sort of the top 10 (brute force)
``blocked``      :meth:`SimilarityIndex.exact_top` (blocked exact top-k)
``gensim``       ``MatrixSimilarity(num_best=10)``; built from its corpus stream up to 100k
                 documents, above that its matrix is injected (the stream build would take minutes)
``faiss-flat``   ``faiss.IndexFlatIP`` (exact), when faiss is installed
``hnswlib``      HNSW graph, M = 16, ef_construction = 100; query at several ``ef``
``faiss-hnsw``   ``faiss.IndexHNSWFlat`` with the same M / efConstruction, up to 1M documents

ANN indexes are cached as files under ``<cache>/ann`` (builds at 2.7 M take many minutes).
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    log,
    load_average,
    one_thread,
    percentiles,
    rss_mb,
    table,
    trained_model,
    split,
)

TOP = 10
FULL_SIZES = (18_000, 100_000, 1_000_000, 2_700_000)
QUICK_SIZES = (10_000, 30_000)
HNSW = {"M": 16, "ef_construction": 100}
EF_SWEEP = (16, 32, 64, 128, 256, 512)
DERIVED_CONCENTRATION = 100.0
DERIVED_SMOOTH = 0.02


# -- data ---------------------------------------------------------------------------
def prepare(p: np.ndarray) -> np.ndarray:
    """sqrt of row-normalised mixtures: the rows every index here stores."""
    p = np.asarray(p, dtype=np.float32)
    out = np.empty_like(p)
    step = 500_000
    for s in range(0, len(p), step):
        block = p[s : s + step]
        np.sqrt(block / block.sum(axis=1, keepdims=True), out=out[s : s + step])
    return out


def _cached_npy(path: Path, build) -> np.ndarray:
    if path.is_file():
        return np.load(path, mmap_mode="r")
    array = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
    del array
    return np.load(path, mmap_mode="r")


def dirichlet_rows(cache: Path, n: int, k: int, seed: int = 0, alpha: float = 0.1) -> np.ndarray:
    """Prepared rows of a Dirichlet(alpha) doc-topic matrix (cached; prefix-consistent by seed)."""

    def build():
        rng = np.random.default_rng(seed)
        out = np.empty((n, k), dtype=np.float32)
        step = 250_000
        for s in range(0, n, step):
            out[s : s + step] = prepare(rng.dirichlet([alpha] * k, size=min(step, n - s)))
        return out

    return _cached_npy(Path(cache) / "data" / f"dirichlet-k{k}-a{alpha}-n{n}-s{seed}.npy", build)


def derived_mixtures(cache: Path, base: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """``n`` noisy resamples of real mixtures (row i < len(base) keeps base row i)."""

    def build():
        rng = np.random.default_rng(seed)
        base64 = np.asarray(base, dtype=np.float64)
        base64 = base64 / base64.sum(axis=1, keepdims=True)
        out = np.empty((n, base.shape[1]), dtype=np.float32)
        m = min(n, len(base64))
        out[:m] = base64[:m]
        step = 200_000
        for s in range(m, n, step):
            rows = rng.integers(0, len(base64), size=min(step, n - s))
            # Dirichlet(c p + eps) by normalised Gamma draws
            g = rng.standard_gamma(DERIVED_CONCENTRATION * base64[rows] + DERIVED_SMOOTH)
            g /= g.sum(axis=1, keepdims=True)
            out[s : s + len(rows)] = g
        return out

    return _cached_npy(Path(cache) / "data" / f"real-derived-k{base.shape[1]}-n{n}-s{seed}.npy", build)


# -- methods ------------------------------------------------------------------------
def brute_top(X: np.ndarray, q: np.ndarray, k: int = TOP) -> np.ndarray:
    dots = X @ q
    top = np.argpartition(-dots, k - 1)[:k]
    return top[np.argsort(-dots[top], kind="stable")]


def floor_ms(X: np.ndarray, q: np.ndarray, repeat: int) -> dict[str, float]:
    """One read of the matrix, three ways (medians, ms): ``X.max()`` (SIMD, no writes: the
    fastest full read we found), ``X.sum()`` and a plain ``X @ q`` (row-major BLAS gemv)."""
    out = np.empty(X.shape[0], dtype=np.float32)

    def med(fn):
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
        return float(np.median(times))

    return {
        "max": med(lambda: X.max()),
        "sum": med(lambda: X.sum()),
        "gemv": med(lambda: np.dot(X, q, out=out)),
    }


def timed(fn, queries, warmup: int = 5) -> tuple[list[float], list[Any]]:
    for q in queries[:warmup]:
        fn(q)
    gc.collect()
    times, results = [], []
    for q in queries:
        t0 = time.perf_counter()
        r = fn(q)
        times.append((time.perf_counter() - t0) * 1000)
        results.append(r)
    return times, results


def recall(found: list, truth: list, k: int = TOP) -> float:
    return float(np.mean([len(set(map(int, f[:k])) & set(map(int, t[:k]))) / k for f, t in zip(found, truth)]))


def gensim_index(X: np.ndarray, build: bool):
    from gensim.similarities import MatrixSimilarity

    if build:
        corpus = [[(j, float(v)) for j, v in enumerate(row) if v > 0] for row in np.asarray(X)]
        t0 = time.perf_counter()
        index = MatrixSimilarity(corpus, num_features=X.shape[1], num_best=TOP, dtype=np.float32)
        return index, time.perf_counter() - t0
    index = MatrixSimilarity.__new__(MatrixSimilarity)
    index.num_features, index.num_best, index.normalize, index.chunksize = X.shape[1], TOP, True, 256
    index.index = np.asarray(X)
    return index, None


def hnsw_index(cache: Path, name: str, X: np.ndarray, threads: int) -> tuple[Any, dict[str, Any]]:
    """Load the cached hnswlib graph of dataset ``name`` or build (and cache) it."""
    import hnswlib

    path = Path(cache) / "ann" / f"hnswlib-{name}-M{HNSW['M']}-efc{HNSW['ef_construction']}.bin"
    info_path = path.with_suffix(".json")
    info: dict[str, Any] = {}
    before = rss_mb()
    if path.is_file() and info_path.is_file():
        import json

        info = json.loads(info_path.read_text())
        index = hnswlib.Index(space="ip", dim=X.shape[1])
        t0 = time.perf_counter()
        index.load_index(str(path), max_elements=X.shape[0])
        info["load_seconds"] = round(time.perf_counter() - t0, 2)
        info["cached"] = True
    else:
        import json

        log(f"  building hnswlib over {name} ({X.shape[0]:,} x {X.shape[1]}) with {threads} threads ...")
        index = hnswlib.Index(space="ip", dim=X.shape[1])
        t0 = time.perf_counter()
        index.init_index(max_elements=X.shape[0], ef_construction=HNSW["ef_construction"], M=HNSW["M"], random_seed=100)
        step = 200_000
        for s in range(0, X.shape[0], step):
            chunk = np.ascontiguousarray(X[s : s + step])
            index.add_items(chunk, np.arange(s, s + len(chunk)), num_threads=threads)
        info = {"build_seconds": round(time.perf_counter() - t0, 1), "build_threads": threads,
                "build_load_average": load_average(), "cached": False}
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save_index(str(path))
        info_path.write_text(json.dumps(info))
        log(f"  built in {info['build_seconds']:.0f} s")
    info["file_bytes"] = path.stat().st_size
    info["bytes_per_doc"] = round(path.stat().st_size / X.shape[0], 1)
    info["rss_delta_mb"] = round(rss_mb() - before, 1)
    return index, info


def faiss_hnsw(X: np.ndarray, threads: int):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(X.shape[1], HNSW["M"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW["ef_construction"]
    before = rss_mb()
    t0 = time.perf_counter()
    step = 200_000
    for s in range(0, X.shape[0], step):
        index.add(np.ascontiguousarray(X[s : s + step]))
    seconds = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    return index, {"build_seconds": round(seconds, 1), "rss_delta_mb": round(rss_mb() - before, 1),
                   "bytes_per_doc": round((rss_mb() - before) * 2**20 / X.shape[0], 1)}


def have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- one dataset at one size ----------------------------------------------------------
def measure(
    cache: Path,
    name: str,
    X: np.ndarray,
    queries: np.ndarray,
    *,
    ann: bool,
    faiss_ann: bool,
    gensim_build: bool,
    repeat_floor: int,
    threads: int,
) -> dict[str, Any]:
    from abstractor_widgets.index import SimilarityIndex

    X = np.asarray(X)
    n, k = X.shape
    row: dict[str, Any] = {"dataset": name, "n": n, "k": k, "matrix_mb": round(X.nbytes / 2**20, 1),
                           "load_average": load_average()}
    # page the matrix in (the floor is about RAM bandwidth, not the disk)
    X.sum()
    qs = [np.ascontiguousarray(q, dtype=np.float32) for q in queries]
    with one_thread():
        floor = floor_ms(X, qs[0], repeat_floor)
        row["floor_max_ms"] = round(floor["max"], 4)
        row["floor_sum_ms"] = round(floor["sum"], 4)
        row["gemv_ms"] = round(floor["gemv"], 4)
        # the floor: the fastest single read of the matrix we measured
        row["floor_ms"] = round(min(floor["max"], floor["sum"]), 4)
        row["floor_gb_s"] = round(X.nbytes / 1e9 / (row["floor_ms"] / 1000), 1)
        t, truth = timed(lambda q: brute_top(X, q), qs)
        row["numpy"] = percentiles(t)
        # the layout SimilarityIndex.storage() saves (column-major), and the row-major one
        XF = np.asfortranarray(X)
        index = SimilarityIndex.from_vectors(XF, "hellinger", backend="exact")
        t, found = timed(lambda q: index.exact_top(q, TOP)[0], qs)
        row["blocked"] = percentiles(t)
        rowmajor = SimilarityIndex.from_vectors(X, "hellinger", backend="exact")
        t, found_c = timed(lambda q: rowmajor.exact_top(q, TOP)[0], qs)
        row["blocked_rowmajor"] = percentiles(t)
        t, _ = timed(lambda q: index.query(q, n=TOP), qs)
        row["index_query"] = percentiles(t)
        row["blocked_vs_floor"] = round(row["blocked"]["p50"] / row["floor_ms"], 2)
        row["blocked_vs_sum"] = round(row["blocked"]["p50"] / row["floor_sum_ms"], 2)
        row["blocked_vs_numpy"] = round(row["numpy"]["p50"] / row["blocked"]["p50"], 2)
        row["blocked_recall"] = recall(found, truth)
        # exactness: the same rows as brute force, up to score ties at the k-th place
        mismatch = 0
        for q, f, fc, tr in zip(qs, found, found_c, truth):
            if set(map(int, f)) != set(map(int, tr)) or set(map(int, fc)) != set(map(int, tr)):
                dots = X.astype(np.float64) @ q.astype(np.float64) if n <= 200_000 else X @ q
                worst = min(dots[np.asarray(f)].min(), dots[np.asarray(fc)].min())
                if not np.isclose(worst, dots[np.asarray(tr)].min(), atol=1e-6):
                    mismatch += 1
        row["blocked_mismatches"] = mismatch
        del XF
        gindex, gbuild = gensim_index(X, gensim_build)
        t, found = timed(lambda q: [i for i, _ in gindex[q]], qs)
        row["gensim"] = percentiles(t)
        row["gensim_build_s"] = None if gbuild is None else round(gbuild, 1)
        row["gensim_recall"] = recall(found, truth)
        del gindex
        if have("faiss"):
            import faiss

            faiss.omp_set_num_threads(1)
            flat = faiss.IndexFlatIP(k)
            flat.add(np.ascontiguousarray(X))
            t, found = timed(lambda q: flat.search(q.reshape(1, -1), TOP)[1][0], qs)
            row["faiss_flat"] = percentiles(t)
            row["faiss_flat_recall"] = recall(found, truth)
            del flat
    gc.collect()
    if ann and have("hnswlib"):
        graph, info = hnsw_index(cache, f"{name}-n{n}", X, threads)
        row["hnswlib"] = info
        sweep = []
        with one_thread():
            for ef in EF_SWEEP:
                graph.set_ef(max(ef, TOP))
                t, found = timed(lambda q: graph.knn_query(q.reshape(1, -1), k=TOP, num_threads=1)[0][0], qs)
                sweep.append({"ef": ef, **percentiles(t), "recall": recall(found, truth)})
        row["hnswlib_sweep"] = sweep
        del graph
        gc.collect()
    if faiss_ann and have("faiss"):
        import faiss

        graph, info = faiss_hnsw(X, threads)
        row["faiss_hnsw"] = info
        sweep = []
        with one_thread():
            faiss.omp_set_num_threads(1)
            for ef in EF_SWEEP:
                graph.hnsw.efSearch = max(ef, TOP)
                t, found = timed(lambda q: graph.search(q.reshape(1, -1), TOP)[1][0], qs)
                sweep.append({"ef": ef, **percentiles(t), "recall": recall(found, truth)})
        row["faiss_hnsw_sweep"] = sweep
        del graph
        gc.collect()
    log(f"  {name} n={n:,}: floor {row['floor_ms']:.3f} ms, numpy {row['numpy']['p50']:.3f}, "
        f"blocked {row['blocked']['p50']:.3f} ({row['blocked_vs_floor']}x floor, {row['blocked_vs_sum']}x sum), "
        f"row-major {row['blocked_rowmajor']['p50']:.3f}, gensim {row['gensim']['p50']:.3f}")
    return row


def block_sweep(X: np.ndarray, queries: np.ndarray, sizes=(4096, 16384, 26214, 65536, 262144, 1 << 20)) -> list[dict]:
    from abstractor_widgets.index import SimilarityIndex

    rows = []
    qs = [np.ascontiguousarray(q, dtype=np.float32) for q in queries]
    with one_thread():
        for b in sizes:
            index = SimilarityIndex.from_vectors(X, "hellinger", backend="exact", block_rows=b)
            t, _ = timed(lambda q: index.exact_top(q, TOP), qs)
            rows.append({"block_rows": b, "block_mb": round(b * X.shape[1] * 4 / 2**20, 2), **percentiles(t)})
    return rows


# -- end to end -------------------------------------------------------------------------
class TiledDocuments:
    """``n`` documents backed by a smaller table (row i is document i mod len(table))."""

    def __init__(self, table, n: int) -> None:
        self.table, self.n = table, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, row: int):
        import dataclasses

        doc = self.table[row % len(self.table)]
        return dataclasses.replace(doc, id=f"{doc.id}#{row}") if row >= len(self.table) else doc

    def field(self, field: str, row: int) -> str:
        return self.table.field(field, row % len(self.table))


def end_to_end(cache: Path, ab, p: np.ndarray, X: np.ndarray, texts: list[str], threads: int) -> list[dict]:
    """Colourise + top 5 (``Abstractor.analyze``) with an index of len(X) documents."""
    import copy

    from abstractor_widgets import Abstractor
    from abstractor_widgets.index import ANN_FILE, SimilarityIndex

    model = copy.copy(ab.model)
    model.doc_topics_ = p
    docs = TiledDocuments(ab.documents, len(X))
    out = []
    XF = np.asfortranarray(X)  # the layout SimilarityIndex.storage() saves
    for backend in ("exact", "hnsw"):
        index = SimilarityIndex.from_vectors(XF, "hellinger", backend=backend)
        if backend == "hnsw":
            if not have("hnswlib"):
                continue
            graph, info = hnsw_index(cache, f"real-derived-n{len(X)}", X, threads)
            index._ann = graph
            graph.set_ef(index.ann_params["ef"])
            assert index.active_backend == "hnsw" and ANN_FILE
        big = Abstractor(model, index, docs)
        cpu_ms: list[float] = []

        def analyze(text: str, big=big) -> None:
            c0 = time.thread_time()
            big.analyze(text, n=5)
            cpu_ms.append((time.thread_time() - c0) * 1000)

        with one_thread():
            t, _ = timed(analyze, texts, warmup=20)
        cpu_ms = cpu_ms[-len(texts):]
        out.append({"backend": backend, "documents": len(X), **percentiles(t), "cpu_p50": percentiles(cpu_ms)["p50"],
                    "cpu_p95": percentiles(cpu_ms)["p95"], "load_average": load_average()})
        log(f"  end to end at {len(X):,} ({backend}): p50 {out[-1]['p50']:.2f} ms")
    return out


# -- driver ------------------------------------------------------------------------------
#: Largest N at which each dataset gets an ANN index (builds cost ~0.2-0.4 CPU-ms per document).
ANN_MAX_N = {"dirichlet-k20": 2_700_000, "dirichlet-k50": 100_000, "real-derived": 2_700_000, "real": 10**9}
FAISS_MAX_N = {"real-derived": 1_000_000, "real": 10**9}
QUICK_ANN_MAX_N = {"real-derived": 10**9, "real": 10**9}
DATASETS = ("dirichlet-k20", "dirichlet-k50", "real", "real-derived")


def _real(cache: Path, quick: bool, n_queries: int):
    """(abstractor, real mixtures, prepared held-out queries, held-out texts)."""
    if quick:
        ab = trained_model(cache, 3000, n_topics=20, passes=2)
        held = split(3000)[1]["abstract"].tolist()
    else:
        ab = trained_model(cache, None, n_topics=20, passes=5)
        held = split(None)[1]["abstract"].tolist()
    real_p = np.asarray(ab.model.doc_topics_, dtype=np.float32)
    ab.model.progress = False
    real_q = prepare(ab.model.transform(held))
    keep = np.isfinite(real_q).all(axis=1)
    return ab, real_p, real_q[keep][:n_queries], [t for t, k in zip(held, keep) if k]


def run(cache: Path, quick: bool = False, threads: int | None = None, sizes=None, datasets=None,
        extras: bool = True) -> dict[str, Any]:
    """Measure ``datasets`` at ``sizes``; ``extras`` adds the block-size sweep and the end-to-end run."""
    threads = threads or os.cpu_count() or 1
    sizes = tuple(sizes or (QUICK_SIZES if quick else FULL_SIZES))
    n_queries = 30 if quick else 300
    datasets = tuple(datasets or DATASETS)
    ann_max = QUICK_ANN_MAX_N if quick else ANN_MAX_N
    faiss_max = {} if quick else FAISS_MAX_N
    result: dict[str, Any] = {"sizes": sizes, "top": TOP, "n_queries": n_queries, "hnsw": HNSW,
                              "ef_sweep": EF_SWEEP, "rows": []}
    rng = np.random.default_rng(123)
    real = None
    for name in datasets:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; known: {DATASETS}")
        if name.startswith("real") and real is None:
            real = _real(cache, quick, n_queries)
        if name == "real":
            X = prepare(real[1])
            row = measure(cache, "real", X, real[2], ann=True, faiss_ann=have("faiss") and not quick,
                          gensim_build=True, repeat_floor=21, threads=threads)
            result["rows"].append(row)
            continue
        for n in sizes:
            if name.startswith("dirichlet"):
                k = int(name.split("k")[-1])
                X = dirichlet_rows(cache, n, k)
                qs = prepare(rng.dirichlet([0.1] * k, size=n_queries))
            else:
                real_p = real[1]
                X = _cached_npy(Path(cache) / "data" / f"real-derived-rows-n{n}-{len(real_p)}.npy",
                                lambda: prepare(derived_mixtures(cache, real_p, n)))
                qs = real[2]
            row = measure(cache, name, X, qs, ann=n <= ann_max.get(name, 0),
                          faiss_ann=have("faiss") and n <= faiss_max.get(name, 0),
                          gensim_build=n <= 100_000, repeat_floor=7 if n >= 1_000_000 else 21, threads=threads)
            result["rows"].append(row)
            del X
            gc.collect()
    if extras:
        if real is None:
            real = _real(cache, quick, n_queries)
        ab, real_p, real_q, held = real
        n_max = max(sizes)
        X = _cached_npy(Path(cache) / "data" / f"real-derived-rows-n{n_max}-{len(real_p)}.npy",
                        lambda: prepare(derived_mixtures(cache, real_p, n_max)))
        result["block_sweep"] = block_sweep(X, real_q[: min(100, len(real_q))])
        p = derived_mixtures(cache, real_p, n_max)
        result["end_to_end"] = end_to_end(cache, ab, p, X, held[: (30 if quick else 400)], threads)
    return result


def tables(result: dict[str, Any]) -> str:
    rows = result["rows"]
    exact = []
    for r in rows:
        exact.append({
            "dataset": r["dataset"], "N": r["n"], "K": r["k"], "MB": r["matrix_mb"],
            "floor ms": r["floor_ms"], "GB/s": r["floor_gb_s"], "X.sum ms": r["floor_sum_ms"],
            "numpy p50": r["numpy"]["p50"], "blocked p50": r["blocked"]["p50"], "blocked p95": r["blocked"]["p95"],
            "row-major p50": (r.get("blocked_rowmajor") or {}).get("p50"),
            "blocked/floor": r["blocked_vs_floor"], "blocked/X.sum": r.get("blocked_vs_sum"),
            "numpy/blocked": r["blocked_vs_numpy"],
            "gensim p50": r["gensim"]["p50"],
            "faiss-flat p50": (r.get("faiss_flat") or {}).get("p50"),
            "exact ok": r["blocked_mismatches"] == 0, "load": r["load_average"][0] if r["load_average"] else None,
        })
    out = table(exact, title=f"Exact top-{result['top']} (ms, single thread; floor = fastest single read of the matrix, min(X.max(), X.sum()))")
    ann = []
    for r in rows:
        for lib in ("hnswlib", "faiss_hnsw"):
            if lib not in r:
                continue
            info = r[lib]
            for s in r[f"{lib}_sweep"]:
                ann.append({
                    "dataset": r["dataset"], "N": r["n"], "K": r["k"], "index": lib.replace("_", "-"), "ef": s["ef"],
                    "p50 ms": s["p50"], "p95 ms": s["p95"], "recall@10": round(s["recall"], 4),
                    "build s": info.get("build_seconds"), "bytes/doc": info.get("bytes_per_doc"),
                })
    out += table(ann, title="Approximate indexes (HNSW M=16, ef_construction=100; build uses all cores)")
    if result.get("block_sweep"):
        out += table(result["block_sweep"], ["block_rows", "block_mb", "p50", "p95"], title="Blocked scan: block size (largest real-derived matrix)")
    if result.get("end_to_end"):
        out += table(result["end_to_end"], ["backend", "documents", "n", "p50", "p95", "p99", "cpu_p50", "cpu_p95"],
                     title="End to end: analyze(text, n=5) at the largest size (ms; n = queries; cpu = this thread's CPU time)")
    return out
