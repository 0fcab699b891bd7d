"""Sublinear BM25 candidates: impact-ordered postings and early termination (lexical.py).

Checked against the exhaustive candidate stage (every query term, whole posting lists), never
against timings: the cost is asserted as posting entries read.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import scipy.sparse as sp

from abstractor_widgets.lexical import LexicalIndex, impact_postings

WORDS = [f"w{i:04d}" for i in range(400)]


def zipf_docs(n: int, seed: int = 0) -> list[list[str]]:
    """Word lists with Zipfian word frequencies: long posting lists for common words."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    return [rng.choices(WORDS, weights, k=rng.randint(5, 60)) for _ in range(n)]


def assert_impact_ordered(postings: sp.csr_matrix) -> None:
    """Every row by descending weight, ties by column (document row)."""
    indptr, indices, data = np.asarray(postings.indptr), np.asarray(postings.indices), np.asarray(postings.data)
    for t in range(postings.shape[0]):
        rows, weights = indices[indptr[t]:indptr[t + 1]], data[indptr[t]:indptr[t + 1]]
        assert np.array_equal(np.lexsort((rows, -weights)), np.arange(len(rows))), f"list {t} is not impact-ordered"


def exhaustive(lex: LexicalIndex) -> LexicalIndex:
    """The same index with the exact candidate stage (every term, whole lists)."""
    exact = LexicalIndex(**{**lex.get_params(), "posting_depth": None, "max_query_terms": None})
    for name, value in vars(lex).items():
        if name.endswith("_"):
            setattr(exact, name, value)
    return exact


@pytest.fixture(scope="module")
def docs() -> list[list[str]]:
    return zipf_docs(600)


# -- impact_postings ---------------------------------------------------------------------------
@pytest.mark.parametrize("block", [1, 7, 1 << 19])
def test_impact_postings_sorted_and_same_entries(block):
    rng = np.random.default_rng(0)
    n_rows, n_cols = 300, 40
    dense = np.where(rng.random((n_rows, n_cols)) < 0.3, rng.integers(1, 6, (n_rows, n_cols)) / 4.0, 0.0)  # many ties
    dense[:5, 0] = [-1.0, -0.5, 2.0, -0.0, 1e-30]  # negatives and tiny values keep their float order
    matrix = sp.csr_matrix(dense.astype(np.float32))
    postings = impact_postings(matrix, block=block)
    assert postings.shape == (n_cols, n_rows)
    assert postings.indices.dtype == np.int32 and postings.indptr.dtype == np.int32 and postings.data.dtype == np.float32
    assert not postings.has_sorted_indices  # scipy must not take (or sort) them as column-sorted
    assert_impact_ordered(postings)
    np.testing.assert_array_equal(postings.toarray(), dense.T.astype(np.float32))  # same entries as the transpose
    plain = sp.csr_matrix(matrix.T)
    assert postings.nnz == plain.nnz
    np.testing.assert_array_equal(np.asarray(postings.indptr), np.asarray(sp.csr_matrix(plain).indptr))
    assert postings.data[postings.indptr[0]] == 2.0 and postings.data[postings.indptr[1] - 1] == -1.0


def test_impact_postings_empty_and_one_list():
    empty = impact_postings(sp.csr_matrix((4, 3), dtype=np.float32))
    assert empty.shape == (3, 4) and empty.nnz == 0
    one = impact_postings(sp.csr_matrix(np.array([[1.0], [3.0], [2.0]], dtype=np.float32)))
    assert one.indices.tolist() == [1, 2, 0] and one.data.tolist() == [3.0, 2.0, 1.0]


