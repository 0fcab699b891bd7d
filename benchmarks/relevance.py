"""Relevance of "similar papers": every ranking method against a TF-IDF reference.

Relevance proxy: arXiv categories. For a query paper, P@10 is the share of its top-10
neighbours (the query itself excluded) whose *primary* (first-listed) category equals the
query's; the category-set Jaccard is the mean Jaccard index of the query's and each
neighbour's category sets. "P@10, query counted" leaves the query paper in the index
(it is then its own first neighbour), the convention of the issue's 56k P@10 column.
"Minority" queries are those whose primary category is not
cs.CV, cs.LG, cs.CL or cs.AI. Chance = the expected value for a uniformly random ranking.

Universe: the corpus papers that carry categories (56k of the shared corpus's 60k); every
index (TF-IDF reference, lexical, topics) covers exactly those papers. Queries: 1,000
seeded papers of the universe; "minority" uses every minority-primary paper; the "20k
subset" is a seeded 20,000-paper sub-universe (indexes refit on it; topic mixtures from
the same model). Parameters are tuned (``--tune``) on a dev split of 2,000 queries
disjoint from the 1,000 evaluation queries.

Methods:

* ``tfidf-ref``: scikit-learn ``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
  min_df=5, max_df=0.1)`` on ``title + ". " + abstract`` (the reference);
* ``hybrid-ref-50/50``: tfidf-ref top-100 re-ranked by 0.5 * min-max(tf-idf) + 0.5 *
  min-max(topic similarity) (the simple hybrid of the issue);
* ``lda``: Hellinger similarity of the model's topic mixtures;
* ``lexical``: :class:`~abstractor_widgets.lexical.LexicalIndex` (the package's words);
* ``hybrid``: :class:`~abstractor_widgets.ranking.Ranker` (the default of ``similar``);
* ``embeddings`` (with ``--embeddings FILE``): cosine of sentence embeddings computed by
  ``benchmarks/embed.py`` (all-MiniLM-L6-v2, the issue's quality anchor; it needs PyTorch,
  so it runs in its own environment; its query time is the one that script measured);
* ``static`` and ``hybrid+static`` (with ``--static-model DIR``): cosine of the static
  (Model2Vec) embeddings of :class:`~abstractor_widgets.embedding.StaticEmbedding` alone,
  and the hybrid with them as its fourth signal (what a model with ``abstractor embed``
  ranks by).

``--title-check`` adds a second, independent measure: 1,000 papers' *titles* as queries,
each paper's own *abstract* (without its title) the one relevant document among a pool of
10,000 abstracts; MRR@10 for every method (``--title-embeddings FILE`` adds MiniLM, from
``benchmarks/embed.py --title-check``).

Usage::

    python benchmarks/relevance.py                      # full run (trains /tmp/relevance-k20 if missing)
    python benchmarks/relevance.py --quick              # CI: a small slice, < 60 s
    python benchmarks/relevance.py --tune               # dev-split grid for the hybrid's parameters
    python benchmarks/relevance.py --embeddings FILE --rerank-embeddings   # embeddings as a hybrid signal?
    python benchmarks/relevance.py --embeddings /tmp/relevance/minilm.npz   # + the embedding anchor
    python benchmarks/relevance.py --static-model artifacts/static-minilm --title-check   # + static embeddings

Writes ``benchmarks/results/relevance.json`` (``relevance_quick.json`` with ``--quick``)
and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from abstractor_widgets.embedding import StaticEmbedding, document_text
from abstractor_widgets.lexical import LexicalIndex, document_words
from abstractor_widgets.ranking import DEFAULT_PARAMS, HybridParams, Query, Ranker, fuse, single_threaded_blas

logger = logging.getLogger("relevance")

MAJORITY = frozenset({"cs.CV", "cs.LG", "cs.CL", "cs.AI"})
K = 10
#: Abstracts tokenized before a timing (the tokenizer's word cache in a steady state).
WARM_TEXTS = 1000
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_MODEL = Path("/tmp/relevance-default-k20")
CACHE = Path(os.environ.get("RELEVANCE_CACHE", "/tmp/relevance"))


# -- metrics (pure functions, unit-tested) ------------------------------------------------
def primary_category(categories: str) -> str:
    """First-listed category ('' when none)."""
    parts = categories.split()
    return parts[0] if parts else ""


def is_minority(primary: str) -> bool:
    """A primary category outside the four big ones (cs.CV, cs.LG, cs.CL, cs.AI)."""
    return bool(primary) and primary not in MAJORITY


def precision_at_k(query_label: str, neighbour_labels: Sequence[str], k: int = K) -> float:
    """Share of the first ``k`` neighbours whose label equals the query's.

    Fewer than ``k`` neighbours count as misses (the denominator stays ``k``).
    """
    if k <= 0:
        raise ValueError("k must be positive")
    return sum(1 for label in list(neighbour_labels)[:k] if label == query_label) / k


def jaccard(a: frozenset | set, b: frozenset | set) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def mean_jaccard(query_set: frozenset, neighbour_sets: Sequence[frozenset], k: int = K) -> float:
    """Mean Jaccard of the query's category set with each of its first ``k`` neighbours' (misses count 0)."""
    return sum(jaccard(query_set, s) for s in list(neighbour_sets)[:k]) / k


def chance_precision(labels: Sequence[str], query_positions: Sequence[int]) -> float:
    """Expected P@k of a uniformly random ranking (query excluded): mean of (n_same - 1) / (N - 1)."""
    labels = list(labels)
    n = len(labels)
    if n < 2 or not len(query_positions):
        return 0.0
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return float(np.mean([(counts[labels[q]] - 1) / (n - 1) for q in query_positions]))


def chance_jaccard(sets: Sequence[frozenset], query_positions: Sequence[int]) -> float:
    """Expected mean Jaccard of a uniformly random ranking (query excluded), computed exactly."""
    sets = list(sets)
    n = len(sets)
    if n < 2 or not len(query_positions):
        return 0.0
    counts: dict[frozenset, int] = {}
    for s in sets:
        counts[s] = counts.get(s, 0) + 1
    unique = list(counts.items())
    memo: dict[frozenset, float] = {}
    values = []
    for q in query_positions:
        a = sets[q]
        if a not in memo:
            memo[a] = sum(c * jaccard(a, b) for b, c in unique)
        values.append((memo[a] - jaccard(a, a)) / (n - 1))
    return float(np.mean(values))


def summarize(rankings: dict[int, Sequence[int]], labels: Sequence[str], sets: Sequence[frozenset], k: int = K) -> dict[str, float]:
    """P@k and mean Jaccard over queries (``{query_position: ranked positions}``)."""
    if not rankings:
        return {"p_at_10": float("nan"), "jaccard": float("nan"), "n_queries": 0}
    p = [precision_at_k(labels[q], [labels[r] for r in ranked], k) for q, ranked in rankings.items()]
    j = [mean_jaccard(sets[q], [sets[r] for r in ranked], k) for q, ranked in rankings.items()]
    return {"p_at_10": float(np.mean(p)), "jaccard": float(np.mean(j)), "n_queries": len(rankings)}


def per_category(rankings: dict[int, Sequence[int]], labels: Sequence[str], k: int = K) -> dict[str, dict[str, float]]:
    """P@k per query primary category."""
    groups: dict[str, list[float]] = {}
    for q, ranked in rankings.items():
        groups.setdefault(labels[q], []).append(precision_at_k(labels[q], [labels[r] for r in ranked], k))
    return {c: {"p_at_10": float(np.mean(v)), "n": len(v)} for c, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))}


# -- data ----------------------------------------------------------------------------------
@dataclass
class Universe:
    """The papers that carry categories, with everything the methods need (row = position)."""

    ids: list[str]
    titles: list[str]
    texts: list[str]
    labels: list[str]  # primary category
    sets: list[frozenset]
    words: list[list[str]]  # abstract words (the package's pipeline)
    title_words: list[list[str]]
    doc_topics: np.ndarray  # (N, K) from the model
    model_rows: np.ndarray  # row of each paper in the model's corpus

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, positions: np.ndarray) -> Universe:
        take = lambda seq: [seq[i] for i in positions]  # noqa: E731
        return Universe(take(self.ids), take(self.titles), take(self.texts), take(self.labels), take(self.sets),
                        take(self.words), take(self.title_words), np.asarray(self.doc_topics)[positions],
                        self.model_rows[positions])


def cached(path: Path, build: Callable[[], Any]) -> Any:
    """Pickle cache (build once, reuse across runs)."""
    if path.is_file():
        with open(path, "rb") as handle:
            return pickle.load(handle)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return value


def model_words(model: Any, corpus: Any, model_dir: Path | None, cache: bool = True) -> tuple[list[list[str]], list[list[str]]]:
    """The corpus's abstract words and title words through the model's preprocessor (cached)."""
    def build() -> tuple[list[list[str]], list[list[str]]]:
        words = None
        if model_dir is not None and Path(str(model_dir) + ".words.pkl").is_file():
            with open(str(model_dir) + ".words.pkl", "rb") as handle:
                words = pickle.load(handle)  # written by the training run: the exact training words
            if len(words) != len(corpus):
                words = None
        if words is None:
            words = model.preprocessor_.transform(corpus.texts, progress=True)
        titles = model.preprocessor_.transform([d.title for d in corpus], progress=False)
        return words, titles

    if not cache or model_dir is None:
        return build()
    key = hashlib.sha256(f"{Path(model_dir).resolve()}|{corpus.content_hash()}".encode()).hexdigest()[:16]
    return cached(CACHE / f"words-{key}.pkl", build)


def build_universe(corpus: Any, model: Any, words: list[list[str]], title_words: list[list[str]]) -> Universe:
    """Categorised papers of ``corpus``; ``model.doc_topics_`` rows follow the corpus rows (aligned by id)."""
    doc_topics = np.asarray(model.doc_topics_)
    if len(doc_topics) != len(corpus):
        raise ValueError(f"the model has {len(doc_topics)} documents, the corpus {len(corpus)}: not the training corpus")
    frame = corpus.frame
    ids = frame["id"].tolist()
    cats = frame["categories"].tolist()
    titles = frame["title"].tolist()
    texts = frame["text"].tolist()
    rows = [i for i, c in enumerate(cats) if c.strip()]
    return Universe(
        ids=[ids[i] for i in rows], titles=[titles[i] for i in rows], texts=[texts[i] for i in rows],
        labels=[primary_category(cats[i]) for i in rows], sets=[frozenset(cats[i].split()) for i in rows],
        words=[words[i] for i in rows], title_words=[title_words[i] for i in rows],
        doc_topics=doc_topics[rows], model_rows=np.asarray(rows, dtype=np.int64),
    )


@dataclass
class Splits:
    eval: np.ndarray
    dev: np.ndarray
    minority: np.ndarray
    minority_tune: np.ndarray
    minority_heldout: np.ndarray


def make_splits(universe: Universe, n_eval: int = 1000, n_dev: int = 2000, seed: int = 0) -> Splits:
    """Seeded evaluation queries and disjoint dev queries; minority-primary papers.

    ``minority`` is every minority-primary paper (what the bar is measured on);
    ``minority_tune`` is a seeded half of those that are not evaluation queries (used
    for tuning only when ``n_dev > 0``), ``minority_heldout`` the rest.
    """
    perm = np.random.default_rng(seed).permutation(len(universe))
    n_eval = min(n_eval, len(universe))
    ev = np.sort(perm[:n_eval])
    dev = np.sort(perm[n_eval : n_eval + n_dev])
    minority = np.array([i for i, label in enumerate(universe.labels) if is_minority(label)], dtype=np.int64)
    eval_set = set(ev.tolist())
    candidates = np.array([i for i in minority if i not in eval_set], dtype=np.int64)
    tune_part = np.sort(np.random.default_rng(seed + 5).permutation(candidates)[: len(candidates) // 2]) if n_dev else np.zeros(0, dtype=np.int64)
    tuned = set(tune_part.tolist())
    return Splits(ev, dev, minority, tune_part, np.array([i for i in minority if i not in tuned], dtype=np.int64))


# -- methods -------------------------------------------------------------------------------
def _top_dense(scores: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[int]:
    scores = scores.astype(np.float64, copy=True)
    scores[list(exclude)] = -np.inf
    k = min(k, len(scores) - 1)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.lexsort((top, -scores[top]))].tolist()


def _rank_by_dot(vectors: np.ndarray, queries: Sequence[int], k: int, exclude: Callable[[int], Sequence[int]],
                 block: int = 512) -> dict[int, list[int]]:
    """Top ``k`` rows by dot product with each query row (full scan, in blocks of queries)."""
    out = {}
    queries = list(queries)
    for start in range(0, len(queries), block):
        chunk = queries[start : start + block]
        for q, scores in zip(chunk, np.asarray(vectors[chunk] @ vectors.T)):
            out[q] = _top_dense(scores, k, exclude(q))
    return out


class Method:
    """A ranking method over a universe: ``rank(positions) -> {q: [positions]}`` and ``time_query(q)``."""

    name = "?"
    #: Milliseconds a query takes when it was measured elsewhere (then not timed here).
    query_ms: float | None = None
    #: False: the query paper stays in the index and may be its own neighbour (see
    #: ``p_at_10_query_counted``); True (the harness's measure): it is left out.
    exclude_query = True

    def _exclude_rows(self, q: int) -> tuple[int, ...]:
        return (q,) if self.exclude_query else ()

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        raise NotImplementedError

    def time_query(self, q: int) -> float:
        """Seconds for one query from the paper's text to its ranked top-k."""
        raise NotImplementedError


