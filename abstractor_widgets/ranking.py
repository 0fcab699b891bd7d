"""Ranking "similar papers": lexical candidates re-ranked with topic and semantic similarity.

The default ranking of ``Abstractor.similar`` (``method="hybrid"``), tuned on a dev split
of queries (``docs/relevance.md`` has the measurements behind every choice):

1. **Candidates**: the ``pool`` documents with the highest BM25 score for the query
   (:class:`~abstractor_widgets.lexical.LexicalIndex`, over the package's own words).
   The lexical signal is that score, as a share of the query's score against itself.
2. **Topic signal**: ``1 - Hellinger`` between the LDA mixtures of the query and of the
   candidate, blended (``feedback_weight``) with the same similarity to the mean mixture
   of the top ``feedback_docs`` candidates (pseudo-relevance feedback: a steadier
   estimate of the query's field than the query alone).
3. **Semantic signal**: cosine of the LSA vectors of the query and the candidate, blended
   the same way with the centroid of the top ``feedback_docs`` candidates.
4. **Fusion**: ``lexical_weight * lexical + topic_weight * topic + semantic_weight *
   semantic`` with the weights summing to 1, so the score is in [0, 1].

Every signal is computed for the candidates only (a few hundred rows), never the corpus.
A query with no indexed word falls back to the topic ranking; a lexical index without
semantic vectors gives the semantic weight to the lexical signal. ``method="lda"`` and
``method="lexical"`` rank by one signal only.

Examples
--------
>>> row = lexical.transform_query(model.preprocessor_.words(text))                 # doctest: +SKIP
>>> hybrid_rank(model.document_topics(text), row, index, lexical, n=5)              # doctest: +SKIP
[(1234, 0.61...), ...]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import scipy.sparse as sp

    from .index import SimilarityIndex
    from .lexical import LexicalIndex

#: Ranking methods offered by ``Abstractor.similar(..., method=...)``.
METHODS = ("hybrid", "lexical", "lda")
DEFAULT_METHOD = METHODS[0]  # "hybrid"; Abstractor.methods lists the default first


@dataclass(frozen=True)
class HybridParams:
    """Parameters of :func:`hybrid_rank` (defaults tuned on a dev split, see ``docs/relevance.md``).

    Attributes
    ----------
    pool : int
        Lexical candidates re-ranked.
    topic_weight, semantic_weight : float in [0, 1]
        Shares of the topic and semantic signals; the lexical signal gets the rest.
    feedback_docs : int
        Top lexical candidates whose mean topic mixture / semantic vector is the
        feedback query (0 = none).
    feedback_weight : float in [0, 1]
        Share of the feedback query in the topic and semantic signals.
    """

    pool: int = 100
    topic_weight: float = 0.2
    semantic_weight: float = 0.5
    feedback_docs: int = 10
    feedback_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("pool", "feedback_docs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (1 if name == "pool" else 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'pool' else 'non-negative'} integer, not {value!r}")
        for name in ("topic_weight", "semantic_weight", "feedback_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {value!r}")
        if self.topic_weight + self.semantic_weight > 1.0 + 1e-9:
            raise ValueError("topic_weight + semantic_weight must be at most 1")

    @property
    def lexical_weight(self) -> float:
        """Share of the lexical signal: ``1 - topic_weight - semantic_weight``."""
        return max(0.0, 1.0 - self.topic_weight - self.semantic_weight)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for manifests and reports)."""
        return asdict(self)

    def with_(self, **changes: Any) -> HybridParams:
        """A copy with some parameters changed."""
        return replace(self, **changes)


DEFAULT_PARAMS = HybridParams()


def topic_similarity(query_topics: np.ndarray, index: SimilarityIndex, rows: np.ndarray) -> np.ndarray:
    """Similarity in [0, 1] of a topic mixture to the documents ``rows`` of ``index`` (its metric)."""
    rows = np.asarray(rows, dtype=np.int64)
    if not rows.size:
        return np.zeros(0, dtype=np.float32)
    return _topic_similarity(query_topics, index, np.asarray(index.vectors_[rows], dtype=np.float32))


def _topic_similarity(query_topics: np.ndarray, index: SimilarityIndex, stored: np.ndarray) -> np.ndarray:
    """:func:`topic_similarity` against rows already gathered from ``index.vectors_``."""
    query = index.prepare(np.atleast_2d(np.asarray(query_topics, dtype=np.float32)), index.metric)[0]
    return np.asarray(index._to_similarity(stored @ query), dtype=np.float32)


def _mixtures(index: SimilarityIndex, stored: np.ndarray) -> np.ndarray:
    """Topic mixtures (up to scale) of documents, from their stored index rows."""
    return stored * stored if index.metric == "hellinger" else stored


