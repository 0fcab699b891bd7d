"""Staged, resumable builds: a model of millions of papers (all of arXiv) on one machine.

:meth:`Abstractor.train <abstractor_widgets.Abstractor.train>` holds the corpus, every
word list and every bag of words in memory: right for the 60,000-paper default, but about
40 GB at arXiv's 2.7 M papers. :class:`StagedBuild` builds the same artifact from files
instead. Each stage reads the previous stages' files (memory-mapped), writes its own into
a work directory beside the artifact, and is recorded as finished in ``state.json`` only
once its files are complete; a rerun of the same command skips finished stages, so an
interrupted build (Ctrl-C, a killed process, a reboot) restarts from the last finished
stage, never from zero. The artifact itself is written last and atomically
(:func:`~abstractor_widgets.store.save_prebuilt`), so an interrupted build never leaves a
broken model, and the work directory is removed once the artifact is in place.

Stages:

==============  ==============================================================================
``records``     the corpus streamed (one line at a time) into the artifact's document table:
                UTF-8 blobs and offsets; duplicate ids and empty abstracts dropped, counted
``phrases``     the tokenizer's settings, and its phrases learned on a sample (``phrase_sample``
                papers) when the preprocessor learns phrases (not by default)
``tokens``      every abstract and title tokenized over ``jobs`` processes, stored as int32
                word ids (a fraction of the text's size)
``dictionary``  the LDA vocabulary (gensim's ``filter_extremes`` rule, exactly) and every
                abstract's bag of words as one CSR matrix
``lda``         online LDA (gensim ``LdaModel`` with the compiled E-step
                :func:`~abstractor_widgets.model.estep`) over a random sample of
                ``lda_sample`` papers, one checkpoint per pass (the random state included)
``inference``   every paper's topic mixture (the compiled E-step) over ``jobs`` processes,
                in resumable shards
``lexical``     the BM25 matrix, its impact-ordered posting lists, and LSA: a randomized
                SVD of a sample (``lsa_sample`` rows), every paper projected on it
``layout``      the corpus map: UMAP on ``map_sample`` papers, every other paper placed among
                its nearest sampled papers (an HNSW graph of the sample)
``artifact``    the model and topic index written, the large files hard-linked from the work
                directory, every file checksummed, the directory renamed into place
==============  ==============================================================================

The results equal an uninterrupted build's: every stage is a pure function of its inputs
and the settings (seeded samples, LDA's random state saved in each checkpoint, one BLAS
thread where the order of sums would otherwise vary). A rerun with other settings or
another source file is refused with a message (delete the work directory, or pass
``restart=True``), never silently mixed.

Example
-------
>>> from abstractor_widgets.build import StagedBuild
>>> StagedBuild("arxiv-metadata-oai-snapshot.json", "artifacts/arxiv").run()   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import FIELDS, CorpusError, Document
from .fileio import atomic_write_path, atomic_write_text
from .index import sorted_unique

logger = logging.getLogger(__name__)

__all__ = ["BuildSettings", "StagedBuild", "BuildError", "STAGES"]

#: The stages, in order (see the module docstring).
STAGES = ("records", "phrases", "tokens", "dictionary", "lda", "inference", "lexical", "layout", "artifact")
STATE_FILE = "state.json"
#: Documents per worker task (tokenizing, inferring) and per block of vectorised work.
TASK_ROWS = 4000
BLOCK_ROWS = 200_000
SHARD_ROWS = 100_000
_KEY_SHIFT = np.int64(32)


class BuildError(ValueError):
    """A build that cannot start or continue (other settings in the work directory, bad input)."""


@dataclass(frozen=True)
class BuildSettings:
    """What a staged build makes (all of it recorded in the work directory's state).

    Attributes
    ----------
    n_topics, passes, iterations, chunksize, no_below, no_above, keep_n, seed
        As :class:`~abstractor_widgets.model.TopicModel` (``seed`` is its ``random_state``).
    lda_sample : int
        Papers LDA is trained on (a seeded random sample, in random order); every paper's
        mixture is then inferred. Online LDA's topics settle long before a pass over
        millions of papers ends (1,000,000 papers are 500 updates of 2,000).
    phrase_sample, lsa_sample, map_sample : int
        Papers the phrases, the LSA projection and the map layout are learned from.
    categories : tuple of str or None
        Keep only papers listing one of these (``"cs.*"`` for an archive); ``None``: all.
    limit : int or None
        Keep at most this many papers.
    metric : {"hellinger", "cosine"}
    lexical : bool
        Build the BM25 / LSA index (the hybrid ranking needs it).
    layout : bool
        Build the corpus map.
    jobs : int
        Worker processes for tokenizing and inference.
    """

    n_topics: int = 20
    passes: int = 1
    iterations: int = 50
    chunksize: int = 2000
    no_below: int = 5
    no_above: float = 0.4
    keep_n: int = 30_000
    seed: int = 0
    lda_sample: int = 1_000_000
    phrase_sample: int = 200_000
    lsa_sample: int = 200_000
    map_sample: int = 50_000
    categories: tuple[str, ...] | None = None
    limit: int | None = None
    metric: str = "hellinger"
    lexical: bool = True
    layout: bool = True
    jobs: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))

    def identity(self) -> dict[str, Any]:
        """The settings that decide the result (``jobs`` does not)."""
        values = asdict(self)
        values.pop("jobs")
        values["categories"] = list(self.categories) if self.categories is not None else None
        return values


def default_work_dir(out: str | os.PathLike[str]) -> Path:
    """``artifacts/.NAME.build`` for ``artifacts/NAME``."""
    out = Path(out)
    return out.parent / f".{out.name}.build"


class StagedBuild:
    """A resumable build of an artifact from a corpus file (see the module docstring).

    Parameters
    ----------
    source : path-like
        A corpus file :func:`~abstractor_widgets.corpus.load_corpus` reads; JSON lines
        (the arXiv snapshot) are streamed, never held in memory.
    out : path-like
        The artifact directory to write.
    settings : BuildSettings, optional
    work_dir : path-like, optional
        Where stage files live (default ``.NAME.build`` beside ``out``; same file system,
        so the artifact's large files are hard links, not copies).
    restart : bool
        Discard a work directory left by an earlier build (e.g. with other settings).
    progress : bool
        Progress bars (tqdm) for every stage.
    stop_after : str, optional
        Stop once this stage is finished (tests; a staged rerun continues from there).
    """

    def __init__(self, source: str | os.PathLike[str], out: str | os.PathLike[str], settings: BuildSettings | None = None,
                 work_dir: str | os.PathLike[str] | None = None, restart: bool = False, progress: bool = True,
                 stop_after: str | None = None) -> None:
        self.source = Path(source)
        self.out = Path(out)
        self.settings = settings or BuildSettings()
        self.work = Path(work_dir) if work_dir is not None else default_work_dir(self.out)
        self.progress = progress
        if stop_after is not None and stop_after not in STAGES:
            raise ValueError(f"stop_after must be one of {STAGES}, not {stop_after!r}")
        self.stop_after = stop_after
        if not self.source.is_file():
            raise CorpusError(f"{self.source}: no such file")
        if restart and self.work.exists():
            shutil.rmtree(self.work)
        self.timings: dict[str, float] = {}

    # -- state ----------------------------------------------------------------------
    def _source_identity(self) -> dict[str, Any]:
        stat = self.source.stat()
        return {"path": str(self.source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def _open_state(self) -> dict[str, Any]:
        wanted = {"settings": self.settings.identity(), "source": self._source_identity()}
        path = self.work / STATE_FILE
        if path.is_file():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BuildError(f"{path}: unreadable build state ({exc}); delete {self.work} or pass restart") from exc
            for key in ("settings", "source"):
                if state.get(key) != wanted[key]:
                    raise BuildError(
                        f"{self.work} holds a build with other {key} ({self._diff(state.get(key), wanted[key])}); "
                        f"delete it or rerun with --restart to start over")
            return state
        self.work.mkdir(parents=True, exist_ok=True)
        state = {**wanted, "done": {}}
        atomic_write_text(path, json.dumps(state, indent=2))
        return state

    @staticmethod
    def _diff(old: Any, new: Any) -> str:
        if isinstance(old, dict) and isinstance(new, dict):
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])
        return f"{old!r} -> {new!r}"

    def _finish(self, state: dict[str, Any], stage: str, info: dict[str, Any]) -> None:
        state["done"][stage] = info
        atomic_write_text(self.work / STATE_FILE, json.dumps(state, indent=2))

    def finished_stages(self) -> list[str]:
        """The stages a rerun would skip."""
        path = self.work / STATE_FILE
        if not path.is_file():
            return []
        return [s for s in STAGES if s in json.loads(path.read_text(encoding="utf-8")).get("done", {})]

    # -- running --------------------------------------------------------------------
    def run(self) -> Path:
        """Run the unfinished stages; returns the artifact directory.

        Raises
        ------
        BuildError
            If the work directory holds another build (settings or source differ).
        CorpusError
            If the corpus cannot be read or has no documents.
        """
        from threadpoolctl import threadpool_limits

        state = self._open_state()
        steps: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "records": self._records, "phrases": self._phrases, "tokens": self._tokens, "dictionary": self._dictionary,
            "lda": self._lda, "inference": self._inference, "lexical": self._lexical, "layout": self._layout,
            "artifact": self._artifact,
        }
        for stage in STAGES:
            if stage in state["done"]:
                logger.info("stage %s: already finished, skipped", stage)
            else:
                started = time.perf_counter()
                self._say(f"stage {STAGES.index(stage) + 1}/{len(STAGES)}: {stage}")
                # one BLAS thread: sums in a fixed order (reproducible results), no oversubscription
                with threadpool_limits(limits=1, user_api="blas"):
                    info = steps[stage](state)
                info["seconds"] = round(time.perf_counter() - started, 1)
                self.timings[stage] = info["seconds"]
                self._finish(state, stage, info)
                self._say(f"stage {stage} finished in {info['seconds']:.1f} s")
            if stage == self.stop_after:
                return self.out
        shutil.rmtree(self.work, ignore_errors=True)
        return self.out

    def _say(self, message: str) -> None:
        logger.info(message)
        if self.progress:
            import sys

            print(message, file=sys.stderr, flush=True)

    def _bar(self, total: int, desc: str, unit: str = "doc"):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not self.progress)

    def _path(self, name: str) -> Path:
        return self.work / name

    def _n(self, state: dict[str, Any]) -> int:
        return int(state["done"]["records"]["n_documents"])

    # -- stage 1: records -------------------------------------------------------------
    def _documents(self) -> Iterator[Document]:
        from .corpus import iter_arxiv_snapshot, load_corpus

        suffixes = [s.lower() for s in self.source.suffixes]
        categories = self.settings.categories
        if any(s in (".json", ".jsonl", ".ndjson") for s in suffixes):
            docs: Iterator[Document] = iter_arxiv_snapshot(self.source, categories=categories, progress=self.progress,
                                                          errors="skip")
        else:
            docs = iter(load_corpus(self.source, categories=categories))
        limit = self.settings.limit
        for i, doc in enumerate(docs):
            if limit is not None and i >= limit:
                return
            yield doc

    def _records(self, state: dict[str, Any]) -> dict[str, Any]:
        handles = {f: open(self._path(f".docs.{f}.bin.part"), "wb") for f in FIELDS}
        offsets: dict[str, list[int]] = {f: [0] for f in FIELDS}
        seen: set[str] = set()
        ids: list[str] = []
        dropped = {"empty": 0, "duplicate_ids": 0}
        try:
            for doc in self._documents():
                if not doc.id or not doc.text.strip():
                    dropped["empty"] += 1
                    continue
                if doc.id in seen:
                    dropped["duplicate_ids"] += 1
                    continue
                seen.add(doc.id)
                ids.append(doc.id)
                for f in FIELDS:
                    data = getattr(doc, f).encode("utf-8", "surrogatepass")
                    handles[f].write(data)
                    offsets[f].append(offsets[f][-1] + len(data))
        finally:
            for handle in handles.values():
                handle.close()
        n = len(offsets["id"]) - 1
        if n < 2:
            raise CorpusError(f"{self.source}: {n} usable document(s); a model needs at least 2")
        del seen
        # rows in id order (the document table's binary-search permutation)
        order = np.array(sorted(range(n), key=ids.__getitem__), dtype=np.int64)
        del ids
        for f in FIELDS:
            np.save(self._path(f"docs.{f}.idx.npy"), np.asarray(offsets[f], dtype=np.int64))
            os.replace(self._path(f".docs.{f}.bin.part"), self._path(f"docs.{f}.bin"))
        np.save(self._path("docs.id_order.npy"), order)
        if any(dropped.values()):
            logger.warning("%s: dropped %s", self.source, dropped)
        return {"n_documents": n, "dropped": dropped}

    def _documents_table(self):
        """The records stage's files, opened as the artifact's document table (memory-mapped)."""
        from .fileio import ListedFiles
        from .store import DocumentTable

        return DocumentTable.open(ListedFiles(self.work, DocumentTable.file_names()))

    # -- stage 2: phrases ---------------------------------------------------------------
    def _phrases(self, state: dict[str, Any]) -> dict[str, Any]:
        from .text import Preprocessor

        n = self._n(state)
        preprocessor = Preprocessor()
        if not preprocessor.phrases:  # the default: no phrases to learn
            atomic_write_text(self._path("preprocessor.json"), json.dumps(preprocessor.to_dict()))
            return {"sample": 0, "phrases": 0}
        rows = _sample(n, self.settings.phrase_sample, self.settings.seed, sort=True)
        table = self._documents_table()
        preprocessor.fit([table.field("text", int(r)) for r in rows], n_jobs=self.settings.jobs, progress=self.progress)
        atomic_write_text(self._path("preprocessor.json"), json.dumps(preprocessor.to_dict()))
        return {"sample": len(rows), "phrases": len(preprocessor.phrases_.phrasegrams) if preprocessor.phrases_ else 0}

    def _preprocessor(self):
        from .text import Preprocessor

        return Preprocessor.from_dict(json.loads(self._path("preprocessor.json").read_text(encoding="utf-8")))

    # -- stage 3: tokens ----------------------------------------------------------------
    def _tokens(self, state: dict[str, Any]) -> dict[str, Any]:
        n = self._n(state)
        global _TOKEN_STATE
        _TOKEN_STATE = (self._preprocessor(), self._documents_table())
        vocabulary: dict[str, int] = {}
        outputs = {kind: open(self._path(f".tokens.{kind}.bin.part"), "wb") for kind in ("text", "title")}
        lengths = {kind: np.zeros(n, dtype=np.int32) for kind in ("text", "title")}
        tasks = [(start, min(start + TASK_ROWS, n)) for start in range(0, n, TASK_ROWS)]
        bar = self._bar(n, "tokenizing")
        try:
            for start, local_words, parts in _imap(_tokenize_task, tasks, self.settings.jobs):
                mapping = np.fromiter((vocabulary.setdefault(w, len(vocabulary)) for w in local_words), dtype=np.int32,
                                      count=len(local_words))
                for kind, (ids, counts) in parts.items():
                    if len(ids):
                        mapping[ids].tofile(outputs[kind])
                    lengths[kind][start:start + len(counts)] = counts
                bar.update(len(parts["text"][1]))
        finally:
            _TOKEN_STATE = None
            bar.close()
            for handle in outputs.values():
                handle.close()
        for kind in ("text", "title"):
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths[kind], out=offsets[1:])
            np.save(self._path(f"tokens.{kind}.idx.npy"), offsets)
            os.replace(self._path(f".tokens.{kind}.bin.part"), self._path(f"tokens.{kind}.bin"))
        words = [""] * len(vocabulary)
        for word, wid in vocabulary.items():
            words[wid] = word
        atomic_write_text(self._path("tokens.words.json"), json.dumps(words, ensure_ascii=False))
        return {"words": len(words), "tokens": int(lengths["text"].sum()), "title_tokens": int(lengths["title"].sum())}

    def _token_ids(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.load(self._path(f"tokens.{kind}.idx.npy"), mmap_mode="r")
        ids = np.memmap(self._path(f"tokens.{kind}.bin"), dtype=np.int32, mode="r") if offsets[-1] else np.zeros(0, np.int32)
        return ids, offsets

    def _words(self) -> list[str]:
        return json.loads(self._path("tokens.words.json").read_text(encoding="utf-8"))

    # -- stage 4: dictionary and bags of words -------------------------------------------
    def _dictionary(self, state: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        n = self._n(state)
        words = self._words()
        ids, offsets = self._token_ids("text")
        dfs = np.zeros(len(words), dtype=np.int64)
        cfs = np.zeros(len(words), dtype=np.int64)
        num_nnz = 0
        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            block, docs = _block(ids, offsets, start, stop)
            cfs += np.bincount(block, minlength=len(words))
            pairs = sorted_unique((docs << _KEY_SHIFT) | block)
            num_nnz += len(pairs)
            dfs += np.bincount((pairs & 0xFFFFFFFF).astype(np.int64), minlength=len(words))
        # gensim's Dictionary.filter_extremes + compactify, exactly (ids = order of first appearance)
        no_below = min(s.no_below, max(1, n // 10))
        no_above_abs = int(s.no_above * n)
        good = np.flatnonzero((dfs >= no_below) & (dfs <= no_above_abs))
        good = good[np.argsort(-dfs[good], kind="stable")][: s.keep_n]
        kept = np.sort(good)
        if len(kept) < s.n_topics:
            raise CorpusError(f"only {len(kept)} distinct words survive filtering: too few for {s.n_topics} topics")
        remap = np.full(len(words), -1, dtype=np.int32)
        remap[kept] = np.arange(len(kept), dtype=np.int32)
        atomic_write_text(self._path("dictionary.json"), json.dumps({
            "words": [words[i] for i in kept], "dfs": dfs[kept].tolist(), "cfs": cfs[kept].tolist(), "num_docs": n,
            "num_pos": int(offsets[-1]), "num_nnz": int(num_nnz)}, ensure_ascii=False))
        # bags of words: CSR (documents x dictionary ids), sorted ids per row, as gensim's doc2bow
        indptr = np.zeros(n + 1, dtype=np.int64)
        with open(self._path(".bow.indices.bin.part"), "wb") as out_ids, open(self._path(".bow.counts.bin.part"), "wb") as out_counts:
            for start in range(0, n, BLOCK_ROWS):
                stop = min(start + BLOCK_ROWS, n)
                block, docs = _block(ids, offsets, start, stop)
                terms = remap[block]
                keep = terms >= 0
                pairs, counts = np.unique((docs[keep] << _KEY_SHIFT) | terms[keep], return_counts=True)
                (pairs & 0xFFFFFFFF).astype(np.int32).tofile(out_ids)
                counts.astype(np.int32).tofile(out_counts)
                indptr[start + 1:stop + 1] = np.cumsum(np.bincount((pairs >> _KEY_SHIFT) - start, minlength=stop - start))
                indptr[start + 1:stop + 1] += indptr[start]
        np.save(self._path("bow.indptr.npy"), indptr)
        os.replace(self._path(".bow.indices.bin.part"), self._path("bow.indices.bin"))
        os.replace(self._path(".bow.counts.bin.part"), self._path("bow.counts.bin"))
        return {"terms": int(len(kept)), "nnz": int(indptr[-1])}

    def _bows(self) -> _Bows:
        indptr = np.load(self._path("bow.indptr.npy"), mmap_mode="r")
        if not indptr[-1]:
            return _Bows(indptr, np.zeros(0, np.int32), np.zeros(0, np.int32))
        return _Bows(indptr, np.memmap(self._path("bow.indices.bin"), dtype=np.int32, mode="r"),
                     np.memmap(self._path("bow.counts.bin"), dtype=np.int32, mode="r"))

    def _gensim_dictionary(self):
        from gensim.corpora import Dictionary

        data = json.loads(self._path("dictionary.json").read_text(encoding="utf-8"))
        dictionary = Dictionary()
        dictionary.token2id = {w: i for i, w in enumerate(data["words"])}
        dictionary.dfs = dict(enumerate(data["dfs"]))
        dictionary.cfs = dict(enumerate(data["cfs"]))
        dictionary.num_docs, dictionary.num_pos, dictionary.num_nnz = data["num_docs"], data["num_pos"], data["num_nnz"]
        return dictionary

    # -- stage 5: LDA ---------------------------------------------------------------------
    def _topic_model(self):
        from .model import TopicModel

        s = self.settings
        return TopicModel(s.n_topics, passes=s.passes, iterations=s.iterations, chunksize=s.chunksize, no_below=s.no_below,
                          no_above=s.no_above, keep_n=s.keep_n, random_state=s.seed, progress=self.progress)

    def _lda(self, state: dict[str, Any]) -> dict[str, Any]:
        from .model import _gensim_progress, compiled_lda_class

        s = self.settings
        n = self._n(state)
        bows = self._bows()
        rows = _sample(n, s.lda_sample, s.seed, sort=False)
        dictionary = self._gensim_dictionary()
        lda = None
        first = 0
        for p in range(s.passes, 0, -1):  # the newest checkpoint
            if (self._path(f"lda.pass-{p}") / "done").is_file():
                lda, first = self._load_checkpoint(p, dictionary), p
                break
        if lda is None:
            lda = compiled_lda_class()(corpus=None, id2word=dictionary, num_topics=s.n_topics, passes=1, iterations=s.iterations,
                           chunksize=s.chunksize, random_state=s.seed, eval_every=None, dtype=np.float32)
        for p in range(first + 1, s.passes + 1):
            with _gensim_progress(len(rows), f"training LDA, pass {p}/{s.passes}", enabled=self.progress):
                lda.update(_BowStream(bows, rows), passes=1, chunksize=s.chunksize)
            self._save_checkpoint(p, lda)
        return {"sample": int(len(rows)), "passes": s.passes}

    def _save_checkpoint(self, p: int, lda) -> None:
        random_state = lda.random_state  # _restore swaps in the inference start: keep the training one
        model = self._topic_model()._restore(self._preprocessor(), lda.id2word, lda, [f"Topic {k}" for k in range(lda.num_topics)],
                                             np.zeros((0, lda.num_topics), dtype=np.float32))
        lda.random_state = random_state
        directory = self._path(f"lda.pass-{p}")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        model.save_files(directory)
        kind, keys, pos, has_gauss, cached = random_state.get_state()
        np.save(directory / "random_state.keys.npy", keys)
        (directory / "random_state.json").write_text(json.dumps({"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                                                                  "cached": float(cached)}))
        (directory / "done").write_text("")

    def _load_checkpoint(self, p: int, dictionary):
        from .fileio import ListedFiles
        from .model import TopicModel, compiled_lda_class

        directory = self._path(f"lda.pass-{p}")
        model = TopicModel.load_files(ListedFiles(directory), self._topic_model().get_params(), [""] * self.settings.n_topics,
                                      mmap=False)
        lda = model.lda_
        lda.state.sstats = np.array(lda.state.sstats)
        lda.expElogbeta = np.array(lda.expElogbeta)
        info = json.loads((directory / "random_state.json").read_text())
        random_state = np.random.RandomState()
        random_state.set_state((info["kind"], np.load(directory / "random_state.keys.npy"), info["pos"], info["has_gauss"],
                                info["cached"]))
        lda.random_state = random_state
        lda.id2word = dictionary
        lda.__class__ = compiled_lda_class()  # the same state; the compiled E-step
        return lda

    def _final_topic_model(self, doc_topics: np.ndarray):
        from .fileio import ListedFiles
        from .model import TopicModel

        model = TopicModel.load_files(ListedFiles(self._path(f"lda.pass-{self.settings.passes}")),
                                      self._topic_model().get_params(),
                                      [f"Topic {k}" for k in range(self.settings.n_topics)], mmap=False)
        model.lda_.id2word = model.dictionary_ = self._gensim_dictionary()
        model.doc_topics_ = doc_topics
        model.n_documents_ = len(doc_topics)
        return model

    # -- stage 6: inference -------------------------------------------------------------------
    def _inference(self, state: dict[str, Any]) -> dict[str, Any]:
        n = self._n(state)
        model = self._final_topic_model(np.zeros((0, self.settings.n_topics), dtype=np.float32))
        from .model import estep

        global _INFER_STATE
        _INFER_STATE = (model.lda_, self._bows())
        estep(model.lda_, np.zeros(2, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32))  # compile before forking
        # shards are named by their rows: a rerun reuses every finished one, whatever its size
        done = {}
        for path in self.work.glob("topics.rows-*.npy"):
            first, last = (int(part) for part in path.stem.split("-")[1:3])
            done[(first, last)] = path
        covered = np.zeros(n, dtype=bool)
        for first, last in done:
            covered[first:last] = True
        bar = self._bar(n, "inferring topics")
        bar.update(int(covered.sum()))
        try:
            for start in range(0, n, SHARD_ROWS):
                stop = min(start + SHARD_ROWS, n)
                if covered[start:stop].all():
                    continue
                out = np.empty((stop - start, self.settings.n_topics), dtype=np.float32)
                for (first, last), path in done.items():  # rows finished by an earlier run (other shard sizes)
                    lo, hi = max(first, start), min(last, stop)
                    if lo < hi:
                        out[lo - start:hi - start] = np.load(path, mmap_mode="r")[lo - first:hi - first]
                step = TASK_ROWS // 2
                tasks = [(a, min(a + step, stop)) for a in range(start, stop, step) if not covered[a:min(a + step, stop)].all()]
                for a, block in _imap(_infer_task, tasks, self.settings.jobs):
                    out[a - start:a - start + len(block)] = block
                    bar.update(int((~covered[a:a + len(block)]).sum()))
                path = self._path(f"topics.rows-{start:010d}-{stop:010d}.npy")
                with atomic_write_path(path) as tmp:
                    with open(tmp, "wb") as handle:
                        np.save(handle, out)
                done[(start, stop)] = path
                covered[start:stop] = True
        finally:
            _INFER_STATE = None
            bar.close()
        doc_topics = np.lib.format.open_memmap(self._path(".doc_topics.npy.part"), mode="w+", dtype=np.float32,
                                               shape=(n, self.settings.n_topics))
        for (first, last), path in sorted(done.items()):
            doc_topics[first:last] = np.load(path)
        doc_topics.flush()
        del doc_topics
        os.replace(self._path(".doc_topics.npy.part"), self._path("doc_topics.npy"))
        for path in done.values():
            path.unlink()
        return {"shards": len(done)}

    # -- stage 7: lexical ----------------------------------------------------------------------
    def _lexical(self, state: dict[str, Any]) -> dict[str, Any]:
        if not self.settings.lexical:
            return {"built": False}
        from .lexical import LARGE_CORPUS_PARAMS, PREFIX, LexicalIndex, encode_terms, impact_postings

        n = self._n(state)
        lexical = LexicalIndex(**LARGE_CORPUS_PARAMS)
        repeat = int(round(lexical.title_weight))
        words = self._words()
        text_ids, text_offsets = self._token_ids("text")
        title_ids, title_offsets = self._token_ids("title")

        def document_block(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            """(word ids, rows) of documents start..stop: the title ``repeat`` times, then the abstract."""
            parts_ids, parts_docs = [], []
            block, docs = _block(text_ids, text_offsets, start, stop)
            parts_ids.append(block)
            parts_docs.append(docs)
            if repeat:
                block, docs = _block(title_ids, title_offsets, start, stop)
                parts_ids += [block] * repeat
                parts_docs += [docs] * repeat
            return np.concatenate(parts_ids), np.concatenate(parts_docs)

        df = np.zeros(len(words), dtype=np.int64)
        for start in range(0, n, BLOCK_ROWS):
            block, docs = document_block(start, min(start + BLOCK_ROWS, n))
            df += np.bincount((sorted_unique((docs << _KEY_SHIFT) | block) & 0xFFFFFFFF).astype(np.int64), minlength=len(words))
        kept = np.flatnonzero((df >= lexical.min_df) & (df <= lexical.max_df * n))
        order = kept[np.argsort(np.array([words[i] for i in kept], dtype=object), kind="stable")]
        terms = [words[i] for i in order]
        columns = np.full(len(words), -1, dtype=np.int32)
        columns[order] = np.arange(len(order), dtype=np.int32)
        df_kept = df[order].astype(np.float64)
        lexical.terms_ = terms
        lexical.idf_ = np.log1p((n - df_kept + 0.5) / (df_kept + 0.5)).astype(np.float32)
        lengths = np.zeros(n, dtype=np.float32)
        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            block, docs = document_block(start, stop)
            cols = columns[block]
            lengths[start:stop] = np.bincount(docs[cols >= 0] - start, minlength=stop - start)
        lexical.mean_length_ = float(lengths.mean()) if lengths.mean() > 0 else 1.0
        # document rows, block by block, appended to files (never all in memory at once)
        nnz_total = 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        parts = {name: open(self._path(f".{PREFIX}{name}.part"), "wb") for name in ("data", "indices", "counts")}
        try:
            for start in range(0, n, BLOCK_ROWS):
                stop = min(start + BLOCK_ROWS, n)
                tf = self._tf_block(document_block, columns, len(terms), start, stop)
                block_matrix, block_counts, _ = lexical._weigh(tf)
                np.asarray(block_matrix.data, np.float32).tofile(parts["data"])
                np.asarray(block_matrix.indices, np.int32).tofile(parts["indices"])
                np.asarray(block_counts, np.uint16).tofile(parts["counts"])
                indptr[start + 1:stop + 1] = nnz_total + np.asarray(block_matrix.indptr[1:], dtype=np.int64)
                nnz_total += block_matrix.nnz
        finally:
            for handle in parts.values():
                handle.close()
        index_dtype = np.int32 if max(nnz_total, n) < np.iinfo(np.int32).max else np.int64
        for name, dtype in (("data", np.float32), ("indices", np.int32), ("counts", np.uint16)):
            _raw_to_npy(self._path(f".{PREFIX}{name}.part"), self._path(f"{PREFIX}{name}.npy"), dtype, nnz_total)
        np.save(self._path(f"{PREFIX}indptr.npy"), indptr.astype(index_dtype))
        import scipy.sparse as sp

        matrix = sp.csr_matrix((n, len(terms)), dtype=np.float32)
        matrix.data = np.load(self._path(f"{PREFIX}data.npy"), mmap_mode="r")
        matrix.indices = np.load(self._path(f"{PREFIX}indices.npy"), mmap_mode="r").astype(index_dtype, copy=False)
        matrix.indptr = indptr.astype(index_dtype)
        matrix.has_sorted_indices = True
        postings = impact_postings(matrix)
        arrays = {"t_data": postings.data, "t_indices": postings.indices, "t_indptr": postings.indptr,
                  "idf": lexical.idf_, "lengths": lengths}
        for name, array in arrays.items():
            np.save(self._path(f"{PREFIX}{name}.npy"), np.asarray(array))
        del postings, arrays
        # LSA: a randomized SVD of a sample, every document projected on its components
        components = self._lsa(matrix, lexical.n_components, lexical.random_state)
        vectors = np.lib.format.open_memmap(self._path(f".{PREFIX}vectors.npy.part"), mode="w+", dtype=np.float32,
                                            shape=(n, components.shape[1]))
        from .lexical import _l2_rows, _unit_rows

        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            vectors[start:stop] = _unit_rows(np.asarray(_l2_rows(matrix[start:stop]) @ components, dtype=np.float32))
        vectors.flush()
        del vectors
        os.replace(self._path(f".{PREFIX}vectors.npy.part"), self._path(f"{PREFIX}vectors.npy"))
        np.save(self._path(f"{PREFIX}components.npy"), components)
        encoded, offsets = encode_terms(terms)
        np.save(self._path(f"{PREFIX}terms.npy"), encoded)
        np.save(self._path(f"{PREFIX}term_offsets.npy"), offsets)
        lexical.matrix_, lexical.n_documents_fit_, lexical.impact_ordered_ = matrix, n, True
        atomic_write_text(self._path(f"{PREFIX}json"), json.dumps(lexical._meta(), indent=2))
        return {"built": True, "terms": len(terms), "nnz": int(nnz_total), "lsa_dims": int(components.shape[1])}

    @staticmethod
    def _tf_block(document_block, columns: np.ndarray, n_terms: int, start: int, stop: int):
        import scipy.sparse as sp

        block, docs = document_block(start, stop)
        cols = columns[block]
        keep = cols >= 0
        pairs, counts = np.unique(((docs[keep] - start) << _KEY_SHIFT) | cols[keep], return_counts=True)
        rows = (pairs >> _KEY_SHIFT).astype(np.int64)
        indptr = np.zeros(stop - start + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=stop - start), out=indptr[1:])
        tf = sp.csr_matrix(((counts.astype(np.float64)), (pairs & 0xFFFFFFFF).astype(np.int32), indptr),
                           shape=(stop - start, n_terms))
        tf.has_sorted_indices = True
        return tf

    def _lsa(self, matrix, n_components: int, random_state: int) -> np.ndarray:
        from sklearn.utils.extmath import randomized_svd

        from .lexical import _l2_rows

        rows = _sample(matrix.shape[0], self.settings.lsa_sample, self.settings.seed, sort=True)
        d = min(int(n_components), min(len(rows), matrix.shape[1]) - 1)
        if d < 2:
            return np.zeros((matrix.shape[1], 0), dtype=np.float32)
        _, _, vt = randomized_svd(_l2_rows(matrix[rows]), d, n_iter=4, random_state=random_state)
        return np.ascontiguousarray(vt.T, dtype=np.float32)

    # -- stage 8: layout ---------------------------------------------------------------------
    def _layout(self, state: dict[str, Any]) -> dict[str, Any]:
        from .layout import MIN_MAP_DOCUMENTS, CorpusMap, knn_positions

        n = self._n(state)
        if not self.settings.layout or n < min(MIN_MAP_DOCUMENTS, self.settings.map_sample):
            return {"built": False}
        doc_topics = np.load(self._path("doc_topics.npy"), mmap_mode="r")
        lsa = np.load(self._path("lexical.vectors.npy"), mmap_mode="r") if self.settings.lexical else None
        rows = _sample(n, self.settings.map_sample, self.settings.seed, sort=True)
        corpus_map = CorpusMap(random_state=self.settings.seed, max_fit=None)
        reference = CorpusMap.features(doc_topics[rows], None if lsa is None else lsa[rows])
        corpus_map.fit(reference)
        coords = np.lib.format.open_memmap(self._path(".map.coords.npy.part"), mode="w+", dtype=np.float32, shape=(n, 2))
        coords[rows] = corpus_map.coords_
        others = np.setdiff1d(np.arange(n), rows)
        if len(others):
            import hnswlib

            # approximate neighbours in the map's 64-d principal subspace (its pruned search's),
            # then the exact similarities of those neighbours for the weights
            search = corpus_map._search()
            basis = search[0] if search is not None else np.eye(reference.shape[1], dtype=np.float32)
            graph = hnswlib.Index(space="ip", dim=basis.shape[1])
            graph.init_index(max_elements=len(reference), ef_construction=100, M=16, random_seed=self.settings.seed)
            graph.set_num_threads(1)  # one thread: the same graph every time
            graph.add_items(np.ascontiguousarray(reference @ basis), np.arange(len(reference)))
            graph.set_ef(32)
            graph.set_num_threads(self.settings.jobs)
            bar = self._bar(len(others), "placing on the map")
            k = min(corpus_map.k, len(reference))
            positions = np.asarray(corpus_map.reference_coords_, dtype=np.float32)
            for start in range(0, len(others), BLOCK_ROWS // 4):
                part = others[start:start + BLOCK_ROWS // 4]
                features = CorpusMap.features(doc_topics[part], None if lsa is None else lsa[part])
                found, _ = graph.knn_query(np.ascontiguousarray(features @ basis), k=min(2 * k, len(reference)))
                sims = np.einsum("ij,ikj->ik", features, reference[found])
                best = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # the k nearest of 2k, by their exact similarity
                near, sims = np.take_along_axis(found, best, axis=1), np.take_along_axis(sims, best, axis=1)
                coords[part] = knn_positions(sims, near, positions)
                bar.update(len(part))
            bar.close()
        coords.flush()
        del coords
        corpus_map.coords_ = np.load(self._path(".map.coords.npy.part"), mmap_mode="r")
        corpus_map.reference_rows_ = rows
        directory = self._path("map")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        entry = corpus_map.save_files(directory)
        del corpus_map
        self._path(".map.coords.npy.part").unlink()
        atomic_write_text(self._path("map.json"), json.dumps(entry))
        return {"built": True, "reference": int(len(rows))}

    # -- stage 9: artifact -------------------------------------------------------------------
    def _artifact(self, state: dict[str, Any]) -> dict[str, Any]:
        from .index import SimilarityIndex
        from .store import DocumentTable, save_prebuilt

        n = self._n(state)
        doc_topics = np.load(self._path("doc_topics.npy"), mmap_mode="r")
        model = self._final_topic_model(doc_topics)
        index = SimilarityIndex(np.asarray(doc_topics), metric=self.settings.metric, backend="exact")
        files = {name: self._path(name) for name in DocumentTable.file_names()}
        entries: dict[str, Any] = {"documents": {"files": DocumentTable.file_names()}}
        if state["done"]["lexical"].get("built"):
            from .lexical import LexicalIndex

            lexical_files = LexicalIndex.file_names()
            files.update({name: self._path(name) for name in lexical_files})
            meta = json.loads(self._path("lexical.json").read_text(encoding="utf-8"))
            entries["lexical"] = {**meta["params"], "files": lexical_files}
        if state["done"]["layout"].get("built"):
            entry = json.loads(self._path("map.json").read_text(encoding="utf-8"))
            files.update({name: self._path("map") / name for name in entry["files"]})
            entries["map"] = entry
        info = {"name": self.source.name, "size": n, "sha256": self._documents_table().content_hash(),
                "build": {"stages": {k: v.get("seconds") for k, v in state["done"].items()},
                          "settings": self.settings.identity(), "dropped": state["done"]["records"]["dropped"]}}
        save_prebuilt(self.out, model, index, n, files, entries, corpus_info=info)
        return {"out": str(self.out)}


# -- helpers -------------------------------------------------------------------------------
class _Bows:
    """The bag-of-words CSR arrays (memory-mapped)."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray) -> None:
        self.indptr, self.indices, self.counts = indptr, indices, counts


class _BowStream:
    """A corpus gensim can iterate more than once: the bags of words of ``rows``, in that order."""

    def __init__(self, bows: _Bows, rows: np.ndarray) -> None:
        self.bows, self.rows = bows, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Any]:
        from .model import ArrayBow

        indptr, indices, counts = self.bows.indptr, self.bows.indices, self.bows.counts
        for row in self.rows.tolist():
            start, stop = int(indptr[row]), int(indptr[row + 1])
            yield ArrayBow((indices[start:stop], counts[start:stop]))


def _sample(n: int, size: int, seed: int, sort: bool) -> np.ndarray:
    """``size`` distinct rows of ``n`` (all of them when ``size >= n``), seeded; sorted or in random order."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(n) if size >= n else rng.choice(n, size, replace=False)
    return np.sort(rows) if sort else rows.astype(np.int64)


def _raw_to_npy(raw: Path, target: Path, dtype: Any, count: int) -> None:
    """A ``.npy`` file of the ``count`` values of a raw binary file (header, then the bytes streamed); removes ``raw``."""
    with open(target, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                   "fortran_order": False, "shape": (int(count),)})
        with open(raw, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 24)
    raw.unlink()
    if np.load(target, mmap_mode="r").shape != (int(count),):
        raise BuildError(f"{target}: {count} values expected")


def _block(ids: np.ndarray, offsets: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(word ids as int64, their document rows) of documents start..stop."""
    a, b = int(offsets[start]), int(offsets[stop])
    block = np.asarray(ids[a:b], dtype=np.int64)
    docs = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(np.asarray(offsets[start:stop + 1])))
    return block, docs


