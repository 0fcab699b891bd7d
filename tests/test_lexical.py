"""LexicalIndex: BM25 / TF-IDF over the package's words, checked against brute-force references."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from abstractor_widgets.lexical import LexicalIndex, display_term, document_words

VOCAB = [f"w{i:03d}" for i in range(60)] + ["neural_network", "graph", "kernel", "éclair"]


def random_docs(n: int = 80, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        # Zipf-ish: low indices frequent, so min_df / max_df both bite
        docs.append([VOCAB[min(int(rng.paretovariate(0.7)) - 1, len(VOCAB) - 1)] for _ in range(rng.randint(0, 40))])
    return docs


def brute_force_bm25(docs: list[list[str]], min_df: int, max_df: float, k1: float = 1.2, b: float = 0.75):
    """Okapi BM25 written out longhand: (terms, document weights, query rows, scores)."""
    n = len(docs)
    df: dict[str, int] = {}
    for d in docs:
        for w in set(d):
            df[w] = df.get(w, 0) + 1
    terms = sorted(w for w, c in df.items() if c >= min_df and c <= max_df * n)
    col = {t: i for i, t in enumerate(terms)}
    idf = np.array([np.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms])
    tf = np.zeros((n, len(terms)))
    for i, d in enumerate(docs):
        for w in d:
            if w in col:
                tf[i, col[w]] += 1
    length = tf.sum(axis=1, keepdims=True)
    mean = length.mean()

    def doc_weights(counts, dl):
        return idf * counts * (k1 + 1) / (counts + k1 * (1 - b + b * dl / mean))

    weights = doc_weights(tf, length)
    queries = np.where(tf > 0, 1 + np.log(np.where(tf > 0, tf, 1)), 0)
    self_scores = (queries * doc_weights(tf, length)).sum(axis=1, keepdims=True)
    queries = np.divide(queries, self_scores, out=np.zeros_like(queries), where=self_scores > 0)
    return terms, weights, queries, np.clip(queries @ weights.T, 0, 1)


def brute_force(docs: list[list[str]], min_df: int, max_df: float) -> tuple[list[str], np.ndarray]:
    """TF-IDF as scikit-learn defines it (smooth idf, sublinear tf, L2 rows), written out longhand."""
    n = len(docs)
    df: dict[str, int] = {}
    for d in docs:
        for w in set(d):
            df[w] = df.get(w, 0) + 1
    terms = sorted(w for w, c in df.items() if c >= min_df and c <= max_df * n)
    col = {t: i for i, t in enumerate(terms)}
    idf = np.array([np.log((1 + n) / (1 + df[t])) + 1 for t in terms])
    x = np.zeros((n, len(terms)))
    for i, d in enumerate(docs):
        for w in d:
            if w in col:
                x[i, col[w]] += 1
    x = np.where(x > 0, 1 + np.log(np.where(x > 0, x, 1)), 0) * idf
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return terms, np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@pytest.fixture(scope="module")
def docs() -> list[list[str]]:
    return random_docs()


@pytest.mark.parametrize("min_df,max_df", [(1, 1.0), (2, 0.5), (3, 0.2)])
def test_tfidf_matches_brute_force(docs, min_df, max_df):
    lex = LexicalIndex(scheme="tfidf", min_df=min_df, max_df=max_df).fit(docs)
    terms, expected = brute_force(docs, min_df, max_df)
    assert lex.terms_ == terms
    assert lex.vocabulary_ == {t: i for i, t in enumerate(terms)}
    np.testing.assert_allclose(lex.matrix_.toarray(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lex.postings_.toarray(), expected.T, rtol=1e-5, atol=1e-6)
    assert lex.matrix_.dtype == np.float32 and lex.matrix_.indices.dtype == np.int32


def test_matches_scikit_learn(docs):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=lambda words: words, sublinear_tf=True, min_df=2, max_df=0.5)
    expected = vectorizer.fit_transform(docs).toarray()
    lex = LexicalIndex(scheme="tfidf", min_df=2, max_df=0.5).fit(docs)
    assert lex.terms_ == list(vectorizer.get_feature_names_out())
    np.testing.assert_allclose(lex.matrix_.toarray(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("min_df,max_df", [(1, 1.0), (2, 0.5)])
def test_bm25_matches_brute_force(docs, min_df, max_df):
    lex = LexicalIndex(min_df=min_df, max_df=max_df, max_query_terms=None).fit(docs)
    terms, weights, queries, scores = brute_force_bm25(docs, min_df, max_df)
    assert lex.scheme == "bm25" and lex.terms_ == terms
    np.testing.assert_allclose(lex.matrix_.toarray(), weights, rtol=1e-5, atol=1e-6)
    for q in range(0, len(docs), 5):
        np.testing.assert_allclose(lex.row(q).toarray()[0], queries[q], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lex.transform_query(docs[q]).toarray()[0], queries[q], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lex.scores(lex.row(q)), scores[q], rtol=1e-4, atol=1e-6)
        if queries[q].any():
            assert lex.scores(lex.row(q))[q] == pytest.approx(1.0, rel=1e-5)  # a text against itself


@pytest.mark.parametrize("max_terms", [None, 3, 8])
def test_bm25_top_matches_brute_force(docs, max_terms):
    """Pruned candidate generation still returns exact scores, and the same top documents here."""
    lex = LexicalIndex(min_df=1, max_df=1.0, max_query_terms=max_terms).fit(docs)
    *_, scores = brute_force_bm25(docs, 1, 1.0)
    for q in range(0, len(docs), 3):
        rows, got = lex.top(lex.row(q), 5, exclude_rows=(q,))
        assert q not in rows.tolist()
        np.testing.assert_allclose(got, scores[q][rows], rtol=1e-4, atol=1e-6)  # exact scores
        assert np.all(np.diff(got) <= 0) and np.all((got >= 0) & (got <= 1))
        if max_terms is None:
            masked = scores[q].copy()
            masked[q] = -1
            np.testing.assert_allclose(got, np.sort(masked)[::-1][: len(got)], rtol=1e-4, atol=1e-6)


def test_top_matches_brute_force(docs):
    lex = LexicalIndex(scheme="tfidf", min_df=1, max_df=0.6, max_query_terms=None).fit(docs)
    _, dense = brute_force(docs, 1, 0.6)
    for q in range(0, len(docs), 7):
        query = lex.transform_query(docs[q])
        expected = dense @ dense[q]
        np.testing.assert_allclose(lex.scores(query), expected, rtol=1e-5, atol=1e-6)
        rows, scores = lex.top(query, 5, exclude_rows=(q,))
        assert q not in rows.tolist()
        assert np.all(np.diff(scores) <= 0) and np.all((scores >= 0) & (scores <= 1))
        masked = expected.copy()
        masked[q] = -1
        np.testing.assert_allclose(scores, np.sort(masked)[::-1][: len(scores)], rtol=1e-5, atol=1e-6)
        assert all(expected[r] > 0 for r in rows)


@pytest.mark.parametrize("scheme", ["bm25", "tfidf"])
def test_transform_query_equals_stored_row(docs, scheme):
    lex = LexicalIndex(scheme=scheme, min_df=2, max_df=0.5).fit(docs)
    for q in (0, 5, 17):
        np.testing.assert_allclose(lex.transform_query(docs[q]).toarray(), lex.row(q).toarray(), rtol=1e-5, atol=1e-6)
    if scheme == "tfidf":
        np.testing.assert_allclose(lex.row(3).toarray(), lex.matrix_[3].toarray(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lex.transform(docs[:3]).toarray(), lex.matrix_[:3].toarray(), rtol=1e-5, atol=1e-6)


def test_query_edge_cases(docs):
    lex = LexicalIndex(min_df=2, max_df=0.5).fit(docs)
    empty = lex.transform_query(["unknown", "words"])
    assert empty.shape == (1, lex.n_terms) and empty.nnz == 0
    assert lex.top(empty, 5)[0].size == 0
    assert lex.top(lex.row(0), 0)[0].size == 0
    assert lex.shared_terms(empty, 0) == []
    with pytest.raises(TypeError):
        lex.transform_query("a string")
    with pytest.raises(TypeError):
        lex.top(lex.row(0), 2.5)
    with pytest.raises(ValueError):
        lex.top(sp.csr_matrix((1, lex.n_terms + 1)), 3)
    with pytest.raises(IndexError):
        lex.row(len(docs))
    with pytest.raises(RuntimeError):
        LexicalIndex().transform_query(["x"])
    with pytest.raises(ValueError):
        LexicalIndex(max_df=0).fit(docs)
    with pytest.raises(ValueError):
        LexicalIndex(scheme="bm99").fit(docs)
    with pytest.raises(ValueError):
        LexicalIndex(max_query_terms=0).fit(docs)
    with pytest.raises(ValueError):
        LexicalIndex().fit([])
    with pytest.raises(TypeError):
        LexicalIndex().fit(["not", "lists"])


def test_top_all_rows_excluded():
    lex = LexicalIndex(min_df=1, max_df=1.0).fit([["a", "b"], ["a", "c"]])
    assert lex.top(lex.row(0), 5, exclude_rows=(0, 1))[0].size == 0
    rows, scores = lex.top(lex.row(0), 5)
    assert rows.tolist() == [0, 1] and scores[0] == pytest.approx(1.0)


@pytest.mark.parametrize("scheme", ["bm25", "tfidf"])
def test_shared_terms(scheme):
    docs = [["graph", "graph", "kernel", "image"], ["graph", "kernel", "protein"], ["image", "pixel"], ["protein", "cell"],
            ["pixel", "cell"]]
    lex = LexicalIndex(scheme=scheme, min_df=1, max_df=1.0).fit(docs)
    query = lex.transform_query(["graph", "kernel", "kernel", "protein", "zzz"])
    weighted = lex.term_weights(query, 1)
    assert [t for t, _ in weighted] == lex.shared_terms(query, 1, k=10)
    assert set(lex.shared_terms(query, 1, k=10)) == {"graph", "kernel", "protein"}
    # contributions are the products of the two rows' weights and sum to the score
    assert sum(w for _, w in weighted) == pytest.approx(float(lex.scores(query)[1]), rel=1e-5)
    assert [w for _, w in weighted] == sorted((w for _, w in weighted), reverse=True)
    assert lex.shared_terms(query, 1, k=1) == [weighted[0][0]]
    assert lex.shared_terms(query, 2) == []  # nothing in common
    assert lex.shared_terms(query, 1, k=0) == []
    # the batch form agrees with the one-row form, row by row (negative rows included)
    for k in (0, 1, 2, 10):
        assert lex.shared_terms_many(query, [0, 1, 2, 3, -1], k=k) == [lex.shared_terms(query, r, k=k) for r in (0, 1, 2, 3, -1)]
    assert lex.shared_terms_many(lex.transform_query(["zzz"]), [0, 1]) == [[], []]
    with pytest.raises(IndexError):
        lex.shared_terms_many(query, [5])


def test_shared_terms_many_on_a_real_sized_index(docs):
    lex = LexicalIndex(min_df=2, max_df=0.5).fit(docs)
    query = lex.row(3)
    rows, _ = lex.top(query, 10)
    assert lex.shared_terms_many(query, rows.tolist(), k=5) == [lex.shared_terms(query, int(r), k=5) for r in rows]


def test_save_load_round_trip_mmap(docs, tmp_path):
    lex = LexicalIndex(min_df=2, max_df=0.5, title_weight=1.0).fit(docs)
    names = lex.save(tmp_path)
    assert sorted(names) == sorted(LexicalIndex.file_names())
    assert all((tmp_path / n).is_file() for n in names)
    assert LexicalIndex.exists(tmp_path) and not LexicalIndex.exists(tmp_path / "nope")
    loaded = LexicalIndex.load(tmp_path, mmap=True)
    def mapped(array):  # a view of a memory map, not a private copy
        return isinstance(array.base, np.memmap) or isinstance(array, np.memmap)

    assert mapped(loaded.matrix_.data) and mapped(loaded.postings_.indices) and mapped(loaded.counts_)
    assert mapped(loaded.vectors_) and loaded.has_semantic
    np.testing.assert_array_equal(loaded.vectors_, lex.vectors_)
    np.testing.assert_array_equal(loaded.embed(loaded.row(4)), lex.embed(lex.row(4)))
    assert loaded.get_params() == lex.get_params()
    assert loaded.terms_ == lex.terms_ and loaded.vocabulary_ == lex.vocabulary_
    assert (loaded.matrix_ != lex.matrix_).nnz == 0 and (loaded.postings_ != lex.postings_).nnz == 0
    for q in (0, 3, 11):
        query = loaded.transform_query(docs[q])
        a, b = loaded.top(query, 10, exclude_rows=(q,)), lex.top(lex.transform_query(docs[q]), 10, exclude_rows=(q,))
        assert a[0].tolist() == b[0].tolist()
        np.testing.assert_allclose(a[1], b[1])
        # queries must not copy the memory-mapped postings
        assert mapped(loaded.postings_.data)
    in_memory = LexicalIndex.load(tmp_path, mmap=False)
    assert not mapped(in_memory.matrix_.data)
    assert (in_memory.matrix_ != lex.matrix_).nnz == 0


def test_to_files_matches_save(docs, tmp_path):
    lex = LexicalIndex().fit(docs)
    files = lex.to_files()
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    assert LexicalIndex.load(tmp_path).terms_ == lex.terms_


def test_load_rejects_inconsistent_files(docs, tmp_path):
    lex = LexicalIndex().fit(docs)
    lex.save(tmp_path)
    np.save(tmp_path / "lexical.idf.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="inconsistent"):
        LexicalIndex.load(tmp_path)


def test_add_appends_documents(docs, tmp_path):
    first, second = docs[:50], docs[50:]
    lex = LexicalIndex(min_df=2, max_df=0.5).fit(first)
    before = lex.matrix_.toarray()
    before_vectors = np.array(lex.vectors_)
    rows = lex.add(second)
    assert rows.tolist() == list(range(50, len(docs)))
    assert len(lex) == len(docs)
    np.testing.assert_allclose(lex.matrix_[:50].toarray(), before)  # existing rows unchanged (idf fixed)
    np.testing.assert_allclose(lex.matrix_[50:].toarray(), lex.transform(second).toarray(), rtol=1e-6)
    np.testing.assert_allclose(lex.postings_.toarray(), lex.matrix_.toarray().T)
    assert lex.vectors_.shape == (len(docs), lex.components_.shape[1])
    np.testing.assert_allclose(lex.vectors_[:50], before_vectors)
    # a new document's stored vector is its query's folded-in vector (up to the tf weighting)
    q = next(i for i in range(50, len(docs)) if lex.row(i).nnz > 2)
    assert float(lex.vectors_[q] @ lex.embed(lex.row(q))) > 0.8
    # a new document is found by its own words
    q = next(i for i in range(50, len(docs)) if lex.row(i).nnz)
    assert lex.top(lex.transform_query(docs[q]), 1)[0][0] == q
    # and survives a save/load after the update
    lex.save(tmp_path)
    assert len(LexicalIndex.load(tmp_path)) == len(docs)
    # an index loaded memory-mapped can be updated too
    loaded = LexicalIndex.load(tmp_path)
    loaded.add([["w000", "w001"]])
    assert len(loaded) == len(docs) + 1


def test_unicode_terms_round_trip(tmp_path):
    docs = [["éclair", "naïve", "graph"], ["éclair", "graph"], ["naïve", "x"]]
    lex = LexicalIndex(min_df=1, max_df=1.0).fit(docs)
    lex.save(tmp_path)
    assert LexicalIndex.load(tmp_path).terms_ == lex.terms_


def test_helpers():
    assert document_words(["t"], ["a", "b"], 0) == ["a", "b"]
    assert document_words(["t"], ["a"], 2) == ["t", "t", "a"]
    assert display_term("neural_network") == "neural network"


def test_semantic_vectors(docs, tmp_path):
    lex = LexicalIndex(min_df=1, max_df=1.0, n_components=8).fit(docs)
    assert lex.has_semantic and lex.components_.shape == (lex.n_terms, 8)
    norms = np.linalg.norm(lex.vectors_, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    agree = [float(lex.vectors_[q] @ lex.embed(lex.row(q))) for q in range(len(docs)) if lex.row(q).nnz > 3]
    assert np.mean(agree) > 0.9  # folding a document's query row in lands near its stored vector
    assert not lex.embed(lex.transform_query(["unknown"])).any()
    # the SVD is seeded: same input, same vectors
    np.testing.assert_allclose(LexicalIndex(min_df=1, max_df=1.0, n_components=8).fit(docs).vectors_, lex.vectors_, atol=1e-5)
    # without semantic vectors everything still works, including save/load
    flat = LexicalIndex(min_df=1, max_df=1.0, n_components=0).fit(docs)
    assert not flat.has_semantic and flat.embed(flat.row(0)).shape == (0,)
    flat.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert not loaded.has_semantic
    loaded.add([["w000"]])
    assert loaded.vectors_.shape == (len(docs) + 1, 0)
    # a tiny corpus clamps the dimension
    assert LexicalIndex(min_df=1, max_df=1.0).fit([["a", "b"], ["b", "c"], ["c", "a"]]).components_.shape[1] == 2
