"""Lexical similarity (BM25 or TF-IDF) over the package's own words.

:class:`LexicalIndex` indexes the words of :class:`~abstractor_widgets.text.Preprocessor`
(lemmas, stopwords removed, learned phrases such as ``neural_network`` merged): the same
pipeline as the topic model, so a word that drives a lexical match is a word the user
sees coloured.

Two weighting schemes (``scheme``):

* ``"bm25"`` (default; better on the relevance benchmark, see ``docs/relevance.md``):
  a document's weight for a term is Okapi BM25's
  ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean_length))`` with
  ``idf = log(1 + (N - df + 0.5) / (df + 0.5))``; a query's weight is ``1 + log tf``.
  The query row is divided by the query's score against itself, so a score is the share
  of that "perfect match" (clipped to [0, 1]).
* ``"tfidf"``: sublinear tf times scikit-learn's smooth idf, L2-normalised rows for
  documents and queries alike; a score is a cosine in [0, 1].

Either way a score is the dot product of a query row and a document row, and a shared
term's contribution is the product of its two weights (:meth:`LexicalIndex.shared_terms`).

Semantic vectors (``n_components > 0``): a truncated SVD (latent semantic analysis) of the
L2-normalised document rows gives every document a dense unit vector (``vectors_``); a
query is folded in through the same projection (:meth:`LexicalIndex.embed`). Their cosine
matches papers that say the same thing in different words; the hybrid ranking uses it
to re-rank lexical candidates (see :mod:`abstractor_widgets.ranking`).

Storage and speed:

* ``matrix_`` (CSR, one row per document; float32 weights, int32 indices),
  ``postings_`` (CSR of the transpose, one row per term) and ``counts_`` (the term counts
  aligned with ``matrix_``, to rebuild an indexed document's query row). A query reads
  only the posting lists of its own terms.
* Long queries (an abstract has ~100 distinct terms) would read long posting lists of
  common words. :meth:`LexicalIndex.top` therefore gathers candidates with the
  ``max_query_terms`` highest-impact query terms (``weight * idf``) and re-scores those
  candidates exactly with the whole query: scores returned are always exact.
* Everything is stored as ``.npy`` arrays (:meth:`save`) and opened memory-mapped
  (:meth:`load`): several processes serving the widget share one copy.
* The vocabulary, idf and mean length are fixed at :meth:`fit`; :meth:`add` appends
  documents (online update) with them, as ``TopicModel.update`` keeps its dictionary.

Examples
--------
>>> lex = LexicalIndex(min_df=1, max_df=1.0).fit([["graph", "network"], ["image", "network"], ["graph", "kernel"]])
>>> q = lex.transform_query(["graph", "kernel", "kernel"])
>>> rows, scores = lex.top(q, 2)
>>> rows.tolist()
[2, 0]
>>> lex.shared_terms(q, 2)
['kernel', 'graph']
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .fileio import ListedFiles

logger = logging.getLogger(__name__)

#: File-name prefix of everything :meth:`LexicalIndex.save` writes.
PREFIX = "lexical."
FORMAT_VERSION = 1
SCHEMES = ("bm25", "tfidf")
_ARRAYS = ("data", "indices", "indptr", "counts", "t_data", "t_indices", "t_indptr", "idf", "lengths", "terms", "term_offsets",
           "components", "vectors")
_MAX_COUNT = np.iinfo(np.uint16).max
#: With pruned queries, this many times ``n`` candidates (at least 100) are re-scored exactly.
RESCORE_FACTOR = 2.0


def _index_dtype(nnz: int, size: int) -> type:
    return np.int32 if max(nnz, size) < np.iinfo(np.int32).max else np.int64


class LexicalIndex:
    """BM25 / TF-IDF similarity over word lists, with memory-mappable storage.

    Parameters
    ----------
    scheme : {"bm25", "tfidf"}
        Term weighting (see the module docstring).
    min_df : int
        Index only terms found in at least this many documents (at fit time).
    max_df : float
        Index only terms found in at most this share of the documents.
    k1, b : float
        BM25 term-frequency saturation and length normalisation.
    max_query_terms : int or None
        Candidates are gathered with at most this many query terms (the highest-impact
        ones), then re-scored with all of them; ``None`` walks every query term's postings.
    n_components : int
        Dimensions of the semantic (LSA) vectors; 0 = none. Clamped below the matrix's
        smaller side.
    random_state : int
        Seed of the randomized SVD.
    title_weight : float
        Not used by the index itself: how many times a title's words were counted when
        the index was built (see :func:`document_words`), recorded so that new documents
        and queries are built the same way.

    Attributes
    ----------
    vocabulary_ : dict of str to int
        Term -> column.
    terms_ : list of str
        Column -> term.
    idf_ : numpy.ndarray (n_terms,), float32
    matrix_ : scipy.sparse.csr_matrix (n_documents, n_terms), float32
        Document weights (L2-normalised rows for ``"tfidf"``).
    counts_ : numpy.ndarray (matrix_.nnz,), uint16
        Term counts aligned with ``matrix_.data``.
    postings_ : scipy.sparse.csr_matrix (n_terms, n_documents), float32
        The transpose of ``matrix_``: row ``t`` lists the documents containing term ``t``.
    lengths_ : numpy.ndarray (n_documents,), float32
        Indexed words per document.
    mean_length_ : float
        Mean document length at fit time (BM25).
    components_ : numpy.ndarray (n_terms, d), float32
        The SVD's term projections (d = 0 without semantic vectors).
    vectors_ : numpy.ndarray (n_documents, d), float32
        Unit semantic vectors of the documents (zero rows for documents with no term).
    """

    def __init__(
        self,
        scheme: str = "bm25",
        min_df: int = 2,
        max_df: float = 0.5,
        k1: float = 1.2,
        b: float = 0.75,
        max_query_terms: int | None = 20,
        n_components: int = 128,
        random_state: int = 0,
        title_weight: float = 1.0,
    ) -> None:
        self.scheme = scheme
        self.min_df = min_df
        self.max_df = max_df
        self.k1 = k1
        self.b = b
        self.max_query_terms = max_query_terms
        self.n_components = n_components
        self.random_state = random_state
        self.title_weight = title_weight

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-able)."""
        return {"scheme": self.scheme, "min_df": self.min_df, "max_df": self.max_df, "k1": self.k1, "b": self.b,
                "max_query_terms": self.max_query_terms, "n_components": self.n_components,
                "random_state": self.random_state, "title_weight": self.title_weight}

    def _validate(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, not {self.scheme!r}")
        if isinstance(self.min_df, bool) or not isinstance(self.min_df, (int, np.integer)) or self.min_df < 1:
            raise ValueError(f"min_df must be a positive integer, not {self.min_df!r}")
        if not 0 < self.max_df <= 1:
            raise ValueError(f"max_df must be in (0, 1], not {self.max_df!r}")
        if not self.k1 >= 0 or not 0 <= self.b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, not k1={self.k1!r}, b={self.b!r}")
        if self.max_query_terms is not None and (not isinstance(self.max_query_terms, (int, np.integer)) or self.max_query_terms < 1):
            raise ValueError(f"max_query_terms must be None or a positive integer, not {self.max_query_terms!r}")
        if isinstance(self.n_components, bool) or not isinstance(self.n_components, (int, np.integer)) or self.n_components < 0:
            raise ValueError(f"n_components must be a non-negative integer, not {self.n_components!r}")

    # -- building -------------------------------------------------------------------
    def fit(self, word_lists: Iterable[Sequence[str]], y: None = None) -> LexicalIndex:
        """Learn the vocabulary, idf (and mean length) from ``word_lists`` and index them.

        Row ``i`` of the index is ``word_lists[i]``.

        Raises
        ------
        ValueError
            On invalid parameters or an empty input.
        TypeError
            If a document is a ``str`` instead of a list of words.
        """
        self._validate()
        word_lists = _as_word_lists(word_lists)
        if not word_lists:
            raise ValueError("need at least one document to fit a lexical index")
        n_docs = len(word_lists)
        counts, cols = _count(word_lists, None)
        df = np.bincount(cols, minlength=counts.shape[1]) if cols.size else np.zeros(counts.shape[1], dtype=np.int64)
        keep = (df >= self.min_df) & (df <= self.max_df * n_docs)
        all_terms = counts.terms
        kept = np.flatnonzero(keep)
        # sorted vocabulary: deterministic column order whatever the input order
        order = kept[np.argsort(np.array([all_terms[i] for i in kept], dtype=object), kind="stable")] if kept.size else kept
        self.terms_ = [all_terms[i] for i in order]
        self.vocabulary_ = {t: i for i, t in enumerate(self.terms_)}
        df_kept = df[order].astype(np.float64)
        if self.scheme == "bm25":
            self.idf_ = np.log1p((n_docs - df_kept + 0.5) / (df_kept + 0.5)).astype(np.float32)
        else:
            self.idf_ = (np.log((1.0 + n_docs) / (1.0 + df_kept)) + 1.0).astype(np.float32)
        remap = np.full(len(all_terms), -1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        tf = self._remap(counts.matrix, remap)
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        self.mean_length_ = float(lengths.mean()) if lengths.size and lengths.mean() > 0 else 1.0
        self.matrix_, self.counts_, self.lengths_ = self._weigh(tf)
        self.postings_ = _transpose(self.matrix_)
        self._fit_semantic()
        self.n_documents_fit_ = n_docs
        return self

    def _fit_semantic(self) -> None:
        """Truncated SVD of the L2-normalised document rows -> components_ and vectors_."""
        d = min(int(self.n_components), min(self.matrix_.shape) - 1)
        if d < 2:
            self.components_ = np.zeros((self.n_terms, 0), dtype=np.float32)
            self.vectors_ = np.zeros((len(self), 0), dtype=np.float32)
            return
        from sklearn.utils.extmath import randomized_svd

        normalised = _l2_rows(self.matrix_)
        u, sigma, vt = randomized_svd(normalised, d, n_iter=4, random_state=self.random_state)
        self.components_ = np.ascontiguousarray(vt.T, dtype=np.float32)
        self.vectors_ = _unit_rows((u * sigma).astype(np.float32))

    @property
    def has_semantic(self) -> bool:
        """Whether the index has semantic (LSA) vectors."""
        return hasattr(self, "vectors_") and self.vectors_.shape[1] > 0

    def embed(self, query_row: sp.csr_matrix) -> np.ndarray:
        """The unit semantic vector of a query row (zeros without semantic vectors or terms).

        The query's weights times idf are projected like a document row; for an indexed
        document this agrees with its stored vector to a cosine of ~0.99.
        """
        self._check_fitted()
        cols, weights = self._query_arrays(query_row)
        d = self.components_.shape[1]
        if not d or not cols.size:
            return np.zeros(d, dtype=np.float32)
        vector = (weights * np.asarray(self.idf_[cols], dtype=np.float32)) @ np.asarray(self.components_[cols])
        norm = float(np.linalg.norm(vector))
        return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)

    def _remap(self, counts: sp.csr_matrix, remap: np.ndarray | None) -> sp.csr_matrix:
        """Counts with columns in vocabulary space (``remap[col] == -1``: dropped)."""
        coo = counts.tocoo()
        cols = remap[coo.col] if remap is not None else coo.col
        keep = cols >= 0
        tf = sp.csr_matrix((coo.data[keep], (coo.row[keep], cols[keep])), shape=(counts.shape[0], len(self.terms_)), dtype=np.float64)
        tf.sum_duplicates()
        tf.sort_indices()
        return tf

    def _doc_weights(self, tf: np.ndarray, cols: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if self.scheme == "bm25":
            norm = self.k1 * (1.0 - self.b + self.b * lengths / self.mean_length_)
            return self.idf_[cols] * tf * (self.k1 + 1.0) / (tf + norm)
        return (1.0 + np.log(tf)) * self.idf_[cols]

    def _weigh(self, tf: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """Term counts (CSR, vocabulary columns) -> (document weights, counts, lengths)."""
        lengths = np.asarray(tf.sum(axis=1)).ravel()
        rows = np.repeat(np.arange(tf.shape[0]), np.diff(tf.indptr))
        weights = self._doc_weights(tf.data, tf.indices, lengths[rows])
        if self.scheme == "tfidf":
            norms = np.sqrt(np.bincount(rows, weights=weights * weights, minlength=tf.shape[0]))
            norms[norms == 0] = 1.0
            weights = weights / norms[rows]
        matrix = _compact(sp.csr_matrix((weights, tf.indices, tf.indptr), shape=tf.shape))
        counts = np.minimum(tf.data, _MAX_COUNT).astype(np.uint16)
        return matrix, counts, lengths.astype(np.float32)

    def transform(self, word_lists: Iterable[Sequence[str]]) -> sp.csr_matrix:
        """Document rows (the index's weighting) of new documents; unknown words are ignored."""
        self._check_fitted()
        counts, _ = _count(_as_word_lists(word_lists), self.vocabulary_)
        return self._weigh(self._remap(counts.matrix, None))[0]

    def _query(self, cols: np.ndarray, tf: np.ndarray) -> sp.csr_matrix:
        """The query row of terms ``cols`` (sorted) with counts ``tf``."""
        n_terms = len(self.terms_)
        if not cols.size:
            return sp.csr_matrix((1, n_terms), dtype=np.float32)
        tf = tf.astype(np.float64)
        if self.scheme == "bm25":
            weights = 1.0 + np.log(tf)
            self_score = float(np.dot(weights, self._doc_weights(tf, cols, np.float64(tf.sum()))))
            weights = weights / self_score if self_score > 0 else weights
        else:
            weights = (1.0 + np.log(tf)) * self.idf_[cols]
            weights = weights / np.sqrt(np.dot(weights, weights))
        dtype = _index_dtype(len(cols), n_terms)
        return sp.csr_matrix((weights.astype(np.float32), cols.astype(dtype), np.array([0, len(cols)], dtype=dtype)),
                             shape=(1, n_terms))

    def transform_query(self, words: Sequence[str]) -> sp.csr_matrix:
        """The 1 x n_terms query row of one text's words (all zeros if none is indexed).

        ``words`` must be a list of words (e.g. ``preprocessor.words(text)``), not a string.
        """
        if isinstance(words, str):
            raise TypeError("words must be a sequence of words, not a str (use preprocessor.words(text))")
        self._check_fitted()
        vocabulary = self.vocabulary_
        tf: dict[int, int] = {}
        for word in words:
            col = vocabulary.get(word)
            if col is not None:
                tf[col] = tf.get(col, 0) + 1
        cols = np.fromiter(sorted(tf), dtype=np.int64, count=len(tf))
        return self._query(cols, np.fromiter((tf[c] for c in cols.tolist()), dtype=np.float64, count=len(tf)))

    def row(self, row: int) -> sp.csr_matrix:
        """The query row of indexed document ``row`` (equal to ``transform_query`` of its words)."""
        self._check_fitted()
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"row must be an integer, not {type(row).__name__}")
        row = self._check_row(row)
        start, end = int(self.matrix_.indptr[row]), int(self.matrix_.indptr[row + 1])
        return self._query(np.asarray(self.matrix_.indices[start:end], dtype=np.int64),
                           np.asarray(self.counts_[start:end], dtype=np.float64))

    def add(self, word_lists: Iterable[Sequence[str]]) -> np.ndarray:
        """Append documents (online update); returns their new rows.

        The vocabulary, idf and mean length stay those of :meth:`fit` (new words are
        ignored), so existing rows keep their weights. The posting lists are rebuilt.
        """
        self._check_fitted()
        counts, _ = _count(_as_word_lists(word_lists), self.vocabulary_)
        new, new_counts, new_lengths = self._weigh(self._remap(counts.matrix, None))
        start = len(self)
        self.matrix_ = _compact(sp.vstack([self.matrix_, new], format="csr"))
        self.counts_ = np.concatenate([np.asarray(self.counts_), new_counts])
        self.lengths_ = np.concatenate([np.asarray(self.lengths_), new_lengths])
        self.postings_ = _transpose(self.matrix_)
        components = np.asarray(self.components_)
        new_vectors = _unit_rows(np.asarray(_l2_rows(new) @ components, dtype=np.float32)) if components.shape[1] else \
            np.zeros((new.shape[0], 0), dtype=np.float32)
        self.vectors_ = np.vstack([np.asarray(self.vectors_), new_vectors])
        return np.arange(start, len(self), dtype=np.int64)

    # -- queries --------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.matrix_.shape[0])

    @property
    def n_terms(self) -> int:
        """Number of indexed terms."""
        return len(self.terms_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "matrix_"):
            raise RuntimeError("this LexicalIndex is not fitted: call fit() or load()")

    def _check_row(self, row: int) -> int:
        """``row`` as a non-negative index (negative rows count from the end)."""
        if not -len(self) <= row < len(self):
            raise IndexError(f"row {row} out of range ({len(self)} documents)")
        return int(row) % len(self)

    def _dense_query(self, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The query's weights as a dense (n_terms,) float32 vector."""
        dense = np.zeros(self.n_terms, dtype=np.float32)
        dense[cols] = weights
        return dense

    def _query_arrays(self, query_row: Any) -> tuple[np.ndarray, np.ndarray]:
        query = query_row if sp.issparse(query_row) else sp.csr_matrix(query_row)
        if query.shape != (1, self.n_terms):
            raise ValueError(f"query must be a 1 x {self.n_terms} row, got shape {query.shape}")
        if query.format != "csr" or not query.has_canonical_format:
            query = sp.csr_matrix(query)  # (a query row from transform_query needs no copy)
            query.sum_duplicates()
        return np.asarray(query.indices), np.asarray(query.data, dtype=np.float32)

    def scores(self, query_row: sp.csr_matrix) -> np.ndarray:
        """Score of the query against every document, shape (n_documents,), in [0, 1] (exact)."""
        self._check_fitted()
        cols, weights = self._query_arrays(query_row)
        if not cols.size:
            return np.zeros(len(self), dtype=np.float32)
        return np.minimum(self._accumulate(cols, weights), 1.0).astype(np.float32)

    def score_rows(self, query_row: sp.csr_matrix, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Exact scores (in [0, 1], float32) of the query against documents ``rows`` only."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        cols, weights = self._query_arrays(query_row)
        if not cols.size or not rows.size:
            return np.zeros(len(rows), dtype=np.float32)
        return self._rescore(rows, cols, weights)

    def _accumulate(self, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dense (n_documents,) float64 scores from these terms' posting lists only."""
        postings = self.postings_
        indptr, indices, data = postings.indptr, postings.indices, postings.data
        starts = np.asarray(indptr[cols], dtype=np.int64).tolist()
        ends = np.asarray(indptr[cols + 1], dtype=np.int64).tolist()
        rows = np.concatenate([indices[s:e] for s, e in zip(starts, ends)])
        values = np.concatenate([data[s:e] for s, e in zip(starts, ends)]) * np.repeat(
            weights, np.subtract(ends, starts))
        return np.bincount(rows, weights=values, minlength=len(self))

    def _rescore(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Exact scores of documents ``rows`` for the query (cols, weights)."""
        # scipy's row gather + product run in C: ~2x faster than a numpy gather of the entries
        products = self.matrix_[rows] @ self._dense_query(cols, weights).astype(np.float64)
        return np.minimum(np.asarray(products, dtype=np.float32).ravel(), 1.0)

    def top(self, query_row: sp.csr_matrix, n: int, exclude_rows: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` documents scoring highest for a query row, best first.

        Only documents sharing at least one indexed term with the query are returned, so
        there may be fewer than ``n``. Ties are broken by row. With ``max_query_terms``,
        candidates come from the highest-impact query terms only (the best
        ``max(2 n, 100)`` by their partial score), then are re-scored exactly.

        Returns
        -------
        rows : numpy.ndarray of int64
        scores : numpy.ndarray of float32, in [0, 1], non-increasing
        """
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer, not {type(n).__name__}")
        cols, weights = self._query_arrays(query_row)
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if n <= 0 or not cols.size:
            return empty
        limit = self.max_query_terms
        pruned = limit is not None and len(cols) > limit
        if pruned:
            impact = weights * np.asarray(self.idf_[cols], dtype=np.float32)
            best = np.sort(np.argpartition(-impact, limit - 1)[:limit])
            dense = self._accumulate(cols[best], weights[best])
        else:
            dense = self._accumulate(cols, weights)
        excluded = np.fromiter((int(r) for r in exclude_rows), dtype=np.int64)
        excluded = excluded[(excluded >= -len(self)) & (excluded < len(self))]
        if excluded.size:
            dense[excluded] = 0.0
        k = min(max(int(RESCORE_FACTOR * n), 100) if pruned else int(n), len(dense))
        # (partitioning -dense at k is fast; dense at len - k degenerates on the many zero scores)
        rows = np.argpartition(-dense, k - 1)[:k] if k < len(dense) else np.arange(len(dense))
        rows = rows[dense[rows] > 0].astype(np.int64)
        if not rows.size:
            return empty
        scores = self._rescore(rows, cols, weights) if pruned else np.minimum(dense[rows], 1.0).astype(np.float32)
        return _top(rows, scores, int(n))

    def term_weights(self, query_row: sp.csr_matrix, row: int) -> list[tuple[str, float]]:
        """Terms shared by a query and document ``row`` with their contribution to the score, strongest first.

        A contribution is the product of the term's query and document weights; they sum
        to the score.
        """
        self._check_fitted()
        cols, weights = self._query_arrays(query_row)
        terms, products = self._contributions(self._dense_query(cols, weights), self._check_row(row))
        return [(self.terms_[int(c)], float(p)) for c, p in zip(terms, products)]

    def shared_terms(self, query_row: sp.csr_matrix, row: int, k: int = 5) -> list[str]:
        """The ``k`` shared terms that contribute most to the query-document score.

        Phrases keep the package's ``a_b`` form; :func:`display_term` turns that into
        ``"a b"``.
        """
        return [term for term, _ in self.term_weights(query_row, row)[: max(0, int(k))]]

    def shared_terms_many(self, query_row: sp.csr_matrix, rows: Sequence[int], k: int = 5) -> list[list[str]]:
        """:meth:`shared_terms` of several documents at once (the query is decoded once)."""
        self._check_fitted()
        cols, weights = self._query_arrays(query_row)
        k = max(0, int(k))
        if not cols.size or not k:
            return [[] for _ in rows]
        dense = self._dense_query(cols, weights)
        return [[self.terms_[int(c)] for c in self._contributions(dense, self._check_row(row))[0][:k]] for row in rows]

    def _contributions(self, dense_query: np.ndarray, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(columns, products) of the terms document ``row`` shares with the query, strongest
        first, ties by column."""
        start, end = int(self.matrix_.indptr[row]), int(self.matrix_.indptr[row + 1])
        doc_cols = np.asarray(self.matrix_.indices[start:end])
        products = np.asarray(self.matrix_.data[start:end], dtype=np.float32) * dense_query[doc_cols]
        shared = np.flatnonzero(products)
        order = shared[np.lexsort((doc_cols[shared], -products[shared]))]
        return doc_cols[order], products[order]

    # -- persistence ----------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """The index as ``{file name: bytes}`` (fits ``store.save_artifacts(extra_files=...)``)."""
        self._check_fitted()
        out = {}
        for name, array in self._arrays().items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            out[f"{PREFIX}{name}.npy"] = buffer.getvalue()
        meta = {"format_version": FORMAT_VERSION, "params": self.get_params(), "n_documents": len(self),
                "n_terms": self.n_terms, "n_documents_fit": int(getattr(self, "n_documents_fit_", len(self))),
                "mean_length": self.mean_length_}
        out[f"{PREFIX}json"] = json.dumps(meta, indent=2).encode("utf-8")
        return out

    def _arrays(self) -> dict[str, np.ndarray]:
        encoded = [t.encode("utf-8", "surrogatepass") for t in self.terms_]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        m, t = self.matrix_, self.postings_
        return {
            "data": np.asarray(m.data, dtype=np.float32), "indices": np.asarray(m.indices), "indptr": np.asarray(m.indptr),
            "counts": np.asarray(self.counts_, dtype=np.uint16),
            "t_data": np.asarray(t.data, dtype=np.float32), "t_indices": np.asarray(t.indices), "t_indptr": np.asarray(t.indptr),
            "idf": np.asarray(self.idf_, dtype=np.float32), "lengths": np.asarray(self.lengths_, dtype=np.float32),
            "terms": np.frombuffer(b"".join(encoded), dtype=np.uint8), "term_offsets": offsets,
            "components": np.asarray(self.components_, dtype=np.float32), "vectors": np.asarray(self.vectors_, dtype=np.float32),
        }

    def save(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the index into ``directory`` (created if needed); returns the file names written.

        ``lexical.{data,indices,indptr}.npy`` are the CSR document rows (``counts`` their
        term counts), ``lexical.t_*.npy`` the posting lists, plus ``idf``, ``lengths``,
        ``terms``/``term_offsets`` (UTF-8 vocabulary) and ``lexical.json`` (parameters).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = []
        for name, payload in self.to_files().items():
            (directory / name).write_bytes(payload)
            names.append(name)
        return names

    @staticmethod
    def file_names() -> list[str]:
        """Names of the files :meth:`save` writes."""
        return [f"{PREFIX}{name}.npy" for name in _ARRAYS] + [f"{PREFIX}json"]

    @staticmethod
    def exists(directory: str | os.PathLike[str]) -> bool:
        """Whether ``directory`` holds a saved lexical index."""
        return (Path(directory) / f"{PREFIX}json").is_file()

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | ListedFiles, mmap: bool = True) -> LexicalIndex:
        """Open an index saved by :meth:`save`; large arrays memory-mapped when ``mmap``.

        ``directory`` may be an artifact's :class:`~abstractor_widgets.fileio.ListedFiles`
        (then only the files its manifest lists can be opened). Arrays are read without
        pickle support.

        Raises
        ------
        FileNotFoundError
            If a file is missing (or not listed).
        ValueError
            If the files are inconsistent or of another format version.
        """
        files = directory if isinstance(directory, ListedFiles) else ListedFiles(directory)
        directory = files.directory
        meta = files.json(f"{PREFIX}json")
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            found = meta.get("format_version") if isinstance(meta, dict) else None
            raise ValueError(f"{directory}: lexical index format {found!r}, expected {FORMAT_VERSION}")
        # plain ndarray views of the memory maps: same shared pages, without np.memmap's
        # per-slice overhead (a query slices dozens of posting lists)
        arrays = {name: files.array(f"{PREFIX}{name}.npy", mmap=mmap) for name in _ARRAYS}
        n_docs, n_terms = int(meta["n_documents"]), int(meta["n_terms"])
        nnz = len(arrays["data"])
        if (len(arrays["indptr"]) != n_docs + 1 or len(arrays["t_indptr"]) != n_terms + 1 or len(arrays["idf"]) != n_terms
                or len(arrays["term_offsets"]) != n_terms + 1 or len(arrays["t_data"]) != nnz or len(arrays["counts"]) != nnz
                or len(arrays["indices"]) != nnz or len(arrays["lengths"]) != n_docs
                or arrays["components"].shape[0] != n_terms or arrays["vectors"].shape[0] != n_docs
                or arrays["components"].shape[1] != arrays["vectors"].shape[1]):
            raise ValueError(f"{directory}: inconsistent lexical index files")
        params = meta.get("params")
        if not isinstance(params, dict) or not set(params) <= set(cls().get_params()):
            raise ValueError(f"{directory}: invalid lexical index parameters")
        index = cls(**params)
        index._validate()
        index.matrix_ = _wrap_csr(arrays["data"], arrays["indices"], arrays["indptr"], (n_docs, n_terms))
        index.postings_ = _wrap_csr(arrays["t_data"], arrays["t_indices"], arrays["t_indptr"], (n_terms, n_docs))
        index.counts_ = arrays["counts"]
        index.idf_ = arrays["idf"]
        index.lengths_ = arrays["lengths"]
        index.components_ = arrays["components"]
        index.vectors_ = arrays["vectors"]
        index.mean_length_ = float(meta["mean_length"])
        raw = np.asarray(arrays["terms"]).tobytes()
        offsets = np.asarray(arrays["term_offsets"]).tolist()
        index.terms_ = [raw[offsets[i]:offsets[i + 1]].decode("utf-8", "surrogatepass") for i in range(n_terms)]
        index.vocabulary_ = {t: i for i, t in enumerate(index.terms_)}
        index.n_documents_fit_ = int(meta.get("n_documents_fit", n_docs))
        return index

    def __repr__(self) -> str:
        if not hasattr(self, "matrix_"):
            return f"LexicalIndex({self.scheme}, unfitted)"
        return f"LexicalIndex({self.scheme}, {len(self)} documents, {self.n_terms} terms, {self.matrix_.nnz} entries)"


# -- building from a topic model ---------------------------------------------------------
def build_lexical_index(
    model: Any,
    titles: Sequence[str],
    words: Sequence[Sequence[str]] | None = None,
    texts: Sequence[str] | None = None,
    **params: Any,
) -> LexicalIndex:
    """The lexical index of a fitted :class:`~abstractor_widgets.model.TopicModel`'s corpus.

    Row ``i`` is training document ``i``: its abstract's words (``words``; by default
    ``model.training_words_``, what the model was just fitted on, or ``texts`` run
    through ``model.preprocessor_``) plus its title's words counted ``title_weight``
    times, through the same preprocessor (phrases included).

    Parameters
    ----------
    model : TopicModel
        Fitted.
    titles : sequence of str
        The documents' titles, in training order ('' where unknown).
    words, texts : optional
        The abstracts' words, or the abstracts (one of them when the model has no
        ``training_words_``, e.g. after loading).
    **params
        :class:`LexicalIndex` parameters.
    """
    if words is None:
        words = getattr(model, "training_words_", None)
    if words is None:
        if texts is None:
            raise ValueError("pass words= or texts=: this model keeps no training words")
        words = model.preprocessor_.transform(list(texts))
    if len(words) != len(titles):
        raise ValueError(f"{len(words)} documents but {len(titles)} titles")
    lexical = LexicalIndex(**params)
    title_words = model.preprocessor_.transform(list(titles)) if lexical.title_weight else [[] for _ in titles]
    return lexical.fit(document_words(t, w, lexical.title_weight) for t, w in zip(title_words, words))


def words_for_update(model: Any, lexical: LexicalIndex, titles: Sequence[str], texts: Sequence[str],
                     words: Sequence[Sequence[str]] | None = None) -> list[list[str]]:
    """The word lists :meth:`LexicalIndex.add` needs for new documents (same recipe as the build).

    ``words``: the abstracts' words when the caller has them already (not tokenized again).
    """
    if words is None:
        words = model.preprocessor_.transform(list(texts))
    title_words = model.preprocessor_.transform(list(titles)) if lexical.title_weight else [[] for _ in titles]
    return [document_words(t, w, lexical.title_weight) for t, w in zip(title_words, words)]


# -- helpers ------------------------------------------------------------------------
def document_words(title_words: Sequence[str], abstract_words: Sequence[str], title_weight: float = 0.0) -> list[str]:
    """The words a document is indexed with: its abstract's, plus its title's ``title_weight`` times.

    ``title_weight`` is rounded to a whole number of repetitions (0 = abstract only).
    """
    return list(title_words) * int(round(title_weight)) + list(abstract_words)


def display_term(term: str) -> str:
    """A term as people write it: phrases ``a_b`` become ``"a b"``."""
    return term.replace("_", " ")


def _as_word_lists(word_lists: Iterable[Sequence[str]]) -> list[list[str]]:
    if isinstance(word_lists, str):
        raise TypeError("expected a sequence of word lists, not a str")
    out = []
    for words in word_lists:
        if isinstance(words, str):
            raise TypeError("each document must be a sequence of words, not a str")
        out.append(list(words))
    return out


class _Counts:
    def __init__(self, matrix: sp.csr_matrix, terms: list[str]) -> None:
        self.matrix = matrix
        self.terms = terms
        self.shape = matrix.shape


def _count(word_lists: list[list[str]], vocabulary: dict[str, int] | None) -> tuple[_Counts, np.ndarray]:
    """Term counts; with ``vocabulary=None`` the terms are learned (in first-seen order)."""
    learn = vocabulary is None
    vocab: dict[str, int] = {} if learn else vocabulary  # type: ignore[assignment]
    indptr = [0]
    indices: list[int] = []
    data: list[int] = []
    for words in word_lists:
        tf: dict[int, int] = {}
        for word in words:
            col = vocab.get(word)
            if col is None:
                if not learn:
                    continue
                col = vocab[word] = len(vocab)
            tf[col] = tf.get(col, 0) + 1
        indices.extend(tf.keys())
        data.extend(tf.values())
        indptr.append(len(indices))
    n_cols = len(vocab)
    cols = np.asarray(indices, dtype=np.int64)
    matrix = sp.csr_matrix((np.asarray(data, dtype=np.float64), cols, np.asarray(indptr, dtype=np.int64)),
                           shape=(len(word_lists), n_cols))
    terms = list(vocab) if learn else []
    return _Counts(matrix, terms), cols


def _l2_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ matrix)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0).astype(np.float32)


def _compact(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """float32 data, int32 indices when they fit."""
    dtype = _index_dtype(matrix.nnz, max(matrix.shape))
    out = sp.csr_matrix(
        (np.asarray(matrix.data, dtype=np.float32), np.asarray(matrix.indices, dtype=dtype), np.asarray(matrix.indptr, dtype=dtype)),
        shape=matrix.shape,
    )
    out.has_sorted_indices = True
    return out


def _transpose(matrix: sp.csr_matrix) -> sp.csr_matrix:
    postings = sp.csr_matrix(matrix.T.tocsr())
    postings.sort_indices()
    return _compact(postings)


def _wrap_csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A csr_matrix over existing (possibly memory-mapped) arrays, without copying them."""
    matrix = sp.csr_matrix(shape, dtype=np.float32)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    matrix.has_sorted_indices = True
    return matrix


def _top(rows: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (row, score) pairs, best first, ties by row."""
    if n < len(scores):
        part = np.argpartition(-scores, n - 1)[:n]
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))
    return rows[order], scores[order]