def test_fit_and_add_keep_postings_impact_ordered(docs, tmp_path):
    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0).fit(docs[:400])
    assert lex.impact_ordered_
    assert_impact_ordered(lex.postings_)
    np.testing.assert_allclose(lex.postings_.toarray(), lex.matrix_.toarray().T)
    lex.add(docs[400:])
    assert lex.impact_ordered_ and len(lex) == len(docs)
    assert_impact_ordered(lex.postings_)
    np.testing.assert_allclose(lex.postings_.toarray(), lex.matrix_.toarray().T)
    lex.save(tmp_path)
    meta = json.loads((tmp_path / "lexical.json").read_text())
    assert meta["postings"] == "impact"
    assert meta["params"]["posting_depth"] == lex.posting_depth and meta["params"]["rescore_factor"] == lex.rescore_factor
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.impact_ordered_ and not loaded.postings_.has_sorted_indices
    assert isinstance(loaded.postings_.indices.base, np.memmap)  # still memory-mapped
    assert_impact_ordered(loaded.postings_)
    assert loaded.get_params() == lex.get_params()


# -- early termination --------------------------------------------------------------------------
def test_full_depth_equals_exhaustive(docs):
    """With a depth of at least the longest list, every list is read whole: same rows, same
    scores (bit for bit) as the exhaustive dense path."""
    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0, max_query_terms=None).fit(docs)
    lex.posting_depth = int(np.diff(lex.postings_.indptr).max())
    exact = exhaustive(lex)
    for q in range(0, len(docs), 7):
        query = lex.row(q)
        for n in (1, 10, 100):
            rows, scores = lex.top(query, n, exclude_rows=(q,))
            expected_rows, expected_scores = exact.top(query, n, exclude_rows=(q,))
            np.testing.assert_array_equal(rows, expected_rows)
            np.testing.assert_array_equal(scores, expected_scores)
        found = lex.candidates(query, 10)
        assert found.exact and found.entries_read == exact.candidates(query, 10).entries_read


def test_truncated_candidates_keep_the_top_contract(docs):
    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0, posting_depth=5, max_query_terms=None).fit(docs)
    exact = exhaustive(lex)
    truncated = 0
    for q in range(0, len(docs), 5):
        query = lex.row(q)
        rows, scores = lex.top(query, 10, exclude_rows=(q, -1))
        found = lex.candidates(query, 10, exclude_rows=(q, -1))
        truncated += not found.exact
        assert q not in rows.tolist() and len(docs) - 1 not in rows.tolist()
        assert len(set(rows.tolist())) == len(rows)
        np.testing.assert_allclose(scores, exact.score_rows(query, rows), rtol=1e-6)  # exact scores
        assert np.all(np.diff(scores) <= 0) and np.all((scores > 0) & (scores <= 1))
        ties = [(s, r) for s, r in zip(scores.tolist(), rows.tolist())]
        assert ties == sorted(ties, key=lambda x: (-x[0], x[1]))  # best first, ties by row
    assert truncated > 0
    # fewer than n when few documents share a term
    rare = lex.transform_query([WORDS[-1]])
    rows, _ = lex.top(rare, 50)
    assert 0 < len(rows) < 50 and rows.tolist() == exact.top(rare, 50)[0].tolist()
    assert lex.top(lex.transform_query(["nothing"]), 5)[0].size == 0


@pytest.mark.parametrize("depth,max_terms", [(3, None), (10, None), (10, 8)])
def test_cost_bounded_whatever_the_corpus_size(depth, max_terms, monkeypatch):
    """Entries read (counted where they are gathered) <= terms x depth, for 1x, 4x and 16x
    the documents; the exhaustive stage reads more and more."""
    gathered: list[int] = []
    original = LexicalIndex._spans

    def counting(self, cols, depths):
        starts, ends = original(self, cols, depths)
        gathered.append(int((ends - starts).sum()))
        return starts, ends

    monkeypatch.setattr(LexicalIndex, "_spans", counting)
    base = zipf_docs(250, seed=1)
    exhaustive_reads = []
    for copies in (1, 4, 16):
        lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0, posting_depth=depth, max_query_terms=max_terms)
        lex.fit([list(d) for _ in range(copies) for d in base])
        exact = exhaustive(lex)
        reads = []
        for q in range(0, 250, 25):
            query = lex.row(q)
            gathered.clear()
            found = lex.candidates(query, 10, exclude_rows=(q,))
            n_terms = min(query.nnz, max_terms or query.nnz)
            assert found.terms == n_terms
            assert gathered == [found.entries_read]
            assert found.entries_read <= n_terms * depth
            reads.append(found.entries_read)
        exhaustive_reads.append(sum(exact.candidates(lex.row(q), 10).entries_read for q in range(0, 250, 25)))
        assert max(reads) <= (max_terms or 60) * depth
    assert exhaustive_reads[2] > 10 * exhaustive_reads[0]


