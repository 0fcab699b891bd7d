"""The artifact store: atomic, verified, memory-mapped saving and loading of a model.

An artifact is a directory::

    artifacts/NAME/
        manifest.json          format version, library versions, corpus size and hash,
                               parameters, topic labels, sha256 and size of every file
        preprocessor.pkl       tokenizer settings and learned phrases
        dictionary.gensim      gensim Dictionary
        lda.gensim (+ .npy)    gensim LdaModel, large arrays stored separately (mmap)
        doc_topics.npy         float32 (N, K) topic mixtures of the corpus
        vectors.npy            the similarity index's rows (mmap)
        docs.*.bin/.idx.npy    the documents' fields as UTF-8 blobs + offsets (mmap)

Saving writes everything into a temporary sibling directory and renames it into place,
so an interrupted save never leaves a half-written model. Loading checks the manifest
(format, versions) and every file's size and sha256 before unpickling anything, and
raises :class:`ArtifactError` with the file and the problem. Large arrays are opened
memory-mapped: several kernels serving the dashboard share one copy in RAM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .corpus import FIELDS, Corpus, Document

if TYPE_CHECKING:
    from .index import SimilarityIndex
    from .lexical import LexicalIndex
    from .model import TopicModel

logger = logging.getLogger(__name__)

FORMAT = "abstractor-artifacts"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact directory is missing, truncated, tampered with or incompatible."""


# -- atomic file operations ---------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_write_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``path`` when the block succeeds.

    The old directory (if any) is moved aside, the new one renamed into place, then the
    old one deleted: at every instant either the old or the new complete artifact
    exists (:func:`load_artifacts` recovers the old one if a crash hits between the
    two renames).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        for file in tmp.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


# -- documents ----------------------------------------------------------------------
class DocumentTable:
    """The corpus's documents as memory-mapped UTF-8 blobs plus offsets.

    Unlike a DataFrame, this costs no private memory per kernel: every process that
    opens it shares the page cache. Lookups by id use a sorted permutation and binary
    search, so no per-process dict is built either.
    """

    def __init__(self, blobs: dict[str, np.ndarray], offsets: dict[str, np.ndarray], id_order: np.ndarray) -> None:
        self._blobs = blobs
        self._offsets = offsets
        self._id_order = id_order

    @staticmethod
    def write(documents: Sequence[Document] | Corpus, directory: Path) -> list[str]:
        """Write the documents' files into ``directory``; returns the file names."""
        names = []
        ids = []
        for field in FIELDS:
            values = [getattr(d, field) for d in documents] if not isinstance(documents, Corpus) else documents._frame[field].tolist()
            if field == "id":
                ids = values
            encoded = [v.encode("utf-8", "surrogatepass") for v in values]
            offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
            (directory / f"docs.{field}.bin").write_bytes(b"".join(encoded))
            np.save(directory / f"docs.{field}.idx.npy", offsets)
            names += [f"docs.{field}.bin", f"docs.{field}.idx.npy"]
        order = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
        np.save(directory / "docs.id_order.npy", order)
        return names + ["docs.id_order.npy"]

    @classmethod
    def open(cls, directory: Path, mmap: bool = True) -> DocumentTable:
        """Open the documents of an artifact directory."""
        blobs, offsets = {}, {}
        for field in FIELDS:
            blob_path = directory / f"docs.{field}.bin"
            size = blob_path.stat().st_size
            blobs[field] = (np.memmap(blob_path, dtype=np.uint8, mode="r") if size and mmap  # (see _load_array)
                            else np.fromfile(blob_path, dtype=np.uint8)).view(np.ndarray)
            offsets[field] = _load_array(directory / f"docs.{field}.idx.npy", mmap)
        return cls(blobs, offsets, _load_array(directory / "docs.id_order.npy", mmap))

    @classmethod
    def from_documents(cls, documents: Sequence[Document] | Corpus) -> DocumentTable:
        """An in-memory table (used right after training, before saving)."""
        with tempfile.TemporaryDirectory() as tmp:
            DocumentTable.write(documents, Path(tmp))
            return cls.open(Path(tmp), mmap=False)

    def __len__(self) -> int:
        return len(self._offsets["id"]) - 1

    def field(self, field: str, row: int) -> str:
        """One field of one document."""
        offsets = self._offsets[field]
        start, end = int(offsets[row]), int(offsets[row + 1])
        return self._blobs[field][start:end].tobytes().decode("utf-8", "surrogatepass")

    def __getitem__(self, row: int) -> Document:
        if not -len(self) <= row < len(self):
            raise IndexError(f"document row {row} out of range ({len(self)} documents)")
        row = row % len(self)
        return Document(*(self.field(f, row) for f in FIELDS))

    def ids(self) -> list[str]:
        """All ids in row order (decodes every id: for bulk work, not per query)."""
        return [self.field("id", i) for i in range(len(self))]

    def position(self, doc_id: str) -> int:
        """Row of ``doc_id`` (binary search); ``KeyError`` if absent."""
        lo, hi = 0, len(self)
        order = self._id_order
        while lo < hi:
            mid = (lo + hi) // 2
            value = self.field("id", int(order[mid]))
            if value < doc_id:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self) and self.field("id", int(order[lo])) == doc_id:
            return int(order[lo])
        raise KeyError(f"unknown document id {doc_id!r}")

    def __contains__(self, doc_id: object) -> bool:
        try:
            self.position(str(doc_id))
        except KeyError:
            return False
        return True


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    """A ``.npy`` array, memory-mapped read-only when ``mmap``, as a plain ndarray view: the
    same shared pages without np.memmap's per-slice Python overhead (a few µs a slice, ~80
    slices per similar-paper list)."""
    return np.load(path, mmap_mode="r" if mmap else None).view(np.ndarray)


