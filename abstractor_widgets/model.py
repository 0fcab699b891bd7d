"""The LDA topic model, following scikit-learn conventions.

``__init__`` only stores parameters, :meth:`TopicModel.fit` validates them, learns and
returns ``self``; learned attributes end in ``_``. gensim does the learning.

Examples
--------
>>> model = TopicModel(n_topics=20, passes=5).fit(corpus.texts)   # doctest: +SKIP
>>> model.topics(5)[0]                                              # doctest: +SKIP
[('network', 0.031), ('neural', 0.022), ...]
>>> model.colorize("Deep networks for image segmentation.")        # doctest: +SKIP
[{'start': 0, 'end': 5, 'text': 'Deep ', 'topic': None, 'weight': 0.0}, ...]
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, TypedDict

import numpy as np

from .text import Preprocessor, Token

if TYPE_CHECKING:  # gensim is imported lazily: `import abstractor_widgets` stays light
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    from .fileio import ListedFiles

logger = logging.getLogger(__name__)

#: Longest topic label (characters): the one rule for the API, the widget and the artifact.
MAX_LABEL_CHARS = 80



class DeterministicInit:
    """Stands in for the LDA's random state after training: gamma starts at its mean.

    gensim's E-step starts each document's variational gamma from random Gamma(100,
    1/100) draws, so the same text could get slightly different topics from call to
    call, and a document inferred alone differs from the same document inferred in a
    batch. Starting every document at the mean (1.0, as Blei's lda-c does with a
    uniform start) makes inference a pure function of the text. Only ``gamma`` (E-step
    start) and ``rand`` (used by gensim to break ties when printing topics) are needed.
    """

    def gamma(self, shape: float, scale: float, size) -> np.ndarray:
        return np.full(size, shape * scale)

    def rand(self, *size: int) -> np.ndarray:
        return np.zeros(size) if size else 0.0


class Span(TypedDict):
    """A stretch of the original text and its topic (``None`` if not topical)."""

    start: int
    end: int
    text: str
    topic: int | None
    weight: float


class TopicModel:
    """Bag-of-words LDA over abstracts, with per-word topics that keep their offsets.

    Parameters
    ----------
    n_topics : int
        Number of topics K.
    passes : int
        Passes over the corpus during training. The defaults (2 passes, chunks of 2,000
        documents, ``LdaModel``) are the fastest gensim configuration measured that keeps
        c_v coherence above 0.5 on the 60k arXiv corpus (``docs/performance.md`` § 3).
    iterations : int
        Maximum E-step iterations per document.
    chunksize : int
        Documents per training chunk.
    alpha, eta : str, float or array, optional
        Dirichlet priors, as in gensim (``"symmetric"``, ``"asymmetric"``, ``"auto"``...).
    workers : int or None
        ``None`` or ``0`` trains with ``LdaModel`` in-process; ``n >= 1`` uses
        ``LdaMulticore`` with ``n`` worker processes.
    no_below, no_above, keep_n : int, float, int
        ``Dictionary.filter_extremes``: drop words in fewer than ``no_below`` documents
        (the rarest), in more than ``no_above`` of the documents (the most common), and
        keep at most ``keep_n`` words.
    random_state : int
        Seed: two fits with the same seed and data give identical topics.
    preprocessor : Preprocessor, optional
        Text pipeline; ``Preprocessor()`` by default.
    n_jobs : int or None
        Processes for preprocessing (all cores when ``None``).
    progress : bool
        Show progress bars (preprocessing, then documents over passes).

    Attributes
    ----------
    preprocessor_ : Preprocessor
    dictionary_ : gensim.corpora.Dictionary
    lda_ : gensim.models.LdaModel
    labels_ : list of str
        Editable topic names (``"Topic k"`` until named).
    doc_topics_ : numpy.ndarray of shape (n_documents, n_topics), float32
        Topic mixture of every training document (rows sum to 1).
    training_words_ : list of list of str
        The training documents' words (for coherence); not saved with the model.
    """

    def __init__(
        self,
        n_topics: int = 20,
        *,
        passes: int = 2,
        iterations: int = 50,
        chunksize: int = 2000,
        alpha: Any = "symmetric",
        eta: Any = None,
        workers: int | None = None,
        no_below: int = 5,
        no_above: float = 0.4,
        keep_n: int = 30_000,
        random_state: int = 0,
        preprocessor: Preprocessor | None = None,
        n_jobs: int | None = None,
        progress: bool = True,
    ) -> None:
        self.n_topics = n_topics
        self.passes = passes
        self.iterations = iterations
        self.chunksize = chunksize
        self.alpha = alpha
        self.eta = eta
        self.workers = workers
        self.no_below = no_below
        self.no_above = no_above
        self.keep_n = keep_n
        self.random_state = random_state
        self.preprocessor = preprocessor
        self.n_jobs = n_jobs
        self.progress = progress

    # -- parameters -----------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain JSON-able values (for manifests)."""

        def plain(value: Any) -> Any:
            return value.tolist() if isinstance(value, np.ndarray) else value

        params = {
            name: plain(getattr(self, name))
            for name in (
                "n_topics", "passes", "iterations", "chunksize", "alpha", "eta", "workers",
                "no_below", "no_above", "keep_n", "random_state",
            )
        }
        pre = self.preprocessor_ if hasattr(self, "preprocessor_") else self.preprocessor
        params["preprocessor"] = (pre or Preprocessor()).get_params()
        return params

    def _validate(self) -> None:
        if not isinstance(self.n_topics, (int, np.integer)) or self.n_topics < 2:
            raise ValueError(f"n_topics must be an integer >= 2, not {self.n_topics!r}")
        for name in ("passes", "iterations", "chunksize", "no_below"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not 0 < self.no_above <= 1:
            raise ValueError(f"no_above must be in (0, 1], not {self.no_above!r}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be None or >= 0, not {self.workers!r}")

    # -- learning -------------------------------------------------------------------
    def fit(self, texts: Sequence[str], y: None = None) -> TopicModel:
        """Learn phrases, the dictionary and the topics from ``texts``.

        Parameters
        ----------
        texts : sequence of str
            The training abstracts (a :class:`~abstractor_widgets.corpus.Corpus` works:
            pass ``corpus.texts``).
        y : None
            Ignored (scikit-learn convention).

        Returns
        -------
        TopicModel
            ``self``, fitted.

        Raises
        ------
        ValueError
            On invalid parameters, or when too few words survive the filtering.
        TypeError
            If a text is not a ``str``.
        """
        from gensim.corpora import Dictionary

        self._validate()
        texts = list(texts)
        if len(texts) < 2:
            raise ValueError(f"need at least 2 documents to fit a topic model, got {len(texts)}")
        self.preprocessor_ = self.preprocessor if self.preprocessor is not None else Preprocessor()
        words = self.preprocessor_.fit(texts, n_jobs=self.n_jobs, progress=self.progress)
        dictionary = Dictionary(words)
        # filter_extremes counts no_below in documents; on a tiny corpus keep what we can
        no_below = min(self.no_below, max(1, len(texts) // 10))
        dictionary.filter_extremes(no_below=no_below, no_above=self.no_above, keep_n=self.keep_n)
        if len(dictionary) < self.n_topics:
            raise ValueError(
                f"only {len(dictionary)} distinct words survive filtering (no_below={no_below}, "
                f"no_above={self.no_above}): too few for {self.n_topics} topics; use more documents"
            )
        self.dictionary_ = dictionary
        bows = [dictionary.doc2bow(w) for w in words]
        self.lda_ = self._train(bows)
        self.labels_ = [f"Topic {k}" for k in range(self.n_topics)]
        self.doc_topics_ = self._infer_many(bows)
        self.training_words_ = words
        self.n_documents_ = len(texts)
        return self

    def _train(self, bows: list) -> LdaModel:
        from gensim.models import LdaModel, LdaMulticore

        common = dict(
            corpus=bows,
            id2word=self.dictionary_,
            num_topics=self.n_topics,
            passes=self.passes,
            iterations=self.iterations,
            chunksize=self.chunksize,
            eta=self.eta,
            random_state=self.random_state,
            eval_every=None,
            dtype=np.float32,
        )
        total = len(bows) * self.passes
        with _gensim_progress(total, "training LDA", enabled=self.progress):
            if self.workers:
                alpha = self.alpha if self.alpha != "auto" else "symmetric"
                return LdaMulticore(workers=self.workers, alpha=alpha, **common)
            return LdaModel(alpha=self.alpha, **common)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The model's words of each text (what :meth:`fit` and :meth:`update` count)."""
        self._check_fitted()
        return self.preprocessor_.transform(list(texts), n_jobs=self.n_jobs, progress=self.progress)

    def update(self, texts: Sequence[str], words: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """Online LDA update with new documents (no retraining from scratch).

        gensim's online variational Bayes blends the new documents' statistics into the
        topics (one pass). The dictionary and phrases are fixed: words the model does not
        know are ignored. Returns the new documents' topic mixtures and appends them to
        :attr:`doc_topics_`; earlier documents keep the mixtures inferred when they were
        added (re-infer them with :meth:`transform` if the topics drift far).

        ``words``, when given, are the texts' words from :meth:`tokenize` (a caller that
        needs them too tokenizes once).
        """
        self._check_fitted()
        texts = list(texts)
        if words is not None and len(words) != len(texts):
            raise ValueError(f"{len(words)} word lists for {len(texts)} texts")
        if not texts:
            return np.zeros((0, self.n_topics), dtype=np.float32)
        if words is None:
            words = self.tokenize(texts)
        bows = [self.dictionary_.doc2bow(w) for w in words]
        lda = self.lda_
        # a loaded model's arrays are read-only memory maps: update private copies
        lda.state.sstats = np.array(lda.state.sstats)
        lda.expElogbeta = np.array(lda.expElogbeta)
        if hasattr(lda, "eta"):
            lda.eta = np.array(lda.eta)
        lda.alpha = np.array(lda.alpha)
        from gensim.models import LdaModel

        with _gensim_progress(len(bows), "updating LDA", enabled=self.progress):
            # LdaModel's serial update (LdaMulticore.update would re-run all its passes)
            LdaModel.update(lda, bows, chunksize=self.chunksize, passes=1)
        new = self._infer_many(bows)
        self.doc_topics_ = np.vstack([np.asarray(self.doc_topics_, dtype=np.float32), new])
        self.n_documents_ = len(self.doc_topics_)
        return new

    def _check_fitted(self) -> None:
        if not hasattr(self, "lda_"):
            raise RuntimeError("this TopicModel is not fitted yet: call fit() or load a saved model")

    # -- inspection -----------------------------------------------------------------
    def topics(self, n_terms: int = 10) -> list[list[tuple[str, float]]]:
        """Top ``n_terms`` terms of each topic with their probabilities, topic order kept."""
        self._check_fitted()
        return [
            [(term, float(weight)) for term, weight in self.lda_.show_topic(k, topn=n_terms)]
            for k in range(self.n_topics)
        ]

    def set_label(self, topic: int, label: str) -> None:
        """Name topic ``topic``.

        Raises
        ------
        IndexError
            If ``topic`` is not a topic id.
        TypeError, ValueError
            If ``label`` is not a non-empty string (at most :data:`MAX_LABEL_CHARS` characters).
        """
        self._check_fitted()
        if isinstance(topic, bool) or not isinstance(topic, (int, np.integer)) or not 0 <= topic < self.n_topics:
            raise IndexError(f"topic must be an integer in [0, {self.n_topics}), not {topic!r}")
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        label = " ".join(label.split())
        if not label or len(label) > MAX_LABEL_CHARS:
            raise ValueError(f"a topic label must have 1 to {MAX_LABEL_CHARS} characters")
        self.labels_[int(topic)] = label

    def coherence(self, measure: str = "c_v", texts: list[list[str]] | None = None, topn: int = 10) -> float:
        """Topic coherence (gensim ``CoherenceModel``).

        Parameters
        ----------
        measure : {"c_v", "u_mass", "c_npmi", "c_uci"}
        texts : list of list of str, optional
            Reference documents' words; defaults to the training documents.
        topn : int
            Terms per topic.
        """
        from gensim.models import CoherenceModel

        self._check_fitted()
        texts = texts if texts is not None else getattr(self, "training_words_", None)
        if texts is None:
            raise ValueError("coherence needs texts: pass texts= (a loaded model keeps no training words)")
        kwargs: dict[str, Any] = dict(model=self.lda_, dictionary=self.dictionary_, coherence=measure, topn=topn)
        if measure == "u_mass":
            kwargs["corpus"] = [self.dictionary_.doc2bow(t) for t in texts]
        else:
            kwargs["texts"] = texts
            kwargs["processes"] = 1
        return float(CoherenceModel(**kwargs).get_coherence())

    # -- inference ------------------------------------------------------------------
    def _infer_many(self, bows: list, chunk: int = 2000) -> np.ndarray:
        """Topic mixtures of many bag-of-words documents, over ``n_jobs`` processes."""
        import os

        from tqdm.auto import tqdm

        out = np.empty((len(bows), self.n_topics), dtype=np.float32)
        self.lda_.random_state = DeterministicInit()
        starts = list(range(0, len(bows), chunk))
        n_jobs = (os.cpu_count() or 1) if self.n_jobs is None else max(1, int(self.n_jobs))
        bar = tqdm(total=len(bows), desc="inferring topics", disable=not self.progress, unit="doc")
        if n_jobs > 1 and len(bows) >= 4 * chunk and os.name == "posix":
            import multiprocessing

            global _INFER_STATE
            _INFER_STATE = (self.lda_, bows, chunk)  # inherited by the forked workers, never pickled
            try:
                with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
                    for start, block in pool.imap(_infer_chunk, starts):
                        out[start : start + len(block)] = block
                        bar.update(len(block))
            finally:
                _INFER_STATE = None
        else:
            for start in starts:
                gamma, _ = self.lda_.inference(bows[start : start + chunk])
                out[start : start + len(gamma)] = gamma / gamma.sum(axis=1, keepdims=True)
                bar.update(len(gamma))
        bar.close()
        return out

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Doc-topic matrix of shape ``(len(texts), n_topics)``; rows sum to 1."""
        self._check_fitted()
        bows = [self.dictionary_.doc2bow(self.preprocessor_.words(t)) for t in texts]
        return self._infer_many(bows) if bows else np.zeros((0, self.n_topics), dtype=np.float32)

    def document_topics(self, text: str) -> np.ndarray:
        """Topic mixture of one text (zeros if it has no word the model knows)."""
        return self.analyze(text)[0]

    def colorize(self, text: str) -> list[Span]:
        """Spans covering ``text`` exactly, each topical word with its topic.

        ``"".join(s["text"] for s in spans) == text``. Stretches that are not topical
        (space, punctuation, stopwords, words unknown to the model) have
        ``topic=None`` and are merged. A phrase is one span covering both words.
        """
        return self.analyze(text)[1]

    def analyze(self, text: str, tokens: list[Token] | None = None) -> tuple[np.ndarray, list[Span], list[Token]]:
        """One inference for a text: ``(doc_topics, spans, known_tokens)``.

        Per-word topics come from the same variational posterior (phi) that gensim's
        ``get_document_topics(per_word_topics=True)`` computes, but only for the words of
        this document instead of a dense K x V matrix.

        Parameters
        ----------
        text : str
        tokens : list of Token, optional
            ``preprocessor_.tokens(text)`` when the caller already has them (the lexical
            query uses the same tokens).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        self._check_fitted()
        if tokens is None:
            tokens = self.preprocessor_.tokens(text)
        token2id = self.dictionary_.token2id
        known = [t for t in tokens if t.text in token2id]
        doc = np.zeros(self.n_topics, dtype=np.float32)
        if not known:
            return doc, _spans(text, [], {}, {}), []
        counts: dict[int, int] = {}
        for t in known:
            wid = token2id[t.text]
            counts[wid] = counts.get(wid, 0) + 1
        ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        cts = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        lda = self.lda_
        if getattr(lda, "e_step", "gensim") == "compiled":  # the E-step that inferred the corpus's mixtures
            gamma, _ = estep(lda, np.array([0, len(ids)], dtype=np.int64), ids, cts)
        else:
            gamma, _ = lda.inference([list(zip(ids.tolist(), cts.tolist()))])
        gammad = gamma[0]
        doc = (gammad / gammad.sum()).astype(np.float32)
        exp_elog_theta = np.exp(_dirichlet_expectation(gammad))
        # phi[k, w] ∝ exp(E[log theta_k]) * exp(E[log beta_kw]); normalise over topics
        phi = exp_elog_theta[:, None] * lda.expElogbeta[:, ids]
        best = phi.argmax(axis=0)
        top = phi[best, np.arange(len(ids))]
        norm = phi.sum(axis=0)
        share = top / norm
        word_topic = dict(zip(ids.tolist(), best.tolist()))
        word_weight = dict(zip(ids.tolist(), np.round(share.astype(np.float64), 4).tolist()))
        # as gensim's per-word topics: phi scaled by count / (norm + eps) must reach
        # minimum_phi_value (0.01), so a word negligible under every topic gets no topic
        topical = top * cts / (norm + np.finfo(lda.dtype).eps) >= 0.01
        if not topical.all():
            dropped = set(ids[~topical].tolist())
            known = [t for t in known if token2id[t.text] not in dropped]
        return doc, _spans(text, known, word_topic, word_weight, token2id), known

    # -- persistence: JSON and .npy only (the artifact store coordinates) ----------------
    def save_files(self, directory: str | os.PathLike[str]) -> dict[str, Any]:
        """Write the fitted model into ``directory`` as JSON and ``.npy`` files: no pickle.

        Files: ``preprocessor.json`` (settings and phrases), ``dictionary.json`` (the
        words in id order and corpus counts) with ``dictionary.dfs.npy`` /
        ``dictionary.cfs.npy``, ``lda.json`` (LDA settings) with ``lda.expElogbeta.npy``,
        ``lda.sstats.npy``, ``lda.alpha.npy``, ``lda.eta.npy``, and ``doc_topics.npy``.

        Returns
        -------
        dict
            The model's manifest entry: ``{"files": [names...], "n_topics", "n_terms"}``.
            :meth:`load_files` reads exactly these files back.
        """
        self._check_fitted()
        directory = Path(directory)
        dictionary, lda = self.dictionary_, self.lda_
        n_terms = len(dictionary)
        if sorted(dictionary.token2id.values()) != list(range(n_terms)):
            raise ValueError("the dictionary's ids are not 0..n-1 (call compactify() first)")
        words = [""] * n_terms
        for word, wid in dictionary.token2id.items():
            words[wid] = word
        _write_json(directory / "preprocessor.json", self.preprocessor_.to_dict())
        _write_json(directory / "dictionary.json", {
            "words": words, "num_docs": int(dictionary.num_docs), "num_pos": int(dictionary.num_pos),
            "num_nnz": int(dictionary.num_nnz)})
        np.save(directory / "dictionary.dfs.npy", np.array([dictionary.dfs.get(i, 0) for i in range(n_terms)], dtype=np.int64))
        np.save(directory / "dictionary.cfs.npy", np.array([dictionary.cfs.get(i, 0) for i in range(n_terms)], dtype=np.int64))
        _write_json(directory / "lda.json", {
            "num_topics": int(lda.num_topics), "num_terms": int(lda.num_terms), "dtype": np.dtype(lda.dtype).name,
            "chunksize": int(lda.chunksize), "passes": int(lda.passes), "update_every": int(lda.update_every),
            "decay": float(lda.decay), "offset": float(lda.offset), "iterations": int(lda.iterations),
            "gamma_threshold": float(lda.gamma_threshold), "minimum_probability": float(lda.minimum_probability),
            "minimum_phi_value": float(lda.minimum_phi_value), "num_updates": int(lda.num_updates),
            "optimize_alpha": bool(lda.optimize_alpha), "optimize_eta": bool(lda.optimize_eta),
            "state_numdocs": int(lda.state.numdocs), "e_step": getattr(lda, "e_step", "gensim")})
        arrays = {"expElogbeta": lda.expElogbeta, "sstats": lda.state.sstats, "alpha": lda.alpha, "eta": lda.eta}
        for name, array in arrays.items():
            np.save(directory / f"lda.{name}.npy", np.ascontiguousarray(array, dtype=lda.dtype), allow_pickle=False)
        np.save(directory / "doc_topics.npy", np.ascontiguousarray(self.doc_topics_, dtype=np.float32), allow_pickle=False)
        return {"files": list(MODEL_FILES), "n_topics": int(self.n_topics), "n_terms": n_terms}

    @classmethod
    def load_files(cls, files: ListedFiles, params: dict[str, Any], labels: list[str], mmap: bool = True) -> TopicModel:
        """Rebuild a model written by :meth:`save_files` (gensim objects made from the arrays).

        Parameters
        ----------
        files : ListedFiles
            The artifact's files (only the listed ones can be opened).
        params : dict
            Constructor parameters (the manifest's ``params``).
        labels : list of str
        mmap : bool
            Memory-map the large arrays (read-only, shared between processes).

        Raises
        ------
        ValueError
            If a file holds something else than :meth:`save_files` writes, or the arrays'
            shapes disagree.
        """
        from gensim.corpora import Dictionary
        from gensim.models import LdaModel
        from gensim.models.ldamodel import LdaState

        preprocessor = Preprocessor.from_dict(files.json("preprocessor.json"))
        vocab = files.json("dictionary.json")
        words = vocab.get("words") if isinstance(vocab, dict) else None
        if not isinstance(words, list) or not set(map(type, words)) <= {str}:
            raise ValueError("dictionary.json: 'words' must be a list of strings")
        n_terms = len(words)
        dictionary = Dictionary()
        dictionary.token2id = dict(zip(words, range(n_terms)))
        if len(dictionary.token2id) != n_terms:
            raise ValueError("dictionary.json: the words are not distinct")
        dfs, cfs = files.array("dictionary.dfs.npy", mmap=False), files.array("dictionary.cfs.npy", mmap=False)
        if dfs.shape != (n_terms,) or cfs.shape != (n_terms,) or dfs.dtype.kind != "i" or cfs.dtype.kind != "i":
            raise ValueError("dictionary counts do not match its words")
        dictionary.dfs = dict(zip(range(n_terms), dfs.tolist()))
        dictionary.cfs = dict(zip(range(n_terms), cfs.tolist()))
        for key in ("num_docs", "num_pos", "num_nnz"):
            setattr(dictionary, key, int(vocab.get(key, 0)))

        meta = files.json("lda.json")
        if not isinstance(meta, dict) or meta.get("dtype") not in ("float32", "float64"):
            raise ValueError("lda.json: not an LDA settings object")
        if meta.get("e_step", "gensim") not in ("gensim", "compiled"):
            raise ValueError(f"lda.json: unknown e_step {str(meta.get('e_step'))[:40]!r} (expected 'gensim' or 'compiled')")
        dtype = np.dtype(meta["dtype"]).type
        k = int(meta["num_topics"])
        arrays = {name: files.array(f"lda.{name}.npy", mmap=mmap and name in ("expElogbeta", "sstats"))
                  for name in ("expElogbeta", "sstats", "alpha", "eta")}
        if (int(meta["num_terms"]) != n_terms or arrays["expElogbeta"].shape != (k, n_terms)
                or arrays["sstats"].shape != (k, n_terms) or arrays["alpha"].shape != (k,)
                or arrays["eta"].shape not in ((n_terms,), (k, n_terms))
                or any(a.dtype != np.dtype(dtype) for a in arrays.values())):
            raise ValueError("LDA arrays do not match its settings or the dictionary")
        # gensim's own constructor, without a corpus (no training) and over a one-word
        # vocabulary (its random initialisation of a K x V state would cost ~0.1 s); then
        # the real vocabulary and the saved state
        lda = LdaModel(
            corpus=None, num_topics=k, id2word={0: ""}, alpha=np.array(arrays["alpha"]),
            chunksize=int(meta["chunksize"]), passes=int(meta["passes"]), update_every=int(meta["update_every"]),
            decay=float(meta["decay"]), offset=float(meta["offset"]), eval_every=None,
            iterations=int(meta["iterations"]), gamma_threshold=float(meta["gamma_threshold"]),
            minimum_probability=float(meta["minimum_probability"]), minimum_phi_value=float(meta["minimum_phi_value"]),
            random_state=0, dtype=dtype,
        )
        lda.id2word = dictionary
        lda.num_terms = n_terms
        lda.eta = np.array(arrays["eta"])
        lda.optimize_alpha = bool(meta["optimize_alpha"])
        lda.optimize_eta = bool(meta["optimize_eta"])
        lda.num_updates = int(meta["num_updates"])
        lda.state = LdaState(lda.eta, (k, n_terms), dtype=dtype)
        lda.state.sstats = arrays["sstats"]
        lda.state.numdocs = int(meta["state_numdocs"])
        lda.expElogbeta = arrays["expElogbeta"]
        if meta.get("e_step") == "compiled":  # its documents were inferred by estep: so are its queries
            lda.__class__ = compiled_lda_class()
        doc_topics = files.array("doc_topics.npy", mmap=mmap)
        if doc_topics.ndim != 2 or doc_topics.shape[1] != k:
            raise ValueError(f"doc_topics.npy has shape {doc_topics.shape}, expected (n, {k})")
        clean = {key: value for key, value in params.items() if key in _PARAM_NAMES}
        return cls(**clean)._restore(preprocessor, dictionary, lda, labels, doc_topics)

    def _restore(self, preprocessor: Preprocessor, dictionary: Dictionary, lda: LdaModel, labels: list[str], doc_topics: np.ndarray) -> TopicModel:
        self.preprocessor_ = preprocessor
        self.dictionary_ = dictionary
        self.lda_ = lda
        self.lda_.random_state = DeterministicInit()
        self.labels_ = list(labels)
        self.doc_topics_ = doc_topics
        self.n_documents_ = len(doc_topics)
        return self


#: The files :meth:`TopicModel.save_files` writes.
MODEL_FILES = (
    "preprocessor.json", "dictionary.json", "dictionary.dfs.npy", "dictionary.cfs.npy", "lda.json",
    "lda.expElogbeta.npy", "lda.sstats.npy", "lda.alpha.npy", "lda.eta.npy", "doc_topics.npy",
)
_PARAM_NAMES = frozenset((
    "n_topics", "passes", "iterations", "chunksize", "alpha", "eta", "workers", "no_below", "no_above", "keep_n", "random_state",
))


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


_INFER_STATE = None


def _infer_chunk(start: int) -> tuple[int, np.ndarray]:
    lda, bows, chunk = _INFER_STATE  # type: ignore[misc]
    gamma, _ = lda.inference(bows[start : start + chunk])
    return start, (gamma / gamma.sum(axis=1, keepdims=True)).astype(np.float32)


# -- a compiled E-step, for millions of documents ----------------------------------------------
def estep(lda: Any, indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray, gamma: np.ndarray | None = None,
          collect_sstats: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """gensim's LDA E-step (``LdaModel.inference``) over CSR bags of words, compiled with numba.

    The same per-document fixed point as gensim (Hoffman's online LDA with Lee & Seung's
    update: a document stops when the mean absolute change of its gamma is under
    ``gamma_threshold``, or after ``iterations``), the same digamma approximation as
    gensim's compiled one (AS 103), float32 like the model: mixtures agree with gensim's to ~1e-6.
    It runs about 9x faster than gensim's Python loop over documents, which is what lets
    :mod:`abstractor_widgets.build` infer (and train on) millions of papers.

    Parameters
    ----------
    lda : gensim.models.LdaModel
    indptr, indices, counts : numpy.ndarray
        The documents' bags of words (CSR: term ids and counts of document ``d`` at
        ``indptr[d]:indptr[d + 1]``).
    gamma : numpy.ndarray, optional
        (n_documents, K) starting values (training draws them from the model's random
        state, as gensim does); default 1.0, as :class:`DeterministicInit`.
    collect_sstats : bool
        Also return the M-step's sufficient statistics (K, V), as gensim's.

    Returns
    -------
    gamma : numpy.ndarray (n_documents, K) float32
        Unnormalised variational parameters (divide by the row sums for mixtures).
    sstats : numpy.ndarray (K, V) float32 or None
    """
    from ._compiled import estep_kernel as kernel  # numba: imported, and compiled or loaded from its cache, on first use

    k = int(lda.num_topics)
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    n = len(indptr) - 1
    gamma = np.ones((n, k), dtype=np.float32) if gamma is None else np.array(gamma, dtype=np.float32, order="C")
    beta_t = _beta_t(lda)
    sstats_t = np.zeros(beta_t.shape if collect_sstats else (0, k), dtype=np.float32)
    kernel(beta_t, np.asarray(lda.alpha, dtype=np.float32), indptr - indptr[0],
           np.ascontiguousarray(indices[indptr[0]:indptr[-1]], dtype=np.int64),
           np.ascontiguousarray(counts[indptr[0]:indptr[-1]], dtype=np.float32),
           gamma, int(lda.iterations), float(lda.gamma_threshold), collect_sstats, sstats_t)
    if not collect_sstats:
        return gamma, None
    return gamma, np.ascontiguousarray(sstats_t.T) * np.asarray(lda.expElogbeta, dtype=np.float32)


def _beta_t(lda: Any) -> np.ndarray:
    """``expElogbeta`` transposed (V, K), contiguous: a word's K values side by side (cached per array)."""
    beta = lda.expElogbeta
    cached = getattr(lda, "_abstractor_beta_t", None)
    if cached is None or cached[0] is not beta:
        cached = (beta, np.ascontiguousarray(np.asarray(beta, dtype=np.float32).T))
        lda._abstractor_beta_t = cached
    return cached[1]


class ArrayBow(tuple):
    """A bag of words as two arrays ``(ids, counts)``: what :func:`estep` reads without a tuple per word."""


def bows_to_csr(bows: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bags of words as CSR arrays ``(indptr, indices, counts)``: gensim's lists of ``(id, count)``
    (through ``gensim.matutils.corpus2csc``), or :class:`ArrayBow` pairs of arrays."""
    if bows and all(isinstance(b, ArrayBow) for b in bows):
        indptr = np.zeros(len(bows) + 1, dtype=np.int64)
        np.cumsum([len(b[0]) for b in bows], out=indptr[1:])
        return indptr, np.concatenate([b[0] for b in bows]).astype(np.int64), np.concatenate([b[1] for b in bows]).astype(np.float32)
    from gensim.matutils import corpus2csc

    columns = corpus2csc(bows, num_terms=1 + max((i for b in bows for i, _ in b), default=0), num_docs=len(bows),
                         dtype=np.float32)  # one column per document: its indptr/indices are the CSR rows
    return columns.indptr.astype(np.int64), columns.indices.astype(np.int64), columns.data


def compiled_lda_class() -> type:
    """``LdaModel`` whose E-step (training and inference) is :func:`estep`; same state, same files."""
    global _COMPILED_LDA
    if _COMPILED_LDA is None:
        from gensim.models import LdaModel

        class CompiledLdaModel(LdaModel):
            """gensim's LdaModel with the compiled E-step (:func:`estep`); saved with
            ``"e_step": "compiled"``, so that a loaded model infers queries as it inferred its corpus."""

            e_step = "compiled"

            def inference(self, chunk, collect_sstats=False):  # noqa: D102 (gensim's signature)
                indptr, indices, counts = bows_to_csr(list(chunk))
                # the same draws as gensim's, from the same random state
                start = self.random_state.gamma(100.0, 1.0 / 100.0, (len(indptr) - 1, self.num_topics)).astype(self.dtype, copy=False)
                return estep(self, indptr, indices, counts, start, collect_sstats)

        _COMPILED_LDA = CompiledLdaModel
    return _COMPILED_LDA


_COMPILED_LDA: Any = None


def _dirichlet_expectation(alpha: np.ndarray) -> np.ndarray:
    from gensim.matutils import dirichlet_expectation

    return dirichlet_expectation(alpha)


def _spans(
    text: str,
    tokens: list[Token],
    word_topic: dict[int, int],
    word_weight: dict[int, float],
    token2id: dict[str, int] | None = None,
) -> list[Span]:
    spans: list[Span] = []
    position = 0
    for token in tokens:
        wid = token2id[token.text]  # type: ignore[index]
        if token.start > position:
            _plain(spans, text, position, token.start)
        spans.append(
            {"start": token.start, "end": token.end, "text": text[token.start : token.end],
             "topic": word_topic[wid], "weight": word_weight[wid]}
        )
        position = token.end
    if position < len(text):
        _plain(spans, text, position, len(text))
    return spans


def _plain(spans: list[Span], text: str, start: int, end: int) -> None:
    if spans and spans[-1]["topic"] is None:
        spans[-1]["end"] = end
        spans[-1]["text"] = text[spans[-1]["start"] : end]
    else:
        spans.append({"start": start, "end": end, "text": text[start:end], "topic": None, "weight": 0.0})


_PROGRESS = re.compile(r"PROGRESS: pass (\d+),.*#(\d+)/(\d+)")


class _ProgressHandler(logging.Handler):
    """Turns gensim's "PROGRESS: pass p, ... #d/N" log lines into a tqdm bar."""

    def __init__(self, bar) -> None:
        super().__init__(level=logging.INFO)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        match = _PROGRESS.search(record.getMessage())
        if match:
            pass_, done, total = (int(g) for g in match.groups())
            self.bar.n = min(self.bar.total, pass_ * total + done)
            self.bar.set_postfix_str(f"pass {pass_ + 1}", refresh=False)  # one refresh per update
            self.bar.refresh()


@contextmanager
def _gensim_progress(total: int, desc: str, enabled: bool = True) -> Iterator[None]:
    from tqdm.auto import tqdm

    if not enabled:
        yield
        return
    bar = tqdm(total=total, desc=desc, unit="doc")
    handler = _ProgressHandler(bar)
    loggers = [logging.getLogger(n) for n in ("gensim.models.ldamodel", "gensim.models.ldamulticore")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False  # gensim's INFO chatter stays out of the user's logs
    try:
        yield
        bar.n = total
        bar.refresh()
    finally:
        for lg, (level, propagate) in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate
        bar.close()