def test_depth_follows_one_impact_threshold(docs):
    """Each list is read down to (about) one impact threshold: the entries read have higher
    impact than the lists' unread heads, within the sampling's granularity."""
    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0, posting_depth=20, max_query_terms=None).fit(docs)
    query = lex.row(3)
    cols, weights = lex._query_arrays(query)
    indptr = np.asarray(lex.postings_.indptr, dtype=np.int64)
    lengths = indptr[cols + 1] - indptr[cols]
    depths = lex._depths(cols, weights, lengths, len(cols) * 20)
    assert depths.sum() <= len(cols) * 20 and np.all(depths <= lengths)
    data = np.asarray(lex.postings_.data)
    last_read = [weights[i] * data[indptr[c] + d - 1] for i, (c, d) in enumerate(zip(cols, depths)) if d > 0]
    first_unread = [weights[i] * data[indptr[c] + d] for i, (c, d) in enumerate(zip(cols, depths)) if d < lengths[i]]
    assert min(last_read) >= np.quantile(first_unread, 0.5)  # deeper where the impacts are higher


def test_parameters(docs):
    for bad in ({"posting_depth": 0}, {"posting_depth": 2.5}, {"posting_depth": True}, {"rescore_factor": 0.5}):
        with pytest.raises(ValueError):
            LexicalIndex(**bad).fit(docs)
    lex = LexicalIndex(posting_depth=None, rescore_factor=3)
    assert lex.get_params()["posting_depth"] is None and lex.get_params()["rescore_factor"] == 3


# -- old saved indexes -----------------------------------------------------------------------------
def test_index_saved_before_impact_ordering_loads_and_works(docs, tmp_path):
    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=4).fit(docs)
    lex.save(tmp_path)
    # rewrite it as the previous version did: row-ordered lists, no "postings" flag, no new params
    plain = sp.csr_matrix(lex.matrix_.T.tocsr())
    plain.sort_indices()
    for name, array in (("t_data", plain.data), ("t_indices", plain.indices), ("t_indptr", plain.indptr)):
        np.save(tmp_path / f"lexical.{name}.npy", np.asarray(array, dtype=np.float32 if name == "t_data" else np.int32))
    meta = json.loads((tmp_path / "lexical.json").read_text())
    del meta["postings"], meta["params"]["posting_depth"], meta["params"]["rescore_factor"]
    (tmp_path / "lexical.json").write_text(json.dumps(meta))
    old = LexicalIndex.load(tmp_path)
    assert not old.impact_ordered_ and old.postings_.has_sorted_indices
    assert old.posting_depth == LexicalIndex().posting_depth  # the default, but not applied:
    assert old.rescore_factor == 2.0  # (re-scores 2 n candidates, as before)
    exact = exhaustive(lex)
    for q in range(0, len(docs), 11):
        query = old.row(q)
        found = old.candidates(query, 10, exclude_rows=(q,))
        assert found.entries_read == exhaustive(old).candidates(query, 10).entries_read or found.terms < query.nnz
        rows, scores = old.top(query, 10, exclude_rows=(q,))
        np.testing.assert_allclose(scores, exact.score_rows(query, rows), rtol=1e-6)
    # re-ordered in memory, it answers as a fresh index and saves the flag
    old.order_postings()
    assert old.impact_ordered_
    assert_impact_ordered(old.postings_)
    for q in range(0, len(docs), 11):
        a, b = old.top(old.row(q), 10, exclude_rows=(q,)), lex.top(lex.row(q), 10, exclude_rows=(q,))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    old.save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "lexical.json").read_text())["postings"] == "impact"


