"""The similarity index at scale: blocked exact scan, HNSW backend, persistence, auto choice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abstractor_widgets import index as index_module
from abstractor_widgets.index import ANN_FILE, METRICS, SimilarityIndex


def dirichlet(n: int, k: int, seed: int = 0, alpha: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet([alpha] * k, size=n).astype(np.float32)


def clustered(n: int, k: int = 20, centres: int = 60, seed: int = 0) -> np.ndarray:
    """Real-ish topic mixtures: noisy draws around a few sparse 'paper types'.

    Real doc-topic vectors cluster (many papers share a mix of the same two or three
    topics), which is harder for an approximate index than uniform Dirichlet noise.
    """
    rng = np.random.default_rng(seed)
    base = rng.dirichlet([0.15] * k, size=centres)
    gamma = rng.standard_gamma(100 * base[rng.integers(0, centres, size=n)] + 0.02)
    return (gamma / gamma.sum(axis=1, keepdims=True)).astype(np.float32)


def brute(index: SimilarityIndex, vector: np.ndarray, n: int, excluded: set[int]) -> list[tuple[int, float]]:
    """Reference: float64 inner products over all rows, full sort by (-score, row)."""
    q = SimilarityIndex.prepare(np.atleast_2d(vector), index.metric)[0].astype(np.float64)
    dots = np.asarray(index.vectors_, dtype=np.float64) @ q
    order = [r for r in np.lexsort((np.arange(len(dots)), -dots)) if r not in excluded][:n]
    return [(int(r), float(dots[r])) for r in order]


def to_dot(index: SimilarityIndex, score: float) -> float:
    return 1.0 - (1.0 - score) ** 2 if index.metric == "hellinger" else score


# -- blocked exact scan ----------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    n_docs=st.integers(1, 300),
    n_topics=st.integers(2, 30),
    block_rows=st.one_of(st.none(), st.integers(1, 70)),
    n=st.integers(1, 320),
    seed=st.integers(0, 2**32 - 1),
    alpha=st.sampled_from([0.05, 0.3, 2.0]),
    n_excluded=st.integers(0, 12),
    metric=st.sampled_from(METRICS),
    duplicates=st.booleans(),
)
def test_blocked_exact_equals_brute_force(n_docs, n_topics, block_rows, n, seed, alpha, n_excluded, metric, duplicates):
    matrix = dirichlet(n_docs, n_topics, seed=seed, alpha=alpha)
    rng = np.random.default_rng(seed)
    if duplicates and n_docs > 3:  # exact ties must be broken by row, whatever the blocks
        matrix[rng.integers(0, n_docs, size=n_docs // 3)] = matrix[0]
    query = matrix[0] if duplicates else dirichlet(1, n_topics, seed=seed + 1, alpha=alpha)[0]
    index = SimilarityIndex(matrix, metric=metric, backend="exact", block_rows=block_rows)
    excluded_rows = set(rng.integers(0, n_docs, size=n_excluded).tolist())
    hits = index.query(query, n=n, exclude_rows=list(excluded_rows) + [n_docs + 5, -1])  # out of range: ignored
    reference = brute(index, query, n, excluded_rows)
    assert len(hits) == len(reference) == min(n, n_docs - len(excluded_rows))
    assert not {r for r, _ in hits} & excluded_rows
    np.testing.assert_allclose([to_dot(index, s) for _, s in hits], [d for _, d in reference], atol=2e-6)
    # rows agree wherever the float64 reference separates them clearly
    ref_dots = dict(reference)
    for (row, _), (ref_row, ref_dot) in zip(hits, reference):
        if row != ref_row:
            assert abs(ref_dots.get(row, -1) - ref_dot) < 1e-5 or abs(to_dot(index, dict(hits)[row]) - ref_dot) < 1e-5
    # and the blocked top-k is exactly the full sort of the same products (same floats, ties by row)
    q = SimilarityIndex.prepare(np.atleast_2d(query), metric)[0]
    dots = index._dots(q)
    order = np.lexsort((np.arange(n_docs), -dots))
    k = min(n, n_docs)
    rows, top = index.exact_top(q, k)
    assert rows.tolist() == order[:k].tolist()
    assert top.tolist() == dots[order[:k]].tolist()


@pytest.mark.parametrize("block_rows", [1, 7, 64, 1000, None])
def test_block_size_never_changes_the_answer(block_rows):
    matrix = dirichlet(5000, 20, seed=3, alpha=0.1)
    reference = SimilarityIndex(matrix, backend="exact", block_rows=5000)
    index = SimilarityIndex(matrix, backend="exact", block_rows=block_rows)
    for seed in range(5):
        q = dirichlet(1, 20, seed=50 + seed, alpha=0.1)[0]
        got, want = index.query(q, n=10), reference.query(q, n=10)
        assert [r for r, _ in got] == [r for r, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)


def test_increasing_scores_worst_case_for_the_running_threshold():
    """Every block beats the previous one: the candidate list must stay bounded and correct."""
    k = 16
    n = 4000
    weights = np.linspace(0.01, 0.99, n, dtype=np.float32)
    matrix = np.stack([weights, 1 - weights], axis=1)
    index = SimilarityIndex(matrix, backend="exact", block_rows=100)
    hits = index.query(np.array([1.0, 0.0]), n=k)
    assert [r for r, _ in hits] == list(range(n - 1, n - 1 - k, -1))


def test_bad_backend_and_parameters_raise():
    m = dirichlet(10, 3)
    with pytest.raises(ValueError, match="backend must be one of"):
        SimilarityIndex(m, backend="faiss")
    with pytest.raises(ValueError, match="unknown HNSW parameter"):
        SimilarityIndex(m, backend="exact", ann={"efSearch": 3})
    with pytest.raises(ValueError, match="block_rows must be positive"):
        SimilarityIndex(m, backend="exact", block_rows=0)


# -- automatic backend -------------------------------------------------------------------
def test_auto_switches_to_hnsw_at_the_threshold(monkeypatch):
    pytest.importorskip("hnswlib")
    monkeypatch.setattr(index_module, "ANN_AUTO_MIN_CELLS", 2000)
    small = SimilarityIndex(dirichlet(99, 20), backend="auto")  # 1,980 cells
    big = SimilarityIndex(dirichlet(100, 20), backend="auto")  # 2,000 cells
    assert small.active_backend == "exact"
    assert big.active_backend == "hnsw"
    assert SimilarityIndex(dirichlet(500, 20), backend="exact").active_backend == "exact"
    assert SimilarityIndex(dirichlet(5, 20), backend="hnsw").active_backend == "hnsw"
    # wrapping saved vectors never builds (a saved graph is loaded with load_extra)
    assert SimilarityIndex.from_vectors(big.vectors_, "hellinger").active_backend == "exact"
    # growing past the threshold builds the graph
    small.add(dirichlet(1, 20, seed=9))
    assert small.active_backend == "hnsw" and small._ann.get_current_count() == 100


def test_default_threshold_is_what_the_docs_say():
    assert index_module.ANN_AUTO_MIN_CELLS == 5_000_000  # 250k documents at K = 20
    index = SimilarityIndex(dirichlet(1000, 20))
    assert index.backend == "auto" and index.active_backend == "exact"


def test_auto_without_hnswlib_falls_back_to_exact(monkeypatch, caplog):
    monkeypatch.setattr(index_module, "ANN_AUTO_MIN_CELLS", 10)
    monkeypatch.setattr(index_module, "hnswlib_available", lambda: False)
    index = SimilarityIndex(dirichlet(50, 4), backend="auto")
    assert index.active_backend == "exact"
    assert "install hnswlib" in caplog.text


# -- HNSW backend -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def realish():
    pytest.importorskip("hnswlib")
    data = clustered(6000, 20, seed=1)
    return data[:5800], data[5800:]


@pytest.fixture(scope="module")
def ann_index(realish):
    docs, _ = realish
    return SimilarityIndex(docs, backend="hnsw")


def recall_at_10(index: SimilarityIndex, queries: np.ndarray) -> float:
    hits = []
    for q in queries:
        ann = {r for r, _ in index.query(q, n=10)}
        exact = {r for r, _ in index.query(q, n=10, exact=True)}
        hits.append(len(ann & exact) / 10)
    return float(np.mean(hits))


def test_hnsw_recall_on_clustered_mixtures(ann_index, realish):
    _, queries = realish
    assert ann_index.active_backend == "hnsw"
    assert recall_at_10(ann_index, queries) >= 0.95


def test_hnsw_scores_are_the_exact_scores(ann_index, realish):
    _, queries = realish
    for q in queries[:20]:
        ann = ann_index.query(q, n=5)
        scores = ann_index.scores(q)
        assert [s for _, s in ann] == sorted((s for _, s in ann), reverse=True)
        for row, score in ann:
            assert score == pytest.approx(float(scores[row]), abs=1e-6)


def test_hnsw_exclusions_and_fallbacks(ann_index, realish):
    docs, queries = realish
    q = queries[0]
    top = [r for r, _ in ann_index.query(q, n=6)]
    hits = ann_index.query(q, n=5, exclude_rows=[top[0], top[1]])
    assert [r for r, _ in hits][:4] == top[2:]
    assert not {top[0], top[1]} & {r for r, _ in hits}
    # more than the graph is asked for: the exact scan answers (same as exact=True)
    many = ann_index.query(q, n=index_module.ANN_MAX_K + 1)
    assert many == ann_index.query(q, n=index_module.ANN_MAX_K + 1, exact=True)
    assert len(ann_index.query(q, n=len(docs) + 10)) == len(docs)
    # a document's nearest neighbour (itself excluded)
    assert all(r != 7 for r, _ in ann_index.query(docs[7], n=5, exclude_rows=(7,)))
    assert ann_index.query(docs[7], n=1)[0][0] == 7


def test_hnsw_tiny_index_still_answers():
    pytest.importorskip("hnswlib")
    index = SimilarityIndex(dirichlet(3, 4), backend="hnsw")
    assert len(index.query(dirichlet(1, 4, seed=2)[0], n=3)) == 3
    assert index.query(np.zeros(4), n=3) == []


def test_save_and_load_without_rebuild(ann_index, realish, tmp_path, monkeypatch):
    _, queries = realish
    files = ann_index.save_extra(tmp_path)
    assert files == [ANN_FILE] and (tmp_path / ANN_FILE).is_file()
    entry = ann_index.manifest_entry()
    assert entry["backend"] == "hnsw" and entry["ann"]["count"] == len(ann_index)
    assert entry["ann"]["file"] == ANN_FILE and entry["ann"]["dim"] == 20

    def no_build(*args, **kwargs):
        raise AssertionError("the HNSW graph was rebuilt instead of loaded")

    monkeypatch.setattr(SimilarityIndex, "build_ann", no_build)
    vectors = np.array(ann_index.vectors_)
    loaded = SimilarityIndex.from_vectors(vectors, "hellinger").load_extra(tmp_path, entry)
    assert loaded.active_backend == "hnsw" and loaded.backend == "hnsw"
    for q in queries[:30]:
        assert loaded.query(q, n=10) == ann_index.query(q, n=10)


def test_load_extra_checks_the_graph_matches(ann_index, tmp_path):
    ann_index.save_extra(tmp_path)
    entry = ann_index.manifest_entry()
    fewer = SimilarityIndex.from_vectors(np.array(ann_index.vectors_[:-1]), "hellinger")
    with pytest.raises(ValueError, match="saved HNSW index has"):
        fewer.load_extra(tmp_path, entry)
    # no entry (an artifact saved before the index had extras) or no graph: exact scan
    plain = SimilarityIndex.from_vectors(np.array(ann_index.vectors_), "hellinger")
    assert plain.load_extra(tmp_path, None).active_backend == "exact"
    assert plain.load_extra(tmp_path, {"backend": "exact", "block_rows": None}).active_backend == "exact"
    assert SimilarityIndex(dirichlet(10, 3), backend="exact").save_extra(tmp_path / "nothing") == []


def test_add_grows_the_graph_and_survives_a_round_trip(realish, tmp_path):
    docs, queries = realish
    index = SimilarityIndex(docs[:3000], backend="hnsw")
    new = clustered(40, 20, seed=77)
    index.add(new)
    assert len(index) == 3040 and index._ann.get_current_count() == 3040
    for i in (0, 17, 39):
        row, score = index.query(new[i], n=1)[0]
        assert row == 3000 + i and score == pytest.approx(1.0, abs=1e-3)
    assert recall_at_10(index, queries[:100]) >= 0.95
    index.save_extra(tmp_path)
    loaded = SimilarityIndex.from_vectors(index.vectors_, "hellinger").load_extra(tmp_path, index.manifest_entry())
    assert loaded.query(new[5], n=3) == index.query(new[5], n=3)
    loaded.add(clustered(5, 20, seed=78))  # a loaded graph grows too
    assert loaded._ann.get_current_count() == 3045


def test_hnsw_on_a_trained_models_real_vectors(shared_abstractor, held_out_texts):
    """Recall of the HNSW backend on a real model's document vectors (held-out abstracts as queries)."""
    pytest.importorskip("hnswlib")
    doc_topics = np.asarray(shared_abstractor.model.doc_topics_)
    index = SimilarityIndex(doc_topics, backend="hnsw")
    queries = shared_abstractor.model.transform(held_out_texts[:100])
    queries = queries[np.isfinite(queries).all(axis=1) & (queries.sum(axis=1) > 0)]
    assert recall_at_10(index, queries) >= 0.95