class TfidfReference(Method):
    name = "tfidf-ref"

    def __init__(self, universe: Universe) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.texts = [f"{t}. {a}" for t, a in zip(universe.titles, universe.texts)]
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=5, max_df=0.1, dtype=np.float32)
        self.matrix = self.vectorizer.fit_transform(self.texts).tocsr()
        self.postings = self.matrix.T.tocsr()  # term -> documents: a query reads only its terms' lists

    def query_scores(self, text: str) -> np.ndarray:
        """Cosine of a text to every paper: sparse query row times the transposed matrix."""
        return np.asarray((self.vectorizer.transform([text]) @ self.postings).toarray()).ravel()

    def scores_of(self, rows: Sequence[int]) -> np.ndarray:
        return np.asarray((self.matrix[list(rows)] @ self.matrix.T).toarray())

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        out = {}
        queries = list(queries)
        for start in range(0, len(queries), 256):
            chunk = queries[start : start + 256]
            block = self.scores_of(chunk)
            for q, scores in zip(chunk, block):
                out[q] = _top_dense(scores, k, self._exclude_rows(q))
        return out

    def time_query(self, q: int) -> float:
        t = time.perf_counter()
        _top_dense(self.query_scores(self.texts[q]), K, (q,))
        return time.perf_counter() - t


