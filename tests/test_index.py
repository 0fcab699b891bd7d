"""SimilarityIndex invariants, checked against a brute-force float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abstractor_widgets.index import METRICS, SimilarityIndex


def dirichlet(n: int, k: int, seed: int = 0, alpha: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet([alpha] * k, size=n).astype(np.float32)


def reference_scores(matrix: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Similarity of ``query`` to every row, computed directly in float64."""
    p = np.asarray(matrix, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "hellinger":
        p = p / p.sum(axis=1, keepdims=True)
        q = q / q.sum()
        bc = np.clip(np.sqrt(p * q).sum(axis=1), 0.0, 1.0)
        return 1.0 - np.sqrt(1.0 - bc)
    return (p @ q) / (np.linalg.norm(p, axis=1) * np.linalg.norm(q))


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    return dirichlet(200, 8, seed=1)


@pytest.fixture(scope="module", params=METRICS)
def index(request, matrix) -> SimilarityIndex:
    return SimilarityIndex(matrix, metric=request.param)


def test_scores_are_in_unit_interval_and_sorted_descending(index, matrix):
    for seed in range(5):
        query = dirichlet(1, 8, seed=100 + seed)[0]
        hits = index.query(query, n=50)
        scores = [s for _, s in hits]
        assert len(hits) == 50
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)
        all_scores = index.scores(query)
        assert all_scores.shape == (len(matrix),)
        assert ((all_scores >= 0) & (all_scores <= 1)).all()


def test_a_document_is_its_own_nearest_neighbour(index, matrix):
    for i in (0, 17, 199):
        row, score = index.query(matrix[i], n=1)[0]
        assert row == i
        assert score == pytest.approx(1.0, abs=1e-3)


def test_excluding_the_query_row(index, matrix):
    hits = index.query(matrix[5], n=10, exclude_rows=(5,))
    assert len(hits) == 10
    assert 5 not in [r for r, _ in hits]


def test_public_similarity_helpers_agree_with_the_query(index, matrix):
    rows = np.array([3, 40, 199])
    stored = index.vectors(rows)
    by_query = dict(index.query(matrix[7], n=len(matrix)))
    np.testing.assert_allclose(index.similarity_to(matrix[7], stored), [by_query[r] for r in rows], atol=1e-5)
    mixtures = index.mixtures(stored)
    np.testing.assert_allclose(mixtures / mixtures.sum(axis=1, keepdims=True) if index.metric == "hellinger"
                               else mixtures, matrix[rows] / (matrix[rows].sum(axis=1, keepdims=True)
                                                              if index.metric == "hellinger" else
                                                              np.linalg.norm(matrix[rows], axis=1, keepdims=True)), atol=1e-5)
    assert index.similarity(np.array([-0.5, 0.0, 1.0, 2.0])).tolist()[::3] == [0.0, 1.0]


def test_scaling_the_query_does_not_change_the_result(index, matrix):
    scaled, plain = index.query(matrix[3] * 7.5, n=5), index.query(matrix[3], n=5)
    assert [r for r, _ in scaled] == [r for r, _ in plain]
    np.testing.assert_allclose([s for _, s in scaled], [s for _, s in plain], atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_matches_the_reference_on_a_fixed_matrix(matrix, metric):
    index = SimilarityIndex(matrix, metric=metric)
    query = dirichlet(1, 8, seed=42)[0]
    reference = reference_scores(matrix, query, metric)
    hits = index.query(query, n=len(matrix))
    assert [r for r, _ in hits] == list(np.argsort(-reference, kind="stable"))
    np.testing.assert_allclose([s for _, s in hits], np.sort(reference)[::-1], atol=2e-3)


def test_identical_mixture_scores_one_and_disjoint_mixtures_zero():
    m = np.array([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0]], dtype=np.float32)
    for metric in METRICS:
        index = SimilarityIndex(m, metric=metric)
        hits = dict(index.query(np.array([1.0, 0, 0]), n=3))
        assert hits[0] == pytest.approx(1.0, abs=1e-6)
        assert hits[1] == pytest.approx(0.0, abs=1e-6)
        assert 0 < hits[2] < 1
    hellinger = dict(SimilarityIndex(m).query(np.array([1.0, 0, 0]), n=3))
    assert hellinger[2] == pytest.approx(1 - np.sqrt(1 - np.sqrt(0.5)), abs=1e-5)
    cosine = dict(SimilarityIndex(m, metric="cosine").query(np.array([1.0, 0, 0]), n=3))
    assert cosine[2] == pytest.approx(np.sqrt(0.5), abs=1e-5)


