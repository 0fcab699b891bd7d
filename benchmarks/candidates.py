"""Sublinear candidates: the hybrid ranking with early-terminated BM25 candidates vs exhaustive.

``python -m benchmarks.candidates [--artifact artifacts/default] [--quick]``

Four measurements (``--only artifact,synthetic,scaling,impact``; all by default):

``artifact``   A saved model (``Abstractor.load``). Its own documents are the queries (their
               abstract as a pasted text, their own row excluded). For every candidate
               configuration (``posting_depth`` x ``max_query_terms``) and query: the time of
               the BM25 candidate stage (``LexicalIndex.top(row, pool)``, the exact re-scoring
               included), the posting entries read, and the recall@10 of the hybrid top 10
               against the *exact* hybrid (every query term, whole posting lists, exact top
               ``pool``) and of the BM25 pool against the exact pool; then the time of
               ``Abstractor.analyze(text, n=10)`` with the default and the exact candidates.
               An artifact saved before impact ordering is re-ordered in memory first (timed).
``synthetic``  The same on a big index made from the artifact's: each synthetic row mixes two
               real documents (75% of one's terms, 25% of another's, with their weights, LSA
               vectors and topic mixtures mixed alike), so posting lists grow with the row
               count as in a bigger corpus. The queries are real documents held out of the
               mixing. Hybrid with three signals (no static embedding).
``scaling``    The same on growing random subsets of the artifact's documents (real posting
               lists), queries held out of all: recall at a fixed budget against corpus size.
``impact``     :func:`~abstractor_widgets.lexical.impact_postings` on a random Zipfian matrix
               (``--impact-rows`` x ~``--impact-nnz``): time and memory (RSS sampled every
               10 ms), next to the plain transpose it replaces.

``score_ratio@10`` says how close the approximate top 10 is in quality when it differs: the sum
of its hybrid scores over the exact top 10's. Nothing in the per-query loop is O(corpus) except the exact reference. The configurations
are interleaved query by query, so every one sees the same machine load. JSON goes to
``benchmarks/results/candidates.json`` (``candidates_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import gc
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from benchmarks.common import (
    RESULTS,
    ROOT,
    load_average,
    log,
    machine_info,
    percentiles,
    rss_mb,
    table,
    write_json,
)

Config = tuple[int | None, int | None, float]
#: (posting_depth, max_query_terms, rescore_factor) measured; EXACT is the reference (every
#: term, whole lists), PREVIOUS the previous default (whole lists of the 20 highest-impact terms).
EXACT: Config = (None, None, 2.0)
PREVIOUS: Config = (None, 20, 2.0)
GRID = [PREVIOUS] + [(d, t, f) for d in (250, 500, 1000, 2000) for t in (40, None) for f in (5.0, 10.0)]
SYNTHETIC_GRID = [PREVIOUS] + [(d, None, 10.0) for d in (250, 500, 1000, 2000, 4000)] + [(1000, None, 5.0), (1000, 40, 10.0)]
SCALING_GRID = [PREVIOUS, (500, None, 10.0), (1000, None, 10.0), (2000, None, 10.0)]
QUICK_GRID = [PREVIOUS, (50, 20, 2.0), (1000, None, 10.0)]


def config_name(config: Config) -> str:
    depth, terms, factor = config
    return f"depth={'all' if depth is None else depth} terms={'all' if terms is None else terms} rescore={factor:g}"


class _Configure:
    """Set a lexical index's candidate parameters for a block, then restore them."""

    def __init__(self, lexical: Any, config: Config) -> None:
        self.lexical, self.config = lexical, config

    def __enter__(self) -> None:
        lexical = self.lexical
        self.saved = (lexical.posting_depth, lexical.max_query_terms, lexical.rescore_factor)
        lexical.posting_depth, lexical.max_query_terms, lexical.rescore_factor = self.config

    def __exit__(self, *exc: object) -> None:
        self.lexical.posting_depth, self.lexical.max_query_terms, self.lexical.rescore_factor = self.saved