# -- artifacts ----------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import platform

    import gensim

    from . import __version__

    return {
        "abstractor_widgets": __version__,
        "gensim": gensim.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_artifacts(
    directory: str | os.PathLike[str],
    model: TopicModel,
    index: SimilarityIndex,
    documents: Corpus | DocumentTable | Sequence[Document],
    corpus_info: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    extra_manifest: dict[str, Any] | None = None,
    lexical: LexicalIndex | None = None,
) -> Path:
    """Save a fitted model, its index and its documents atomically.

    Parameters
    ----------
    directory : path-like
        Target directory; replaced as a whole if it exists.
    model : TopicModel
        Fitted.
    index : SimilarityIndex
        Over ``model.doc_topics_``.
    documents : Corpus, DocumentTable or sequence of Document
        The indexed documents, in index row order.
    corpus_info : dict, optional
        ``{"name", "size", "sha256"}`` of the training corpus.
    extra_files : dict of str to bytes, optional
        More files to write (and checksum) in the directory.
    extra_manifest : dict, optional
        Keys added to the manifest.
    lexical : LexicalIndex, optional
        The lexical index of the same documents (row ``i`` = document ``i``), saved as
        ``lexical.*`` files that :func:`load_lexical` memory-maps.

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    directory = Path(directory)
    if len(index) != len(documents):
        raise ValueError(f"the index has {len(index)} rows but there are {len(documents)} documents")
    with atomic_directory(directory) as tmp:
        files = ["preprocessor.pkl", "dictionary.gensim", "doc_topics.npy", "vectors.npy"]
        with open(tmp / "preprocessor.pkl", "wb") as handle:
            pickle.dump(model.preprocessor_, handle, protocol=pickle.HIGHEST_PROTOCOL)
        model.dictionary_.save(str(tmp / "dictionary.gensim"))
        # sep_limit=0: every array (incl. the state's K x V sstats) goes to its own .npy, memory-mappable
        model.lda_.save(str(tmp / "lda.gensim"), separately=["expElogbeta", "sstats"], sep_limit=0)
        files += [p.name for p in tmp.iterdir() if p.name.startswith("lda.gensim")]
        np.save(tmp / "doc_topics.npy", np.ascontiguousarray(model.doc_topics_, dtype=np.float32))
        np.save(tmp / "vectors.npy", index.storage())  # column-major: the blocked scan reads it at bandwidth
        files += index.save_extra(tmp)  # the HNSW graph when the index has one
        if isinstance(documents, DocumentTable):
            documents = [documents[i] for i in range(len(documents))]
        files += DocumentTable.write(documents, tmp)
        if lexical is not None:
            if len(lexical) != len(documents):
                raise ValueError(f"the lexical index has {len(lexical)} rows but there are {len(documents)} documents")
            files += lexical.save(tmp)
        for name, payload in (extra_files or {}).items():
            (tmp / name).write_bytes(payload)
            files.append(name)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": _versions(),
            "corpus": corpus_info or {"size": len(documents)},
            "n_documents": len(documents),
            "n_topics": model.n_topics,
            "metric": index.metric,
            "index": index.manifest_entry(),
            "lexical": None if lexical is None else lexical.get_params(),
            "params": model.get_params(),
            "labels": list(model.labels_),
            "files": {
                name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)}
                for name in sorted(set(files))
            },
        }
        manifest.update(extra_manifest or {})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    logger.info("saved artifacts to %s", directory)
    return directory


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check an artifact's manifest (not its files).

    Raises
    ------
    ArtifactError
        Missing directory or manifest, unparsable JSON, another format, or a format
        version this package cannot read.
    """
    directory = Path(directory)
    if not directory.exists():
        stale = (sorted(directory.parent.glob(f".{directory.name}.old-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
                 if directory.parent.exists() else [])
        if stale:
            # a crash between the two renames of a save: the previous model is intact
            os.replace(stale[-1], directory)
            logger.warning("recovered %s from an interrupted save", directory)
        else:
            raise ArtifactError(f"{directory}: no such model directory (train one with `abstractor train --out {directory}`)")
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory}: not a model directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an {FORMAT} manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version!r} is incompatible with this package "
            f"(reads version {FORMAT_VERSION}); retrain the model"
        )
    for key in ("files", "labels", "n_topics", "metric", "params"):
        if key not in manifest:
            raise ArtifactError(f"{path}: manifest lacks {key!r}")
    return manifest