def candidate_signals(
    query_topics: np.ndarray,
    query_lexical_row: sp.csr_matrix,
    index: SimilarityIndex,
    lexical: LexicalIndex,
    pool: int,
    exclude_rows: Iterable[int] = (),
    feedback_docs: int = DEFAULT_PARAMS.feedback_docs,
) -> dict[str, np.ndarray]:
    """The candidates of a query and their signals, all in [0, 1].

    Returns
    -------
    dict
        ``rows`` (lexical order), ``lexical``, ``topic`` and ``semantic`` (similarity to
        the query), ``topic_feedback`` and ``semantic_feedback`` (similarity to the top
        ``feedback_docs`` candidates' centroid; zeros when ``feedback_docs == 0``).
    """
    rows, lex = lexical.top(query_lexical_row, int(pool), exclude_rows=exclude_rows)
    zeros = np.zeros(len(rows), dtype=np.float32)
    topics = np.asarray(query_topics, dtype=np.float32)
    # every candidate's stored rows are gathered once and shared by all the signals
    stored = np.asarray(index.vectors_[rows], dtype=np.float32)
    semantic = np.asarray(lexical.vectors_[rows], dtype=np.float32) if lexical.has_semantic else None
    signals = {"rows": rows, "lexical": lex,
               "topic": _topic_similarity(topics, index, stored) if topics.any() and len(rows) else zeros,
               "semantic": zeros, "topic_feedback": zeros, "semantic_feedback": zeros}
    if semantic is not None and len(rows):
        signals["semantic"] = np.clip(semantic @ lexical.embed(query_lexical_row), 0.0, 1.0)
    signals.update(_feedback(index, stored, semantic, feedback_docs))
    return signals


def feedback_signals(index: SimilarityIndex, lexical: LexicalIndex, rows: np.ndarray, feedback_docs: int) -> dict[str, np.ndarray]:
    """Similarity of candidates ``rows`` to the centroid of the first ``feedback_docs`` of them.

    Returns ``{"topic_feedback": ..., "semantic_feedback": ...}`` (zeros when there is no
    feedback or no semantic vectors), each in [0, 1].
    """
    rows = np.asarray(rows, dtype=np.int64)
    stored = np.asarray(index.vectors_[rows], dtype=np.float32)
    semantic = np.asarray(lexical.vectors_[rows], dtype=np.float32) if lexical.has_semantic else None
    return _feedback(index, stored, semantic, feedback_docs)


def _feedback(index: SimilarityIndex, stored: np.ndarray, semantic: np.ndarray | None, feedback_docs: int) -> dict[str, np.ndarray]:
    zeros = np.zeros(len(stored), dtype=np.float32)
    out = {"topic_feedback": zeros, "semantic_feedback": zeros}
    k = min(int(feedback_docs), len(stored))
    if not k:
        return out
    out["topic_feedback"] = _topic_similarity(_mixtures(index, stored[:k]).mean(axis=0), index, stored)
    if semantic is not None:
        centroid = semantic[:k].mean(axis=0)
        norm = float(np.linalg.norm(centroid))
        if norm > 0:
            out["semantic_feedback"] = np.clip(semantic @ (centroid / norm), 0.0, 1.0)
    return out


def fuse(signals: dict[str, np.ndarray], params: HybridParams, has_semantic: bool = True) -> np.ndarray:
    """The hybrid score of candidates from :func:`candidate_signals`; in [0, 1].

    Without semantic vectors (``has_semantic=False``) their weight goes to the lexical signal.
    """
    f = np.float32(params.feedback_weight if params.feedback_docs > 0 else 0.0)
    topic = (1 - f) * signals["topic"] + f * signals["topic_feedback"]
    w_sem = params.semantic_weight if has_semantic else 0.0
    w_lex = max(0.0, 1.0 - params.topic_weight - w_sem)
    score = w_lex * signals["lexical"] + params.topic_weight * topic
    if w_sem:
        score = score + w_sem * ((1 - f) * signals["semantic"] + f * signals["semantic_feedback"])
    return np.clip(score.astype(np.float32), 0.0, 1.0)