def test_exclude_rows(index, matrix):
    query = matrix[10]
    full = [r for r, _ in index.query(query, n=len(matrix))]
    hits = index.query(query, n=5, exclude_rows=[10, full[1], full[2], 10_000, -1])
    assert [r for r, _ in hits] == [r for r in full if r not in {10, full[1], full[2]}][:5]


def test_excluding_everything_gives_nothing(index, matrix):
    assert index.query(matrix[0], n=5, exclude_rows=range(len(matrix))) == []


def test_n_is_clamped_to_the_available_documents(index, matrix):
    assert len(index.query(matrix[0], n=10_000)) == len(matrix)
    assert len(index.query(matrix[0], n=10_000, exclude_rows=[0, 1])) == len(matrix) - 2
    assert index.query(matrix[0], n=0) == []
    assert index.query(matrix[0], n=-3) == []
    assert len(index.query(matrix[0], n=np.int64(4))) == 4


def test_zero_query_vector_gives_no_hits(index):
    assert index.query(np.zeros(8, dtype=np.float32), n=5) == []


def test_all_zero_rows_never_match():
    m = np.array([[0.0, 0.0], [0.3, 0.7]], dtype=np.float32)
    for metric in METRICS:
        index = SimilarityIndex(m, metric=metric)
        assert np.allclose(index.vectors_[0], 0)
        hits = index.query(np.array([0.5, 0.5]), n=2)
        assert hits[0][0] == 1
        assert hits[-1] == (0, 0.0)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("block_rows", [None, 1, 7, 64])
def test_top_n_path_equals_the_full_sort(matrix, metric, block_rows):
    """n < N goes through the partial top-n selection; n == N sorts every score: same answer."""
    index = SimilarityIndex(matrix, metric=metric, block_rows=block_rows)
    for seed in range(10):
        query = dirichlet(1, 8, seed=seed)[0]
        full = index.query(query, n=len(matrix))
        for n in (1, 3, 10, 49, len(matrix) - 1):
            assert index.query(query, n=n) == full[:n], f"n={n}"
        assert index.query(query, n=5, exclude_rows=[full[0][0]]) == full[1:6]


@settings(max_examples=60, deadline=None)
@given(
    n_docs=st.integers(1, 60),
    n_topics=st.integers(2, 12),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 70),
    alpha=st.sampled_from([0.05, 0.3, 1.0, 5.0]),
    metric=st.sampled_from(METRICS),
    block_rows=st.sampled_from([None, 1, 2, 5, 16]),
    duplicates=st.integers(0, 10),
)
def test_property_query_matches_brute_force_full_sort(n_docs, n_topics, seed, n, alpha, metric, block_rows, duplicates):
    matrix = dirichlet(n_docs, n_topics, seed=seed, alpha=alpha)
    rng = np.random.default_rng(seed)
    for _ in range(duplicates):  # exact ties, as with the same paper under two ids
        matrix[rng.integers(n_docs)] = matrix[rng.integers(n_docs)]
    query = dirichlet(1, n_topics, seed=seed + 1, alpha=alpha)[0]
    index = SimilarityIndex(matrix, metric=metric, block_rows=block_rows)
    hits = index.query(query, n=n)
    reference = reference_scores(matrix, query, metric)
    assert len(hits) == min(n, n_docs)
    rows = [r for r, _ in hits]
    scores = np.array([s for _, s in hits])
    assert len(set(rows)) == len(rows)
    assert (np.diff(scores) <= 0).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    expected = np.sort(reference)[::-1][: len(hits)]
    np.testing.assert_allclose(scores, expected, atol=2e-3)
    # every returned row is at least as good as every row left out (up to float32 noise)
    left_out = np.setdiff1d(np.arange(n_docs), rows)
    if len(left_out):
        assert reference[rows].min() >= reference[left_out].max() - 1e-4
    # the partial selection agrees with the full sort, ties included (lower row first)
    assert hits == index.query(query, n=n_docs)[: len(hits)]
    dots = index._dots(SimilarityIndex.prepare(query[None, :], metric)[0])  # the raw inner products ranked on
    for (r1, _), (r2, _) in zip(hits, hits[1:]):
        assert dots[r1] > dots[r2] or (dots[r1] == dots[r2] and r1 < r2)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("block_rows", [None, 3])