def compare(ranker: Any, queries: list[Any], grid: list[Config], n: int = 10) -> list[dict[str, Any]]:
    """Per configuration: candidate-stage time, entries read, hybrid recall@n and pool recall
    against the exact configuration, interleaved query by query."""
    from abstractor_widgets.ranking import single_threaded_blas

    lexical, pool = ranker.lexical, max(ranker.params.pool, n)
    configs = [EXACT] + [c for c in grid if c != EXACT]
    stats = {c: {"ms": [], "read": [], "terms": [], "recall": [], "pool_recall": [], "ratio": []} for c in configs}
    with single_threaded_blas():
        for query in queries:
            reference_pool: set[int] = set()
            reference: set[int] = set()
            reference_score = 0.0
            for config in configs:
                with _Configure(lexical, config):
                    start = time.perf_counter()
                    rows, _ = lexical.top(query.lexical_row, pool, exclude_rows=query.exclude_rows)
                    elapsed = (time.perf_counter() - start) * 1000
                    found = lexical.candidates(query.lexical_row, pool, exclude_rows=query.exclude_rows)
                    ranked = ranker.rank(query, n, "hybrid")
                top, score = {r for r, _ in ranked}, sum(s for _, s in ranked)
                if config == EXACT:
                    reference_pool, reference, reference_score = set(rows.tolist()), top, score
                s = stats[config]
                s["ms"].append(elapsed)
                s["read"].append(found.entries_read)
                s["terms"].append(found.terms)
                if reference:
                    s["recall"].append(len(top & reference) / len(reference))
                if reference_score > 0:
                    s["ratio"].append(score / reference_score)
                if reference_pool:
                    s["pool_recall"].append(len(set(rows.tolist()) & reference_pool) / len(reference_pool))
    out = []
    for config in configs:
        s = stats[config]
        out.append({"config": config_name(config), "posting_depth": config[0], "max_query_terms": config[1],
                    "rescore_factor": config[2],
                    f"recall@{n}": round(float(np.mean(s["recall"])), 4) if s["recall"] else None,
                    f"recall@{n}_min": round(float(np.min(s["recall"])), 4) if s["recall"] else None,
                    f"pool_recall@{pool}": round(float(np.mean(s["pool_recall"])), 4) if s["pool_recall"] else None,
                    # how close in quality: the hybrid scores of the top n, summed, over the exact top n's
                    f"score_ratio@{n}": round(float(np.mean(s["ratio"])), 4) if s["ratio"] else None,
                    "candidates_ms": percentiles(s["ms"]),
                    "entries_read": {"mean": round(float(np.mean(s["read"])), 1), "max": int(np.max(s["read"]))},
                    "terms_read": round(float(np.mean(s["terms"])), 1)})
    return out


def _rows_table(results: list[dict[str, Any]], n: int = 10) -> str:
    return table([{"config": r["config"], f"recall@{n}": r[f"recall@{n}"], "pool": next(v for k, v in r.items() if k.startswith("pool_recall")),
                   "score ratio": r[f"score_ratio@{n}"],
                   "p50 ms": r["candidates_ms"]["p50"], "p99 ms": r["candidates_ms"]["p99"],
                   "entries": r["entries_read"]["mean"]} for r in results])