def hybrid_rank(
    query_topics: np.ndarray,
    query_lexical_row: sp.csr_matrix,
    index: SimilarityIndex,
    lexical: LexicalIndex,
    n: int,
    exclude_rows: Iterable[int] = (),
    params: HybridParams = DEFAULT_PARAMS,
) -> list[tuple[int, float]]:
    """The ``n`` best documents for a query by the hybrid score, best first.

    Parameters
    ----------
    query_topics : array-like (n_topics,)
        The query's topic mixture (zeros if it has no topical word).
    query_lexical_row : scipy.sparse row (1 x lexical.n_terms)
        From :meth:`LexicalIndex.transform_query` (or :meth:`LexicalIndex.row` for an
        indexed document).
    index : SimilarityIndex
        Topic index; row ``i`` is the same document as row ``i`` of ``lexical``.
    lexical : LexicalIndex
    n : int
        How many; fewer are returned when fewer documents exist.
    exclude_rows : iterable of int
        Rows never returned (e.g. the query document itself).
    params : HybridParams

    Returns
    -------
    list of (int, float)
        ``(row, score)`` with scores in [0, 1], non-increasing (ties by row). When the
        lexical candidates are fewer than ``n``, the topic ranking fills the rest (their
        lexical signal is 0). Empty when the query has neither an indexed word nor a topic.
    """
    if len(index) != len(lexical):
        raise ValueError(f"the topic index has {len(index)} rows, the lexical index {len(lexical)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, not {type(n).__name__}")
    if n <= 0:
        return []
    excluded = sorted({int(r) for r in exclude_rows})
    signals = candidate_signals(query_topics, query_lexical_row, index, lexical, max(params.pool, int(n)), excluded,
                                params.feedback_docs)
    rows, scores = signals["rows"], fuse(signals, params, lexical.has_semantic)
    if len(rows) < n and np.asarray(query_topics).any():
        # not enough lexical matches: the topic ranking fills up (lexical signal 0)
        seen = set(rows.tolist()) | set(excluded)
        extra = np.array([r for r, _ in index.query(query_topics, n=int(n) + len(seen), exclude_rows=excluded)
                          if r not in seen][: int(n) - len(rows)], dtype=np.int64)
        if extra.size:
            zeros = np.zeros(len(extra), dtype=np.float32)
            fill = {"lexical": zeros, "topic": topic_similarity(query_topics, index, extra),
                    "topic_feedback": zeros, "semantic": zeros, "semantic_feedback": zeros}
            if lexical.has_semantic:
                fill["semantic"] = np.clip(np.asarray(lexical.vectors_[extra], dtype=np.float32)
                                           @ lexical.embed(query_lexical_row), 0.0, 1.0)
            rows = np.concatenate([rows, extra])
            scores = np.concatenate([scores, fuse(fill, params.with_(feedback_docs=0), lexical.has_semantic)])
    return _ranked(rows, scores, int(n))


def lexical_rank(query_lexical_row: sp.csr_matrix, lexical: LexicalIndex, n: int, exclude_rows: Iterable[int] = ()) -> list[tuple[int, float]]:
    """The ``n`` best documents by the lexical score alone (``method="lexical"``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, not {type(n).__name__}")
    if n <= 0:
        return []
    rows, scores = lexical.top(query_lexical_row, int(n), exclude_rows=exclude_rows)
    return [(int(r), float(s)) for r, s in zip(rows, scores)]


def rank(
    method: str,
    query_topics: np.ndarray,
    query_lexical_row: sp.csr_matrix | None,
    index: SimilarityIndex,
    lexical: LexicalIndex | None,
    n: int,
    exclude_rows: Iterable[int] = (),
    params: HybridParams = DEFAULT_PARAMS,
) -> list[tuple[int, float]]:
    """Dispatch on ``method`` (one of :data:`METHODS`); ``"lda"`` needs no lexical index.

    Raises
    ------
    ValueError
        For an unknown method, or a lexical method without a lexical index.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    exclude_rows = list(exclude_rows)
    if method == "lda":
        return index.query(query_topics, n=n, exclude_rows=exclude_rows)
    if lexical is None or query_lexical_row is None:
        raise ValueError(f"method {method!r} needs a lexical index (this model has none: retrain it, or use method='lda')")
    if method == "lexical":
        return lexical_rank(query_lexical_row, lexical, n, exclude_rows)
    return hybrid_rank(query_topics, query_lexical_row, index, lexical, n, exclude_rows, params)


_CONTROLLER: Any = None


def single_threaded_blas() -> Any:
    """A context manager limiting BLAS to one thread (wrap every query in it).

    A query's matrix-vector products are tiny; on a busy machine a multi-threaded BLAS call
    waits for a second core and a 0.3 ms product takes ~8 ms (measured on the 2-core
    benchmark machine). The controller is built once (~0.5 ms); entering the limit then
    costs ~0.02 ms.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _ranked(rows: np.ndarray, scores: np.ndarray, n: int) -> list[tuple[int, float]]:
    if not len(rows):
        return []
    order = np.lexsort((rows, -scores))[:n]
    return [(int(rows[i]), float(scores[i])) for i in order]