def test_ties_are_broken_the_same_way_whatever_n(metric, block_rows):
    """Duplicate mixtures (e.g. the same paper under two ids) tie exactly: the order must not depend on n."""
    rng = np.random.default_rng(5)
    matrix = rng.dirichlet([0.5] * 6, size=40).astype(np.float32)
    matrix[[3, 11, 19, 27, 35]] = matrix[27]
    index = SimilarityIndex(matrix, metric=metric, block_rows=block_rows)
    full = index.query(matrix[27], n=len(matrix))
    assert [r for r, _ in full[:5]] == [3, 11, 19, 27, 35]  # lowest row first
    for n in range(1, len(matrix)):
        assert index.query(matrix[27], n=n) == full[:n], f"n={n}"


def test_hnsw_backend_agrees_with_the_exact_scan(matrix):
    pytest.importorskip("hnswlib")
    exact = SimilarityIndex(matrix, backend="exact")
    approx = SimilarityIndex(matrix, backend="hnsw")
    assert (exact.active_backend, approx.active_backend) == ("exact", "hnsw")
    for seed in range(5):
        query = dirichlet(1, 8, seed=seed)[0]
        assert approx.query(query, n=10) == exact.query(query, n=10)
        assert approx.query(query, n=10, exact=True) == exact.query(query, n=10)


def test_add_appends_documents(matrix):
    index = SimilarityIndex(matrix[:10])
    index.add(matrix[10:12])
    assert len(index) == 12
    row, score = index.query(matrix[11], n=1)[0]
    assert row == 11 and score == pytest.approx(1.0, abs=1e-3)
    assert index.query(matrix[10], n=1)[0][0] == 10
    index.add(matrix[12])  # one vector is one document
    assert len(index) == 13


def test_add_errors_leave_the_index_unchanged(matrix):
    index = SimilarityIndex(matrix[:5])
    index.add(matrix[5:8])
    assert len(index) == 8
    with pytest.raises(ValueError, match="expected 8 topics"):
        index.add(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="finite and non-negative"):
        index.add(np.full((1, 8), np.nan))
    assert len(index) == 8


@pytest.mark.parametrize("bad", [
    np.array([np.nan, 0.5, 0.5, 0, 0, 0, 0, 0]),
    np.array([np.inf, 0.5, 0.5, 0, 0, 0, 0, 0]),
    np.array([-0.1, 0.6, 0.5, 0, 0, 0, 0, 0]),
])
def test_bad_query_values_raise(index, bad):
    with pytest.raises(ValueError, match="finite and non-negative"):
        index.query(bad, n=3)


@pytest.mark.parametrize("length", [7, 9, 1])
def test_query_of_wrong_length_raises(index, length):
    with pytest.raises(ValueError, match=f"expected a vector of 8 topics, got {length}"):
        index.query(np.full(length, 1.0 / length), n=3)


@pytest.mark.parametrize("n", [2.0, "3", None, True])
def test_non_integer_n_raises(index, matrix, n):
    with pytest.raises(TypeError, match="n must be an integer"):
        index.query(matrix[0], n=n)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="metric must be one of"):
        SimilarityIndex(np.ones((2, 2)), metric="euclidean")
    with pytest.raises(ValueError, match="non-empty 2-D"):
        SimilarityIndex(np.ones(3))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        SimilarityIndex(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="finite and non-negative"):
        SimilarityIndex(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="finite and non-negative"):
        SimilarityIndex(np.array([[-1.0, 2.0]]))


def test_vectors_are_unit_norm_and_float32(index, matrix):
    assert index.vectors_.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(index.vectors_, axis=1), 1.0, atol=1e-5)
    assert index.n_topics == 8 and len(index) == len(matrix)


def test_from_vectors_wraps_without_copying(index):
    wrapped = SimilarityIndex.from_vectors(index.vectors_, metric=index.metric)
    assert wrapped.vectors_ is index.vectors_
    query = dirichlet(1, 8, seed=9)[0]
    assert wrapped.query(query, n=5) == index.query(query, n=5)


def test_row_array_and_sorted_unique():
    """Rows to exclude arrive as arrays (a filter's millions), tuples, lists or generators."""
    from abstractor_widgets.index import row_array, sorted_unique

    for rows in (np.array([5, 1, 5, 3], dtype=np.int32), (5, 1, 5, 3), [5, 1, 5, 3], (r for r in (5, 1, 5, 3))):
        out = row_array(rows)
        assert out.dtype == np.int64 and out.tolist() == [5, 1, 5, 3]
    assert row_array(()).dtype == np.int64 and row_array(()).size == 0
    assert row_array(np.array([[2, 1]])).tolist() == [2, 1]
    assert sorted_unique(np.array([5, 1, 5, 3, -2])).tolist() == [-2, 1, 3, 5]
    assert sorted_unique(np.zeros(0, dtype=np.int64)).size == 0
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 1000, 10_000)
    assert np.array_equal(sorted_unique(keys), np.unique(keys))
