"""The corpus map: a 2-D layout of every document, saved with the artifact.

Every paper gets a point in 2-D from its topic mixture and its LSA vector (the
lexical index's dense vectors), laid out with UMAP (umap-learn). New papers (``update``)
and a typed abstract are placed with the map's fitted transform: the similarity-weighted
mean position of their ``k`` nearest reference papers in the same feature space, which
costs one matrix-vector product (~2 ms for 60,000 papers), never a new layout. See
``docs/explore.md`` for why UMAP, and the measurements.

Files (a component of the artifact, like ``SimilarityIndex.save_files``)::

    map.coords.npy      float32 (N, 2): every document's position, in [-1, 1] for the
                        papers the layout was fitted on (row i = document i)
    map.reference.npy   float32 (R, d): the unit feature rows of the R papers the layout
                        was fitted on (the fitted transform's reference set)
    map.projection.npy  float32 (d, 64): the reference rows' 64 principal directions
    map.reference_projected.npy  float32 (R, 64): the reference rows projected on them

Placing one text finds its ``k`` nearest reference rows exactly, reading the projected rows
(R x 64) instead of the rows (R x d): a row's dot product with the text is at most its
projected dot product plus the product of the two residual norms (Cauchy-Schwarz on the
orthogonal complement), so only the rows whose bound reaches the k-th best dot product
among the best-bounded candidates are read in full (median ~700 of 60,000). The same
neighbours as a full scan, about twice as fast. The two projection files are written with
new maps; for a map saved without them they are computed once per process (~60 ms).

Examples
--------
>>> features = CorpusMap.features(doc_topics, lsa_vectors)          # doctest: +SKIP
>>> corpus_map = CorpusMap().fit(features)                          # doctest: +SKIP
>>> corpus_map.place(features[:1])                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["CorpusMap", "MAP_FILES", "MIN_MAP_DOCUMENTS", "knn_positions"]

COORDS_FILE = "map.coords.npy"
REFERENCE_FILE = "map.reference.npy"
MAP_FILES = (COORDS_FILE, REFERENCE_FILE)
PROJECTION_FILE = "map.projection.npy"
PROJECTED_FILE = "map.reference_projected.npy"
#: Principal directions of the pruned exact search (placing one text).
SEARCH_DIMS = 64
#: Below this many reference rows a full scan is as quick: no projection.
SEARCH_MIN_ROWS = 4096
#: Candidates read in full first (their k-th best dot product is the pruning threshold).
SEARCH_CANDIDATES = 128
#: Abstractor.train builds the map by default from this many documents up (below, a
#: layout is quick to add with build_map(); small test corpora skip its ~30 s JIT warm-up).
MIN_MAP_DOCUMENTS = 5000


def knn_positions(sims: np.ndarray, near: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Positions (n, 2) of points whose ``k`` nearest reference papers are ``near`` (n, k), at
    similarities ``sims`` (n, k): the mean of their ``positions``, weighted by
    ``exp((s - s_max) / spread * 3)``, spread = how far the k-th neighbour is."""
    spread = np.maximum(sims.max(axis=1, keepdims=True) - sims.min(axis=1, keepdims=True), 1e-3)
    weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / spread * 3.0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("ij,ijk->ik", weights, positions[near]).astype(np.float32)