# -- the hybrid ranking -------------------------------------------------------------------------------
def test_hybrid_recall_against_exhaustive(synthetic_abstractor):
    """On the synthetic corpus, with lists cut to a fraction of their length, the hybrid top 10
    keeps >= 95% of the exhaustive hybrid's top 10."""
    ab = synthetic_abstractor
    lex, ranker = ab.lexical, ab.ranker
    assert lex.impact_ordered_
    saved = lex.posting_depth, lex.max_query_terms
    recalls, fractions = [], []
    try:
        for row in range(0, len(ab), 3):
            query = ranker.query_for_row(row, ab.model.doc_topics_[row])
            lex.posting_depth, lex.max_query_terms = None, None
            reference = {r for r, _ in ranker.rank(query, 10)}
            total = lex.candidates(query.lexical_row, 100, exclude_rows=(row,)).entries_read
            lex.posting_depth = 20
            found = lex.candidates(query.lexical_row, 100, exclude_rows=(row,))
            fractions.append(found.entries_read / total)
            recalls.append(len({r for r, _ in ranker.rank(query, 10)} & reference) / len(reference))
    finally:
        lex.posting_depth, lex.max_query_terms = saved
    assert np.mean(fractions) < 0.5  # the approximation bites: under half the entries read
    assert np.mean(recalls) >= 0.95