# -- a saved artifact ------------------------------------------------------------------------
def measure_artifact(path: Path, n_queries: int, grid: list[Config], n_analyze: int,
                     seed: int = 0) -> dict[str, Any]:
    from abstractor_widgets import Abstractor

    start = time.perf_counter()
    ab = Abstractor.load(path, verify=False)
    load_s = time.perf_counter() - start
    lexical = ab.lexical
    if lexical is None:
        raise SystemExit(f"{path} has no lexical index")
    reorder_s = None
    if not lexical.impact_ordered_:
        log(f"{path}: posting lists in row order (saved before impact ordering): re-ordering them in memory")
        start = time.perf_counter()
        lexical.order_postings()
        reorder_s = round(time.perf_counter() - start, 3)
    rng = np.random.default_rng(seed)
    rows = np.unique(rng.integers(0, len(ab), 3 * n_queries))  # (no O(corpus) permutation)
    rows = rng.permutation(rows)
    queries, texts = [], []
    for row in rows.tolist():
        text = ab.documents[row].text
        tokens = ab.model.preprocessor_.tokens(text)
        topics = ab.model.analyze(text, tokens=tokens)[0]
        query = ab.ranker.query(topics, [t.text for t in tokens], "hybrid", text=text)
        if not ab.ranker.has_words(query):
            continue
        queries.append(replace(query, exclude_rows=(int(row),)))
        texts.append(text)
        if len(queries) == n_queries:
            break
    log(f"{path}: {len(ab):,} documents, {len(queries)} queries, {len(grid) + 1} configurations")
    results = compare(ab.ranker, queries, grid)
    print(_rows_table(results))
    from abstractor_widgets.lexical import LexicalIndex

    default = (lexical.posting_depth, lexical.max_query_terms, lexical.rescore_factor)  # the artifact's own
    fresh = LexicalIndex()  # what a model built now gets
    timed = list(dict.fromkeys([default, (fresh.posting_depth, fresh.max_query_terms, fresh.rescore_factor), EXACT]))
    analyze = {config_name(c): [] for c in timed}
    for text in texts[:n_analyze]:
        for config in timed:
            with _Configure(lexical, config):
                start = time.perf_counter()
                ab.analyze(text, n=10)
                analyze[config_name(config)].append((time.perf_counter() - start) * 1000)
    analyze_ms = {name: percentiles(ms) for name, ms in analyze.items()}
    log(f"analyze(n=10) ms: {analyze_ms}")
    return {"artifact": str(path), "n_documents": len(ab), "nnz": int(lexical.matrix_.nnz), "n_terms": lexical.n_terms,
            "load_s": round(load_s, 3), "reorder_postings_s": reorder_s, "queries": len(queries),
            "default": config_name(default), "static_embedding": ab.ranker.has_static,
            "pool": ab.ranker.params.pool, "configs": results, "analyze_ms": analyze_ms,
            "load_average": load_average()}