def _imap(function: Callable, tasks: list, jobs: int) -> Iterator:
    """``map`` over forked worker processes (in order); in-process for one job or few tasks."""
    if jobs <= 1 or len(tasks) < 4 or os.name != "posix":
        yield from map(function, tasks)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(function, tasks)


_TOKEN_STATE: Any = None
_INFER_STATE: Any = None


def _tokenize_task(task: tuple[int, int]) -> tuple[int, list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Word ids (local to this task) of the abstracts and titles of rows start..stop."""
    preprocessor, table = _TOKEN_STATE
    start, stop = task
    local: dict[str, int] = {}
    parts = {}
    for kind in ("text", "title"):
        words = preprocessor.transform([table.field(kind, row) for row in range(start, stop)], n_jobs=1)
        counts = np.fromiter((len(w) for w in words), dtype=np.int32, count=len(words))
        ids = np.fromiter((local.setdefault(word, len(local)) for doc in words for word in doc), dtype=np.int32,
                          count=int(counts.sum()))
        parts[kind] = (ids, counts)
    return start, list(local), parts


def _infer_task(task: tuple[int, int]) -> tuple[int, np.ndarray]:
    from .model import estep

    lda, bows = _INFER_STATE
    start, stop = task
    gamma, _ = estep(lda, bows.indptr[start:stop + 1], bows.indices, bows.counts)  # gamma starts at 1: DeterministicInit
    return start, (gamma / gamma.sum(axis=1, keepdims=True)).astype(np.float32)