def test_benchmark_quick_mode(synthetic_artifact, tmp_path):
    from benchmarks.candidates import main

    out = tmp_path / "candidates.json"
    assert main(["--artifact", str(synthetic_artifact), "--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for part in ("artifact", "synthetic"):
        configs = result[part]["configs"]
        assert configs[0]["config"].startswith("depth=all terms=all") and configs[0]["recall@10"] == 1.0
        for config in configs:
            assert 0 <= config["recall@10"] <= 1 and config["candidates_ms"]["p50"] >= 0
            assert config["entries_read"]["max"] >= 0
    assert set(result["artifact"]["analyze_ms"]) and result["impact"]["impact_postings"]["seconds"] >= 0
    assert [size["n_documents"] for size in result["scaling"]["sizes"]] == [100, 200]


def test_staged_construction_with_set_postings(docs, tmp_path):
    """What a staged build does: set the fitted attributes, then the impact-ordered postings."""
    fitted = LexicalIndex(min_df=1, max_df=1.0, n_components=4).fit(docs)
    staged = LexicalIndex(**fitted.get_params())
    for name in ("terms_", "vocabulary_", "idf_", "mean_length_", "matrix_", "counts_", "lengths_", "components_",
                 "vectors_", "n_documents_fit_"):
        setattr(staged, name, getattr(fitted, name))
    assert not staged.impact_ordered_  # (the class default until postings are set)
    with pytest.raises(ValueError, match="transpose"):
        staged.set_postings(impact_postings(fitted.matrix_[:10]))
    staged.set_postings(impact_postings(staged.matrix_))
    assert staged.impact_ordered_
    staged.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.impact_ordered_ and json.loads((tmp_path / "lexical.json").read_text())["postings"] == "impact"
    for q in (0, 9, 33):
        a, b = loaded.top(loaded.row(q), 10), fitted.top(fitted.row(q), 10)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_impact_meta_is_what_save_writes(docs, tmp_path):
    from abstractor_widgets.lexical import impact_meta

    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0).fit(docs[:50])
    lex.save(tmp_path)
    meta = json.loads((tmp_path / "lexical.json").read_text())
    assert impact_meta() == {"postings": meta["postings"]} == {"postings": "impact"}
    assert impact_meta(False) == {"postings": "row"}


# -- the compiled accumulator ---------------------------------------------------------------------
def test_compiled_sums_equal_the_sorting_sums():
    """_compiled.sum_postings (blocks of rows, reused work arrays) gives the rows and the float64
    sums, bit for bit, of the numpy accumulator it replaces, over lists that cross blocks,
    repeat rows, are empty, and with excluded rows; calls of growing and shrinking sizes share
    the work arrays without leaking sums into each other."""
    from abstractor_widgets import lexical
    from abstractor_widgets._compiled import BLOCK_BITS, sum_postings

    rng = np.random.default_rng(7)
    n_rows = 5 * (1 << BLOCK_BITS) + 123
    for n_terms, length in ((12, 400), (40, 1000), (3, 5), (5, 0), (30, 50)):
        lengths = rng.integers(0, length + 1, n_terms) if length else np.zeros(n_terms, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pool = rng.integers(0, n_rows, max(n_rows // 50, 1))  # few distinct rows: many repeats across lists
        indices = rng.choice(pool, int(indptr[-1])).astype(np.int32)
        data = rng.random(int(indptr[-1]), dtype=np.float32)
        weights = rng.random(n_terms, dtype=np.float32)
        starts, ends = indptr[:-1], indptr[:-1] + rng.integers(0, lengths + 1)  # a prefix of each list
        # a few rows (a query's own paper), or most of them (a filter keeps one paper in ten)
        excluded = np.unique(indices[:3] if n_terms != 30 else np.flatnonzero(np.arange(n_rows) % 10)).astype(np.int64)
        rows = np.concatenate([indices[s:e] for s, e in zip(starts, ends)] + [np.zeros(0, np.int32)])
        values = np.concatenate([data[s:e] for s, e in zip(starts, ends)] + [np.zeros(0, np.float32)])
        values = values * np.repeat(weights, ends - starts)
        expected_rows, expected_sums = lexical._sum_by_row(rows, values)
        keep = ~np.isin(expected_rows, excluded)
        work = lexical._WORK.arrays(int((ends - starts).sum()))
        found = sum_postings(indices, data, starts, ends, weights, excluded, n_rows, *work)
        got_rows, got_sums = work[2][:found], work[3][:found]
        assert len(set(got_rows.tolist())) == found
        order = np.argsort(got_rows)
        np.testing.assert_array_equal(got_rows[order], expected_rows[keep])
        assert got_sums[order].tobytes() == expected_sums[keep].tobytes()  # bit for bit
        assert (work[4] == -1).all()  # the stamps are left clean for the next call


def test_compiled_and_numpy_candidate_stages_agree(docs, monkeypatch):
    """The same candidates and partial scores with and without numba."""
    from abstractor_widgets import lexical

    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=0, posting_depth=5, max_query_terms=12).fit(docs)
    queries = [lex.row(q) for q in range(0, len(docs), 11)]
    filtered = [r for r in range(len(docs)) if r % 3]  # as a filter excludes the papers it drops (unsorted)
    excluded = [(q * 11,) if q % 2 else filtered[::-1] for q in range(len(queries))]
    compiled = [lex.candidates(query, 10, exclude_rows=ex) for query, ex in zip(queries, excluded)]
    assert all(not set(found.rows.tolist()) & set(filtered) for found in compiled[::2])
    monkeypatch.setattr(lexical, "_compiled_sum", lambda: None)
    for query, found, ex in zip(queries, compiled, excluded):
        again = lex.candidates(query, 10, exclude_rows=ex)
        assert not found.exact and found.entries_read == again.entries_read
        assert dict(zip(found.rows.tolist(), found.scores.tolist())) == dict(zip(again.rows.tolist(), again.scores.tolist()))
