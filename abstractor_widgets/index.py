"""Similarity search over doc-topic vectors: a blocked exact scan, and an HNSW index at scale.

Scores are similarities in [0, 1] (1 = identical mixture):

* ``"hellinger"`` (default): ``1 - H(p, q)`` with the Hellinger distance
  ``H(p, q) = sqrt(1 - sum_k sqrt(p_k q_k))``, the natural distance between probability
  vectors. Ranking by it is ranking by the Bhattacharyya coefficient, a dot product of
  square roots, so the index stores ``sqrt(p)`` (unit-norm rows) and a query is one
  matrix-vector product.
* ``"cosine"``: cosine similarity of the mixtures (what the original app used); the
  vectors are non-negative, so it lies in [0, 1] too.

Either way the rows are unit-norm and ranking is by inner product, which is what both
backends compute:

``"exact"``
    A blocked exact top-k. The matrix is scanned in cache-sized blocks of rows (one BLAS
    matrix-vector product each, into a buffer that stays in cache); a running threshold
    (the k-th best score so far) keeps only the few rows of a block that beat it, and
    only those are sorted. The cost is one read of the matrix, close to the memory
    bandwidth floor (``benchmarks/similarity_scale.py`` measures it), instead of a
    full-length ``argpartition`` or sort after the product.
``"hnsw"``
    An approximate HNSW graph (hnswlib, inner-product space) over the same rows:
    sub-millisecond queries at millions of documents, at the price of a long build and
    ~230 bytes per document (in each process: hnswlib reads the file into memory). Its results are re-scored exactly, so the scores equal
    the exact backend's; only the (rare) missed neighbours differ. It is saved and
    loaded with the artifact (:meth:`SimilarityIndex.save_extra` /
    :meth:`SimilarityIndex.load_extra`) and grows with :meth:`SimilarityIndex.add`.
``"auto"`` (default)
    ``"hnsw"`` when ``n_documents * n_topics >= ANN_AUTO_MIN_CELLS`` and hnswlib is
    installed, ``"exact"`` otherwise. See :data:`ANN_AUTO_MIN_CELLS` for the measured
    justification.

Ties are broken by row (lower row first), whatever ``n`` and whatever the backend.

Examples
--------
>>> import numpy as np
>>> index = SimilarityIndex(np.array([[0.9, 0.1], [0.1, 0.9]], dtype=np.float32))
>>> index.query(np.array([0.8, 0.2]), n=1)
[(0, 0.9...)]
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import ListedFiles

logger = logging.getLogger(__name__)

METRICS = ("hellinger", "cosine")
BACKENDS = ("auto", "exact", "hnsw")

#: ``"auto"`` switches to HNSW at this many stored values (``n_documents * n_topics``):
#: 5 M cells = 250 k documents at K = 20 (20 MB of vectors), 100 k documents at K = 50.
#: Measured on this 2-core machine (docs/performance.md, "Similarity at scale"), real-derived
#: vectors, K = 20, one thread: the exact scan takes 0.19 ms at 60 k documents, 0.30 ms at
#: 100 k and 4.3 ms at 1 M (it grows linearly with the cells, ~0.2 ns per cell once the
#: matrix outgrows the caches), while an HNSW query stays at 0.1-0.16 ms (ef = 128). The
#: rest of a query (tokenising, inference, spans, hit records) is ~1.7 ms. Below the
#: threshold the exact scan costs under ~1 ms, is exact, needs no build and no extra
#: memory; above it the scan becomes the largest part of the query, while the HNSW build
#: (~130 s per million documents on 2 cores) and its ~230 bytes per document are small
#: next to training a model on that many documents.
ANN_AUTO_MIN_CELLS = 5_000_000
#: The file of the index's vectors in an artifact.
VECTORS_FILE = "vectors.npy"

#: HNSW parameters: ``M`` (graph degree), ``ef_construction`` (build beam), ``ef`` (query
#: beam; raised to ``k`` when a query asks for more), ``seed``. With M = 16, ef = 128
#: reaches recall@10 ≥ 0.99 at every size measured on the real-derived vectors (0.993 at
#: 2.7 M documents, p50 0.16 ms); ef = 64 gives 0.98 at 0.09 ms.
ANN_DEFAULTS: dict[str, int] = {"M": 16, "ef_construction": 100, "ef": 128, "seed": 100}

#: File written by :meth:`SimilarityIndex.save_extra`.
ANN_FILE = "ann.hnsw"

#: Queries asking for more than this many rows (``n`` plus exclusions) use the exact scan.
ANN_MAX_K = 256

# Rows scored per block (scaled by the number of topics so a block's rows stay ~2 MB)
# and rows used to seed the running threshold.
_BLOCK_BYTES = 1 << 21
_SEED_ROWS = 1024


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the 'hnsw' similarity backend needs hnswlib: pip install hnswlib (or use backend='exact')"
        ) from exc
    return hnswlib


def hnswlib_available() -> bool:
    """Whether the HNSW backend can be used in this environment."""
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer array, by a sort: numpy 2's hash-based
    ``np.unique`` is 5-30x slower on millions of keys."""
    keys = np.sort(keys)
    if not len(keys):
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def row_array(rows: Iterable[int] | np.ndarray) -> np.ndarray:
    """``rows`` as a flat int64 array: an array without a Python loop (a filter may exclude
    millions of rows), any other iterable of integers element by element."""
    if isinstance(rows, np.ndarray):
        return rows.astype(np.int64, copy=False).ravel()
    if isinstance(rows, (list, tuple, range)):
        return np.asarray(rows, dtype=np.int64).ravel() if len(rows) else np.zeros(0, dtype=np.int64)
    return np.fromiter((int(r) for r in rows), dtype=np.int64)