def test_the_store_round_trip_the_lead_wires(realish, tmp_path, monkeypatch):
    """What store.py does: vectors saved column-major and memory-mapped back, the graph and
    its manifest entry (through JSON) restored without a rebuild; queries unchanged."""
    import json

    docs, queries = realish
    index = SimilarityIndex(docs, backend="hnsw")
    np.save(tmp_path / "vectors.npy", index.storage())
    files = index.save_extra(tmp_path)
    entry = json.loads(json.dumps(index.manifest_entry()))
    monkeypatch.setattr(SimilarityIndex, "build_ann", lambda *a, **k: pytest.fail("rebuilt"))
    vectors = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    assert isinstance(vectors, np.memmap) and vectors.flags.f_contiguous
    loaded = SimilarityIndex.from_vectors(vectors, "hellinger").load_extra(tmp_path, entry)
    assert files == [ANN_FILE] and loaded.active_backend == "hnsw"
    for q in queries[:20]:
        assert loaded.query(q, n=5) == index.query(q, n=5)
        assert loaded.query(q, n=5, exact=True) == index.query(q, n=5, exact=True)


def test_column_major_and_row_major_storage_agree():
    matrix = dirichlet(3000, 20, seed=4, alpha=0.1)
    column = SimilarityIndex(matrix, backend="exact")
    row = SimilarityIndex.from_vectors(np.ascontiguousarray(column.vectors_), "hellinger", backend="exact")
    assert column.vectors_.flags.f_contiguous and row.vectors_.flags.c_contiguous
    for seed in range(10):
        q = dirichlet(1, 20, seed=100 + seed, alpha=0.1)[0]
        assert column.query(q, n=10) == row.query(q, n=10)
        np.testing.assert_array_equal(column.scores(q), row.scores(q))
    column.add(dirichlet(5, 20, seed=7))
    assert column.vectors_.flags.f_contiguous and len(column) == 3005