class LdaMethod(Method):
    def __init__(self, universe: Universe, model: Any, name: str = "lda") -> None:
        from abstractor_widgets.index import SimilarityIndex

        self.name = name
        self.model = model
        self.universe = universe
        self.index = SimilarityIndex(universe.doc_topics, metric="hellinger")

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        return _rank_by_dot(self.index.vectors_, queries, k, self._exclude_rows)

    def time_query(self, q: int) -> float:
        t = time.perf_counter()
        topics = self.model.document_topics(self.universe.texts[q])
        self.index.query(topics, n=K, exclude_rows=(q,))
        return time.perf_counter() - t


class HybridReference(Method):
    """TF-IDF reference top-100 re-ranked 50/50 with topic similarity (min-max normalised)."""

    name = "hybrid-ref-50/50"

    def __init__(self, tfidf: TfidfReference, lda: LdaMethod, pool: int = 100, weight: float = 0.5) -> None:
        self.tfidf, self.lda, self.pool, self.weight = tfidf, lda, pool, weight

    @staticmethod
    def _minmax(x: np.ndarray) -> np.ndarray:
        span = x.max() - x.min()
        return (x - x.min()) / span if span > 0 else np.zeros_like(x)

    def _rerank(self, q: int, scores: np.ndarray, topic_query: np.ndarray, k: int) -> list[int]:
        cand = np.array(_top_dense(scores, self.pool, self._exclude_rows(q)))
        topic = Ranker(self.lda.index).topic_similarity(topic_query, cand)
        fused = (1 - self.weight) * self._minmax(scores[cand]) + self.weight * self._minmax(topic)
        return cand[np.lexsort((cand, -fused))][:k].tolist()

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        out = {}
        queries = list(queries)
        for start in range(0, len(queries), 256):
            chunk = queries[start : start + 256]
            for q, scores in zip(chunk, self.tfidf.scores_of(chunk)):
                out[q] = self._rerank(q, scores, self.lda.universe.doc_topics[q], k)
        return out

    def time_query(self, q: int) -> float:
        t = time.perf_counter()
        scores = self.tfidf.query_scores(self.tfidf.texts[q])
        topics = self.lda.model.document_topics(self.lda.universe.texts[q])
        self._rerank(q, scores, topics, K)
        return time.perf_counter() - t


def fit_lexical(universe: Universe, **params: Any) -> LexicalIndex:
    """Our lexical index over a universe (title words counted ``title_weight`` times)."""
    lexical = LexicalIndex(**params)
    docs = [document_words(t, w, lexical.title_weight) for t, w in zip(universe.title_words, universe.words)]
    return lexical.fit(docs)


class LexicalMethod(Method):
    def __init__(self, universe: Universe, model: Any, lexical: LexicalIndex, name: str = "lexical") -> None:
        self.name, self.universe, self.model, self.lexical = name, universe, model, lexical

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        return {q: self.lexical.top(self.lexical.row(q), k, exclude_rows=self._exclude_rows(q))[0].tolist() for q in queries}

    def time_query(self, q: int) -> float:
        u = self.universe
        t = time.perf_counter()
        pre = self.model.preprocessor_
        words = document_words(pre.words(u.titles[q]), pre.words(u.texts[q]), self.lexical.title_weight)
        self.lexical.top(self.lexical.transform_query(words), K, exclude_rows=(q,))
        return time.perf_counter() - t


class HybridMethod(Method):
    """The product's hybrid (:class:`Ranker`); with ``embedding``, its static-embedding signal too
    (an indexed paper's query vector is its stored one, as its BM25 row is)."""

    def __init__(self, universe: Universe, model: Any, lexical: LexicalIndex, lda: LdaMethod,
                 params: HybridParams = DEFAULT_PARAMS, name: str = "hybrid", embedding: StaticEmbedding | None = None) -> None:
        self.name, self.universe, self.model, self.lexical, self.lda, self.params = name, universe, model, lexical, lda, params
        self.embedding = embedding
        self.ranker = Ranker(lda.index, lexical, params, embedding)

    def _vector(self, q: int) -> np.ndarray | None:
        return self.embedding.vectors([q])[0] if self.embedding is not None else None

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        u = self.universe
        return {
            q: [r for r, _ in self.ranker.rank(Query(u.doc_topics[q], self.lexical.row(q), tuple(self._exclude_rows(q)),
                                                     self._vector(q)), k)]
            for q in queries
        }

    def time_query(self, q: int) -> float:
        u = self.universe
        t = time.perf_counter()
        pre = self.model.preprocessor_
        topics = self.model.document_topics(u.texts[q])
        words = document_words(pre.words(u.titles[q]), pre.words(u.texts[q]), self.lexical.title_weight)
        vector = self.embedding.encode_one(document_text(u.titles[q], u.texts[q])) if self.embedding is not None else None
        self.ranker.rank(Query(topics, self.lexical.transform_query(words), (q,), vector), K)
        return time.perf_counter() - t


class StaticMethod(Method):
    """Cosine of static (Model2Vec) embeddings alone: the query paper's text encoded, a full scan."""

    name = "static"

    def __init__(self, universe: Universe, embedding: StaticEmbedding) -> None:
        self.universe, self.embedding = universe, embedding
        self.vectors = np.asarray(embedding.documents_, dtype=np.float32)

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        return _rank_by_dot(self.vectors, queries, k, self._exclude_rows)

    def time_query(self, q: int) -> float:
        u = self.universe
        t = time.perf_counter()
        vector = self.embedding.encode_one(document_text(u.titles[q], u.texts[q]))
        _top_dense(self.vectors @ vector, K, (q,))
        return time.perf_counter() - t


def embed_universe(universe: Universe, static_model: Path | StaticEmbedding) -> StaticEmbedding:
    """The universe's documents (title + abstract) under a static model; row = universe position."""
    embedding = static_model if isinstance(static_model, StaticEmbedding) else StaticEmbedding.from_pretrained(static_model)
    return embedding.fit([document_text(t, a) for t, a in zip(universe.titles, universe.texts)])


def with_documents(embedding: StaticEmbedding, vectors: np.ndarray) -> StaticEmbedding:
    """The same static model over other documents (their unit vectors, row = document)."""
    import copy

    other = copy.copy(embedding)
    other.documents_ = np.asarray(vectors, dtype=np.float16)
    return other


def load_embeddings(path: Path) -> tuple[dict[str, int], np.ndarray, dict[str, Any]]:
    """``(id -> row, L2-normalised vectors, info)`` from a ``benchmarks/embed.py`` file."""
    with np.load(path, allow_pickle=False) as data:
        ids = [str(x) for x in data["ids"]]
        vectors = np.asarray(data["vectors"], dtype=np.float32)
        info = {"model": str(data["model"]), "encode_seconds": float(data["encode_seconds"]),
                "query_ms_p50": float(data["query_ms_p50"]), "file": str(path)}
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"{path}: {len(ids)} ids for vectors of shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1)
    if not np.allclose(norms[norms > 0], 1.0, atol=1e-3):
        raise ValueError(f"{path}: vectors are not L2-normalised")
    return {doc_id: row for row, doc_id in enumerate(ids)}, vectors, info


class EmbeddingMethod(Method):
    """Cosine of precomputed sentence embeddings, aligned to the universe by paper id.

    Only ranking happens here: the vectors come from ``benchmarks/embed.py``, which also
    measured the time to encode one query (``query_ms``, reported instead of a timing).
    """

    name = "embeddings"

    def __init__(self, universe: Universe, rows: dict[str, int], vectors: np.ndarray, query_ms: float = float("nan")) -> None:
        missing = [doc_id for doc_id in universe.ids if doc_id not in rows]
        if missing:
            raise ValueError(f"{len(missing)} papers of the universe have no embedding (e.g. {missing[0]}): "
                             "embed the same corpus")
        self.vectors = vectors[[rows[doc_id] for doc_id in universe.ids]]
        self.query_ms = query_ms

    def rank(self, queries: Sequence[int], k: int = K) -> dict[int, list[int]]:
        return _rank_by_dot(self.vectors, queries, k, self._exclude_rows)