class SimilarityIndex:
    """Top-n similarity search over a dense float32 doc-topic matrix.

    Parameters
    ----------
    doc_topics : array-like of shape (n_documents, n_topics)
        Topic mixtures (rows are normalised to sum to 1; all-zero rows stay zero and
        never match).
    metric : {"hellinger", "cosine"}
    backend : {"auto", "exact", "hnsw"}
        ``"auto"`` builds the HNSW index here when the matrix is large enough (see
        :data:`ANN_AUTO_MIN_CELLS`); ``"hnsw"`` always builds it.
    ann : dict, optional
        HNSW parameters overriding :data:`ANN_DEFAULTS`.
    block_rows : int, optional
        Rows per block of the exact scan (default: ~2 MB of rows).

    Attributes
    ----------
    vectors_ : numpy.ndarray (n_documents, n_topics), float32
        ``sqrt(p)`` for Hellinger, ``p / ||p||`` for cosine: unit-norm rows either way.
    backend : str
        The requested backend.
    """

    def __init__(
        self,
        doc_topics: np.ndarray,
        metric: str = "hellinger",
        backend: str = "auto",
        ann: dict[str, int] | None = None,
        block_rows: int | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
        matrix = np.asarray(doc_topics)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
            raise ValueError(f"doc_topics must be a non-empty 2-D matrix, got shape {matrix.shape}")
        self._setup(metric, backend, ann, block_rows)
        self.vectors_ = np.asfortranarray(self.prepare(matrix, metric))
        if self.wants_ann():
            self.build_ann()

    def _setup(self, metric, backend, ann, block_rows) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        unknown = set(ann or {}) - set(ANN_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown HNSW parameter(s) {sorted(unknown)}; known: {sorted(ANN_DEFAULTS)}")
        if block_rows is not None and int(block_rows) < 1:
            raise ValueError(f"block_rows must be positive, not {block_rows!r}")
        self.metric = metric
        self.backend = backend
        self.ann_params = {**ANN_DEFAULTS, **(ann or {})}
        self.block_rows = None if block_rows is None else int(block_rows)
        self._ann = None

    @classmethod
    def from_vectors(
        cls,
        vectors: np.ndarray,
        metric: str,
        backend: str = "auto",
        ann: dict[str, int] | None = None,
        block_rows: int | None = None,
    ) -> SimilarityIndex:
        """Wrap already prepared vectors (e.g. a memory-mapped ``vectors.npy``) without copying.

        No HNSW index is built here: load a saved one with :meth:`load_extra`, or call
        :meth:`build_ann`. Until then queries use the exact scan.
        """
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
        index = cls.__new__(cls)
        index._setup(metric, backend, ann, block_rows)
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

    # -- backend choice ---------------------------------------------------------------
    def wants_ann(self) -> bool:
        """Whether this index should have an HNSW graph (by ``backend`` and size)."""
        if self.backend == "hnsw":
            return True
        if self.backend == "exact":
            return False
        big = len(self) * self.n_topics >= ANN_AUTO_MIN_CELLS
        if big and not hnswlib_available():
            logger.warning("%d documents: install hnswlib for fast approximate search; using the exact scan", len(self))
            return False
        return big

    @property
    def active_backend(self) -> str:
        """``"hnsw"`` when queries go through the HNSW graph, ``"exact"`` otherwise."""
        return "hnsw" if self._ann is not None else "exact"

    def build_ann(self, num_threads: int = -1) -> SimilarityIndex:
        """Build the HNSW graph over :attr:`vectors_` (all cores by default); returns ``self``."""
        hnswlib = _hnswlib()
        p = self.ann_params
        graph = hnswlib.Index(space="ip", dim=self.n_topics)
        graph.init_index(max_elements=max(1, len(self)), ef_construction=int(p["ef_construction"]),
                         M=int(p["M"]), random_seed=int(p["seed"]))
        matrix = self._matrix()
        chunk = 200_000  # bounded row-major copies (the matrix may be column-major or memory-mapped)
        for start in range(0, len(self), chunk):
            stop = min(len(self), start + chunk)
            rows = np.ascontiguousarray(matrix[start:stop], dtype=np.float32)
            graph.add_items(rows, np.arange(start, stop), num_threads=num_threads)
        graph.set_ef(int(p["ef"]))
        self._ann = graph
        logger.info("built an HNSW index over %d documents (M=%d, ef_construction=%d)", len(self), p["M"], p["ef_construction"])
        return self

    # -- persistence (called by store.py) -----------------------------------------------
    def manifest_entry(self) -> dict[str, Any]:
        """What the artifact manifest records about this index (``manifest["index"]``)."""
        entry: dict[str, Any] = {"backend": self.backend, "block_rows": self.block_rows}
        if self._ann is not None:
            import hnswlib

            entry["ann"] = {
                "library": "hnswlib",
                "version": getattr(hnswlib, "__version__", "?"),
                "file": ANN_FILE,
                "space": "ip",
                "dim": self.n_topics,
                "count": int(self._ann.get_current_count()),
                **{k: int(v) for k, v in self.ann_params.items()},
            }
        return entry

    def save_extra(self, directory: str | os.PathLike[str]) -> list[str]:
        """Write the index's own files (the HNSW graph, if built) into ``directory``.

        The vectors themselves are saved by the store (``vectors.npy``). Returns the
        names of the files written (to list in the manifest with their checksums).
        """
        if self._ann is None:
            return []
        directory = Path(directory)
        self._ann.save_index(str(directory / ANN_FILE))
        return [ANN_FILE]

    def save_files(self, directory: str | os.PathLike[str]) -> dict[str, Any]:
        """Write the index into ``directory``: ``vectors.npy`` (column-major, see
        :meth:`storage`) and the HNSW graph ``ann.hnsw`` when there is one.

        Returns
        -------
        dict
            The manifest entry (:meth:`manifest_entry` plus ``"files"``), which
            :meth:`load_files` reads back.
        """
        directory = Path(directory)
        np.save(directory / VECTORS_FILE, self.storage(), allow_pickle=False)
        return {**self.manifest_entry(), "files": [VECTORS_FILE, *self.save_extra(directory)]}

    @classmethod
    def load_files(cls, files: Any, entry: dict[str, Any] | None, metric: str, mmap: bool = True) -> SimilarityIndex:
        """Open an index written by :meth:`save_files` from an artifact's listed files.

        Raises
        ------
        ValueError
            If the vectors or the saved graph do not match the entry.
        ImportError
            If the artifact has an HNSW graph but hnswlib is not installed.
        """
        vectors = files.array(VECTORS_FILE, mmap=mmap)
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise ValueError(f"{VECTORS_FILE} must be a 2-D float32 array, not {vectors.dtype} {vectors.shape}")
        index = cls.from_vectors(vectors, metric=metric)
        return index.load_extra(files, entry)

    def load_extra(self, files: Any, entry: dict[str, Any] | None) -> SimilarityIndex:
        """Restore what :meth:`save_extra` wrote, as described by :meth:`manifest_entry`.

        ``files`` is the artifact's :class:`~abstractor_widgets.fileio.ListedFiles`. Old
        manifests (``entry`` is ``None``) or entries without an HNSW graph leave the exact
        scan in place. The graph's file name is fixed (``ann.hnsw``), never taken from the
        manifest. Returns ``self``.

        Raises
        ------
        ValueError
            If the saved graph does not match the vectors (count or dimension).
        ImportError
            If the artifact has an HNSW graph but hnswlib is not installed.
        """
        if not entry:
            return self
        files = files if isinstance(files, ListedFiles) else ListedFiles(files)
        if entry.get("backend") in BACKENDS:
            self.backend = entry["backend"]
        if entry.get("block_rows"):
            self.block_rows = int(entry["block_rows"])
        info = entry.get("ann")
        if not info:
            return self
        if info.get("library") != "hnswlib" or info.get("space") != "ip":
            raise ValueError(f"unsupported ANN index {info.get('library')!r}/{info.get('space')!r}")
        if info.get("file", ANN_FILE) != ANN_FILE:
            raise ValueError(f"the HNSW graph must be saved as {ANN_FILE!r}, not {info.get('file')!r}")
        if int(info.get("dim", -1)) != self.n_topics or int(info.get("count", -1)) != len(self):
            raise ValueError(
                f"the saved HNSW index has {info.get('count')} vectors of {info.get('dim')} topics; "
                f"the index has {len(self)} of {self.n_topics}"
            )
        self.ann_params = {**ANN_DEFAULTS, **{k: int(info[k]) for k in ANN_DEFAULTS if k in info}}
        hnswlib = _hnswlib()
        graph = hnswlib.Index(space="ip", dim=self.n_topics)
        graph.load_index(str(files.path(ANN_FILE)), max_elements=len(self))
        if graph.get_current_count() != len(self):
            raise ValueError(f"the saved HNSW index holds {graph.get_current_count()} vectors, expected {len(self)}")
        graph.set_ef(int(self.ann_params["ef"]))
        self._ann = graph
        return self

    # -- updates ----------------------------------------------------------------------
    def add(self, doc_topics: np.ndarray) -> None:
        """Append documents (online update); the HNSW graph, if any, grows with them."""
        new = self.prepare(np.atleast_2d(doc_topics), self.metric)
        if new.shape[1] != self.n_topics:
            raise ValueError(f"expected {self.n_topics} topics, got {new.shape[1]}")
        start = len(self)
        grown = np.vstack([np.asarray(self.vectors_), new])
        self.vectors_ = np.asfortranarray(grown) if self._transposed(np.asarray(self.vectors_)) else grown
        if self._ann is not None:
            if self._ann.get_max_elements() < len(self):
                self._ann.resize_index(max(len(self), int(self._ann.get_max_elements() * 1.25)))
            self._ann.add_items(new, np.arange(start, len(self)))
        elif self.backend == "auto" and self.wants_ann():
            self.build_ann()

    # -- scoring ----------------------------------------------------------------------
    def _matrix(self) -> np.ndarray:
        matrix = self.vectors_
        # a plain ndarray view of a memmap: slicing the subclass costs microseconds per slice
        return matrix if type(matrix) is np.ndarray else np.asarray(matrix)

    @staticmethod
    def _transposed(matrix: np.ndarray) -> bool:
        """Whether the rows are stored column-major (``matrix.T`` is C-contiguous)."""
        return matrix.flags.f_contiguous and not matrix.flags.c_contiguous

    def _block(self) -> int:
        if self.block_rows is not None:
            return self.block_rows
        return max(1024, _BLOCK_BYTES // (4 * max(1, self.n_topics)))

    def _buffer(self, size: int, dtype) -> np.ndarray:
        """A per-thread scratch vector for the products (reused: fresh pages cost page faults)."""
        local = self.__dict__.get("_local")
        if local is None:
            local = self._local = threading.local()
        buffer = getattr(local, "buffer", None)
        if buffer is None or buffer.shape[0] < size or buffer.dtype != dtype:
            buffer = local.buffer = np.empty(size, dtype=dtype)
        return buffer[:size]

    def _blocks(self, matrix: np.ndarray, query: np.ndarray, buffer: np.ndarray | None = None):
        """Yield ``(start, products)`` over the rows, block by block.

        Column-major storage (what :meth:`storage` saves) is one BLAS pass over
        ``matrix.T``: a contiguous K x N matrix times the query, which BLAS blocks
        internally and streams at the memory bandwidth. Row-major storage is scanned in
        blocks of :meth:`_block` rows into a small buffer that stays in cache.
        """
        n_rows = matrix.shape[0]
        if self._transposed(matrix):
            out = self._buffer(n_rows, matrix.dtype) if buffer is None else buffer
            np.dot(query, matrix.T, out=out)
            yield 0, out
            return
        block = self._block()
        scratch = np.empty(min(block, n_rows), dtype=matrix.dtype)
        for start in range(0, n_rows, block):
            stop = min(n_rows, start + block)
            out = scratch[: stop - start] if buffer is None else buffer[start:stop]
            np.dot(matrix[start:stop], query, out=out)
            yield start, out

    @staticmethod
    def _exact(matrix: np.ndarray, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Inner products in float64, computed the same way for a row wherever it is.

        BLAS kernels round differently depending on a row's position in the call (SIMD
        body or tail) and on the layout, so the fast scan is only used to *select*
        candidates; the scores that rank and are returned come from here: exact float64
        products of the float32 values, summed per row in one fixed order (C-ordered
        rows). Identical rows therefore tie exactly, and every backend and path reports
        the same score for the same row.
        """
        q64 = np.asarray(query, dtype=np.float64)
        if rows is not None:
            return (np.asarray(matrix[rows], dtype=np.float64, order="C") * q64).sum(axis=1)
        out = np.empty(matrix.shape[0], dtype=np.float64)
        step = 65_536
        for start in range(0, matrix.shape[0], step):
            chunk = np.asarray(matrix[start : start + step], dtype=np.float64, order="C")
            out[start : start + step] = (chunk * q64).sum(axis=1)
        return out

    def _dots(self, query: np.ndarray) -> np.ndarray:
        """The inner products that rank: :meth:`_exact` over every row (float64)."""
        return self._exact(self._matrix(), query)

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """Similarity of ``vector`` to every document, in [0, 1]."""
        query = self.prepare(np.atleast_2d(vector), self.metric)[0]
        return self.similarity(self._dots(query))

    def similarity(self, dots: np.ndarray) -> np.ndarray:
        """Similarity in [0, 1] from inner products of unit rows (Hellinger affinity or cosine)."""
        dots = np.clip(dots, 0.0, 1.0)
        if self.metric == "hellinger":
            return 1.0 - np.sqrt(1.0 - dots)
        return dots

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored unit rows of documents ``rows`` (float32, gathered once per query)."""
        return np.asarray(self.vectors_[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def mixtures(self, stored: np.ndarray) -> np.ndarray:
        """Topic mixtures (up to scale) of documents, from their stored rows (:meth:`vectors`)."""
        return stored * stored if self.metric == "hellinger" else stored

    def similarity_to(self, topics: np.ndarray, stored: np.ndarray) -> np.ndarray:
        """Similarity in [0, 1] of a topic mixture to documents given by their stored rows."""
        query = self.prepare(np.atleast_2d(np.asarray(topics, dtype=np.float32)), self.metric)[0]
        return np.asarray(self.similarity(stored @ query), dtype=np.float32)

    def exact_top(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` rows by inner product with a prepared ``query``.

        Returns ``(rows, dots)``, best first, ties by row, ``dots`` from :meth:`_exact`.
        One fast pass over the matrix (:meth:`_blocks`); a running threshold, seeded
        with the k-th best of the first rows (a lower bound of the final k-th best) and
        lowered by a rounding margin, keeps only the few products that can be in the top
        ``k``; only those are partitioned, re-scored exactly and sorted.
        """
        matrix = self._matrix()
        query = query.astype(matrix.dtype, copy=False)
        n_rows = matrix.shape[0]
        k = min(int(k), n_rows)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        # |fast - exact| <= n_topics * eps for unit-norm rows and query; twice that is safe
        margin = 4.0 * matrix.shape[1] * float(np.finfo(matrix.dtype).eps)
        flatnonzero, partition = np.flatnonzero, np.partition
        rows = dots = None
        threshold = -np.inf
        for start, out in self._blocks(matrix, query):
            if rows is None:
                seed = min(len(out), max(_SEED_ROWS, 4 * k))
                if k < seed:
                    threshold = partition(out[:seed], seed - k)[seed - k] - margin
                new = flatnonzero(out >= threshold)
                dots = out[new]
                rows = new + start if start else new
            else:
                new = flatnonzero(out >= threshold)
                if new.size == 0:
                    continue
                dots = np.concatenate((dots, out[new]))
                rows = np.concatenate((rows, new + start))
            if len(dots) > k:
                kth = partition(dots, len(dots) - k)[len(dots) - k]
                threshold = max(threshold, kth - margin)
                keep = dots >= threshold
                dots, rows = dots[keep], rows[keep]
            elif len(dots) == k:
                threshold = max(threshold, float(dots.min()) - margin)
        exact = self._exact(matrix, query, rows)
        order = np.lexsort((rows, -exact))[:k]
        return rows[order], exact[order]

    def storage(self) -> np.ndarray:
        """:attr:`vectors_` as they should be saved: float32, column-major (see :meth:`_blocks`).

        ``np.save`` keeps the order and ``np.load(..., mmap_mode="r")`` maps it back as is,
        so a loaded index scans at the memory bandwidth without a copy.
        """
        return np.asfortranarray(self.vectors_, dtype=np.float32)

    def _ann_top(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """HNSW top-``k``, re-scored exactly; ``None`` when the graph cannot answer."""
        graph = self._ann
        ef = max(int(self.ann_params["ef"]), k)
        graph.set_ef(ef)
        try:
            labels, _ = graph.knn_query(query.reshape(1, -1).astype(np.float32, copy=False), k=k, num_threads=1)
        except RuntimeError:  # fewer than k reachable (tiny or degenerate index)
            return None
        finally:
            if ef != self.ann_params["ef"]:
                graph.set_ef(int(self.ann_params["ef"]))
        rows = labels[0].astype(np.int64)
        dots = self._exact(self._matrix(), query, rows)
        order = np.lexsort((rows, -dots))
        return rows[order], dots[order]

    def query(
        self,
        vector: np.ndarray,
        n: int = 5,
        exclude_rows: Iterable[int] = (),
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """The ``n`` most similar documents to a topic vector.

        Parameters
        ----------
        vector : array-like of shape (n_topics,)
            A topic mixture (any non-negative scale).
        n : int
            How many; clamped to ``[0, len(index) - excluded]``.
        exclude_rows : iterable of int
            Rows never returned (e.g. the query document itself).
        exact : bool
            Use the exact scan even when an HNSW graph is available.

        Returns
        -------
        list of (int, float)
            ``(row, score)`` pairs, best first (ties: lower row first); empty for an
            all-zero query.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer, not {type(n).__name__}")
        query = self.prepare(np.atleast_2d(np.asarray(vector, dtype=np.float32)), self.metric)[0]
        if query.shape[0] != self.n_topics:
            raise ValueError(f"expected a vector of {self.n_topics} topics, got {query.shape[0]}")
        if not query.any() or n <= 0:
            return []
        size = len(self)
        excluded = sorted_unique(row_array(exclude_rows))
        excluded = excluded[(excluded >= 0) & (excluded < size)]
        n = min(int(n), size - len(excluded))
        if n <= 0:
            return []
        k = n + len(excluded)
        found = None
        if self._ann is not None and not exact and k <= min(ANN_MAX_K, size):
            found = self._ann_top(query, k)
        if found is None and k <= max(64, size // 4):
            found = self.exact_top(query, k)
        if found is None:  # asking for most of the index: score everything, sort it all
            dots = self._dots(query)
            order = np.argsort(-dots, kind="stable")
            found = order, dots[order]
        rows, dots = found
        if excluded.size:
            keep = ~np.isin(rows, excluded)
            rows, dots = rows[keep], dots[keep]
        if len(rows) < n:  # the graph returned too few: fall back to the exact scan
            rows, dots = self.exact_top(query, k)
            if excluded.size:
                keep = ~np.isin(rows, excluded)
                rows, dots = rows[keep], dots[keep]
        rows, dots = rows[:n], dots[:n]
        sims = self.similarity(dots)
        return [(int(i), float(s)) for i, s in zip(rows.tolist(), sims.tolist())]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_local", None)  # per-thread scratch buffers
        return state

    def __repr__(self) -> str:
        return (f"SimilarityIndex({len(self):,} documents x {self.n_topics} topics, metric={self.metric!r}, "
                f"backend={self.backend!r}, active={self.active_backend!r})")
