"""The facade: one object that loads a model and answers colorize / similar / random.

Examples
--------
>>> from abstractor_widgets import Abstractor
>>> ab = Abstractor.load("artifacts/default")                     # doctest: +SKIP
>>> spans = ab.colorize("We study graph neural networks ...")      # doctest: +SKIP
>>> [hit["title"] for hit in ab.similar("graph neural networks", n=3)]  # doctest: +SKIP
>>> ab.widget()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from .corpus import Corpus, Document, arxiv_url, load_corpus
from .index import SimilarityIndex
from .lexical import LexicalIndex, build_lexical_index, words_for_update
from .model import Span, TopicModel
from .ranking import DEFAULT_PARAMS, HybridParams, Query, Ranker, single_threaded_blas
from .text import MAX_TEXT_CHARS, TextTooLongError, check_text  # noqa: F401 (re-exported)
from .store import (
    ArtifactError,
    DocumentTable,
    artifact_digest,
    load_artifacts,
    load_embedding,
    load_lexical,
    load_map,
    read_manifest,
    save_artifacts,
    save_label,
)

if TYPE_CHECKING:
    import pandas as pd

    from .embedding import StaticEmbedding
    from .explore import Facets, Filters, TopicTrends
    from .explore_widget import ExploreWidget
    from .layout import CorpusMap
    from .widget import AbstractorWidget

logger = logging.getLogger(__name__)

#: Minimum weight of a topic in both documents for it to count as shared.
SHARED_TOPIC_MIN = 0.05
#: Shared key terms reported per hit.
SHARED_TERMS = 5


class SharedTopic(TypedDict):
    """A topic present in both the query and a hit."""

    topic: int
    query: float
    document: float


class Hit(TypedDict):
    """One similar paper.

    ``score`` is in [0, 1] for every ranking method (higher is more similar);
    ``shared_topics`` are the topics strong in both texts, ``shared_terms`` the words
    that contributed most to the lexical match (empty for ``method="lda"``);
    ``semantic`` (only for a model with static embeddings) is true when the static
    embedding carried the match: the paper is in the list for its meaning more than for
    shared words ("semantically close").
    """

    id: str
    title: str
    score: float
    topics: list[float]
    url: str
    abstract: str
    categories: str
    published: str
    shared_topics: list[SharedTopic]
    shared_terms: list[str]
    semantic: NotRequired[bool]


@dataclass
class Analysis:
    """Everything the widget shows for one text, from a single inference.

    Attributes
    ----------
    spans : list of Span
        Cover the text exactly.
    doc_topics : list of float
        The text's topic mixture (all zeros when nothing in it is topical).
    similar : list of Hit
        Most similar papers, best first.
    reason : str or None
        Why the result is empty (``None`` when it is not).
    elapsed_ms : float
        Time the analysis took.
    """

    spans: list[Span]
    doc_topics: list[float]
    similar: list[Hit] = field(default_factory=list)
    reason: str | None = None
    elapsed_ms: float = 0.0


class ResultList(list):
    """A list with a ``reason`` attribute saying why it is empty (``None`` otherwise)."""

    reason: str | None = None


_check_text = check_text  # one input limit for every entry point (text.MAX_TEXT_CHARS)


class Abstractor:
    """A trained topic model with its similarity index and documents.

    Build one with :meth:`load` (a saved artifact) or :meth:`train` (a corpus).

    Parameters
    ----------
    model : TopicModel
        Fitted.
    index : SimilarityIndex
        Over the documents' topic mixtures, row ``i`` = document ``i``.
    documents : DocumentTable
        The indexed documents.
    manifest : dict, optional
        The artifact manifest, when loaded from disk.
    path : path-like, optional
        Where the artifact lives; topic labels are saved there.
    lexical : LexicalIndex, optional
        BM25 index of the same documents (row ``i`` = document ``i``). Without it only
        ``method="lda"`` is available.
    hybrid_params : HybridParams
        Parameters of the default ranking (see :mod:`abstractor_widgets.ranking`).

    Attributes
    ----------
    default_method : str
        ``"hybrid"`` when there is a lexical index, else ``"lda"``.
    """

    def __init__(
        self,
        model: TopicModel,
        index: SimilarityIndex,
        documents: DocumentTable,
        manifest: dict[str, Any] | None = None,
        path: str | os.PathLike[str] | None = None,
        lexical: LexicalIndex | None = None,
        hybrid_params: HybridParams = DEFAULT_PARAMS,
        embedding: StaticEmbedding | None = None,
    ) -> None:
        if len(index) != len(documents):
            raise ValueError(f"index has {len(index)} rows for {len(documents)} documents")
        if lexical is not None and len(lexical) != len(documents):
            raise ValueError(f"lexical index has {len(lexical)} rows for {len(documents)} documents")
        self.model = model
        self.documents = documents
        self.manifest = manifest or {}
        self.path = Path(path) if path is not None else None
        self.ranker = Ranker(index, lexical, hybrid_params, embedding)

    @property
    def index(self) -> SimilarityIndex:
        """The topic index (:attr:`ranker`'s)."""
        return self.ranker.index

    @index.setter
    def index(self, index: SimilarityIndex) -> None:
        self.ranker = Ranker(index, self.lexical, self.hybrid_params, self.embedding)

    @property
    def lexical(self) -> LexicalIndex | None:
        """The lexical index (:attr:`ranker`'s), ``None`` for a model saved without one."""
        return self.ranker.lexical

    @lexical.setter
    def lexical(self, lexical: LexicalIndex | None) -> None:
        self.ranker = Ranker(self.index, lexical, self.hybrid_params, self.embedding)

    @property
    def embedding(self) -> StaticEmbedding | None:
        """The static sentence embeddings (:attr:`ranker`'s), ``None`` when the artifact has
        none (``abstractor embed`` adds them)."""
        return self.ranker.embedding

    @embedding.setter
    def embedding(self, embedding: StaticEmbedding | None) -> None:
        self.ranker = Ranker(self.index, self.lexical, self.hybrid_params, embedding)

    @property
    def hybrid_params(self) -> HybridParams:
        """Parameters of the default ranking."""
        return self.ranker.params

    @hybrid_params.setter
    def hybrid_params(self, params: HybridParams) -> None:
        self.ranker = Ranker(self.index, self.lexical, params, self.embedding)

    @property
    def default_method(self) -> str:
        """The ranking :meth:`similar` uses when ``method`` is not given."""
        return self.ranker.default_method

    @property
    def methods(self) -> tuple[str, ...]:
        """The ranking methods this model supports, :attr:`default_method` first."""
        return self.ranker.methods

    # -- construction ---------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        mmap: bool = True,
        verify: bool = True,
        warm: bool = True,
        expected_digest: str | None = None,
    ) -> Abstractor:
        """Load a saved artifact directory (memory-mapped, verified, nothing executed).

        With ``warm`` (default) one throw-away query runs before returning: it loads the
        lemmatizer's dictionary and touches the memory maps, which otherwise makes the
        first real query take about a second.

        Parameters
        ----------
        path : path-like
        mmap : bool
            Memory-map the large arrays (shared by every process serving the model).
        verify : bool
            Hash every file against the manifest (sizes are always checked). A server
            that verified the artifact at start loads it in its workers with
            ``verify=False`` and ``expected_digest``.
        warm : bool
        expected_digest : str, optional
            The manifest digest to insist on (``abstractor info`` shows it); the
            ``ABSTRACTOR_ARTIFACT_SHA256`` environment variable when not given.

        Raises
        ------
        abstractor_widgets.store.ArtifactError
            For a missing, truncated, tampered, pickled (old format) or incompatible
            artifact, or a digest mismatch.
        """
        for attempt in range(3):
            model, index, documents, manifest = load_artifacts(path, mmap=mmap, verify=verify, expected_digest=expected_digest)
            lexical = load_lexical(path, manifest, mmap=mmap)
            # an update elsewhere may have replaced the directory while its files were opened
            try:
                unchanged = artifact_digest(read_manifest(path)) == artifact_digest(manifest)
            except ArtifactError:
                unchanged = False
            if unchanged:
                break
            logger.info("%s changed while it was being loaded; loading it again", path)
        else:
            raise ArtifactError(f"{path}: the model kept changing while it was being loaded")
        if lexical is None:
            logger.info("%s has no lexical index: similar papers are ranked by topics only (retrain for 'hybrid')", path)
        abstractor = cls(model, index, documents, manifest=manifest, path=path, lexical=lexical,
                         embedding=load_embedding(path, manifest, mmap=mmap))
        if abstractor.embedding is None and lexical is not None:
            logger.info("%s has no static embeddings: the hybrid ranks by three signals "
                        "(add the fourth with scripts/distill_static.sh and abstractor embed)", path)
        abstractor.corpus_map = load_map(path, manifest, mmap=mmap)
        if warm:
            abstractor.analyze("Warming up: neural networks learn representations of images and text.", n=1)
        gc.collect()
        gc.freeze()  # the model's objects never die: keep them out of every future GC pass
        return abstractor

    @classmethod
    def train(
        cls,
        corpus: Corpus | pd.DataFrame | str | os.PathLike[str] | None = None,
        n_topics: int = 20,
        *,
        out: str | os.PathLike[str] | None = None,
        metric: str = "hellinger",
        lexical: bool | dict[str, Any] = True,
        layout: bool | dict[str, Any] | None = None,
        static_model: str | os.PathLike[str] | StaticEmbedding | None = None,
        progress: bool = True,
        **model_params: Any,
    ) -> Abstractor:
        """Train a model on a corpus (and save it if ``out`` is given).

        Parameters
        ----------
        corpus : Corpus, DataFrame, path or None
            ``None`` means the default corpus (see
            :func:`~abstractor_widgets.corpus.default_corpus_path`).
        n_topics : int
        out : path-like, optional
            Artifact directory to write (atomically).
        metric : {"hellinger", "cosine"}
        lexical : bool or dict
            Build the BM25 index of the documents' titles and abstracts (needed by the
            default ``"hybrid"`` ranking); a dict gives its
            :class:`~abstractor_widgets.lexical.LexicalIndex` parameters.
        progress : bool
        **model_params
            Passed to :class:`TopicModel` (passes, workers, random_state ...).
        layout : bool, dict or None
            Build the corpus map (:class:`~abstractor_widgets.layout.CorpusMap`, UMAP, saved
            with the artifact); a dict gives its parameters. ``None`` (default): build it
            for corpora of at least ``layout.MIN_MAP_DOCUMENTS`` (5,000) papers. Add one
            later with :meth:`build_map`.
        static_model : path or StaticEmbedding, optional
            A distilled static embedding model (a Model2Vec directory, see
            ``scripts/distill_static.sh``): the documents are embedded with it and the hybrid
            ranking gains its fourth signal. Add one later with :meth:`add_embedding`.
        """
        import pandas as pd

        if corpus is None or isinstance(corpus, (str, os.PathLike)):
            corpus = load_corpus(corpus)
        elif isinstance(corpus, pd.DataFrame):
            corpus = Corpus.from_frame(corpus)
        elif not isinstance(corpus, Corpus):
            raise TypeError(f"corpus must be a Corpus, DataFrame or path, not {type(corpus).__name__}")
        model = TopicModel(n_topics, progress=progress, **model_params).fit(corpus.texts)
        index = SimilarityIndex(model.doc_topics_, metric=metric)
        lexical_index = None
        if lexical is not False:
            started = time.perf_counter()
            params = lexical if isinstance(lexical, dict) else {}
            lexical_index = build_lexical_index(model, titles=[d.title for d in corpus], **params)
            logger.info("lexical index built in %.1f s: %r", time.perf_counter() - started, lexical_index)
        info = {"name": corpus.name, "size": len(corpus), "sha256": corpus.content_hash()}
        corpus_map = _fit_map(model, lexical_index, layout)
        embedding = _embed_documents(static_model, corpus, progress) if static_model is not None else None
        if out is not None:
            save_artifacts(out, model, index, corpus, corpus_info=info, lexical=lexical_index, corpus_map=corpus_map,
                           embedding=embedding)
            return cls.load(out)
        trained = cls(model, index, DocumentTable.from_documents(corpus), manifest={"corpus": info}, lexical=lexical_index,
                      embedding=embedding)
        trained.corpus_map = corpus_map
        return trained

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save (atomically) to an artifact directory; labels are saved there from now on."""
        info = self.manifest.get("corpus")
        path = save_artifacts(path, self.model, self.index, self.documents, corpus_info=info, lexical=self.lexical,
                              corpus_map=self.corpus_map, embedding=self.embedding)
        self.path = Path(path)
        return self.path

    def update(self, corpus: Corpus | pd.DataFrame | str | os.PathLike[str], save: bool = True) -> int:
        """Add documents without retraining: online LDA update, index and store appended.

        Parameters
        ----------
        corpus : Corpus, DataFrame or path
            New documents. Ids already indexed are skipped (counted in the log).
        save : bool
            Rewrite the artifact directory (atomically: an interrupted update leaves the
            previous model intact) when this model was loaded from or saved to disk.

        Returns
        -------
        int
            The number of documents added.
        """
        import pandas as pd

        if isinstance(corpus, (str, os.PathLike)):
            corpus = load_corpus(corpus)
        elif isinstance(corpus, pd.DataFrame):
            corpus = Corpus.from_frame(corpus, name="<update>")
        elif not isinstance(corpus, Corpus):
            raise TypeError(f"corpus must be a Corpus, DataFrame or path, not {type(corpus).__name__}")
        fresh = [doc for doc in corpus if doc.id not in self.documents]
        if len(fresh) < len(corpus):
            logger.warning("skipped %d document(s) already in the model", len(corpus) - len(fresh))
        if not fresh:
            return 0
        texts = [d.text for d in fresh]
        words = self.model.tokenize(texts)  # once, for the topics and the lexical index
        new_topics = self.model.update(texts, words=words)
        self.index.add(new_topics)
        if self.lexical is not None:
            self.lexical.add(words_for_update(self.model, self.lexical, [d.title for d in fresh], texts, words=words))
        if self.corpus_map is not None:  # placed with the map's fitted transform, no new layout
            from .layout import CorpusMap

            lsa = self.lexical.vectors_[-len(fresh):] if self.lexical is not None and self.lexical.has_semantic else None
            self.corpus_map.extend(CorpusMap.features(new_topics, lsa))
        if self.embedding is not None:
            from .embedding import document_text

            self.embedding.add([document_text(d.title, d.text) for d in fresh])
        documents = self.documents.appended(fresh)  # the old documents are streamed, never decoded
        previous = dict(self.manifest.get("corpus") or {})
        history = list(self.manifest.get("updates", [])) + [
            {"added": len(fresh), "source": corpus.name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        ]
        info = {
            "name": previous.get("name", "?"),
            "size": len(documents),
            "sha256": documents.content_hash(),
        }
        self.manifest = {**self.manifest, "corpus": info, "updates": history}
        if save and self.path is not None:
            save_artifacts(self.path, self.model, self.index, documents, corpus_info=info,
                           extra_manifest={"updates": history}, lexical=self.lexical, keep_labels_on_disk=True,
                           corpus_map=self.corpus_map, embedding=self.embedding)
            reloaded = Abstractor.load(self.path, verify=False)  # written under the lock a moment ago
            self.model, self.documents, self.manifest = reloaded.model, reloaded.documents, reloaded.manifest
            self.corpus_map = reloaded.corpus_map
            self.ranker = Ranker(reloaded.index, reloaded.lexical, self.hybrid_params, reloaded.embedding)
        else:
            self.documents = DocumentTable.from_documents([self.documents[i] for i in range(len(self.documents))] + fresh)
        return len(fresh)

    def reload(self) -> Abstractor:
        """Load this model's artifact again (e.g. after ``abstractor update`` elsewhere)."""
        if self.path is None:
            raise RuntimeError("this model was never saved: nothing to reload")
        return Abstractor.load(self.path)

    # -- topics ---------------------------------------------------------------------
    @property
    def n_topics(self) -> int:
        """Number of topics K."""
        return self.model.n_topics

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def topics(self) -> list[dict[str, Any]]:
        """``[{"id": k, "label": str, "terms": [[term, weight], ...]}, ...]`` in topic-id order."""
        from .explore import topic_label  # the user's label, else the strongest terms

        return [
            {"id": k, "label": topic_label(self.model.labels_[k], k, terms), "terms": [[t, round(w, 5)] for t, w in terms]}
            for k, terms in enumerate(self.model.topics(10))
        ]

    def label_topic(self, topic: int, label: str) -> None:
        """Name a topic; saved with the model when it was loaded from (or saved to) disk.

        Only this topic's label is written, merged with the artifact on disk under its
        lock: labels that other processes saved meanwhile are kept (and picked up here).
        """
        self.model.set_label(topic, label)
        if self.path is not None:
            on_disk = save_label(self.path, int(topic), self.model.labels_[int(topic)])
            self.model.labels_[:] = on_disk

    # -- queries --------------------------------------------------------------------
    def colorize(self, text: str) -> ResultList:
        """Spans covering ``text`` exactly; see :class:`~abstractor_widgets.model.Span`."""
        analysis = self.analyze(text, n=0)
        result = ResultList(analysis.spans)
        result.reason = analysis.reason
        return result

    def document_topics(self, text: str) -> np.ndarray:
        """Topic mixture of ``text`` (zeros when it has no topical word)."""
        return self.model.document_topics(_check_text(text))

    def similar(self, text: str, n: int = 5, method: str | None = None) -> ResultList:
        """The ``n`` papers most similar to ``text``.

        ``n`` above the corpus size is clamped; ``n < 1`` raises ``ValueError``.
        An empty list (with a ``reason``) is returned for a text with no known word.
        A ``text`` that is the id of an indexed paper means :meth:`similar_to` that paper.

        Parameters
        ----------
        text : str
        n : int
        method : {"hybrid", "lexical", "lda"}, optional
            ``"hybrid"`` (the default when the model has a lexical index): BM25
            candidates re-ranked with topic and LSA similarity; ``"lexical"``: BM25 only;
            ``"lda"``: topic mixtures only (Hellinger). See :mod:`abstractor_widgets.ranking`.
        """
        if isinstance(text, str) and len(text) <= 64 and text.strip() and text in self.documents:
            return ResultList(self.similar_to(text, n, method=method))
        self.ranker.check_n(n)
        analysis = self.analyze(text, n=n, method=method)
        result = ResultList(analysis.similar)
        result.reason = analysis.reason
        return result

    def similar_to(self, doc_id: str, n: int = 5, method: str | None = None) -> list[Hit]:
        """The ``n`` papers most similar to an indexed paper (itself excluded); see :meth:`similar`."""
        method = self.ranker.check_method(method)
        n = self.ranker.check_n(n)
        row = self.documents.position(doc_id)
        query = self.ranker.query_for_row(row, self.model.doc_topics_[row], method)
        with single_threaded_blas():
            return self._hits_explained(query, n, method)

    def analyze(self, text: str, n: int = 5, method: str | None = None) -> Analysis:
        """Spans, topic mixture and ``n`` similar papers of ``text``, from one tokenization
        and one inference.

        ``n=0`` skips the similarity search; ``method`` is as in :meth:`similar`.
        """
        start = time.perf_counter()
        _check_text(text)
        n = self.ranker.check_n(n, minimum=0)
        method = self.ranker.check_method(method)
        tokens = self.model.preprocessor_.tokens(text)
        doc, spans, known = self.model.analyze(text, tokens=tokens)
        reason = None
        hits: list[Hit] = []
        query = self.ranker.query(doc, [t.text for t in tokens] if n else None, method, text=text)
        if not text.strip():
            reason = "The text is empty: paste or type an abstract."
        elif not known and not self.ranker.has_words(query):
            reason = "No topical words: the text has only stopwords, numbers or words this model does not know."
        elif n:
            with single_threaded_blas():
                hits = self._hits_explained(query, n, method)
        return Analysis(
            spans=spans,
            doc_topics=np.round(doc.astype(np.float64), 5).tolist(),
            similar=hits,
            reason=reason,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    def _hits_explained(self, query: Query, n: int, method: str) -> list[Hit]:
        ranked, semantic = self.ranker.rank_explained(query, n, method)
        return self._hits(ranked, query, semantic)

    def _hits(self, ranked: list[tuple[int, float]], query: Query, semantic: list[bool] | None = None) -> list[Hit]:
        rows = [r for r, _ in ranked]
        terms = self.ranker.explain(query, rows, k=SHARED_TERMS)
        semantic = semantic if semantic is not None else [False] * len(rows)
        return [self._hit(r, s, query.topics, shared, close) for (r, s), shared, close in zip(ranked, terms, semantic)]

    def _hit(self, row: int, score: float, query: np.ndarray, shared_terms: list[str], semantic: bool = False) -> Hit:
        doc = self.documents[row]
        mix = np.asarray(self.model.doc_topics_[row], dtype=np.float32)
        both = np.minimum(mix, query)
        shared = [
            {"topic": int(k), "query": round(float(query[k]), 4), "document": round(float(mix[k]), 4)}
            for k in np.argsort(-both)[:3]
            if both[k] >= SHARED_TOPIC_MIN
        ]
        return {
            "id": doc.id,
            "title": doc.title,
            "score": round(float(score), 5),
            "topics": np.round(mix.astype(np.float64), 4).tolist(),
            "url": arxiv_url(doc.id),
            "abstract": doc.text,
            "categories": doc.categories,
            "published": doc.published,
            "shared_topics": shared,
            "shared_terms": shared_terms,
            **({"semantic": bool(semantic)} if self.embedding is not None else {}),
        }

    # -- documents ------------------------------------------------------------------
    def document(self, doc_id: str) -> Document:
        """The indexed paper with this id (``KeyError`` if unknown)."""
        if not isinstance(doc_id, str):
            raise TypeError(f"doc_id must be a str, not {type(doc_id).__name__}")
        return self.documents[self.documents.position(doc_id)]

    def random_document(self, seed: int | None = None) -> Document:
        """A paper drawn uniformly from the corpus (reproducible with ``seed``)."""
        return self.documents[int(np.random.default_rng(seed).integers(len(self.documents)))]

    # -- views ----------------------------------------------------------------------
    def widget(self, **kwargs: Any) -> AbstractorWidget:
        """An interactive Jupyter widget over this model (see :class:`AbstractorWidget`)."""
        from .widget import AbstractorWidget

        return AbstractorWidget(self, **kwargs)

    # -- exploring the corpus (abstractor_widgets.explore, abstractor_widgets.layout) ---
    #: The corpus map (2-D layout) when the artifact has one (see :meth:`build_map`).
    corpus_map: CorpusMap | None = None

    @property
    def facets(self) -> Facets:
        """Every document's month and categories, decoded once per document table."""
        from .explore import Facets

        cached = self.__dict__.get("_facets")
        if cached is None or cached[0] is not self.documents:
            cached = (self.documents, Facets.from_documents(self.documents))
            self.__dict__["_facets"] = cached
        return cached[1]

    def trends(self, filters: Filters | dict[str, Any] | None = None, n_categories: int = 12) -> TopicTrends:
        """Each topic's share of the corpus per month, overall and per arXiv category.

        Computed from the stored document-topic matrix; the unfiltered result is cached.
        ``filters`` (:class:`~abstractor_widgets.explore.Filters` or a dict) restricts the papers.
        """
        from .explore import TopicTrends, filter_mask

        mask = filter_mask(self, filters)
        cached = self.__dict__.get("_trends")
        if mask is None and cached is not None and cached[0] is self.documents and cached[1] == n_categories:
            return cached[2]
        trends = TopicTrends.compute(self.model.doc_topics_, self.facets, rows=mask, n_categories=n_categories)
        if mask is None:
            self.__dict__["_trends"] = (self.documents, n_categories, trends)
        return trends

    def filter_mask(self, filters: Filters | dict[str, Any] | None) -> np.ndarray | None:
        """Boolean mask of the papers ``filters`` keep (``None`` when no filter is set)."""
        from .explore import filter_mask

        return filter_mask(self, filters)

    def similar_filtered(self, text: str, n: int = 5, filters: Filters | dict[str, Any] | None = None,
                         method: str | None = None) -> ResultList:
        """:meth:`similar`, ranked among the papers ``filters`` keep (category, dates, keyword)."""
        from .explore import filtered_analyze

        self.ranker.check_n(n)
        analysis = filtered_analyze(self, text, n, method, self.filter_mask(filters))
        result = ResultList(analysis.similar)
        result.reason = analysis.reason
        return result

    def add_embedding(self, static_model: str | os.PathLike[str] | StaticEmbedding, save: bool = True,
                      progress: bool = True) -> StaticEmbedding:
        """Embed every document with a static model (the hybrid's fourth signal) and save it
        with the artifact.

        Parameters
        ----------
        static_model : path or StaticEmbedding
            A distilled Model2Vec directory (``scripts/distill_static.sh`` makes one).
        save : bool
            When the model has a directory on disk, rewrite the artifact atomically with its
            ``embedding.*`` files (an interrupted run leaves the previous artifact intact).

        Raises
        ------
        abstractor_widgets.embedding.EmbeddingError
            If the static model cannot be read.
        """
        documents = [self.documents[i] for i in range(len(self.documents))]
        self.embedding = _embed_documents(static_model, documents, progress)
        if save and self.path is not None:
            self.save(self.path)
            self.embedding = Abstractor.load(self.path, warm=False).embedding  # memory-mapped from now on
        return self.embedding

    def build_map(self, save: bool = True, **params: Any) -> CorpusMap:
        """Lay out the corpus in 2-D (UMAP) for the map view, and save it with the artifact.

        For models trained before maps existed, or with ``layout=False``. ``params`` go to
        :class:`~abstractor_widgets.layout.CorpusMap`. With ``save`` (and an artifact on
        disk) the artifact is rewritten atomically with its ``map.*.npy`` files.
        """
        from .layout import CorpusMap

        self.corpus_map = CorpusMap(**params).fit(CorpusMap.features_of(self))
        if save and self.path is not None:
            self.save(self.path)
            self.corpus_map = Abstractor.load(self.path, warm=False).corpus_map
        return self.corpus_map

    def place(self, text: str) -> tuple[float, float] | None:
        """Where ``text`` falls on the corpus map (``None`` without a map or topical words)."""
        from .layout import CorpusMap

        if self.corpus_map is None:
            return None
        topics = self.document_topics(text)
        if not topics.any():
            return None
        return self.corpus_map.place_one(CorpusMap.text_features(self, text, topics))

    def explorer(self, analyser: AbstractorWidget | None = None, **kwargs: Any) -> ExploreWidget:
        """The corpus explorer (map, trends, filters, export) linked to an analyser widget."""
        from .explore_widget import ExploreWidget

        return ExploreWidget(analyser if analyser is not None else self.widget(), **kwargs)

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return f"Abstractor({self.n_topics} topics, {len(self)} documents{where})"


def _embed_documents(static_model: str | os.PathLike[str] | StaticEmbedding, documents: Any,
                     progress: bool) -> StaticEmbedding:
    """The static embeddings of ``documents`` (title + abstract) under ``static_model``."""
    from .embedding import StaticEmbedding, document_text

    if not isinstance(static_model, StaticEmbedding):
        static_model = StaticEmbedding.from_pretrained(static_model)
    started = time.perf_counter()
    static_model.fit([document_text(d.title, d.text) for d in documents], progress=progress)
    logger.info("static embeddings of %d documents in %.1f s", len(documents), time.perf_counter() - started)
    return static_model


def _fit_map(model: TopicModel, lexical: LexicalIndex | None, layout: bool | dict[str, Any] | None) -> CorpusMap | None:
    """The corpus map Abstractor.train builds (``layout``: see there), or ``None``."""
    from .layout import MIN_MAP_DOCUMENTS, CorpusMap

    n = len(model.doc_topics_)
    if layout is False or (layout is None and n < MIN_MAP_DOCUMENTS):
        if layout is None:
            logger.info("no corpus map for %d documents (below %d): Abstractor.build_map() adds one", n, MIN_MAP_DOCUMENTS)
        return None
    try:
        import umap  # noqa: F401
    except ImportError:
        if layout is None:
            logger.warning("umap-learn is not installed: no corpus map (pip install umap-learn)")
            return None
        raise
    params = layout if isinstance(layout, dict) else {}
    lsa = lexical.vectors_ if lexical is not None and lexical.has_semantic else None
    return CorpusMap(**params).fit(CorpusMap.features(model.doc_topics_, lsa))
