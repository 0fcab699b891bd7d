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
4. **Static-embedding signal** (when the artifact has one,
   :class:`~abstractor_widgets.embedding.StaticEmbedding`): cosine of the Model2Vec
   vectors of the query text and the candidate, blended the same way with the top
   candidates' centroid. With ``static_candidates``, the documents nearest to the query
   in that space join the BM25 candidates.
5. **Fusion**: ``lexical_weight * lexical + topic_weight * topic + semantic_weight *
   semantic`` with the weights summing to 1, then ``(1 - static_weight) * that +
   static_weight * static``, so the score is in [0, 1].

Every signal is computed for the candidates only (a few hundred rows), never the corpus.
A query with no indexed word falls back to the topic ranking; a lexical index without
semantic vectors gives the semantic weight to the lexical signal. ``method="lda"`` and
``method="lexical"`` rank by one signal only.

Everything goes through one object, :class:`Ranker` (built by the facade from the
artifact's indexes): ``query`` / ``query_for_row`` build a :class:`Query`, ``rank`` ranks
it by a method, ``explain`` says which words a hit shares with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .index import row_array
from .lexical import display_term

if TYPE_CHECKING:
    import scipy.sparse as sp

    from .embedding import StaticEmbedding
    from .index import SimilarityIndex
    from .lexical import LexicalIndex

#: Ranking methods offered by ``Abstractor.similar(..., method=...)``.
METHODS = ("hybrid", "lexical", "lda")
DEFAULT_METHOD = METHODS[0]  # "hybrid"; Abstractor.methods lists the default first


@dataclass(frozen=True)
class HybridParams:
    """Parameters of the hybrid ranking (defaults tuned on a dev split, see ``docs/relevance.md``).

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
        Share of the feedback query in the topic, semantic and static signals.
    static_weight : float in [0, 1]
        Share of the static-embedding signal in the final score (used only when the
        artifact has static embeddings; the other signals share the rest).
    static_candidates : int
        Nearest documents by static embedding added to the BM25 candidates (0 = none).
    """

    pool: int = 100
    topic_weight: float = 0.2
    semantic_weight: float = 0.5
    feedback_docs: int = 10
    feedback_weight: float = 0.5
    static_weight: float = 0.5
    static_candidates: int = 0

    def __post_init__(self) -> None:
        for name in ("pool", "feedback_docs", "static_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (1 if name == "pool" else 0):
                raise ValueError(f"{name} must be a {'positive' if name == 'pool' else 'non-negative'} integer, not {value!r}")
        for name in ("topic_weight", "semantic_weight", "feedback_weight", "static_weight"):
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


@dataclass(frozen=True)
class Query:
    """What a query is ranked by.

    Attributes
    ----------
    topics : numpy.ndarray (n_topics,)
        Its topic mixture (zeros when it has no topical word).
    lexical_row : scipy.sparse row or None
        Its BM25 row (:meth:`LexicalIndex.transform_query`, or :meth:`LexicalIndex.row`
        for an indexed paper); ``None`` when only topics are ranked.
    exclude_rows : tuple of int or numpy.ndarray
        Rows never returned (an indexed paper's own row; the papers a filter drops, as an
        array).
    embedding : numpy.ndarray (d,) or None
        Its unit static-embedding vector, when the ranker has static embeddings.
    """

    topics: np.ndarray
    lexical_row: sp.csr_matrix | None = None
    exclude_rows: tuple[int, ...] | np.ndarray = ()
    embedding: np.ndarray | None = None


class Ranker:
    """The one ranking object: a topic index, a lexical index, optional static
    embeddings and the hybrid parameters.

    Parameters
    ----------
    index : SimilarityIndex
        Topic index; row ``i`` is document ``i``.
    lexical : LexicalIndex, optional
        BM25 / LSA index of the same documents. Without it only ``"lda"`` is offered.
    params : HybridParams
    embedding : StaticEmbedding, optional
        Static sentence embeddings of the same documents: the hybrid's fourth signal.

    Examples
    --------
    >>> ranker = Ranker(index, lexical)                                      # doctest: +SKIP
    >>> query = ranker.query(topics, words=["graph", "network"])             # doctest: +SKIP
    >>> ranker.rank(query, 5)                                                # doctest: +SKIP
    [(1234, 0.61...), ...]
    >>> ranker.explain(query, [1234])                                        # doctest: +SKIP
    [['graph', 'network']]
    """

    def __init__(self, index: SimilarityIndex, lexical: LexicalIndex | None = None, params: HybridParams = DEFAULT_PARAMS,
                 embedding: StaticEmbedding | None = None) -> None:
        if lexical is not None and len(index) != len(lexical):
            raise ValueError(f"the topic index has {len(index)} rows, the lexical index {len(lexical)}")
        if embedding is not None and len(embedding) != len(index):
            raise ValueError(f"the topic index has {len(index)} rows, the static embedding {len(embedding)}")
        self.index = index
        self.lexical = lexical
        self.params = params
        self.embedding = embedding

    @property
    def has_static(self) -> bool:
        """Whether the hybrid uses a static-embedding signal."""
        return self.embedding is not None and self.lexical is not None and self.params.static_weight > 0

    def __len__(self) -> int:
        return len(self.index)

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods this ranker offers, :attr:`default_method` first."""
        return METHODS if self.lexical is not None else ("lda",)

    @property
    def default_method(self) -> str:
        """``"hybrid"`` with a lexical index, else ``"lda"``."""
        return self.methods[0]

    # -- validation (once per request) ---------------------------------------------------
    def check_method(self, method: str | None) -> str:
        """``method`` (or the default for ``None``) if this ranker offers it, else ``ValueError``."""
        if method is None:
            return self.default_method
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {method!r}")
        if method not in self.methods:
            raise ValueError(f"method {method!r} needs a lexical index, which this model has not: "
                             "retrain it, or use method='lda'")
        return method

    def check_n(self, n: object, minimum: int = 1) -> int:
        """``n`` as an int clamped to the number of documents; ``TypeError`` / ``ValueError`` if invalid."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer, not {type(n).__name__}")
        if n < minimum:
            raise ValueError(f"n must be at least {minimum}, not {n}")
        return min(int(n), len(self.index))

    # -- queries --------------------------------------------------------------------------
    def query(self, topics: np.ndarray, words: Sequence[str] | None = None, method: str = "hybrid",
              text: str | None = None) -> Query:
        """The query of a text: its topic mixture, for the lexical methods its words' BM25
        row, and for the hybrid with static embeddings the ``text``'s vector."""
        row = self.lexical.transform_query(list(words)) if (method != "lda" and words is not None and self.lexical is not None) else None
        vector = self.embedding.encode_one(text) if (method == "hybrid" and row is not None and text is not None
                                                     and self.has_static) else None
        return Query(np.asarray(topics, dtype=np.float32), row, (), vector)

    def query_for_row(self, row: int, topics: np.ndarray, method: str = "hybrid") -> Query:
        """The query of indexed document ``row`` (its topic mixture ``topics``): its BM25 row
        and stored vectors, itself excluded."""
        lexical_row = self.lexical.row(row) if (method != "lda" and self.lexical is not None) else None
        vector = self.embedding.vectors([row])[0] if (method == "hybrid" and self.has_static) else None
        return Query(np.asarray(topics, dtype=np.float32), lexical_row, (int(row),), vector)

    def has_words(self, query: Query) -> bool:
        """Whether the query has a word of the lexical index."""
        return query.lexical_row is not None and bool(query.lexical_row.nnz)

    def rank(self, query: Query, n: int, method: str = "hybrid") -> list[tuple[int, float]]:
        """The ``n`` best documents for ``query``, best first: ``[(row, score in [0, 1]), ...]``.

        ``n`` and ``method`` are taken as validated (:meth:`check_n`, :meth:`check_method`).
        Ties go by row. ``"lda"``: topic similarity; ``"lexical"``: BM25 alone;
        ``"hybrid"``: BM25 candidates re-ranked by all signals (:func:`fuse`), the topic
        ranking filling up when the candidates are fewer than ``n``.
        """
        if n <= 0:
            return []
        if method == "lda":
            return self.index.query(query.topics, n=n, exclude_rows=query.exclude_rows)
        if query.lexical_row is None or self.lexical is None:
            raise ValueError(f"method {method!r} needs the query's lexical row and a lexical index")
        if method == "lexical":
            rows, scores = self.lexical.top(query.lexical_row, int(n), exclude_rows=query.exclude_rows)
            return [(int(r), float(s)) for r, s in zip(rows, scores)]
        return self._hybrid(query, int(n))[0]

    def rank_explained(self, query: Query, n: int, method: str = "hybrid") -> tuple[list[tuple[int, float]], list[bool]]:
        """:meth:`rank`, and for each hit whether the static embedding carried it: ``True``
        when the hit is in the top ``n`` only because of the static signal (ranked by the
        other signals alone, it would not be): it is there for its meaning more than for
        shared words and topics."""
        if method != "hybrid" or n <= 0:
            ranked = self.rank(query, n, method)
            return ranked, [False] * len(ranked)
        return self._hybrid(query, int(n))

    def _hybrid(self, query: Query, n: int) -> tuple[list[tuple[int, float]], list[bool]]:
        params, lexical = self.params, self.lexical
        excluded = row_array(query.exclude_rows)
        signals = self.signals(query, max(params.pool, n), params.feedback_docs)
        static = self.has_static and query.embedding is not None
        rows, scores = signals["rows"], fuse(signals, params, lexical.has_semantic, static)
        carried: set[int] = set()
        if static:
            without = fuse(signals, params, lexical.has_semantic, False)
            carried = set(rows.tolist()) - {r for r, _ in _ranked(rows, without, n)}
        if len(rows) < n and query.topics.any():
            # not enough lexical matches: the topic ranking fills up (lexical signal 0)
            seen = np.concatenate([rows, excluded])
            extra = np.array([r for r, _ in self.index.query(query.topics, n=n - len(rows), exclude_rows=seen)],
                             dtype=np.int64)
            if extra.size:
                zeros = np.zeros(len(extra), dtype=np.float32)
                fill = {"lexical": zeros, "topic": self.index.similarity_to(query.topics, self.index.vectors(extra)),
                        "topic_feedback": zeros, "semantic": zeros, "semantic_feedback": zeros,
                        "static": zeros, "static_feedback": zeros}
                if lexical.has_semantic:
                    fill["semantic"] = np.clip(np.asarray(lexical.vectors_[extra], dtype=np.float32)
                                               @ lexical.embed(query.lexical_row), 0.0, 1.0)
                if static:
                    fill["static"] = self.embedding.similarity(query.embedding, extra)
                rows = np.concatenate([rows, extra])
                scores = np.concatenate([scores, fuse(fill, params.with_(feedback_docs=0), lexical.has_semantic, static)])
        ranked = _ranked(rows, scores, n)
        return ranked, [r in carried for r, _ in ranked]

    def signals(self, query: Query, pool: int, feedback_docs: int = DEFAULT_PARAMS.feedback_docs) -> dict[str, np.ndarray]:
        """The BM25 candidates of a query and their signals, all in [0, 1].

        Returns
        -------
        dict
            ``rows`` (lexical order, then the static embedding's extra candidates),
            ``lexical``, ``topic``, ``semantic`` and ``static`` (similarity to the query),
            ``topic_feedback``, ``semantic_feedback`` and ``static_feedback`` (similarity
            to the top ``feedback_docs`` lexical candidates' centroid; zeros when
            ``feedback_docs == 0``). ``static*`` are zeros without static embeddings.
        """
        lexical, index = self.lexical, self.index
        rows, lex = lexical.top(query.lexical_row, int(pool), exclude_rows=query.exclude_rows)
        static = self.has_static and query.embedding is not None
        if static and self.params.static_candidates and len(rows):
            extra = self.embedding.nearest(query.embedding, self.params.static_candidates,
                                           exclude_rows=np.concatenate([row_array(query.exclude_rows), rows]))
            if len(extra):
                rows = np.concatenate([rows, extra])
                lex = np.concatenate([lex, lexical.score_rows(query.lexical_row, extra)])
        zeros = np.zeros(len(rows), dtype=np.float32)
        # every candidate's stored rows are gathered once and shared by all the signals
        stored = index.vectors(rows)
        semantic = np.asarray(lexical.vectors_[rows], dtype=np.float32) if lexical.has_semantic else None
        out = {"rows": rows, "lexical": lex,
               "topic": index.similarity_to(query.topics, stored) if query.topics.any() and len(rows) else zeros,
               "semantic": zeros, "topic_feedback": zeros, "semantic_feedback": zeros,
               "static": zeros, "static_feedback": zeros}
        if semantic is not None and len(rows):
            out["semantic"] = np.clip(semantic @ lexical.embed(query.lexical_row), 0.0, 1.0)
        out.update(self._feedback(stored, semantic, feedback_docs))
        if static and len(rows):
            vectors = self.embedding.vectors(rows)
            out["static"] = np.clip(vectors @ query.embedding, 0.0, 1.0)
            out["static_feedback"] = _centroid_similarity(vectors, feedback_docs)
        return out

    def feedback(self, rows: np.ndarray, feedback_docs: int) -> dict[str, np.ndarray]:
        """Similarity of candidates ``rows`` to the centroid of the first ``feedback_docs`` of them.

        Returns ``{"topic_feedback": ..., "semantic_feedback": ...}`` (zeros when there is
        no feedback or no semantic vectors), each in [0, 1].
        """
        rows = np.asarray(rows, dtype=np.int64)
        semantic = np.asarray(self.lexical.vectors_[rows], dtype=np.float32) if self.lexical.has_semantic else None
        return self._feedback(self.index.vectors(rows), semantic, feedback_docs)

    def _feedback(self, stored: np.ndarray, semantic: np.ndarray | None, feedback_docs: int) -> dict[str, np.ndarray]:
        zeros = np.zeros(len(stored), dtype=np.float32)
        out = {"topic_feedback": zeros, "semantic_feedback": zeros}
        k = min(int(feedback_docs), len(stored))
        if not k:
            return out
        out["topic_feedback"] = self.index.similarity_to(self.index.mixtures(stored[:k]).mean(axis=0), stored)
        if semantic is not None:
            out["semantic_feedback"] = _centroid_similarity(semantic, k)
        return out

    def topic_similarity(self, topics: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Similarity in [0, 1] of a topic mixture to documents ``rows`` (the index's metric)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not rows.size:
            return np.zeros(0, dtype=np.float32)
        return self.index.similarity_to(topics, self.index.vectors(rows))

    def explain(self, query: Query, rows: Sequence[int], k: int = 5) -> list[list[str]]:
        """Why each of ``rows`` matched: up to ``k`` words it shares with the query, strongest
        first, as displayed (phrases with spaces); empty lists for a topics-only query."""
        if query.lexical_row is None or self.lexical is None:
            return [[] for _ in rows]
        return [[display_term(t) for t in terms] for terms in self.lexical.shared_terms_many(query.lexical_row, list(rows), k=k)]


def _centroid_similarity(vectors: np.ndarray, k: int) -> np.ndarray:
    """Cosine (clipped to [0, 1]) of unit ``vectors`` to the normalised mean of the first ``k``."""
    zeros = np.zeros(len(vectors), dtype=np.float32)
    k = min(int(k), len(vectors))
    if not k:
        return zeros
    centroid = vectors[:k].mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    return np.clip(vectors @ (centroid / norm), 0.0, 1.0).astype(np.float32) if norm > 0 else zeros


def fuse(signals: dict[str, np.ndarray], params: HybridParams, has_semantic: bool = True,
         has_static: bool = False) -> np.ndarray:
    """The hybrid score of candidates from :meth:`Ranker.signals`; in [0, 1].

    Without semantic vectors (``has_semantic=False``) their weight goes to the lexical signal;
    with static embeddings (``has_static``) the static signal gets ``static_weight`` of the
    score and the others share the rest.
    """
    f = np.float32(params.feedback_weight if params.feedback_docs > 0 else 0.0)
    topic = (1 - f) * signals["topic"] + f * signals["topic_feedback"]
    w_sem = params.semantic_weight if has_semantic else 0.0
    w_lex = max(0.0, 1.0 - params.topic_weight - w_sem)
    score = w_lex * signals["lexical"] + params.topic_weight * topic
    if w_sem:
        score = score + w_sem * ((1 - f) * signals["semantic"] + f * signals["semantic_feedback"])
    if has_static and params.static_weight:
        w = np.float32(params.static_weight)
        score = (1 - w) * score + w * ((1 - f) * signals["static"] + f * signals["static_feedback"])
    return np.clip(score.astype(np.float32), 0.0, 1.0)


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