class CorpusMap:
    """A fitted 2-D layout of the corpus and the transform that places new texts on it.

    Parameters
    ----------
    n_neighbors, min_dist, n_epochs : UMAP parameters
        ``n_epochs=None`` lets UMAP choose (200 above 10,000 documents).
    k : int
        Reference papers a new point is placed among.
    max_fit : int or None
        Fit the layout on at most this many papers (a random sample) and place the rest
        with the transform: bounds the layout time on large corpora.
    random_state : int or None
        ``None`` (default) lets UMAP use both cores; an int makes the layout reproducible
        but single-threaded.

    Attributes
    ----------
    coords_ : numpy.ndarray float32 (N, 2)
    reference_ : numpy.ndarray float32 (R, d)
    reference_coords_ : numpy.ndarray float32 (R, 2)
        Positions of the reference rows (the first R of ``coords_`` unless sampled).
    fit_seconds_ : float
    """

    def __init__(
        self,
        method: str = "umap",
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        n_epochs: int | None = None,
        k: int = 10,
        max_fit: int | None = None,
        random_state: int | None = None,
    ) -> None:
        if method not in ("umap", "tsne"):
            raise ValueError(f"method must be 'umap' or 'tsne', not {method!r}")
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.n_epochs = n_epochs
        self.k = k
        self.max_fit = max_fit
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        return {"method": self.method, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist, "n_epochs": self.n_epochs, "k": self.k,
                "max_fit": self.max_fit, "random_state": self.random_state}

    # -- features -------------------------------------------------------------------
    @staticmethod
    def features(doc_topics: np.ndarray, lsa: np.ndarray | None = None) -> np.ndarray:
        """Unit feature rows: ``[sqrt(topic mixture), LSA vector] / sqrt(2)``.

        The square-rooted mixture makes Euclidean distance the Hellinger distance the
        topic index ranks by; the LSA half brings the words in. Without LSA vectors (a
        model saved without a lexical index), the topic half alone.
        """
        topics = np.sqrt(np.clip(np.atleast_2d(np.asarray(doc_topics, dtype=np.float32)), 0, None))
        if lsa is None or np.asarray(lsa).shape[-1] == 0:
            return np.ascontiguousarray(topics, dtype=np.float32)
        lsa = np.atleast_2d(np.asarray(lsa, dtype=np.float32))
        return (np.hstack([topics, lsa]) / np.float32(np.sqrt(2.0))).astype(np.float32)

    @classmethod
    def features_of(cls, abstractor: Any, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """The feature rows of indexed documents of an :class:`~abstractor_widgets.Abstractor`."""
        rows = slice(None) if rows is None else rows
        lexical = abstractor.lexical
        lsa = None if lexical is None or not lexical.has_semantic else lexical.vectors_[rows]
        return cls.features(abstractor.model.doc_topics_[rows], lsa)

    @classmethod
    def text_features(cls, abstractor: Any, text: str, doc_topics: np.ndarray | None = None) -> np.ndarray:
        """The feature row of a typed text (one tokenization; the topic mixture if known)."""
        tokens = abstractor.model.preprocessor_.tokens(text)
        topics = abstractor.model.document_topics(text) if doc_topics is None else np.asarray(doc_topics, dtype=np.float32)
        lexical = abstractor.lexical
        lsa = None
        if lexical is not None and lexical.has_semantic:
            lsa = lexical.embed(lexical.transform_query([t.text for t in tokens]))
        return cls.features(topics, lsa)[0]

    # -- fitting --------------------------------------------------------------------
    def fit(self, features: np.ndarray) -> CorpusMap:
        """Lay out ``features`` (N, d) with UMAP; coordinates are scaled into [-1, 1]."""
        started = time.perf_counter()
        features = np.ascontiguousarray(features, dtype=np.float32)
        n = len(features)
        if n < 3:
            raise ValueError("a corpus map needs at least 3 documents")
        rows = np.arange(n)
        if self.max_fit is not None and n > self.max_fit:
            rows = np.sort(np.random.default_rng(self.random_state or 0).choice(n, self.max_fit, replace=False))
        layout = self._layout(features[rows]).astype(np.float64)
        lo, hi = layout.min(axis=0), layout.max(axis=0)
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-9)
        self.scale_ = {"centre": centre.tolist(), "half": half * 1.02}
        reference_coords = ((layout - centre) / (half * 1.02)).astype(np.float32)
        self.reference_ = features[rows]
        self.reference_coords_ = reference_coords
        for stale in ("_search_cache", "projection_", "reference_projected_"):  # a new fit: a new search
            self.__dict__.pop(stale, None)
        coords = np.zeros((n, 2), dtype=np.float32)
        coords[rows] = reference_coords
        if len(rows) < n:
            others = np.setdiff1d(np.arange(n), rows)
            coords[others] = self.place(features[others])
        self.reference_rows_ = rows
        self.coords_ = coords
        self.fit_seconds_ = time.perf_counter() - started
        logger.info("corpus map: %d documents laid out in %.1f s", n, self.fit_seconds_)
        return self

    def _layout(self, features: np.ndarray) -> np.ndarray:
        if self.method == "tsne":
            import openTSNE

            perplexity = min(30.0, max(2.0, (len(features) - 1) / 3.0))
            return np.asarray(openTSNE.TSNE(perplexity=perplexity, n_jobs=2, random_state=self.random_state or 0,
                                            verbose=False).fit(features))
        import umap

        return umap.UMAP(
            n_neighbors=min(self.n_neighbors, len(features) - 1),
            min_dist=self.min_dist,
            n_epochs=self.n_epochs,
            metric="euclidean",
            random_state=self.random_state,
            n_jobs=1 if self.random_state is not None else -1,
            low_memory=True,
            init="spectral" if len(features) > self.n_neighbors + 2 else "random",
        ).fit_transform(features)

    def _check_fitted(self) -> None:
        if not hasattr(self, "coords_"):
            raise RuntimeError("this CorpusMap is not fitted: call fit() or load a saved one")

    # -- the fitted transform -------------------------------------------------------
    def place(self, features: np.ndarray, block: int = 256) -> np.ndarray:
        """Positions of new feature rows: the similarity-weighted mean of their ``k``
        nearest reference papers (Euclidean on unit rows = largest dot product)."""
        if not hasattr(self, "reference_"):
            raise RuntimeError("this CorpusMap is not fitted: call fit() or load a saved one")
        features = np.atleast_2d(np.asarray(features, dtype=np.float32))
        out = np.zeros((len(features), 2), dtype=np.float32)
        reference, positions = self.reference_, self.reference_coords_
        k = min(self.k, len(reference))
        for start in range(0, len(features), block):
            part = features[start:start + block]
            dots = part @ reference.T if len(part) > 1 else (reference @ part[0])[None, :]
            near = np.argpartition(-dots, k - 1, axis=1)[:, :k]
            out[start:start + block] = knn_positions(np.take_along_axis(dots, near, axis=1), near, positions)
        return out

    def place_one(self, feature: np.ndarray) -> tuple[float, float]:
        """Position of one feature row (a typed abstract): its exact ``k`` nearest reference
        rows by the pruned search (module docstring), ~2-3 ms for 60,000 reference papers."""
        if not hasattr(self, "reference_"):
            raise RuntimeError("this CorpusMap is not fitted: call fit() or load a saved one")
        feature = np.asarray(feature, dtype=np.float32).reshape(-1)
        search = self._search()
        if search is None:
            x, y = self.place(feature[None, :])[0]
            return float(x), float(y)
        near, sims = self.nearest(feature, search)
        spread = max(float(sims.max() - sims.min()), 1e-3)
        weights = np.exp((sims - sims.max()) / spread * 3.0)
        weights /= weights.sum()
        x, y = weights @ np.asarray(self.reference_coords_[near], dtype=np.float32)
        return float(x), float(y)

    def nearest(self, feature: np.ndarray, search: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` reference rows with the largest dot product with ``feature`` (exactly)
        and those dot products, by the pruned search when the map has one."""
        reference = self.reference_
        k = min(self.k, len(reference))
        search = self._search() if search is None else search
        if search is None:
            dots = np.asarray(reference @ feature)
            near = np.argpartition(-dots, k - 1)[:k]
            return near, dots[near]
        basis, projected, residual = search
        q = feature @ basis
        # the text's residual norm, from above (float32 rounding must never shrink a bound)
        q_res = float(np.sqrt(max(float(feature @ feature) - float(q @ q), 0.0))) + 1e-5
        bound = projected @ q
        bound += np.float32(q_res) * residual
        m = min(SEARCH_CANDIDATES, len(reference))
        rows = np.argpartition(-bound, m - 1)[:m]
        dots = np.asarray(reference[np.sort(rows)] @ feature)
        rows = np.sort(rows)
        threshold = np.partition(dots, m - k)[m - k] - 1e-5
        needed = np.flatnonzero(bound >= threshold)
        if len(needed) > m or not np.isin(needed, rows).all():
            rows = needed
            dots = np.asarray(reference[rows] @ feature)
        top = np.argpartition(-dots, k - 1)[:k]
        return rows[top], dots[top]

    def _search(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(basis d x 64, projected rows R x 64, residual norms R) of the pruned search, or
        ``None`` for a small map; loaded with the map or computed once (~60 ms for 60,000)."""
        cached = self.__dict__.get("_search_cache")
        if cached is not None:
            return cached[0]
        reference = self.reference_
        if len(reference) < SEARCH_MIN_ROWS or reference.shape[1] <= SEARCH_DIMS + 8:
            self.__dict__["_search_cache"] = (None,)
            return None
        basis = self.__dict__.get("projection_")
        projected = self.__dict__.get("reference_projected_")
        if basis is None or projected is None:
            from threadpoolctl import threadpool_limits

            # one BLAS thread: ~60 ms for 60,000 rows; threads fighting for 2 busy cores took 1.2 s
            with threadpool_limits(limits=1, user_api="blas"):
                basis, projected = self._projection(np.asarray(reference))
        norms = np.einsum("ij,ij->i", reference, reference, dtype=np.float64)
        residual = np.sqrt(np.maximum(norms - np.einsum("ij,ij->i", projected, projected, dtype=np.float64), 0.0))
        search = (np.asarray(basis, dtype=np.float32), projected, (residual + 1e-5).astype(np.float32))
        self.__dict__["_search_cache"] = (search,)
        return search

    @staticmethod
    def _projection(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows' ``SEARCH_DIMS`` principal directions (uncentred) and the rows projected on them."""
        values, vectors = np.linalg.eigh((reference.T @ reference).astype(np.float64))
        basis = np.ascontiguousarray(vectors[:, np.argsort(values)[::-1][:SEARCH_DIMS]], dtype=np.float32)
        return basis, np.ascontiguousarray(reference @ basis, dtype=np.float32)

    def extend(self, features: np.ndarray) -> np.ndarray:
        """Append new documents (an update), placed with the fitted transform; returns their positions."""
        self._check_fitted()
        new = self.place(features)
        self.coords_ = np.concatenate([np.asarray(self.coords_), new]).astype(np.float32)
        return new

    def __len__(self) -> int:
        return len(self.coords_) if hasattr(self, "coords_") else 0

    # -- persistence (called by store.py) -------------------------------------------
    def save_files(self, directory: str | Path) -> dict[str, Any]:
        """Write ``map.coords.npy`` and ``map.reference.npy``; returns the manifest entry."""
        self._check_fitted()
        directory = Path(directory)
        np.save(directory / COORDS_FILE, np.ascontiguousarray(self.coords_, dtype=np.float32), allow_pickle=False)
        np.save(directory / REFERENCE_FILE, np.ascontiguousarray(self.reference_, dtype=np.float32), allow_pickle=False)
        rows = np.asarray(self.reference_rows_)
        contiguous = bool(len(rows) and rows[0] == 0 and rows[-1] == len(rows) - 1)
        entry = {
            "method": self.method,
            "transform": "knn-weighted-mean",
            "n_documents": int(len(self.coords_)),
            "n_reference": int(len(self.reference_)),
            "dim": int(self.reference_.shape[1]),
            "params": self.get_params(),
            "fit_seconds": round(float(getattr(self, "fit_seconds_", 0.0)), 2),
            "files": list(MAP_FILES),
        }
        if not contiguous:
            np.save(directory / "map.reference_rows.npy", rows.astype(np.int64), allow_pickle=False)
            entry["files"].append("map.reference_rows.npy")
        search = self._search()
        if search is not None:
            np.save(directory / PROJECTION_FILE, search[0], allow_pickle=False)
            np.save(directory / PROJECTED_FILE, np.ascontiguousarray(search[1], dtype=np.float32), allow_pickle=False)
            entry["files"] += [PROJECTION_FILE, PROJECTED_FILE]
            entry["search"] = {"method": "pca-bound", "dims": int(search[0].shape[1])}
        return entry

    @classmethod
    def load_files(cls, files: Any, entry: dict[str, Any], mmap: bool = True) -> CorpusMap:
        """Open a map written by :meth:`save_files` from the artifact's listed files.

        Raises
        ------
        ValueError
            If the arrays do not match the entry.
        """
        if not isinstance(entry, dict) or entry.get("transform") != "knn-weighted-mean":
            raise ValueError("unsupported corpus map entry")
        params = {k: v for k, v in (entry.get("params") or {}).items() if k in cls().get_params()}
        corpus_map = cls(**params)
        coords = files.array(COORDS_FILE, mmap=mmap)
        reference = files.array(REFERENCE_FILE, mmap=mmap)
        if coords.ndim != 2 or coords.shape[1] != 2 or coords.dtype != np.float32:
            raise ValueError(f"{COORDS_FILE} must be float32 (N, 2), not {coords.dtype} {coords.shape}")
        if reference.ndim != 2 or reference.dtype != np.float32 or reference.shape[1] != int(entry.get("dim", -1)):
            raise ValueError(f"{REFERENCE_FILE} does not match the map's entry")
        if len(coords) != int(entry.get("n_documents", -1)) or len(reference) != int(entry.get("n_reference", -1)):
            raise ValueError("the corpus map's arrays do not match its entry")
        if "map.reference_rows.npy" in entry.get("files", []):
            rows = files.array("map.reference_rows.npy", mmap=mmap)
        else:
            rows = np.arange(len(reference))
        if len(rows) != len(reference) or (len(rows) and (rows.min() < 0 or rows.max() >= len(coords))):
            raise ValueError("the corpus map's reference rows do not match its coordinates")
        if PROJECTION_FILE in entry.get("files", []) and PROJECTED_FILE in entry.get("files", []):
            basis = files.array(PROJECTION_FILE, mmap=mmap)
            projected = files.array(PROJECTED_FILE, mmap=mmap)
            if (basis.dtype != np.float32 or basis.ndim != 2 or basis.shape[0] != reference.shape[1]
                    or projected.dtype != np.float32 or projected.shape != (len(reference), basis.shape[1])):
                raise ValueError("the corpus map's projection does not match its reference rows")
            corpus_map.projection_ = basis
            corpus_map.reference_projected_ = projected
        corpus_map.coords_ = coords
        corpus_map.reference_ = reference
        corpus_map.reference_rows_ = rows
        corpus_map.reference_coords_ = np.asarray(coords[rows] if len(rows) != len(coords) or rows[-1] != len(rows) - 1 else coords[: len(rows)])
        corpus_map.fit_seconds_ = float(entry.get("fit_seconds", 0.0))
        return corpus_map

    def __repr__(self) -> str:
        return f"CorpusMap({len(self)} documents)" if hasattr(self, "coords_") else "CorpusMap(not fitted)"