def verify_artifacts(directory: str | os.PathLike[str], manifest: dict[str, Any] | None = None, checksums: bool = True) -> dict[str, Any]:
    """Check that every file the manifest lists exists with its size and sha256.

    Raises
    ------
    ArtifactError
        Naming the first missing, truncated or modified file.
    """
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    for name, info in manifest["files"].items():
        path = directory / name
        if Path(name).name != name:
            raise ArtifactError(f"{directory / MANIFEST}: unsafe file name {name!r}")
        if not path.is_file():
            raise ArtifactError(f"{path}: missing file (the artifact is incomplete)")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise ArtifactError(f"{path}: truncated or modified ({size} bytes, expected {info['bytes']})")
        if checksums and sha256_file(path) != info["sha256"]:
            raise ArtifactError(f"{path}: checksum mismatch (the file was modified or is corrupt)")
    return manifest


def load_artifacts(directory: str | os.PathLike[str], mmap: bool = True, verify: bool = True):
    """Load a saved model.

    Parameters
    ----------
    directory : path-like
    mmap : bool
        Memory-map large arrays (shared between processes).
    verify : bool
        Check every file's sha256 before unpickling (sizes are always checked).

    Returns
    -------
    tuple
        ``(model, index, documents, manifest)``: a fitted :class:`TopicModel`, a
        :class:`SimilarityIndex`, a :class:`DocumentTable` and the manifest dict.

    Raises
    ------
    ArtifactError
        For a missing, truncated, tampered or incompatible artifact.
    """
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    from .index import SimilarityIndex
    from .model import TopicModel

    directory = Path(directory)
    manifest = verify_artifacts(directory, read_manifest(directory), checksums=verify)
    mode = "r" if mmap else None
    try:
        with open(directory / "preprocessor.pkl", "rb") as handle:
            preprocessor = pickle.load(handle)
        dictionary = Dictionary.load(str(directory / "dictionary.gensim"))
        lda = LdaModel.load(str(directory / "lda.gensim"), mmap=mode)
        doc_topics = _load_array(directory / "doc_topics.npy", mmap)
        vectors = _load_array(directory / "vectors.npy", mmap)
        documents = DocumentTable.open(directory, mmap=mmap)
    except Exception as exc:
        raise ArtifactError(f"{directory}: cannot load model files ({type(exc).__name__}: {exc})") from exc
    n_topics = int(manifest["n_topics"])
    if lda.num_topics != n_topics or doc_topics.shape != (len(documents), n_topics) or vectors.shape != doc_topics.shape:
        raise ArtifactError(f"{directory}: inconsistent shapes between the model, the index and the documents")
    params = {k: v for k, v in manifest["params"].items() if k != "preprocessor"}
    model = TopicModel(**params)._restore(preprocessor, dictionary, lda, manifest["labels"], doc_topics)
    index = SimilarityIndex.from_vectors(vectors, ids=None, metric=manifest["metric"])
    try:
        index.load_extra(directory, manifest.get("index"))  # None for older artifacts: exact scan
    except (ValueError, ImportError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: cannot load the similarity index ({exc})") from exc
    return model, index, documents, manifest


def load_lexical(directory: str | os.PathLike[str], manifest: dict[str, Any], mmap: bool = True) -> LexicalIndex | None:
    """The artifact's lexical index (memory-mapped), or ``None`` if it was saved without one.

    Call after :func:`load_artifacts`, which has verified the files' sizes and checksums.

    Raises
    ------
    ArtifactError
        If the manifest lists a lexical index that cannot be read or does not match the
        documents.
    """
    from .lexical import PREFIX, LexicalIndex

    directory = Path(directory)
    if f"{PREFIX}json" not in manifest.get("files", {}):
        return None
    try:
        lexical = LexicalIndex.load(directory, mmap=mmap)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{directory}: cannot load the lexical index ({type(exc).__name__}: {exc})") from exc
    if len(lexical) != int(manifest["n_documents"]):
        raise ArtifactError(f"{directory}: the lexical index has {len(lexical)} rows for {manifest['n_documents']} documents")
    return lexical


def save_labels(directory: str | os.PathLike[str], labels: list[str]) -> None:
    """Rewrite the labels in an artifact's manifest (atomically)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if len(labels) != int(manifest["n_topics"]):
        raise ValueError(f"expected {manifest['n_topics']} labels, got {len(labels)}")
    manifest["labels"] = list(labels)
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
