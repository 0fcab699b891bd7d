"""Similarity search over doc-topic vectors.

Scores are similarities in [0, 1] (1 = identical mixture):

* ``"hellinger"`` (default): ``1 - H(p, q)`` with the Hellinger distance
  ``H(p, q) = sqrt(1 - sum_k sqrt(p_k q_k))``, the natural distance between probability
  vectors. Ranking by it is ranking by the Bhattacharyya coefficient, a dot product of
  square roots, so the index stores ``sqrt(p)`` and a query is one matrix-vector product.
* ``"cosine"``: cosine similarity of the mixtures (what the original app used); the
  vectors are non-negative, so it lies in [0, 1] too.

The top ``n`` are selected with ``np.argpartition`` (linear time), never a full sort.

Examples
--------
>>> import numpy as np
>>> index = SimilarityIndex(np.array([[0.9, 0.1], [0.1, 0.9]], dtype=np.float32))
>>> index.query(np.array([0.8, 0.2]), n=1)
[(0, 0.9...)]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

METRICS = ("hellinger", "cosine")


class SimilarityIndex:
    """Exact top-n similarity search over a dense float32 doc-topic matrix.

    Parameters
    ----------
    doc_topics : array-like of shape (n_documents, n_topics)
        Topic mixtures (rows are normalised to sum to 1; all-zero rows stay zero and
        never match).
    ids : sequence of str, optional
        Document ids, for :meth:`similar_to` and ``exclude_ids``.
    metric : {"hellinger", "cosine"}

    Attributes
    ----------
    vectors_ : numpy.ndarray (n_documents, n_topics), float32
        ``sqrt(p)`` for Hellinger, ``p / ||p||`` for cosine: unit-norm rows either way.
    """

    def __init__(self, doc_topics: np.ndarray, ids: Sequence[str] | None = None, metric: str = "hellinger") -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
        matrix = np.asarray(doc_topics)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
            raise ValueError(f"doc_topics must be a non-empty 2-D matrix, got shape {matrix.shape}")
        if ids is not None and len(ids) != matrix.shape[0]:
            raise ValueError(f"{len(ids)} ids for {matrix.shape[0]} documents")
        self.metric = metric
        self.ids = list(ids) if ids is not None else None
        self._positions = {doc_id: i for i, doc_id in enumerate(self.ids)} if self.ids is not None else None
        self.vectors_ = self.prepare(matrix, metric)

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, ids: Sequence[str] | None, metric: str) -> SimilarityIndex:
        """Wrap already prepared vectors (e.g. a memory-mapped ``vectors.npy``) without copying."""
        index = cls.__new__(cls)
        index.metric = metric
        index.ids = list(ids) if ids is not None else None
        index._positions = {doc_id: i for i, doc_id in enumerate(index.ids)} if index.ids is not None else None
        index.vectors_ = vectors
        return index

    @staticmethod
    def prepare(matrix: np.ndarray, metric: str) -> np.ndarray:
        """Turn topic mixtures into the unit-norm rows the index scans."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if not np.isfinite(matrix).all() or (matrix < 0).any():
            raise ValueError("doc-topic values must be finite and non-negative")
        if metric == "hellinger":
            total = matrix.sum(axis=1, keepdims=True)
            return np.sqrt(np.divide(matrix, total, out=np.zeros_like(matrix), where=total > 0))
        norm = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)

    def __len__(self) -> int:
        return int(self.vectors_.shape[0])

    @property
    def n_topics(self) -> int:
        """Length of a vector."""
        return int(self.vectors_.shape[1])

    def add(self, doc_topics: np.ndarray, ids: Sequence[str] | None = None) -> None:
        """Append documents (online update)."""
        new = self.prepare(np.atleast_2d(doc_topics), self.metric)
        if new.shape[1] != self.n_topics:
            raise ValueError(f"expected {self.n_topics} topics, got {new.shape[1]}")
        if (self.ids is None) != (ids is None) or (ids is not None and len(ids) != len(new)):
            raise ValueError("ids must be given for every added document when the index has ids")
        if ids is not None:
            clash = [i for i in ids if i in self._positions]
            if clash:
                raise ValueError(f"{len(clash)} id(s) already in the index, e.g. {clash[0]!r}")
            start = len(self)
            self.ids.extend(ids)
            self._positions.update({doc_id: start + i for i, doc_id in enumerate(ids)})
        self.vectors_ = np.vstack([np.asarray(self.vectors_), new])

    def position(self, doc_id: str) -> int:
        """Row of ``doc_id``; ``KeyError`` if it is not indexed."""
        if self._positions is None:
            raise KeyError("this index has no ids")
        try:
            return self._positions[doc_id]
        except KeyError:
            raise KeyError(f"unknown document id {doc_id!r}") from None

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """Similarity of ``vector`` to every document, in [0, 1]."""
        query = self.prepare(np.atleast_2d(vector), self.metric)[0]
        return self._to_similarity(self.vectors_ @ query)

    def _to_similarity(self, dots: np.ndarray) -> np.ndarray:
        dots = np.clip(dots, 0.0, 1.0)
        if self.metric == "hellinger":
            return 1.0 - np.sqrt(1.0 - dots)
        return dots

    def query(
        self,
        vector: np.ndarray,
        n: int = 5,
        exclude_ids: Iterable[str] = (),
        exclude_rows: Iterable[int] = (),
    ) -> list[tuple[int, float]]:
        """The ``n`` most similar documents to a topic vector.

        Parameters
        ----------
        vector : array-like of shape (n_topics,)
            A topic mixture (any non-negative scale).
        n : int
            How many; clamped to ``[0, len(index) - excluded]``.
        exclude_ids : iterable of str
            Documents never returned (e.g. the query document itself).
        exclude_rows : iterable of int
            The same, by row.

        Returns
        -------
        list of (int, float)
            ``(row, score)`` pairs, best first; empty for an all-zero query.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer, not {type(n).__name__}")
        query = self.prepare(np.atleast_2d(np.asarray(vector, dtype=np.float32)), self.metric)[0]
        if query.shape[0] != self.n_topics:
            raise ValueError(f"expected a vector of {self.n_topics} topics, got {query.shape[0]}")
        if not query.any() or n <= 0:
            return []
        excluded = sorted({self.position(i) for i in exclude_ids if self._positions and i in self._positions}
                          | {int(r) for r in exclude_rows if 0 <= int(r) < len(self)})
        dots = np.asarray(self.vectors_ @ query)
        if excluded:
            dots[excluded] = -np.inf
        n = min(int(n), len(dots) - len(excluded))
        if n <= 0:
            return []
        top = np.argpartition(-dots, n - 1)[:n] if n < len(dots) else np.arange(len(dots))
        top = top[np.argsort(-dots[top], kind="stable")]
        sims = self._to_similarity(dots[top])
        return [(int(i), float(s)) for i, s in zip(top, sims)]

    def similar_to(self, doc_id: str, n: int = 5, include_self: bool = False) -> list[tuple[int, float]]:
        """Neighbours of an indexed document (itself excluded unless ``include_self``)."""
        row = self.position(doc_id)
        vector = np.asarray(self.vectors_[row], dtype=np.float32)
        if self.metric == "hellinger":
            vector = vector**2  # back from sqrt(p) to p
        return self.query(vector, n=n, exclude_ids=() if include_self else (doc_id,))