# -- evaluation ----------------------------------------------------------------------------
def evaluate(method: Method, universe: Universe, queries: np.ndarray, minority: np.ndarray | None,
             timing_queries: int = 200, minority_heldout: np.ndarray | None = None,
             warm: Callable[[], None] | None = None) -> dict[str, Any]:
    """All metrics of one method on one universe."""
    t = time.perf_counter()
    ranked = method.rank(queries.tolist())
    result: dict[str, Any] = summarize(ranked, universe.labels, universe.sets)
    result["per_category"] = {c: v for c, v in list(per_category(ranked, universe.labels).items())[:8]}
    result.update(query_counted(method, universe, queries))
    if minority is not None and len(minority):
        extra = [int(q) for q in minority if int(q) not in ranked]
        ranked.update(method.rank(extra))
        m = summarize({int(q): ranked[int(q)] for q in minority}, universe.labels, universe.sets)
        result["minority_p_at_10"] = m["p_at_10"]
        result["minority_jaccard"] = m["jaccard"]
        result["minority_n"] = m["n_queries"]
        if minority_heldout is not None and len(minority_heldout):
            result["minority_heldout_p_at_10"] = summarize(
                {int(q): ranked[int(q)] for q in minority_heldout}, universe.labels, universe.sets)["p_at_10"]
    result["rank_seconds"] = round(time.perf_counter() - t, 2)
    if method.query_ms is not None:
        result["query_ms_p50"] = method.query_ms
    elif timing_queries:
        times = time_method(method, queries, timing_queries, warm)
        result["query_ms_p50"] = round(statistics.median(times), 3)
        result["query_ms_p90"] = round(float(np.percentile(times, 90)), 3)
    return result


def query_counted(method: Method, universe: Universe, queries: np.ndarray) -> dict[str, float]:
    """P@10 with the query paper left in the index, where it is normally its own first
    neighbour (a convention that adds ~0.1 × (1 − P@10) to the measure; the issue's 56k
    P@10 column follows it, its minority and 20k columns do not: ``docs/relevance.md``).

    Returns ``p_at_10_query_counted`` and ``query_ranked_first`` (share of queries whose
    first neighbour is the query itself).
    """
    method.exclude_query = False
    try:
        ranked = method.rank(queries.tolist())
    finally:
        method.exclude_query = True
    first = [bool(r) and r[0] == q for q, r in ranked.items()]
    return {"p_at_10_query_counted": summarize(ranked, universe.labels, universe.sets)["p_at_10"],
            "query_ranked_first": float(np.mean(first)) if first else float("nan")}


def warm_tokenizer(model: Any, texts: Sequence[str]) -> None:
    """Same starting point for every timing: the tokenizer's word cache emptied, then filled
    from other abstracts (the steady state of a server that has seen some queries, but
    not the timed texts)."""
    tokenizer = model.preprocessor_.tokenizer
    tokenizer._cache.clear()
    for text in texts:
        model.preprocessor_.words(text)


def time_method(method: Method, queries: np.ndarray, n: int, warm: Callable[[], None] | None = None) -> list[float]:
    """Milliseconds per query for the first ``n`` queries (warm-up on other queries first)."""
    if warm is not None:
        warm()
    with single_threaded_blas():  # as the product should run queries (see ranking.single_threaded_blas)
        for q in queries[n : n + 10]:
            method.time_query(int(q))  # imports, lazily built structures, memory maps
        return [method.time_query(int(q)) * 1000 for q in queries[:n]]


def chance(universe: Universe, queries: np.ndarray, minority: np.ndarray) -> dict[str, float]:
    return {
        "p_at_10": chance_precision(universe.labels, queries),
        "jaccard": chance_jaccard(universe.sets, queries),
        "minority_p_at_10": chance_precision(universe.labels, minority) if len(minority) else float("nan"),
    }