# -- a big synthetic index ---------------------------------------------------------------------
def mixed_index(lexical: Any, topics: np.ndarray, n_rows: int, parents: np.ndarray, seed: int = 0,
                chunk: int = 100_000) -> tuple[Any, np.ndarray]:
    """A LexicalIndex of ``n_rows`` synthetic documents and their topic mixtures.

    Row ``i`` mixes two random documents ``a`` and ``b`` of ``lexical`` (rows ``parents``): each of ``a``'s
    entries is kept with probability 0.75, each of ``b``'s with 0.25 (a term in both keeps
    the larger weight); its LSA vector is the unit ``0.75 v_a + 0.25 v_b``, its topic
    mixture ``0.75 t_a + 0.25 t_b``. Vocabulary, idf and projection are ``lexical``'s.
    """
    from abstractor_widgets.lexical import LexicalIndex, impact_postings

    rng = np.random.default_rng(seed)
    base = lexical.matrix_
    indptr, indices, data = np.asarray(base.indptr, dtype=np.int64), np.asarray(base.indices), np.asarray(base.data)
    n_terms = base.shape[1]
    parts_indptr, parts_indices, parts_data = [np.zeros(1, dtype=np.int64)], [], []
    vectors = np.zeros((n_rows, lexical.vectors_.shape[1]), dtype=np.float32)
    mixtures = np.zeros((n_rows, topics.shape[1]), dtype=np.float32)
    base_vectors, base_topics = np.asarray(lexical.vectors_), np.asarray(topics)
    offset = 0
    for lo in range(0, n_rows, chunk):
        hi = min(lo + chunk, n_rows)
        rows_, cols_, vals_ = [], [], []
        chosen = []
        for share in (0.75, 0.25):
            parent = parents[rng.integers(0, len(parents), hi - lo)]
            chosen.append(parent)
            starts, lengths = indptr[parent], indptr[parent + 1] - indptr[parent]
            local = np.repeat(np.arange(hi - lo), lengths)
            pos = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
            keep = rng.random(len(pos)) < share
            rows_.append(local[keep])
            cols_.append(indices[pos[keep]])
            vals_.append(data[pos[keep]])
        row, col, val = np.concatenate(rows_), np.concatenate(cols_).astype(np.int64), np.concatenate(vals_)
        key = row.astype(np.int64) * n_terms + col
        order = np.argsort(key, kind="stable")
        key, val = key[order], val[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        val = np.maximum.reduceat(val, first)
        key = key[first]
        counts = np.bincount(key // n_terms, minlength=hi - lo)
        parts_indptr.append(offset + np.cumsum(counts))
        offset += len(key)
        parts_indices.append((key % n_terms).astype(np.int32))
        parts_data.append(val.astype(np.float32))
        v = 0.75 * base_vectors[chosen[0]] + 0.25 * base_vectors[chosen[1]]
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        vectors[lo:hi] = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
        mixtures[lo:hi] = 0.75 * base_topics[chosen[0]] + 0.25 * base_topics[chosen[1]]
    index_dtype = np.int32 if offset < np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix((np.concatenate(parts_data), np.concatenate(parts_indices),
                            np.concatenate(parts_indptr).astype(index_dtype)), shape=(n_rows, n_terms))
    big = LexicalIndex(**lexical.get_params())
    # what a LexicalIndex needs to answer queries (build.py sets the same, plus counts_)
    big.terms_, big.vocabulary_, big.idf_ = lexical.terms_, lexical.vocabulary_, lexical.idf_
    big.mean_length_, big.n_documents_fit_ = lexical.mean_length_, n_rows
    big.matrix_ = matrix
    big.lengths_ = np.zeros(n_rows, dtype=np.float32)
    big.components_, big.vectors_ = lexical.components_, vectors
    start = time.perf_counter()
    big.set_postings(impact_postings(matrix), True)
    log(f"synthetic index: {n_rows:,} rows, {matrix.nnz:,} entries; impact_postings {time.perf_counter() - start:.1f} s")
    return big, mixtures


def measure_synthetic(path: Path, n_rows: int, n_queries: int, grid: list[Config],
                      seed: int = 0) -> dict[str, Any]:
    from abstractor_widgets import Abstractor
    from abstractor_widgets.index import SimilarityIndex
    from abstractor_widgets.ranking import Query, Ranker

    ab = Abstractor.load(path, verify=False, warm=False)
    # the queries are real papers held out of the synthetic rows (none is a parent of one)
    order = np.random.default_rng(seed + 1).permutation(len(ab))
    held, parents = order[: 2 * n_queries], np.sort(order[2 * n_queries:])
    start = time.perf_counter()
    big, mixtures = mixed_index(ab.lexical, np.asarray(ab.model.doc_topics_), n_rows, parents, seed=seed)
    build_s = time.perf_counter() - start
    ranker = Ranker(SimilarityIndex(mixtures, backend="exact"), big, ab.hybrid_params)
    queries = []
    for row in held.tolist():
        lexical_row = ab.lexical.row(row)  # a held-out paper of the small model: same vocabulary
        if lexical_row.nnz:
            queries.append(Query(np.asarray(ab.model.doc_topics_[row], dtype=np.float32), lexical_row))
        if len(queries) == n_queries:
            break
    gc.collect()
    gc.freeze()
    log(f"synthetic: {len(queries)} queries, {len(grid) + 1} configurations")
    results = compare(ranker, queries, grid)
    print(_rows_table(results))
    lengths = np.diff(np.asarray(big.postings_.indptr))
    return {"artifact": str(path), "n_documents": n_rows, "nnz": int(big.matrix_.nnz), "build_s": round(build_s, 1),
            "longest_list": int(lengths.max()), "queries": len(queries), "signals": "bm25 + topics + lsa (no static)",
            "configs": results, "load_average": load_average(), "rss_mb": round(rss_mb(), 1)}


# -- recall against corpus size, on real documents ------------------------------------------------
def measure_scaling(path: Path, sizes: list[int], n_queries: int, grid: list[Config], seed: int = 0) -> dict[str, Any]:
    """The same configurations on growing random subsets of the artifact's own documents
    (real posting lists, no synthetic mixing): how recall at a fixed budget moves with the
    corpus size. The queries are documents held out of every subset."""
    from abstractor_widgets import Abstractor
    from abstractor_widgets.index import SimilarityIndex
    from abstractor_widgets.lexical import LexicalIndex, impact_postings
    from abstractor_widgets.ranking import Query, Ranker

    ab = Abstractor.load(path, verify=False, warm=False)
    lexical, topics = ab.lexical, np.asarray(ab.model.doc_topics_)
    order = np.random.default_rng(seed + 2).permutation(len(ab))
    held, rest = order[:n_queries], order[n_queries:]
    queries = [Query(topics[r].astype(np.float32), lexical.row(int(r))) for r in held.tolist() if lexical.row(int(r)).nnz]
    out = []
    for size in sizes:
        rows = np.sort(rest[: min(size, len(rest))])
        subset = LexicalIndex(**lexical.get_params())
        subset.terms_, subset.vocabulary_, subset.idf_ = lexical.terms_, lexical.vocabulary_, lexical.idf_
        subset.mean_length_, subset.matrix_ = lexical.mean_length_, lexical.matrix_[rows]
        subset.components_, subset.vectors_ = lexical.components_, np.asarray(lexical.vectors_)[rows]
        subset.set_postings(impact_postings(subset.matrix_))
        results = compare(Ranker(SimilarityIndex(topics[rows], backend="exact"), subset, ab.hybrid_params), queries, grid)
        log(f"scaling: {len(rows):,} documents")
        print(_rows_table(results))
        out.append({"n_documents": len(rows), "configs": results})
    return {"artifact": str(path), "queries": len(queries), "sizes": out, "load_average": load_average()}


# -- impact_postings at scale --------------------------------------------------------------------
def zipf_matrix(n_rows: int, nnz: int, n_terms: int = 100_000, seed: int = 0, chunk: int = 100_000) -> sp.csr_matrix:
    """A random (n_rows, n_terms) float32 CSR matrix from ``nnz`` Zipfian column draws
    (exponent 1.1; a column drawn twice in a row counts once: ~25 % fewer entries), weights
    with ties, built ``chunk`` rows at a time."""
    rng = np.random.default_rng(seed)
    per_row = nnz / n_rows
    ranks = np.arange(1, n_terms + 1, dtype=np.float64) ** -1.1
    cdf = np.cumsum(ranks / ranks.sum())
    index_dtype = np.int32 if nnz * 1.01 < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    indices_parts, data_parts = [], []
    for lo in range(0, n_rows, chunk):
        hi = min(lo + chunk, n_rows)
        lengths = rng.poisson(per_row, hi - lo)
        local = np.repeat(np.arange(hi - lo, dtype=np.int64), lengths)
        cols = np.minimum(np.searchsorted(cdf, rng.random(len(local))), n_terms - 1)
        key = np.unique(local * n_terms + cols)
        counts = np.bincount(key // n_terms, minlength=hi - lo)
        indptr[lo + 1:hi + 1] = indptr[lo] + np.cumsum(counts)
        indices_parts.append((key % n_terms).astype(np.int32))
        data_parts.append((rng.integers(1, 200, len(key)) / np.float32(16)).astype(np.float32))
    return sp.csr_matrix((np.concatenate(data_parts), np.concatenate(indices_parts), indptr.astype(index_dtype)),
                         shape=(n_rows, n_terms))


class _PeakRss:
    """Peak resident memory of this process while a block runs (sampled every 10 ms)."""

    def __enter__(self) -> Self:
        import psutil

        self._process = psutil.Process()
        self.before = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def measure_impact(n_rows: int, nnz: int) -> dict[str, Any]:
    from abstractor_widgets.lexical import impact_postings

    start = time.perf_counter()
    matrix = zipf_matrix(n_rows, nnz)
    log(f"random matrix {matrix.shape}, {matrix.nnz:,} entries in {time.perf_counter() - start:.1f} s")
    input_mb = (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20
    gc.collect()
    out: dict[str, Any] = {"shape": list(matrix.shape), "nnz": int(matrix.nnz), "input_mb": round(input_mb, 1)}
    with _PeakRss() as memory:
        start = time.perf_counter()
        postings = impact_postings(matrix)
        seconds = time.perf_counter() - start
    output_mb = (postings.data.nbytes + postings.indices.nbytes + postings.indptr.nbytes) / 2**20
    out["impact_postings"] = {"seconds": round(seconds, 2), "output_mb": round(output_mb, 1),
                              "rss_before_mb": round(memory.before / 2**20, 1), "rss_peak_mb": round(memory.peak / 2**20, 1),
                              "extra_peak_mb": round((memory.peak - memory.before) / 2**20, 1),
                              "indices_dtype": str(postings.indices.dtype), "indptr_dtype": str(postings.indptr.dtype)}
    log(f"impact_postings: {out['impact_postings']}")
    del postings
    gc.collect()
    with _PeakRss() as memory:
        start = time.perf_counter()
        plain = sp.csr_matrix(matrix.T.tocsr())
        plain.sort_indices()
        seconds = time.perf_counter() - start
    out["plain_transpose"] = {"seconds": round(seconds, 2), "extra_peak_mb": round((memory.peak - memory.before) / 2**20, 1)}
    log(f"plain transpose: {out['plain_transpose']}")
    out["load_average"] = load_average()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=ROOT / "artifacts" / "default")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--analyze-queries", type=int, default=200)
    parser.add_argument("--synthetic-rows", type=int, default=1_200_000)
    parser.add_argument("--synthetic-queries", type=int, default=150)
    parser.add_argument("--impact-rows", type=int, default=2_700_000)
    parser.add_argument("--impact-nnz", type=int, default=195_000_000, help="column draws (~146M entries at the default)")
    parser.add_argument("--only", default="artifact,synthetic,scaling,impact",
                        help="comma-separated: artifact, synthetic, scaling, impact")
    parser.add_argument("--quick", action="store_true", help="a few queries, small synthetic sizes (for tests)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = only - {"artifact", "synthetic", "scaling", "impact"}
    if unknown:
        parser.error(f"unknown --only part(s): {sorted(unknown)}")
    if args.quick:
        args.queries, args.analyze_queries, args.synthetic_queries = min(args.queries, 15), 10, 10
        args.synthetic_rows, args.impact_rows, args.impact_nnz = 3_000, 20_000, 400_000
    grid = QUICK_GRID if args.quick else GRID
    out = args.out or RESULTS / ("candidates_quick.json" if args.quick else "candidates.json")
    payload: dict[str, Any] = {"machine": machine_info(), "quick": args.quick, "load_average_start": load_average()}
    if "artifact" in only:
        payload["artifact"] = measure_artifact(args.artifact, args.queries, grid, args.analyze_queries)
    if "synthetic" in only:
        payload["synthetic"] = measure_synthetic(args.artifact, args.synthetic_rows, args.synthetic_queries,
                                                 QUICK_GRID if args.quick else SYNTHETIC_GRID)
    if "scaling" in only:
        sizes = [100, 200] if args.quick else [7_500, 15_000, 30_000, 60_000]
        payload["scaling"] = measure_scaling(args.artifact, sizes, args.synthetic_queries if args.quick else 150,
                                             QUICK_GRID if args.quick else SCALING_GRID)
    if "impact" in only:
        payload["impact"] = measure_impact(args.impact_rows, args.impact_nnz)
    payload["load_average_end"] = load_average()
    log(f"wrote {write_json(out, payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
