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
  ``postings_`` (CSR of the transpose, one row per term, **impact-ordered**: each list by
  descending document weight, ties by row; :func:`impact_postings`) and ``counts_`` (the
  term counts aligned with ``matrix_``, to rebuild an indexed document's query row). A
  query reads only the posting lists of its own terms.
* Sublinear candidates. A long query (an abstract has ~100 distinct terms) would read
  whole posting lists of common words, whose length grows with the corpus. Instead
  :meth:`LexicalIndex.candidates` reads at most ``terms * posting_depth`` entries from
  the *top* of the lists (each list down to one impact threshold, query weight times
  document weight, shared by all lists), sums them sparsely (a sort of the entries read,
  no array of the corpus's size) and keeps the best ``max(rescore_factor * n, 100)``
  documents by that partial score; :meth:`LexicalIndex.top` re-scores them exactly with
  the whole query. Scores returned are always exact; the cost per query is bounded
  whatever the number of documents. ``max_query_terms`` optionally keeps only the
  highest-impact query terms (``weight * idf``); ``posting_depth=None,
  max_query_terms=None`` is the exact (exhaustive) top. Measured in ``docs/relevance.md``
  ("Sublinear candidates").
* Indexes saved before impact ordering (no ``"postings": "impact"`` in ``lexical.json``)
  still load; their candidates then come from whole posting lists (the previous
  behaviour) until :meth:`LexicalIndex.order_postings` or a re-save.
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

import functools
import io
import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from .fileio import ListedFiles
from .index import row_array

logger = logging.getLogger(__name__)

#: File-name prefix of everything :meth:`LexicalIndex.save` writes.
PREFIX = "lexical."
FORMAT_VERSION = 1
SCHEMES = ("bm25", "tfidf")
_ARRAYS = ("data", "indices", "indptr", "counts", "t_data", "t_indices", "t_indptr", "idf", "lengths", "terms", "term_offsets",
           "components", "vectors")
_MAX_COUNT = np.iinfo(np.uint16).max
#: ``rescore_factor`` with early termination: this many times ``n`` candidates (at least
#: 100) are re-scored exactly.
RESCORE_FACTOR = 10.0
#: Default ``rescore_factor`` (whole lists of the ``max_query_terms`` best terms), and that
#: of indexes saved before it was a parameter.
LEGACY_RESCORE_FACTOR = 2.0
#: ``posting_depth`` for large corpora: entries read from the top of each impact-ordered
#: posting list (chosen on the 60k model and a 1.2M-row synthetic index, see ``docs/relevance.md``).
POSTING_DEPTH = 1000
#: The candidate stage of large corpora (the staged build's): every query term, the top of
#: each list, bounded cost. Small corpora keep the defaults (whole lists of the 20 best
#: terms: faster below a few hundred thousand documents, ``docs/relevance.md``).
LARGE_CORPUS_PARAMS = {"max_query_terms": 40, "posting_depth": POSTING_DEPTH, "rescore_factor": RESCORE_FACTOR}
#: Positions sampled in a posting list to find the impact threshold (:meth:`LexicalIndex._depths`):
#: 0, 1, 2, ... growing by ~25% up to 2**40.
_SAMPLE_POSITIONS = np.unique(np.floor(1.25 ** np.arange(0, 125)).astype(np.int64)) - 1
#: ``lexical.json``'s ``"postings"``: how each posting list is ordered.
IMPACT_ORDER, ROW_ORDER = "impact", "row"


class Candidates(NamedTuple):
    """What the candidate stage of :meth:`LexicalIndex.top` found.

    Attributes
    ----------
    rows : numpy.ndarray of int64
        The best documents by ``scores`` (at most ``n`` when ``exact``, else
        ``max(rescore_factor * n, 100)``), in no particular order.
    scores : numpy.ndarray of float
        Their scores from the entries read: exact (clipped to 1) when ``exact``, else
        partial sums (lower bounds of the exact scores).
    exact : bool
        Whether every query term's whole posting list was read.
    entries_read : int
        Posting entries read: at most ``terms * posting_depth`` on the early-terminated path.
    terms : int
        Query terms whose posting lists were read.
    """

    rows: np.ndarray
    scores: np.ndarray
    exact: bool
    entries_read: int
    terms: int


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
        ones), then re-scored with all of them; ``None`` uses every query term (what
        :data:`LARGE_CORPUS_PARAMS` sets, with ``posting_depth``).
    n_components : int
        Dimensions of the semantic (LSA) vectors; 0 = none. Clamped below the matrix's
        smaller side.
    random_state : int
        Seed of the randomized SVD.
    title_weight : float
        Not used by the index itself: how many times a title's words were counted when
        the index was built (see :func:`document_words`), recorded so that new documents
        and queries are built the same way.
    posting_depth : int or None
        Early termination: a query reads at most ``terms * posting_depth`` posting entries
        (``terms``: its terms, at most ``max_query_terms``), from the top of its terms'
        impact-ordered lists, each list down to the same impact threshold (see
        :meth:`candidates`): the cost is bounded whatever the corpus size. ``None``
        (default: below a few hundred thousand documents whole lists cost less) reads
        whole lists. Ignored (whole lists) when :attr:`impact_ordered_` is false.
    rescore_factor : float
        Unless every list was read whole, the best ``max(rescore_factor * n, 100)``
        candidates by their partial score are re-scored exactly for the top ``n``.

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
        The transpose of ``matrix_``: row ``t`` lists the documents containing term ``t``,
        by descending weight (ties by row) when :attr:`impact_ordered_`
        (:func:`impact_postings`), else by row.
    impact_ordered_ : bool
        Whether the posting lists are impact-ordered (always after :meth:`fit` and
        :meth:`add`; indexes saved before impact ordering load with ``False``, see
        :meth:`order_postings`).
    lengths_ : numpy.ndarray (n_documents,), float32
        Indexed words per document.
    mean_length_ : float
        Mean document length at fit time (BM25).
    components_ : numpy.ndarray (n_terms, d), float32
        The SVD's term projections (d = 0 without semantic vectors).
    vectors_ : numpy.ndarray (n_documents, d), float32
        Unit semantic vectors of the documents (zero rows for documents with no term).
    """

    #: (no impact-ordered postings until fit, add, load, order_postings or set_postings says so)
    impact_ordered_ = False

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
        posting_depth: int | None = None,
        rescore_factor: float = LEGACY_RESCORE_FACTOR,
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
        self.posting_depth = posting_depth
        self.rescore_factor = rescore_factor

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-able)."""
        return {"scheme": self.scheme, "min_df": self.min_df, "max_df": self.max_df, "k1": self.k1, "b": self.b,
                "max_query_terms": self.max_query_terms, "n_components": self.n_components,
                "random_state": self.random_state, "title_weight": self.title_weight,
                "posting_depth": self.posting_depth, "rescore_factor": self.rescore_factor}

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
        if self.posting_depth is not None and (isinstance(self.posting_depth, bool) or not isinstance(self.posting_depth, (int, np.integer))
                                               or self.posting_depth < 1):
            raise ValueError(f"posting_depth must be None or a positive integer, not {self.posting_depth!r}")
        if isinstance(self.rescore_factor, bool) or not isinstance(self.rescore_factor, (int, float, np.number)) \
                or not self.rescore_factor >= 1:
            raise ValueError(f"rescore_factor must be a number >= 1, not {self.rescore_factor!r}")
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
        self.set_postings(impact_postings(self.matrix_), True)
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
        ignored), so existing rows keep their weights. The posting lists are rebuilt
        (impact-ordered).
        """
        self._check_fitted()
        counts, _ = _count(_as_word_lists(word_lists), self.vocabulary_)
        new, new_counts, new_lengths = self._weigh(self._remap(counts.matrix, None))
        start = len(self)
        self.matrix_ = _compact(sp.vstack([self.matrix_, new], format="csr"))
        self.counts_ = np.concatenate([np.asarray(self.counts_), new_counts])
        self.lengths_ = np.concatenate([np.asarray(self.lengths_), new_lengths])
        self.set_postings(impact_postings(self.matrix_), True)
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
        """Dense (n_documents,) float64 scores from these terms' whole posting lists."""
        rows, values = self._gather(cols, weights, None)
        return np.bincount(rows, weights=values, minlength=len(self))

    def _gather(self, cols: np.ndarray, weights: np.ndarray, depths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, weight products) of the first ``depths[i]`` entries (``None``: all) of the
        posting list of term ``cols[i]``, concatenated term by term."""
        indices, data = self.postings_.indices, self.postings_.data
        starts, ends = self._spans(cols, depths)
        starts_, ends_ = starts.tolist(), ends.tolist()
        rows = np.concatenate([indices[s:e] for s, e in zip(starts_, ends_)])
        values = np.concatenate([data[s:e] for s, e in zip(starts_, ends_)]) * np.repeat(weights, ends - starts)
        return rows, values

    def _spans(self, cols: np.ndarray, depths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, ends)``: where the entries read of each term's posting list are in
        ``postings_`` (its first ``depths[i]`` entries; ``None``: all of them)."""
        indptr = self.postings_.indptr
        starts = np.asarray(indptr[cols], dtype=np.int64)
        ends = np.asarray(indptr[cols + 1], dtype=np.int64)
        return starts, (ends if depths is None else np.minimum(ends, starts + depths))

    def _depths(self, cols: np.ndarray, weights: np.ndarray, lengths: np.ndarray, budget: int) -> np.ndarray:
        """How many entries to read from the top of each term's (impact-ordered) posting
        list: down to one impact threshold (query weight times document weight) shared by
        all lists, the lowest that keeps the total within ``budget``.

        The threshold is found on a geometric sample of each list (positions 0, 1, 2, ...
        growing by 25%): each list is read down to its last sampled entry above the
        threshold, so the sum of the depths never exceeds ``budget``. Cost: one gather of
        ``terms x ~60`` entries and a sort of them, whatever the lists' lengths.
        """
        data = self.postings_.data
        starts = np.asarray(self.postings_.indptr[cols], dtype=np.int64)
        grid = _SAMPLE_POSITIONS[: int(np.searchsorted(_SAMPLE_POSITIONS, int(lengths.max()))) + 1]
        positions = np.minimum(grid[None, :], lengths[:, None] - 1)  # (terms, samples); repeats at a list's end
        impact = np.asarray(data[starts[:, None] + positions], dtype=np.float32) * weights[:, None].astype(np.float32)
        gained = np.diff(positions, axis=1, prepend=-1).ravel()  # entries a sample adds to its list's depth
        order = np.argsort(-impact.ravel(), kind="stable")  # (stable: a list's samples stay in order)
        taken = order[: int(np.searchsorted(np.cumsum(gained[order]), budget, side="right"))]
        count = np.bincount(taken // positions.shape[1], minlength=len(cols))  # a prefix of each list's samples
        return np.where(count > 0, positions[np.arange(len(cols)), np.maximum(count - 1, 0)] + 1, 0)

    def set_postings(self, postings: sp.csr_matrix, impact_ordered: bool = True) -> None:
        """Install posting lists built elsewhere (e.g. a staged build).

        Parameters
        ----------
        postings : scipy.sparse.csr_matrix (n_terms, n_documents)
            The transpose of ``matrix_``: :func:`impact_postings` of it (``impact_ordered``),
            or row-ordered lists (``impact_ordered=False``: whole lists are read).
        impact_ordered : bool
            Whether each list is by descending weight, ties by row; saved as
            ``"postings": "impact"`` and what makes ``posting_depth`` apply.
        """
        if postings.shape[::-1] != getattr(self, "matrix_", postings.T).shape:
            raise ValueError(f"postings of shape {postings.shape} do not transpose a {self.matrix_.shape} matrix")
        self.postings_ = postings
        self.impact_ordered_ = bool(impact_ordered)

    def order_postings(self) -> LexicalIndex:
        """Impact-order the posting lists in memory (an index saved before they were), so
        that ``posting_depth`` applies; :meth:`save` then writes them so. Returns ``self``."""
        self._check_fitted()
        if not self.impact_ordered_:
            self.set_postings(impact_postings(self.matrix_), True)
        return self

    def candidates(self, query_row: sp.csr_matrix, n: int, exclude_rows: Iterable[int] = ()) -> Candidates:
        """The candidate stage of :meth:`top`: the documents it re-scores for the ``n`` best.

        With impact-ordered postings and ``posting_depth``, reads at most
        ``terms * posting_depth`` entries (``terms``: the query's terms, at most the
        ``max_query_terms`` highest-impact ones) from the top of their posting lists, each
        list down to one impact threshold (:meth:`_depths`: deeper in the lists whose
        entries weigh more in the score), and sums them sparsely: no array of the corpus's
        size, a cost bounded whatever the number of documents. Lists that fit in the
        budget are read whole, and if all do the scores are exact. Without
        ``posting_depth`` (or impact-ordered postings), reads those terms' whole lists
        into a dense score array.

        Returns
        -------
        Candidates
            ``rows``, their (partial) ``scores``, ``exact``, ``entries_read``, ``terms``.
        """
        self._check_fitted()
        cols, weights = self._query_arrays(query_row)
        return self._candidates(cols, weights, max(int(n), 0), exclude_rows)

    def _candidates(self, cols: np.ndarray, weights: np.ndarray, n: int, exclude_rows: Iterable[int]) -> Candidates:
        size = len(self)
        excluded = row_array(exclude_rows)
        excluded = excluded[(excluded >= -size) & (excluded < size)] % max(size, 1)
        if not cols.size or n <= 0:
            return Candidates(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), True, 0, 0)
        limit = self.max_query_terms
        pruned = limit is not None and len(cols) > limit
        if pruned:
            impact = weights * np.asarray(self.idf_[cols], dtype=np.float32)
            best = np.sort(np.argpartition(-impact, limit - 1)[:limit])
            cols, weights = cols[best], weights[best]
        indptr = self.postings_.indptr
        lengths = np.asarray(indptr[cols + 1], dtype=np.int64) - np.asarray(indptr[cols], dtype=np.int64)
        budget = len(cols) * self.posting_depth if (self.posting_depth is not None and self.impact_ordered_) else None
        depths = None if budget is None or int(lengths.sum()) <= budget else self._depths(cols, weights, lengths, budget)
        exact = not pruned and depths is None
        k = int(n) if exact else max(int(self.rescore_factor * n), 100)
        if budget is None:  # whole lists into a dense accumulator (cost grows with the corpus)
            rows, values = self._gather(cols, weights, None)
            scores = np.bincount(rows, weights=values, minlength=size)
            if excluded.size:
                scores[excluded] = 0.0
            found = _best(scores, k)
            rows, partial = found, scores[found]
        else:  # the top of each list into a sparse accumulator: cost bounded by the budget
            unique, scores = self._sum_top(cols, weights, depths, excluded)
            found = _best(scores, k, unique)
            rows, partial = unique[found], scores[found]
        read = int(lengths.sum()) if depths is None else int(depths.sum())
        partial = np.minimum(partial, 1.0).astype(np.float32) if exact else partial
        return Candidates(np.asarray(rows, dtype=np.int64), partial, exact, read, len(cols))

    def _sum_top(self, cols: np.ndarray, weights: np.ndarray, depths: np.ndarray | None,
                 excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distinct rows, float64 partial scores) of the first ``depths[i]`` entries of each
        term's posting list (``None``: all), rows in ``excluded`` left out.

        Compiled (:func:`abstractor_widgets._compiled.sum_postings`: the entries partitioned
        by blocks of rows, each block summed in a small dense array) when numba is
        importable, else :func:`_sum_by_row` (a sort of them): the same rows and the same
        float64 sums. The compiled result is a view of this thread's work arrays, valid
        until its next call.
        """
        summer = _compiled_sum()
        if summer is not None:
            starts, ends = self._spans(cols, depths)
            work = _WORK.arrays(int((ends - starts).sum()))
            found = summer(self.postings_.indices, self.postings_.data, starts, ends,
                           np.asarray(weights, dtype=np.float32), _ascending(excluded), len(self), *work)
            return work[2][:found], work[3][:found]
        rows, values = self._gather(cols, weights, depths)
        unique, scores = _sum_by_row(rows, values)
        if excluded.size:
            at = np.minimum(np.searchsorted(unique, excluded), len(unique) - 1)
            scores[at[unique[at] == excluded]] = 0.0
        return unique, scores

    def _rescore(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Exact scores of documents ``rows`` for the query (cols, weights)."""
        # scipy's row gather + product run in C: ~2x faster than a numpy gather of the entries
        products = self.matrix_[rows] @ self._dense_query(cols, weights).astype(np.float64)
        return np.minimum(np.asarray(products, dtype=np.float32).ravel(), 1.0)

    def top(self, query_row: sp.csr_matrix, n: int, exclude_rows: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` documents scoring highest for a query row, best first.

        Only documents sharing at least one indexed term with the query are returned, so
        there may be fewer than ``n``. Ties are broken by row. Candidates come from
        :meth:`candidates`: with ``max_query_terms`` from the highest-impact query terms
        only, with ``posting_depth`` (impact-ordered postings) from the top of each
        posting list only; unless every list was read whole, the best
        ``max(rescore_factor * n, 100)`` candidates by their partial score are re-scored
        exactly.
        Scores returned are always exact; ``posting_depth=None, max_query_terms=None``
        gives the exact top ``n``.

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
        found = self._candidates(cols, weights, int(n), exclude_rows)
        if not found.rows.size:
            return empty
        scores = found.scores if found.exact else self._rescore(found.rows, cols, weights)
        return _top(found.rows, scores, int(n))

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
        out[f"{PREFIX}json"] = json.dumps(self._meta(), indent=2).encode("utf-8")
        return out

    def _meta(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "params": self.get_params(), "n_documents": len(self),
                "n_terms": self.n_terms, "n_documents_fit": int(getattr(self, "n_documents_fit_", len(self))),
                "mean_length": self.mean_length_, **impact_meta(self.impact_ordered_)}

    def _arrays(self) -> dict[str, np.ndarray]:
        terms, offsets = encode_terms(self.terms_)
        m, t = self.matrix_, self.postings_
        return {
            "data": np.asarray(m.data, dtype=np.float32), "indices": np.asarray(m.indices), "indptr": np.asarray(m.indptr),
            "counts": np.asarray(self.counts_, dtype=np.uint16),
            "t_data": np.asarray(t.data, dtype=np.float32), "t_indices": np.asarray(t.indices), "t_indptr": np.asarray(t.indptr),
            "idf": np.asarray(self.idf_, dtype=np.float32), "lengths": np.asarray(self.lengths_, dtype=np.float32),
            "terms": terms, "term_offsets": offsets,
            "components": np.asarray(self.components_, dtype=np.float32), "vectors": np.asarray(self.vectors_, dtype=np.float32),
        }

    def save(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the index into ``directory`` (created if needed); returns the file names written.

        ``lexical.{data,indices,indptr}.npy`` are the CSR document rows (``counts`` their
        term counts), ``lexical.t_*.npy`` the posting lists, plus ``idf``, ``lengths``,
        ``terms``/``term_offsets`` (UTF-8 vocabulary) and ``lexical.json`` (parameters,
        and ``"postings": "impact"`` when the posting lists are impact-ordered).
        """
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = []
        for name, array in self._arrays().items():  # straight to the files: no copy in memory (GBs at millions)
            np.save(directory / f"{PREFIX}{name}.npy", array, allow_pickle=False)
            names.append(f"{PREFIX}{name}.npy")
        (directory / f"{PREFIX}json").write_bytes(json.dumps(self._meta(), indent=2).encode("utf-8"))
        return names + [f"{PREFIX}json"]

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
        # an index saved before rescore_factor existed re-scored 2 n candidates: keep its results
        index = cls(**{"rescore_factor": LEGACY_RESCORE_FACTOR, **params})
        index._validate()
        index.matrix_ = _wrap_csr(arrays["data"], arrays["indices"], arrays["indptr"], (n_docs, n_terms))
        # without "postings": "impact" (saved before impact ordering) the lists are in row
        # order: top() then reads whole lists (order_postings() re-orders them in memory)
        impact = meta.get("postings", ROW_ORDER) == IMPACT_ORDER
        if not impact:
            logger.info("%s: posting lists in row order (saved before impact ordering): candidates read whole "
                        "lists; re-save the index to make posting_depth apply", directory)
        index.set_postings(_wrap_csr(arrays["t_data"], arrays["t_indices"], arrays["t_indptr"], (n_terms, n_docs),
                                      sorted_indices=not impact), impact)
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


#: :func:`impact_postings` sorts the posting lists in blocks of about this many entries
#: (whole lists; a longer list is one block). Small blocks sort in cache: 2^19 entries
#: sorted 1.9x faster than 2^23 (measured).
IMPACT_BLOCK = 1 << 19


def impact_postings(matrix: sp.csr_matrix, block: int = IMPACT_BLOCK) -> sp.csr_matrix:
    """The posting lists of a document matrix, impact-ordered.

    Row ``t`` of the result lists the documents containing term ``t`` (the transpose of
    ``matrix``) by descending weight, ties by document row: the first ``depth`` entries
    of a list are its ``depth`` highest-impact documents (what :meth:`LexicalIndex.top`
    reads with ``posting_depth``).

    One linear transpose (scipy's CSR -> CSC), then blocks of whole lists sorted at once:
    each entry becomes one 64-bit key ``(list in block, descending weight, row)``, the
    keys are sorted (a plain value sort: the key is unique and carries the row and the
    weight, so nothing is gathered afterwards) and decoded in place. Extra memory beyond
    the input and the output: ~20 bytes per entry of one block (``block`` entries, or
    the longest list if longer), whatever the matrix's size.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix (n_documents, n_terms)
        Document weights (canonical: no duplicate entries).
    block : int
        Entries sorted at a time (a longer list is sorted alone).

    Returns
    -------
    scipy.sparse.csr_matrix (n_terms, n_documents)
        float32 weights; int32 indices and indptr when they fit.
    """
    matrix = sp.csr_matrix(matrix)
    n_docs = matrix.shape[0]
    csc = matrix.tocsc()  # each term's documents, in row order
    del matrix
    dtype = _index_dtype(csc.nnz, max(csc.shape))
    data = np.asarray(csc.data, dtype=np.float32)
    indices = np.asarray(csc.indices, dtype=dtype)
    indptr = np.asarray(csc.indptr, dtype=dtype)
    del csc
    n_terms = len(indptr) - 1
    row_bits = max(1, (n_docs - 1).bit_length())
    # lists per block: the list's number in its block takes the key's bits left over
    max_lists = 1 << (32 - row_bits) if row_bits < 32 else 1
    start = 0
    while start < n_terms:
        end = int(np.searchsorted(indptr, int(indptr[start]) + max(int(block), 1), side="right")) - 1
        end = min(max(end, start + 1), start + max_lists, n_terms)
        lo, hi = int(indptr[start]), int(indptr[end])
        if hi - lo > 1:
            _sort_block(data[lo:hi], indices[lo:hi], np.diff(indptr[start:end + 1]), row_bits)
        start = end
    return _wrap_csr(data, indices, indptr, (n_terms, n_docs), sorted_indices=False)


def impact_meta(impact_ordered: bool = True) -> dict[str, str]:
    """The ``lexical.json`` entries that say how the saved posting lists are ordered
    (``{"postings": "impact"}`` for :func:`impact_postings`' lists): for writers of
    ``lexical.json`` other than :meth:`LexicalIndex.save` (a staged build)."""
    return {"postings": IMPACT_ORDER if impact_ordered else ROW_ORDER}


def _sort_block(data: np.ndarray, indices: np.ndarray, lengths: np.ndarray, row_bits: int) -> None:
    """Sort consecutive posting lists (``lengths`` entries each) by descending weight, ties
    by row, in place."""
    ascending = np.ascontiguousarray(data, dtype=np.float32).view(np.uint32)
    # IEEE float order as unsigned integers: flip every bit of a negative, the sign bit of the rest
    ascending = np.where(ascending >> np.uint32(31) != 0, ~ascending, ascending | np.uint32(0x80000000))
    if row_bits >= 32:  # (more than 2**32 documents: one list at a time, stable argsort)
        order = np.argsort(~ascending, kind="stable")
        data[:], indices[:] = data[order], indices[order]
        return
    shift = np.uint64(row_bits)
    key = np.repeat(np.arange(len(lengths), dtype=np.uint64), lengths) << np.uint64(32 + row_bits)
    key |= (~ascending).astype(np.uint64) << shift
    del ascending
    key |= np.asarray(indices, dtype=np.uint64)
    key.sort()
    indices[:] = key & np.uint64((1 << row_bits) - 1)
    ascending = ~(key >> shift).astype(np.uint32)  # (the cast keeps the low 32 bits: the weight)
    del key
    data[:] = np.where(ascending >> np.uint32(31) != 0, ascending & np.uint32(0x7FFFFFFF), ~ascending).view(np.float32)


def encode_terms(terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The vocabulary as saved: its UTF-8 bytes (uint8) and the offsets of each term (int64)."""
    encoded = [t.encode("utf-8", "surrogatepass") for t in terms]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _wrap_csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int],
              sorted_indices: bool = True) -> sp.csr_matrix:
    """A csr_matrix over existing (possibly memory-mapped) arrays, without copying them.

    ``sorted_indices=False`` for impact-ordered posting lists (scipy must not assume
    column order, nor sort them in place).
    """
    matrix = sp.csr_matrix(shape, dtype=np.float32)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    matrix.has_sorted_indices = sorted_indices
    if sorted_indices:
        # what every writer of these files makes (sorted, no duplicates): said up front, or
        # scipy's first product checks it by reading all the indices (0.4 s and 730 MB of
        # mapped pages per process at 2.7M documents)
        matrix.has_canonical_format = True
    return matrix


class _WorkArrays(threading.local):
    """Per thread, the work arrays of :func:`abstractor_widgets._compiled.sum_postings`,
    grown as needed and reused: a query reads up to ``terms x posting_depth`` entries
    (40,000 by default at 2.7M papers), and fresh arrays of that size would be fresh pages
    to fault in on every query (about 0.7 ms, more than the sums)."""

    def __init__(self) -> None:
        self.size = -1
        self.work: tuple[np.ndarray, ...] = ()

    def arrays(self, entries: int) -> tuple[np.ndarray, ...]:
        if entries > self.size:
            from ._compiled import BLOCK_BITS

            self.size = max(entries, 2 * self.size, 1024)
            self.work = (np.empty(self.size, np.int32), np.empty(self.size, np.float32), np.empty(self.size, np.int64),
                         np.empty(self.size, np.float64), np.full(1 << BLOCK_BITS, -1, np.int64))
        return self.work


_WORK = _WorkArrays()


def _ascending(rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted (a filter's excluded rows usually are already: no sort then)."""
    return rows if len(rows) < 2 or bool(np.all(rows[1:] >= rows[:-1])) else np.sort(rows)


@functools.cache
def _compiled_sum() -> Any:
    """:func:`abstractor_widgets._compiled.sum_postings`, or ``None`` without numba."""
    try:
        from ._compiled import sum_postings
    except ImportError:  # numba is a dependency; a broken install still answers, slower
        logger.warning("numba is not importable: the candidate stage sums by sorting (slower)")
        return None
    return sum_postings


def _sum_by_row(rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows ascending, float64 sum of their values), without an array of the
    corpus's size.

    One value sort of ``row << 32 | entry`` keys (a plain sort of int64 is ~5x faster than
    an argsort or ``np.unique(return_inverse=True)``), then ``np.bincount`` over the runs
    of equal rows: each row's values are summed in entry order, as the dense path sums
    them (same float64 result).
    """
    key = np.asarray(rows, dtype=np.int64) << 32
    key |= np.arange(len(key), dtype=np.int64)
    key.sort()
    sorted_rows = key >> 32
    starts = np.empty(len(key), dtype=bool)
    starts[:1] = True
    np.not_equal(sorted_rows[1:], sorted_rows[:-1], out=starts[1:])
    run = np.cumsum(starts) - 1
    key &= 0xFFFFFFFF
    return sorted_rows[starts], np.bincount(run, weights=np.asarray(values)[key])


def _best(scores: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` highest positive ``scores``, ties at the cut by row (``rows``;
    default the positions), in no particular order."""
    if k >= len(scores):
        return np.flatnonzero(scores > 0)
    part = np.argpartition(-scores, k - 1)[:k]
    kth = scores[part].min()
    if kth <= 0:
        return np.flatnonzero(scores > 0)
    above = part[scores[part] > kth]
    tied = np.flatnonzero(scores == kth)
    if len(above) + len(tied) > k:
        keep = k - len(above)
        tied = tied[np.argsort(rows[tied], kind="stable")[:keep]] if rows is not None else tied[:keep]
    return np.concatenate([above, tied])


def _top(rows: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (row, score) pairs, best first, ties by row."""
    if n < len(scores):
        part = np.argpartition(-scores, n - 1)[:n]
        rows, scores = rows[part], scores[part]
    order = np.lexsort((rows, -scores))
    return rows[order], scores[order]