def end_to_end(abstractor: Any, lexical: LexicalIndex, texts: Sequence[str], params: HybridParams, n: int = 5,
               warm_texts: Sequence[str] = (), tfidf: TfidfReference | None = None) -> dict[str, float]:
    """Latency of ``Abstractor.analyze(text, n=5)`` with the hybrid ranking (the default) and
    with ``method="lda"``, interleaved text by text, on the full artifact.

    Both colour every word (one LDA inference with per-word topics) and build ``n`` hits;
    the hybrid adds the lexical query, the re-rank and the shared terms. With ``tfidf``,
    the reference's bare query (text to ranked top 10, no colouring) is timed in the same
    rotation, so ``hybrid_over_tfidf`` is a ratio measured side by side, free of the
    machine's speed of the moment.
    """
    abstractor.lexical, abstractor.hybrid_params = lexical, params

    def run_one(method: str, text: str) -> None:
        if method == "tfidf-ref":
            _top_dense(tfidf.query_scores(text), K)  # type: ignore[union-attr]
        else:
            abstractor.analyze(text, n=n, method=method)

    rotation = ["hybrid", "lda"] + (["tfidf-ref"] if tfidf is not None else [])
    times: dict[str, list[float]] = {m: [] for m in rotation}
    warm_tokenizer(abstractor.model, warm_texts)
    for text in warm_texts[:10]:
        for method in rotation:
            run_one(method, text)
    for i, text in enumerate(texts):
        for method in rotation[i % len(rotation):] + rotation[: i % len(rotation)]:
            t0 = time.perf_counter()
            run_one(method, text)
            times[method].append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {}
    for method, values in times.items():
        key = method.replace("-", "_")
        out[f"{key}_ms_p50"] = round(statistics.median(values), 3)
        out[f"{key}_ms_p95"] = round(float(np.percentile(values, 95)), 3)
    out["total_ms_p50"] = out["hybrid_ms_p50"]
    if tfidf is not None:
        out["hybrid_over_tfidf"] = round(out["hybrid_ms_p50"] / out["tfidf_ref_ms_p50"], 3)
        out["lda_over_tfidf"] = round(out["lda_ms_p50"] / out["tfidf_ref_ms_p50"], 3)
    out["n_texts"] = len(texts)
    out["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return out


# -- tuning --------------------------------------------------------------------------------
def tune(universe: Universe, lda: LdaMethod, dev: np.ndarray, dev_minority: np.ndarray,
         grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Grid search on dev queries with the production code (:meth:`Ranker.signals`, :func:`fuse`).

    Signals are computed once per query and lexical setting (largest pool), then fused for
    every setting; a smaller pool is the prefix of the largest one.
    """
    rows_out = []
    big_pool = max(grid["pool"])
    queries = np.concatenate([dev, dev_minority]).astype(np.int64)
    n_dev = len(dev)
    labels = np.asarray(universe.labels)
    for lex_params in grid["lexical"]:
        t = time.perf_counter()
        lexical = fit_lexical(universe, **lex_params)
        ranker = Ranker(lda.index, lexical)
        base = [ranker.signals(Query(universe.doc_topics[q], lexical.row(q), (q,)), big_pool, 0) for q in queries.tolist()]
        signals = {k: [{**sig, **ranker.feedback(sig["rows"], k)} for sig in base]
                   for k in grid["feedback_docs"]}
        logger.info("lexical %s: signals in %.1fs", lex_params, time.perf_counter() - t)
        for pool in grid["pool"]:
            for fd in grid["feedback_docs"]:
                cut = [{name: v[:pool] for name, v in sig.items()} for sig in signals[fd]]
                for fw in (grid["feedback_weight"] if fd > 0 else [0.0]):
                    for tw in grid["topic_weight"]:
                        for sw in (grid["semantic_weight"] if lexical.has_semantic else [0.0]):
                            if tw + sw > 1.0 + 1e-9:
                                continue
                            params = HybridParams(pool=pool, topic_weight=tw, semantic_weight=sw, feedback_docs=fd, feedback_weight=fw)
                            p = np.empty(len(queries))
                            for i, (q, sig) in enumerate(zip(queries.tolist(), cut)):
                                r = sig["rows"]
                                score = fuse(sig, params, lexical.has_semantic)
                                top = r[np.lexsort((r, -score))][:K]
                                p[i] = (labels[top] == labels[q]).sum() / K
                            rows_out.append({"lexical": lex_params, **params.to_dict(), "dev_p_at_10": float(p[:n_dev].mean()),
                                             "dev_minority_p_at_10": float(p[n_dev:].mean()) if len(p) > n_dev else float("nan")})
    return rows_out


def embedding_rerank(universe: Universe, lexical: LexicalIndex, lda: LdaMethod, embeddings: EmbeddingMethod,
                     dev: np.ndarray, dev_minority: np.ndarray, weights: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
                     feedback_docs: int = 10) -> list[dict[str, Any]]:
    """Can sentence embeddings help the hybrid cheaply? Its ``pool`` candidates (default
    parameters) re-scored as ``(1 - w) * hybrid + w * cosine`` to (a) the centroid of the
    top ``feedback_docs`` candidates' stored embeddings (no query encoding: a signal the
    product could afford per keystroke) or (b) the query's own embedding (a transformer
    pass per query). Dev split only; ``w = 0`` is the hybrid as it is.
    """
    labels = np.asarray(universe.labels)
    vectors = embeddings.vectors
    queries = np.concatenate([dev, dev_minority]).astype(np.int64)
    hits = {(source, w): np.empty(len(queries)) for source in ("feedback", "query") for w in (0.0, *weights)}
    ranker = Ranker(lda.index, lexical)
    for i, q in enumerate(queries.tolist()):
        pool = ranker.rank(Query(universe.doc_topics[q], lexical.row(q), (q,)), DEFAULT_PARAMS.pool)
        rows = np.array([r for r, _ in pool], dtype=np.int64)
        score = np.array([s for _, s in pool])
        candidates = vectors[rows]
        centroid = candidates[:feedback_docs].mean(axis=0)
        cosine = {"feedback": candidates @ (centroid / (np.linalg.norm(centroid) or 1.0)), "query": candidates @ vectors[q]}
        for (source, w), out in hits.items():
            fused = (1 - w) * score + w * cosine[source]
            top = rows[np.lexsort((rows, -fused))][:K]
            out[i] = (labels[top] == labels[q]).sum() / K
    n_dev = len(dev)
    return [{"source": source, "weight": w, "dev_p_at_10": float(p[:n_dev].mean()),
             "dev_minority_p_at_10": float(p[n_dev:].mean()) if len(p) > n_dev else float("nan")}
            for (source, w), p in hits.items()]


STATIC_TUNE_GRID: dict[str, Sequence[Any]] = {
    "static_weight": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    "static_candidates": [0, 30, 100],
    "feedback_weight": [0.25, 0.5],
}


def tune_static_signal(universe: Universe, model: Any, lexical: LexicalIndex, lda: LdaMethod, static: StaticEmbedding,
                       dev: np.ndarray, dev_minority: np.ndarray, params: HybridParams = DEFAULT_PARAMS,
                       grid: dict[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """Dev-split grid of the static signal's weight, its extra candidates and the feedback
    share, through the product's :class:`Ranker` (the other parameters as ``params``)."""
    import itertools

    grid = dict(grid or STATIC_TUNE_GRID)
    labels = np.asarray(universe.labels)
    queries = np.concatenate([dev, dev_minority]).astype(np.int64)
    out = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        ranker = Ranker(lda.index, lexical, params.with_(**setting), static)
        hits = np.empty(len(queries))
        for i, q in enumerate(queries.tolist()):
            query = Query(universe.doc_topics[q], lexical.row(q), (q,), static.vectors([q])[0])
            top = [r for r, _ in ranker.rank(query, K)]
            hits[i] = (labels[top] == labels[q]).sum() / K
        row = {**setting, "dev_p_at_10": float(hits[: len(dev)].mean()),
               "dev_minority_p_at_10": float(hits[len(dev):].mean()) if len(queries) > len(dev) else float("nan")}
        logger.info("static tuning %s", row)
        out.append(row)
    return out


def title_retrieval(universe: Universe, model: Any, static: StaticEmbedding | None, lexical_params: dict[str, Any],
                    params: HybridParams = DEFAULT_PARAMS, title_embeddings: Path | None = None,
                    n_queries: int = 1000, pool: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Self-retrieval of papers by their titles: MRR@10 of each method.

    A seeded pool of ``pool`` papers is indexed by their *abstracts only* (no title words,
    no title in the text); the first ``n_queries`` of them are queried by their *titles*;
    the one relevant document of a query is its own abstract. Every index is refit on the
    pool; topic mixtures of the abstracts are the model's, a title's are inferred.
    """
    positions = title_pool(universe, pool, seed)
    queries = positions[:n_queries]
    titles = [universe.titles[i] for i in queries]
    abstracts = [universe.texts[i] for i in positions]
    target = np.arange(len(queries))  # query i's abstract is pool row i
    pre = model.preprocessor_
    ranked: dict[str, list[list[int]]] = {}

    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=5, max_df=0.1, dtype=np.float32)
    matrix = vectorizer.fit_transform(abstracts).tocsr()
    ranked["tfidf-ref"] = [_top_dense(np.asarray((vectorizer.transform([t]) @ matrix.T).toarray()).ravel(), K) for t in titles]
    from abstractor_widgets.index import SimilarityIndex

    index = SimilarityIndex(np.asarray(universe.doc_topics)[positions], metric="hellinger")
    title_topics = [model.document_topics(t) for t in titles]
    ranked["lda"] = [[r for r, _ in index.query(topics, n=K)] for topics in title_topics]
    lexical = LexicalIndex(**{**lexical_params, "title_weight": 0.0}).fit([universe.words[i] for i in positions])
    title_rows = [lexical.transform_query(pre.words(t)) for t in titles]
    ranked["lexical"] = [lexical.top(row, K)[0].tolist() for row in title_rows]
    hybrid = Ranker(index, lexical, params)
    ranked["hybrid"] = [[r for r, _ in hybrid.rank(Query(topics, row), K)] for topics, row in zip(title_topics, title_rows)]
    if static is not None:
        pool_static = with_documents(static, static.encode(abstracts))
        vectors = np.asarray(pool_static.documents_, dtype=np.float32)
        title_vectors = static.encode(titles)
        ranked["static"] = [_top_dense(vectors @ v, K) for v in title_vectors]
        both = Ranker(index, lexical, params, pool_static)
        ranked["hybrid+static"] = [[r for r, _ in both.rank(Query(topics, row, (), v), K)]
                                   for topics, row, v in zip(title_topics, title_rows, title_vectors)]
    if title_embeddings is not None:
        with np.load(title_embeddings, allow_pickle=False) as data:
            ids = [str(x) for x in data["ids"]]
            abstract_vectors, title_vectors = np.asarray(data["abstract_vectors"]), np.asarray(data["title_vectors"])
        row_of = {doc_id: i for i, doc_id in enumerate(ids)}
        wanted = [universe.ids[i] for i in positions]
        if any(doc_id not in row_of for doc_id in wanted) or len(title_vectors) < n_queries:
            raise ValueError(f"{title_embeddings} does not cover this pool: rerun benchmarks/embed.py --title-check")
        pool_vectors = abstract_vectors[[row_of[d] for d in wanted]]
        query_vectors = title_vectors[[row_of[universe.ids[i]] for i in queries]]
        ranked["embeddings"] = [_top_dense(pool_vectors @ v, K) for v in query_vectors]
    out: dict[str, Any] = {"pool": len(positions), "queries": len(queries), "seed": seed}
    for name, rankings in ranked.items():
        rr = [1.0 / (r.index(t) + 1) if t in r else 0.0 for r, t in zip(rankings, target.tolist())]
        out[name] = {"mrr_at_10": float(np.mean(rr)), "hit_at_10": float(np.mean([x > 0 for x in rr]))}
        logger.info("title check %s: %s", name, out[name])
    return out


def title_pool(universe: Universe, pool: int = 10_000, seed: int = 0) -> np.ndarray:
    """Universe positions of the title check's pool (its first 1,000 are the queries)."""
    return np.random.default_rng(seed + 7).permutation(len(universe))[: min(pool, len(universe))]


def select(tuning: list[dict[str, Any]]) -> dict[str, Any]:
    """The setting with the best dev P@10 + minority-tune P@10 (both bars count)."""
    return max(tuning, key=lambda r: r["dev_p_at_10"] + (0.0 if np.isnan(r["dev_minority_p_at_10"]) else r["dev_minority_p_at_10"]))


# -- running -------------------------------------------------------------------------------
def load_model(model_dir: Path, corpus: Any, n_topics: int, train_if_missing: bool, passes: int | None = None) -> tuple[Any, Any]:
    """(Abstractor, model dir) — trains and saves the model (and its words) when missing,
    with the package's training defaults unless ``passes`` is given."""
    from abstractor_widgets import Abstractor

    if not (model_dir / "manifest.json").is_file():
        if not train_if_missing:
            raise SystemExit(f"{model_dir}: no model; run without --no-train to train one")
        from abstractor_widgets.index import SimilarityIndex
        from abstractor_widgets.model import TopicModel
        from abstractor_widgets.store import save_artifacts

        logger.info("training K=%d on %d documents into %s", n_topics, len(corpus), model_dir)
        model = TopicModel(n_topics, progress=True, **({"passes": passes} if passes else {})).fit(corpus.texts)
        save_artifacts(model_dir, model, SimilarityIndex(model.doc_topics_), corpus,
                       corpus_info={"name": corpus.name, "size": len(corpus), "sha256": corpus.content_hash()})
        with open(str(model_dir) + ".words.pkl", "wb") as handle:
            pickle.dump(model.training_words_, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return Abstractor.load(model_dir), model_dir


def run_universe(universe: Universe, model: Any, splits: Splits, params: HybridParams, lexical_params: dict[str, Any],
                 timing_queries: int, lda_name: str = "lda", reference: bool = True,
                 embeddings: tuple[dict[str, int], np.ndarray, dict[str, Any]] | None = None,
                 static: StaticEmbedding | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate every method on one universe: ``({method: metrics}, objects)``."""
    out: dict[str, Any] = {}
    lda = LdaMethod(universe, model, name=lda_name)
    t = time.perf_counter()
    lexical = fit_lexical(universe, **lexical_params)
    logger.info("lexical index: %s in %.1fs", lexical, time.perf_counter() - t)
    methods: list[Method] = []
    tfidf = None
    if reference:
        t = time.perf_counter()
        tfidf = TfidfReference(universe)
        logger.info("tf-idf reference: %s in %.1fs", tfidf.matrix.shape, time.perf_counter() - t)
        methods += [tfidf, HybridReference(tfidf, lda)]
    methods += [lda, LexicalMethod(universe, model, lexical), HybridMethod(universe, model, lexical, lda, params)]
    if static is not None:
        methods += [StaticMethod(universe, static),
                    HybridMethod(universe, model, lexical, lda, params, name="hybrid+static", embedding=static)]
    if embeddings is not None:
        rows, vectors, info = embeddings
        methods.append(EmbeddingMethod(universe, rows, vectors, info["query_ms_p50"]))
    eval_set = set(splits.eval.tolist())
    warm_texts = [universe.texts[i] for i in range(len(universe)) if i not in eval_set][:WARM_TEXTS]
    warm = (lambda: warm_tokenizer(model, warm_texts)) if timing_queries else None
    for method in methods:
        logger.info("evaluating %s", method.name)
        out[method.name] = evaluate(method, universe, splits.eval, splits.minority, timing_queries, splits.minority_heldout,
                                    warm=warm)
        logger.info("%s: %s", method.name, {k: v for k, v in out[method.name].items() if k != "per_category"})
    out["chance"] = chance(universe, splits.eval, splits.minority)
    return out, {"lexical": lexical, "lda": lda, "tfidf": tfidf, "methods": methods}


def population(universe: Universe, methods: Sequence[Method], n_sample: int = 1000, resamples: int = 500,
               seed: int = 0) -> dict[str, dict[str, float]]:
    """P@10 of every method with *every* categorised paper as a query, and the spread of
    1,000-query sample means (how much a seeded 1,000-query evaluation can vary)."""
    labels = np.asarray(universe.labels)
    everything = list(range(len(universe)))
    rng = np.random.default_rng(seed)
    samples = [rng.choice(len(universe), size=min(n_sample, len(universe)), replace=False) for _ in range(resamples)]
    out = {}
    for method in methods:
        t = time.perf_counter()
        ranked = method.rank(everything)
        p = np.array([(labels[ranked[q][:K]] == labels[q]).sum() / K for q in everything])
        means = np.array([p[s].mean() for s in samples])
        minority = np.array([is_minority(label) for label in universe.labels])
        counted = query_counted(method, universe, np.asarray(everything))["p_at_10_query_counted"]
        out[method.name] = {"p_at_10": float(p.mean()), "minority_p_at_10": float(p[minority].mean()),
                            "sample_mean_p5": float(np.percentile(means, 5)), "sample_mean_p95": float(np.percentile(means, 95)),
                            "p_at_10_query_counted": counted, "seconds": round(time.perf_counter() - t, 1)}
        logger.info("population %s: %s", method.name, out[method.name])
    return out


def run(corpus: Any, abstractor: Any, *, model_dir: Path | None = None, n_eval: int = 1000, n_dev: int = 2000,
        subset: int = 20_000, seed: int = 0, params: HybridParams = DEFAULT_PARAMS,
        lexical_params: dict[str, Any] | None = None, timing_queries: int = 200, e2e_texts: int = 300,
        cache: bool = True, do_tune: bool = False, tune_grid: dict[str, Any] | None = None,
        all_queries: bool = False, embeddings: Path | None = None, rerank: bool = False,
        static_model: Path | None = None, title_check: bool = False, title_embeddings: Path | None = None,
        tune_static: bool = False) -> dict[str, Any]:
    """The whole evaluation on one corpus and one trained model (``abstractor`` over ``corpus``)."""
    lexical_params = dict(lexical_params or DEFAULT_LEXICAL)
    model = abstractor.model
    t = time.perf_counter()
    words, title_words = model_words(model, corpus, model_dir, cache=cache)
    universe = build_universe(corpus, model, words, title_words)
    logger.info("universe: %d categorised papers of %d (%.1fs)", len(universe), len(corpus), time.perf_counter() - t)
    splits = make_splits(universe, n_eval, n_dev, seed)
    report: dict[str, Any] = {
        "corpus": {"name": corpus.name, "documents": len(corpus), "categorised": len(universe)},
        "model": {"n_topics": int(model.n_topics), "dir": str(model_dir) if model_dir else None},
        "queries": {"eval": len(splits.eval), "dev": len(splits.dev), "minority": len(splits.minority), "seed": seed},
        "hybrid_params": params.to_dict(), "lexical_params": lexical_params,
        "environment": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    static = None
    if static_model is not None:
        t = time.perf_counter()
        static = embed_universe(universe, static_model)
        report["static_model"] = {"dir": str(static_model), **static.source, "dim": static.dim,
                                  "embed_seconds": round(time.perf_counter() - t, 1)}
    if tune_static:
        if static is None:
            raise ValueError("--tune-static needs --static-model")
        report["static_tuning"] = tune_static_signal(universe, model, fit_lexical(universe, **lexical_params),
                                                     LdaMethod(universe, model), static, splits.dev, splits.minority_tune,
                                                     params)
        report["selected"] = select(report["static_tuning"])
        return report
    if do_tune:
        grid = tune_grid or DEFAULT_TUNE_GRID
        lda = LdaMethod(universe, model)
        logger.info("tuning on %d dev queries and %d minority-tune queries", len(splits.dev), len(splits.minority_tune))
        report["tuning"] = tune(universe, lda, splits.dev, splits.minority_tune, grid)
        report["selected"] = select(report["tuning"])
        return report
    if rerank:
        if not embeddings:
            raise ValueError("the embedding re-ranking experiment needs embeddings")
        rows, vectors, report["embeddings"] = load_embeddings(embeddings)
        report["embedding_rerank"] = embedding_rerank(
            universe, fit_lexical(universe, **lexical_params), LdaMethod(universe, model),
            EmbeddingMethod(universe, rows, vectors), splits.dev, splits.minority_tune)
        return report
    loaded = load_embeddings(embeddings) if embeddings else None
    if loaded is not None:
        report["embeddings"] = loaded[2]
    report["full"], objects = run_universe(universe, model, splits, params, lexical_params, timing_queries,
                                           embeddings=loaded, static=static)
    if all_queries:
        report["population"] = population(universe, objects["methods"], seed=seed)
    if subset and subset < len(universe):
        positions = np.sort(np.random.default_rng(seed + 1).choice(len(universe), size=subset, replace=False))
        sub = universe.subset(positions)
        sub_splits = make_splits(sub, n_eval, 0, seed)
        report["subset"], _ = run_universe(sub, model, sub_splits, params, lexical_params, timing_queries=0,
                                           embeddings=loaded,
                                           static=with_documents(static, np.asarray(static.documents_)[positions]) if static is not None else None)
        report["subset"]["size"] = subset
    if title_check:
        report["title_check"] = title_retrieval(universe, model, static, lexical_params, params, title_embeddings, seed=seed)
    if e2e_texts:
        texts = [universe.texts[q] for q in splits.eval[:e2e_texts]]
        eval_set = set(splits.eval.tolist())
        warm_texts = [universe.texts[i] for i in range(len(universe)) if i not in eval_set][:WARM_TEXTS]
        report["end_to_end"] = latency(abstractor, words, title_words, texts, params, lexical_params, warm_texts,
                                       tfidf=objects["tfidf"])
    return report


def latency(abstractor: Any, words: list[list[str]], title_words: list[list[str]], texts: Sequence[str],
            params: HybridParams = DEFAULT_PARAMS, lexical_params: dict[str, Any] | None = None,
            warm_texts: Sequence[str] = (), tfidf: TfidfReference | None = None) -> dict[str, Any]:
    """End-to-end latency in the product's configuration: a lexical index over the whole
    corpus (what ``Abstractor.train`` builds), saved and opened memory-mapped (``tfidf``:
    see :func:`end_to_end`)."""
    import tempfile

    lexical_params = dict(lexical_params or DEFAULT_LEXICAL)
    t = time.perf_counter()
    full_words = [document_words(tw, w, lexical_params.get("title_weight", 0.0)) for tw, w in zip(title_words, words)]
    lexical = LexicalIndex(**lexical_params).fit(full_words)
    build_seconds = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        names = lexical.save(tmp)
        size = sum((Path(tmp) / name).stat().st_size for name in names)
        t = time.perf_counter()
        loaded = LexicalIndex.load(tmp, mmap=True)
        load_seconds = time.perf_counter() - t
        out = end_to_end(abstractor, loaded, texts, params, warm_texts=warm_texts, tfidf=tfidf)
        out.update({"lexical_files_mb": round(size / 2**20, 1), "lexical_index": repr(loaded),
                    "lexical_build_seconds": round(build_seconds, 1), "lexical_load_seconds": round(load_seconds, 2)})
        del loaded
    return out


#: The lexical index the product builds (``LexicalIndex`` defaults + title words counted once).
DEFAULT_LEXICAL: dict[str, Any] = {"scheme": "bm25", "min_df": 2, "max_df": 0.5, "k1": 1.2, "b": 0.75,
                                   "max_query_terms": 20, "n_components": 128, "title_weight": 1.0}
DEFAULT_TUNE_GRID: dict[str, Any] = {
    "lexical": [DEFAULT_LEXICAL, {**DEFAULT_LEXICAL, "title_weight": 0.0}, {**DEFAULT_LEXICAL, "scheme": "tfidf"},
                {**DEFAULT_LEXICAL, "n_components": 0}],
    "pool": [100, 200, 400],
    "topic_weight": [0.0, 0.1, 0.2, 0.3, 0.4],
    "semantic_weight": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6],
    "feedback_docs": [0, 5, 10, 20],
    "feedback_weight": [0.25, 0.5, 0.75],
}


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of the results."""
    full, sub = report.get("full", {}), report.get("subset", {})
    lines = ["| method | P@10 | P@10, query counted | Jaccard | minority P@10 | P@10 subset | minority P@10 subset | query p50 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name, res in full.items():
        if name == "chance":
            continue
        s = sub.get(name, {})
        lines.append(f"| {name} | {res['p_at_10']:.3f} | {res.get('p_at_10_query_counted', float('nan')):.3f} | {res['jaccard']:.3f} | {res.get('minority_p_at_10', float('nan')):.3f} | "
                     f"{s.get('p_at_10', float('nan')):.3f} | {s.get('minority_p_at_10', float('nan')):.3f} | "
                     f"{res.get('query_ms_p50', float('nan')):.2f} |")
    if "chance" in full:
        c, cs = full["chance"], sub.get("chance", {})
        lines.append(f"| chance | {c['p_at_10']:.3f} | — | {c['jaccard']:.3f} | {c['minority_p_at_10']:.3f} | "
                     f"{cs.get('p_at_10', float('nan')):.3f} | {cs.get('minority_p_at_10', float('nan')):.3f} | — |")
    if "population" in report:
        lines += ["", "| method | P@10, every categorised paper as query | query counted | minority P@10 (all) | "
                  "1,000-query sample means (5th–95th pct) |", "|---|---|---|---|---|"]
        for name, res in report["population"].items():
            lines.append(f"| {name} | {res['p_at_10']:.3f} | {res.get('p_at_10_query_counted', float('nan')):.3f} | "
                         f"{res['minority_p_at_10']:.3f} | {res['sample_mean_p5']:.3f}–{res['sample_mean_p95']:.3f} |")
    if "title_check" in report:
        t = report["title_check"]
        lines += ["", f"title self-retrieval ({t['queries']:,} titles, pool of {t['pool']:,} abstracts):",
                  "", "| method | MRR@10 | hit@10 |", "|---|---|---|"]
        for name, res in t.items():
            if isinstance(res, dict):
                lines.append(f"| {name} | {res['mrr_at_10']:.3f} | {res['hit_at_10']:.3f} |")
    if "end_to_end" in report:
        e = report["end_to_end"]
        lines.append("")
        lines.append(f"end to end, Abstractor.analyze(text, n=5): hybrid p50 {e['hybrid_ms_p50']:.2f} ms, "
                     f"p95 {e['hybrid_ms_p95']:.2f} ms; lda p50 {e['lda_ms_p50']:.2f} ms, p95 {e['lda_ms_p95']:.2f} ms "
                     f"(load {e['load_average']}); lexical files {e['lexical_files_mb']} MB")
        if "tfidf_ref_ms_p50" in e:
            lines.append(f"interleaved with the TF-IDF reference's bare query (p50 {e['tfidf_ref_ms_p50']:.2f} ms): "
                         f"hybrid {e['hybrid_over_tfidf']:.2f} x, lda {e['lda_over_tfidf']:.2f} x")
    return "\n".join(lines)


def quick_corpus(n_docs: int = 3000) -> Any:
    """An evenly spaced slice of ``n_docs`` papers of the shared corpus (every k-th row, all years and sources)."""
    from abstractor_widgets.corpus import Corpus, default_corpus_path

    path = default_corpus_path()
    import pandas as pd

    if path is not None and path.is_file():
        frame = pd.read_parquet(path)
        step = max(1, len(frame) // n_docs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Corpus.from_frame(frame.iloc[::step].iloc[:n_docs], name=f"{path.name}[::{step}]")
    raise SystemExit("--quick needs the shared corpus (../shared/data); tests use a synthetic corpus instead")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=None, help="corpus file (default: the shared corpus)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="artifact directory (trained when missing)")
    parser.add_argument("--topics", type=int, default=20, help="K when the model must be trained")
    parser.add_argument("--no-train", action="store_true", help="fail instead of training a missing model")
    parser.add_argument("--quick", action="store_true", help="small slice (CI, < 60 s)")
    parser.add_argument("--tune", action="store_true", help="grid search on the dev split")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--subset", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", action="store_true", help="only the end-to-end latency (300 texts)")
    parser.add_argument("--all-queries", action="store_true",
                        help="also evaluate with every categorised paper as a query (slow: ~10 min)")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="also rank by these sentence embeddings (a benchmarks/embed.py .npz)")
    parser.add_argument("--rerank-embeddings", action="store_true",
                        help="only try the --embeddings as a re-ranking signal of the hybrid (dev split)")
    parser.add_argument("--static-model", type=Path, default=None,
                        help="also rank by static embeddings of this Model2Vec directory (scripts/distill_static.sh)")
    parser.add_argument("--tune-static", action="store_true", help="only tune the static signal (dev split; --static-model)")
    parser.add_argument("--title-check", action="store_true", help="also the title self-retrieval check (MRR@10)")
    parser.add_argument("--title-embeddings", type=Path, default=None,
                        help="MiniLM vectors for the title check (benchmarks/embed.py --title-check)")
    parser.add_argument("--title-check-only", action="store_true", help="only the title check (with --static-model, --title-embeddings)")
    parser.add_argument("--title-pool-ids", type=Path, default=None,
                        help="only write the title check's pool ids (one per line) for benchmarks/embed.py")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    warnings.simplefilter("ignore")
    from abstractor_widgets import Abstractor
    from abstractor_widgets.corpus import load_corpus

    start = time.perf_counter()
    if args.quick:
        import tempfile

        global WARM_TEXTS
        WARM_TEXTS = 200
        corpus = quick_corpus(3000)
        with tempfile.TemporaryDirectory() as tmp:
            abstractor = Abstractor.train(corpus, 12, out=Path(tmp) / "model", passes=3, progress=False, random_state=0)
            report = run(corpus, abstractor, n_eval=300, n_dev=0, subset=1500, timing_queries=30, e2e_texts=30, cache=False)
        out = args.out or RESULTS / "relevance_quick.json"
    else:
        corpus = load_corpus(args.corpus)
        abstractor, model_dir = load_model(args.model, corpus, args.topics, not args.no_train)
        if args.latency:
            words, title_words = model_words(abstractor.model, corpus, model_dir)
            universe = build_universe(corpus, abstractor.model, words, title_words)
            splits = make_splits(universe, args.queries, 0, args.seed)
            eval_set = set(splits.eval.tolist())
            warm_texts = [universe.texts[i] for i in range(len(universe)) if i not in eval_set][:WARM_TEXTS]
            tfidf, lda = TfidfReference(universe), LdaMethod(universe, abstractor.model)
            report = {"end_to_end": latency(abstractor, words, title_words, [universe.texts[q] for q in splits.eval[:300]],
                                            warm_texts=warm_texts, tfidf=tfidf), "query_ms": {}}
            lexical = fit_lexical(universe, **DEFAULT_LEXICAL)
            for method in (tfidf, HybridReference(tfidf, lda), lda, LexicalMethod(universe, abstractor.model, lexical),
                           HybridMethod(universe, abstractor.model, lexical, lda)):
                times = time_method(method, splits.eval, 200, lambda: warm_tokenizer(abstractor.model, warm_texts))
                report["query_ms"][method.name] = {"p50": round(statistics.median(times), 3),
                                                   "p90": round(float(np.percentile(times, 90)), 3)}
            report["query_ms"]["load_average"] = os.getloadavg()[0]
            out = args.out or RESULTS / "relevance_latency.json"
        elif args.title_check_only:
            words, title_words = model_words(abstractor.model, corpus, model_dir)
            universe = build_universe(corpus, abstractor.model, words, title_words)
            static = embed_universe(universe, args.static_model) if args.static_model else None
            report = {"title_check": title_retrieval(universe, abstractor.model, static, DEFAULT_LEXICAL,
                                                     title_embeddings=args.title_embeddings, seed=args.seed)}
            out = args.out or RESULTS / "relevance_title_check.json"
        elif args.title_pool_ids:
            words, title_words = model_words(abstractor.model, corpus, model_dir)
            universe = build_universe(corpus, abstractor.model, words, title_words)
            ids = [universe.ids[i] for i in title_pool(universe, seed=args.seed)]
            args.title_pool_ids.write_text("\n".join(ids) + "\n", encoding="utf-8")
            print(f"wrote {len(ids)} ids to {args.title_pool_ids} (the first 1,000 are the queries)")
            return 0
        else:
            report = run(corpus, abstractor, model_dir=model_dir, n_eval=args.queries, subset=args.subset, seed=args.seed,
                         do_tune=args.tune, all_queries=args.all_queries, embeddings=args.embeddings,
                         rerank=args.rerank_embeddings, static_model=args.static_model, title_check=args.title_check,
                         title_embeddings=args.title_embeddings, tune_static=args.tune_static)
            name = ("relevance_tuning" if args.tune else "relevance_rerank" if args.rerank_embeddings
                    else "relevance_static_tuning" if args.tune_static else "relevance")
            out = args.out or RESULTS / f"{name}.json"
    report["seconds"] = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.tune:
        for row in sorted(report["tuning"], key=lambda r: -(r["dev_p_at_10"] + r["dev_minority_p_at_10"]))[:15]:
            print({k: v for k, v in row.items() if k != "lexical"})
        print("selected:", report["selected"])
    elif args.tune_static:
        for row in sorted(report["static_tuning"], key=lambda r: -(r["dev_p_at_10"] + r["dev_minority_p_at_10"]))[:15]:
            print(row)
        print("selected:", report["selected"])
    elif args.rerank_embeddings:
        for row in report["embedding_rerank"]:
            print(row)
    elif args.latency:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
    print(f"wrote {out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
