"""The artifact store: atomic, verified, memory-mapped, pickle-free saving and loading of a model.

An artifact is a directory of JSON and ``.npy`` files (format version 2)::

    artifacts/NAME/
        manifest.json          format version, library versions, corpus size and hash,
                               parameters, topic labels, each component's entry, and the
                               sha256 and size of every file
        preprocessor.json      tokenizer settings and learned phrases
        dictionary.json (+ .dfs/.cfs.npy)   the words in id order and their counts
        lda.json + lda.*.npy   LDA settings; topic-word arrays, alpha, eta (mmap)
        doc_topics.npy         float32 (N, K) topic mixtures of the corpus
        vectors.npy (+ ann.hnsw)            the similarity index's rows (mmap), HNSW graph
        docs.*.bin/.idx.npy    the documents' fields as UTF-8 blobs + offsets (mmap)
        lexical.*              the BM25 / LSA index (mmap)
        map.*.npy              the corpus map: 2-D layout + its transform's reference rows (optional)
        embedding.*            static sentence embeddings: token table, tokenizer JSON, document
                               vectors (optional; ``abstractor embed``)

Each component owns one save/load contract: ``TopicModel.save_files`` / ``load_files``,
``SimilarityIndex.save_files`` / ``load_files``, ``LexicalIndex.save`` / ``load``,
``CorpusMap.save_files`` / ``load_files``, ``StaticEmbedding.save_files`` / ``load_files``,
:class:`DocumentTable` ``write`` / ``open``. This module only coordinates them, writes
atomically under a per-artifact lock, and verifies.

Safety
------
Loading never executes anything from the folder: arrays are read with
``numpy.load(allow_pickle=False)``, the rest is JSON, and gensim's objects are rebuilt from
those arrays. Loaders open only the files the manifest lists, by plain names (no path
separators, no ``..``). An artifact of the old pickled format (version 1) is refused with
the command that converts it (``abstractor convert``), for models the user trusts.

What the checksums protect against: the sha256 of every file sits in ``manifest.json``
inside the same folder, so on their own they catch corruption (a truncated copy, a flipped
bit), not tampering: whoever can change a file can change the manifest too. To detect
tampering, pin the manifest's digest from outside the folder (:func:`artifact_digest`,
shown by ``abstractor info``; ``--digest`` on the command line, or the
``ABSTRACTOR_ARTIFACT_SHA256`` environment variable): loading then fails unless the
manifest, and through its checksums every file, is exactly the one pinned. Topic labels
are editable and so are not part of the digest; they are only ever shown as text.

Writers (a save, an update, a label change, the recovery of an interrupted save) all take
the artifact's lock file (``.NAME.lock`` beside the directory): a label change rewrites
only its topic, merged with the manifest on disk, so no edit is lost and no writer
tears another's artifact. Saving writes a temporary sibling directory and renames it into
place, so an interrupted save never leaves a half-written model; files and folders get the
modes the umask gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .corpus import FIELDS, Corpus, Document
from .model import MAX_LABEL_CHARS
from .fileio import (  # noqa: F401 (re-exported: the store's writers are the package's)
    ListedFiles,
    UnsafeFileError,
    atomic_directory,
    atomic_write_path,
    atomic_write_text,
    check_file_name,
    fsync_dir,
    sha256_file,
)

if TYPE_CHECKING:
    from .embedding import StaticEmbedding
    from .index import SimilarityIndex
    from .layout import CorpusMap
    from .lexical import LexicalIndex
    from .model import TopicModel

logger = logging.getLogger(__name__)

FORMAT = "abstractor-artifacts"
#: Version 2: JSON and .npy only. Version 1 stored pickles (refused; see ``abstractor convert``).
FORMAT_VERSION = 2
PICKLED_FORMAT_VERSIONS = (1,)
MANIFEST = "manifest.json"
#: Environment variable that pins the manifest digest every load must match.
DIGEST_ENV_VAR = "ABSTRACTOR_ARTIFACT_SHA256"
#: Keys of the manifest left out of its digest: what users may edit in place.
UNPINNED_KEYS = ("labels",)


class ArtifactError(RuntimeError):
    """An artifact directory is missing, truncated, tampered with or incompatible."""


class PickledArtifactError(ArtifactError):
    """An artifact in the old pickled format: loading it would run code stored in it."""


class DigestMismatchError(ArtifactError):
    """The manifest is not the one whose digest was pinned."""


@contextmanager
def artifact_lock(directory: str | os.PathLike[str], timeout: float = 600.0) -> Iterator[None]:
    """Hold the artifact's lock file (``.NAME.lock`` beside the directory) for a write.

    Every writer takes it: saves, updates, label changes and the recovery of an
    interrupted save. It lives beside the directory because a save replaces the directory
    itself. Re-entrant within a process.

    Raises
    ------
    ArtifactError
        If the lock cannot be had within ``timeout`` seconds.
    """
    from filelock import FileLock, Timeout

    directory = Path(directory).absolute()
    directory.parent.mkdir(parents=True, exist_ok=True)
    # one lock object per path in this process (is_singleton): nested writers re-enter it
    lock = FileLock(str(directory.parent / f".{directory.name}.lock"), mode=0o666 & ~_umask(), is_singleton=True)
    try:
        with lock.acquire(timeout=timeout):
            yield
    except Timeout as exc:
        raise ArtifactError(f"{directory}: another process holds the artifact's lock ({exc})") from exc


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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

    @staticmethod
    def file_names() -> list[str]:
        """The files :meth:`write` writes."""
        return [name for field in FIELDS for name in (f"docs.{field}.bin", f"docs.{field}.idx.npy")] + ["docs.id_order.npy"]

    @classmethod
    def open(cls, directory: Path | ListedFiles, mmap: bool = True) -> DocumentTable:
        """Open the documents of an artifact directory (or of its listed files).

        Raises
        ------
        ValueError
            If the offsets do not fit the blobs or the tables disagree on their length.
        """
        files = directory if isinstance(directory, ListedFiles) else ListedFiles(directory)
        blobs, offsets = {}, {}
        for field in FIELDS:
            blobs[field] = files.bytes_array(f"docs.{field}.bin", mmap=mmap)
            offsets[field] = files.array(f"docs.{field}.idx.npy", mmap=mmap)
            idx = offsets[field]
            if idx.ndim != 1 or idx.dtype != np.int64 or len(idx) < 1 or idx[0] != 0 or idx[-1] != len(blobs[field]):
                raise ValueError(f"docs.{field}.idx.npy does not match docs.{field}.bin")
        lengths = {len(o) for o in offsets.values()}
        order = files.array("docs.id_order.npy", mmap=mmap)
        if len(lengths) != 1 or len(order) != lengths.pop() - 1:
            raise ValueError("the document tables disagree on the number of documents")
        return cls(blobs, offsets, order)

    @classmethod
    def from_documents(cls, documents: Sequence[Document] | Corpus) -> DocumentTable:
        """An in-memory table (used right after training, before saving)."""
        with tempfile.TemporaryDirectory() as tmp:
            DocumentTable.write(documents, Path(tmp))
            return cls.open(Path(tmp), mmap=False)

    def __len__(self) -> int:
        return len(self._offsets["id"]) - 1

    def appended(self, documents: Sequence[Document]) -> AppendedDocuments:
        """These documents followed by ``documents``, to be written without decoding the old ones."""
        return AppendedDocuments(self, list(documents))

    def content_hash(self) -> str:
        """:meth:`Corpus.content_hash <abstractor_widgets.corpus.Corpus.content_hash>` of these
        documents, read from the blobs (no Document objects: seconds for millions)."""
        digest = hashlib.sha256()
        _hash_rows(digest, self)
        return digest.hexdigest()

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
        at = self.insertion_point(doc_id)
        if at < len(self) and self.field("id", int(self._id_order[at])) == doc_id:
            return int(self._id_order[at])
        raise KeyError(f"unknown document id {doc_id!r}")

    def insertion_point(self, doc_id: str) -> int:
        """Where ``doc_id`` stands or would stand in the sorted id order (binary search)."""
        lo, hi = 0, len(self)
        order = self._id_order
        while lo < hi:
            mid = (lo + hi) // 2
            if self.field("id", int(order[mid])) < doc_id:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def __contains__(self, doc_id: object) -> bool:
        try:
            self.position(str(doc_id))
        except KeyError:
            return False
        return True


class AppendedDocuments:
    """A :class:`DocumentTable` plus new documents, written by streaming the old blobs (an update
    of a model of millions of papers never decodes them into Python objects)."""

    def __init__(self, table: DocumentTable, new: list[Document]) -> None:
        self.table, self.new = table, new

    def __len__(self) -> int:
        return len(self.table) + len(self.new)

    def write(self, directory: Path) -> list[str]:
        """Write the documents' files (as :meth:`DocumentTable.write`) into ``directory``."""
        table, names = self.table, []
        for field in FIELDS:
            encoded = [getattr(d, field).encode("utf-8", "surrogatepass") for d in self.new]
            old_blob, old_offsets = np.asarray(table._blobs[field]), np.asarray(table._offsets[field])
            with open(directory / f"docs.{field}.bin", "wb") as handle:
                view = memoryview(old_blob)
                for start in range(0, len(view), 1 << 26):
                    handle.write(view[start:start + (1 << 26)])
                handle.write(b"".join(encoded))
            lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
            offsets = np.concatenate([old_offsets, old_offsets[-1] + np.cumsum(lengths)])
            np.save(directory / f"docs.{field}.idx.npy", offsets.astype(np.int64))
            names += [f"docs.{field}.bin", f"docs.{field}.idx.npy"]
        # the id order: the old (sorted) order with the new rows inserted where their ids belong
        start = len(table)
        new_order = sorted(range(len(self.new)), key=lambda i: self.new[i].id)
        positions = np.fromiter((table.insertion_point(self.new[i].id) for i in new_order), dtype=np.int64,
                                count=len(new_order))
        order = np.insert(np.asarray(table._id_order, dtype=np.int64), positions, np.asarray(new_order, dtype=np.int64) + start)
        np.save(directory / "docs.id_order.npy", order)
        return names + ["docs.id_order.npy"]

    def content_hash(self) -> str:
        """The corpus hash of all the documents, old and new (:meth:`DocumentTable.content_hash`)."""
        digest = hashlib.sha256()
        _hash_rows(digest, self.table)
        for doc in self.new:
            digest.update(doc.id.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
            digest.update(doc.text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x01")
        return digest.hexdigest()


def _hash_rows(digest: Any, table: DocumentTable) -> None:
    """Feed the table's ids and texts to ``digest`` as ``Corpus.content_hash`` does."""
    ids, texts = memoryview(np.asarray(table._blobs["id"])), memoryview(np.asarray(table._blobs["text"]))
    id_offsets, text_offsets = np.asarray(table._offsets["id"]).tolist(), np.asarray(table._offsets["text"]).tolist()
    update = digest.update
    for row in range(len(table)):
        update(ids[id_offsets[row]:id_offsets[row + 1]])
        update(b"\x00")
        update(texts[text_offsets[row]:text_offsets[row + 1]])
        update(b"\x01")


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
    documents: Corpus | DocumentTable | AppendedDocuments | Sequence[Document],
    corpus_info: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    extra_manifest: dict[str, Any] | None = None,
    lexical: LexicalIndex | None = None,
    keep_labels_on_disk: bool = False,
    corpus_map: CorpusMap | None = None,
    embedding: StaticEmbedding | None = None,
) -> Path:
    """Save a fitted model, its index and its documents atomically, under the artifact's lock.

    Parameters
    ----------
    directory : path-like
        Target directory; replaced as a whole if it exists.
    model : TopicModel
        Fitted.
    index : SimilarityIndex
        Over ``model.doc_topics_``.
    documents : Corpus, DocumentTable, AppendedDocuments or sequence of Document
        The indexed documents, in index row order (an :class:`AppendedDocuments` is
        written by streaming its table's blobs: an update of millions of papers).
    corpus_info : dict, optional
        ``{"name", "size", "sha256"}`` of the training corpus.
    extra_files : dict of str to bytes, optional
        More files to write (and checksum) in the directory (plain names only).
    extra_manifest : dict, optional
        Keys added to the manifest.
    lexical : LexicalIndex, optional
        The lexical index of the same documents (row ``i`` = document ``i``).
    keep_labels_on_disk : bool
        Keep the labels of the artifact being replaced (read under the lock) instead of
        ``model.labels_``: an update must not undo a label another process saved meanwhile.
    corpus_map : CorpusMap, optional
        The 2-D layout of the same documents (:mod:`abstractor_widgets.layout`), saved as
        ``map.*.npy`` under the manifest's ``"map"`` entry.
    embedding : StaticEmbedding, optional
        Static sentence embeddings of the same documents
        (:mod:`abstractor_widgets.embedding`), saved as ``embedding.*`` under the
        manifest's ``"embedding"`` entry.

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    directory = Path(directory)
    if len(index) != len(documents):
        raise ValueError(f"the index has {len(index)} rows but there are {len(documents)} documents")
    if lexical is not None and len(lexical) != len(documents):
        raise ValueError(f"the lexical index has {len(lexical)} rows but there are {len(documents)} documents")
    if corpus_map is not None and len(corpus_map) != len(documents):
        raise ValueError(f"the corpus map has {len(corpus_map)} points but there are {len(documents)} documents")
    if embedding is not None and len(embedding) != len(documents):
        raise ValueError(f"the static embedding has {len(embedding)} rows but there are {len(documents)} documents")
    for name in extra_files or {}:
        check_file_name(name)
    with artifact_lock(directory):
        labels = list(model.labels_)
        if keep_labels_on_disk and (directory / MANIFEST).is_file():
            try:
                on_disk = read_manifest(directory)["labels"]
                if len(on_disk) == len(labels):
                    labels = list(on_disk)
            except ArtifactError:
                pass
        with atomic_directory(directory) as tmp:
            model_entry = model.save_files(tmp)
            index_entry = index.save_files(tmp)
            if isinstance(documents, AppendedDocuments):
                document_files = documents.write(tmp)
            elif isinstance(documents, DocumentTable):
                document_files = DocumentTable.write([documents[i] for i in range(len(documents))], tmp)
            else:
                document_files = DocumentTable.write(documents, tmp)
            lexical_entry = None
            if lexical is not None:
                lexical_entry = {**lexical.get_params(), "files": lexical.save(tmp)}
            map_entry = corpus_map.save_files(tmp) if corpus_map is not None else None
            embedding_entry = embedding.save_files(tmp) if embedding is not None else None
            for name, payload in (extra_files or {}).items():
                (tmp / name).write_bytes(payload)
            _write_manifest(tmp, model, index, len(documents), corpus_info, labels, extra_manifest, {
                "model": model_entry, "index": index_entry, "documents": {"files": document_files},
                "lexical": lexical_entry, "map": map_entry, "embedding": embedding_entry})
    logger.info("saved artifacts to %s", directory)
    return directory


def _write_manifest(tmp: Path, model: TopicModel, index: SimilarityIndex, n_documents: int, corpus_info: dict[str, Any] | None,
                    labels: list[str], extra_manifest: dict[str, Any] | None, entries: dict[str, Any]) -> dict[str, Any]:
    """Checksum every file of ``tmp`` and write its manifest (the last file of a save)."""
    names = sorted(p.name for p in tmp.iterdir())
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _versions(),
        "corpus": corpus_info or {"size": n_documents},
        "n_documents": n_documents,
        "n_topics": model.n_topics,
        "metric": index.metric,
        "model": entries["model"],
        "index": entries["index"],
        "documents": entries["documents"],
        "lexical": entries.get("lexical"),
        **({key: entries[key] for key in ("map", "embedding") if entries.get(key) is not None}),
        "params": model.get_params(),
        "labels": labels,
        "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256_file(tmp / name)} for name in names},
    }
    manifest.update(extra_manifest or {})
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest


def save_prebuilt(
    directory: str | os.PathLike[str],
    model: TopicModel,
    index: SimilarityIndex,
    n_documents: int,
    files: dict[str, Path],
    entries: dict[str, dict[str, Any] | None],
    corpus_info: dict[str, Any] | None = None,
    extra_manifest: dict[str, Any] | None = None,
) -> Path:
    """Save an artifact whose large files were already written elsewhere (a staged build).

    The model and the topic index are written as :func:`save_artifacts` writes them; the
    other files (``files``: artifact name -> existing path on the same file system) are
    hard-linked into the new directory, not copied, and ``entries`` gives their
    components' manifest entries (``"documents"``, ``"lexical"``, ``"map"``,
    ``"embedding"``). Atomic and locked like :func:`save_artifacts`.
    """
    directory = Path(directory)
    if len(index) != n_documents:
        raise ValueError(f"the index has {len(index)} rows but there are {n_documents} documents")
    for component, entry in entries.items():
        missing = [name for name in (entry or {}).get("files", []) if name not in files]
        if component not in ("documents", "lexical", "map", "embedding") or missing:
            raise ValueError(f"bad prebuilt component {component!r} (files not given: {missing})")
    with artifact_lock(directory):
        with atomic_directory(directory) as tmp:
            model_entry = model.save_files(tmp)
            index_entry = index.save_files(tmp)
            for name, source in files.items():
                check_file_name(name)
                try:
                    os.link(source, tmp / name)
                except OSError:  # another file system, or no hard links: copy
                    import shutil

                    shutil.copyfile(source, tmp / name)
            _write_manifest(tmp, model, index, n_documents, corpus_info, list(model.labels_), extra_manifest,
                            {"model": model_entry, "index": index_entry, **entries})
    logger.info("saved artifacts to %s", directory)
    return directory


def artifact_digest(manifest: dict[str, Any] | str | os.PathLike[str]) -> str:
    """The hex sha256 that pins an artifact: its manifest's content, labels aside.

    Since the manifest holds every file's sha256, the digest pins every file too. Give it
    to :func:`load_artifacts` (``expected_digest``), ``abstractor ... --digest`` or the
    ``ABSTRACTOR_ARTIFACT_SHA256`` environment variable, from outside the folder.

    Parameters
    ----------
    manifest : dict or path-like
        A manifest, or an artifact directory (its manifest is read).
    """
    if not isinstance(manifest, dict):
        manifest = read_manifest(manifest)
    pinned = {key: value for key, value in manifest.items() if key not in UNPINNED_KEYS}
    canonical = json.dumps(pinned, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _recover(directory: Path) -> bool:
    """Put back the previous artifact left by a crash between the two renames of a save."""
    if not directory.parent.exists():
        return False
    with artifact_lock(directory):
        if directory.exists():
            return True
        stale = sorted(directory.parent.glob(f".{directory.name}.old-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
        if not stale:
            return False
        os.replace(stale[-1], directory)
    logger.warning("recovered %s from an interrupted save", directory)
    return True


def parse_manifest(path: Path) -> dict[str, Any]:
    """The JSON object of a manifest file of this package's format (any version).

    Raises
    ------
    ArtifactError
        If it cannot be read or parsed, or is not an artifact manifest.
    """
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an {FORMAT} manifest")
    return manifest


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check an artifact's manifest (not its files); opens nothing else.

    Raises
    ------
    PickledArtifactError
        For an artifact of the old pickled format (the message names the conversion).
    ArtifactError
        Missing directory or manifest, unparsable JSON, another format, a format version
        this package cannot read, or invalid labels.
    """
    directory = Path(directory)
    if not directory.exists() and not _recover(directory):
        raise ArtifactError(f"{directory}: no such model directory (train one with `abstractor train --out {directory}`)")
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory}: not a model directory (no {MANIFEST})")
    manifest = parse_manifest(path)
    version = manifest.get("format_version")
    if version in PICKLED_FORMAT_VERSIONS:
        raise PickledArtifactError(
            f"{directory}: this model was saved in the old pickled format (version {version}); loading it "
            f"would run code stored in its files, so it is refused. If you trust where it came from, convert "
            f"it once: `abstractor convert {directory} NEW_DIRECTORY --trust-pickles`"
        )
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version!r} is incompatible with this package "
            f"(reads version {FORMAT_VERSION}); retrain the model"
        )
    for key in ("files", "labels", "n_topics", "metric", "params", "model", "index", "documents"):
        if key not in manifest:
            raise ArtifactError(f"{path}: manifest lacks {key!r}")
    if not isinstance(manifest["files"], dict):
        raise ArtifactError(f"{path}: 'files' must be an object")
    labels, n_topics = manifest["labels"], manifest["n_topics"]
    if (not isinstance(n_topics, int) or not isinstance(labels, list) or len(labels) != n_topics
            or not all(isinstance(label, str) and 0 < len(label) <= MAX_LABEL_CHARS for label in labels)):
        raise ArtifactError(f"{path}: the labels must be {n_topics} strings of 1 to {MAX_LABEL_CHARS} characters")
    return manifest


def check_digest(manifest: dict[str, Any], expected_digest: str | None, where: object = "") -> None:
    """Compare the manifest's digest with ``expected_digest`` (or ``$ABSTRACTOR_ARTIFACT_SHA256``).

    Raises
    ------
    DigestMismatchError
        If a digest is pinned and differs.
    """
    expected = expected_digest if expected_digest is not None else os.environ.get(DIGEST_ENV_VAR, "").strip()
    if not expected:
        return
    actual = artifact_digest(manifest)
    if actual != expected.lower():
        source = "expected_digest" if expected_digest is not None else f"${DIGEST_ENV_VAR}"
        raise DigestMismatchError(
            f"{where}: the manifest's digest is {actual}, not the {expected.lower()} pinned by {source}: "
            "the model was changed or replaced since it was pinned; refusing to load it"
        )


def verify_artifacts(
    directory: str | os.PathLike[str],
    manifest: dict[str, Any] | None = None,
    checksums: bool = True,
    expected_digest: str | None = None,
) -> dict[str, Any]:
    """Check the pinned digest, and that every listed file exists with its size and sha256.

    Parameters
    ----------
    directory : path-like
    manifest : dict, optional
        Already read (else read here).
    checksums : bool
        Hash every file (else sizes only: for a server that verified them at start).
    expected_digest : str, optional
        The :func:`artifact_digest` the manifest must have; ``$ABSTRACTOR_ARTIFACT_SHA256``
        when not given.

    Raises
    ------
    ArtifactError
        Naming the first missing, truncated or modified file, an unsafe name, a component
        listing a file the manifest does not, or a digest mismatch.
    """
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    check_digest(manifest, expected_digest, directory)
    for name, info in manifest["files"].items():
        try:
            check_file_name(name)
        except UnsafeFileError as exc:
            raise ArtifactError(f"{directory / MANIFEST}: {exc}") from None
        path = directory / name
        if not isinstance(info, dict) or not isinstance(info.get("bytes"), int) or not isinstance(info.get("sha256"), str):
            raise ArtifactError(f"{directory / MANIFEST}: invalid entry for {name!r}")
        if path.is_symlink() or not path.is_file():
            raise ArtifactError(f"{path}: missing file (the artifact is incomplete)")
        size = path.stat().st_size
        if size != info["bytes"]:
            raise ArtifactError(f"{path}: truncated or modified ({size} bytes, expected {info['bytes']})")
        if checksums and sha256_file(path) != info["sha256"]:
            raise ArtifactError(f"{path}: checksum mismatch (the file was modified or is corrupt)")
    for component in ("model", "index", "documents", "lexical", "map", "embedding"):
        entry = manifest.get(component)
        unlisted = [n for n in (entry or {}).get("files", []) if n not in manifest["files"]] if isinstance(entry, dict) else []
        if unlisted:
            raise ArtifactError(f"{directory / MANIFEST}: the {component} needs {unlisted[0]!r}, which the manifest does not list")
    return manifest


def load_artifacts(
    directory: str | os.PathLike[str],
    mmap: bool = True,
    verify: bool = True,
    expected_digest: str | None = None,
):
    """Load a saved model; nothing stored in the folder is ever executed.

    Parameters
    ----------
    directory : path-like
    mmap : bool
        Memory-map large arrays (shared between processes).
    verify : bool
        Check every file's sha256 (sizes are always checked).
    expected_digest : str, optional
        Pin the manifest (:func:`artifact_digest`); ``$ABSTRACTOR_ARTIFACT_SHA256`` when
        not given.

    Returns
    -------
    tuple
        ``(model, index, documents, manifest)``: a fitted :class:`TopicModel`, a
        :class:`SimilarityIndex`, a :class:`DocumentTable` and the manifest dict.

    Raises
    ------
    ArtifactError
        For a missing, truncated, tampered, pickled or incompatible artifact.
    """
    from .index import SimilarityIndex
    from .model import TopicModel

    directory = Path(directory)
    manifest = verify_artifacts(directory, read_manifest(directory), checksums=verify, expected_digest=expected_digest)
    files = ListedFiles(directory, manifest["files"])
    try:
        model = TopicModel.load_files(files, manifest["params"], manifest["labels"], mmap=mmap)
        index = SimilarityIndex.load_files(files, manifest.get("index"), manifest["metric"], mmap=mmap)
        documents = DocumentTable.open(files, mmap=mmap)
    except (OSError, ValueError, KeyError, TypeError, ImportError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: cannot load model files ({type(exc).__name__}: {exc})") from exc
    n_topics = int(manifest["n_topics"])
    doc_topics = model.doc_topics_
    if (model.lda_.num_topics != n_topics or doc_topics.shape != (len(documents), n_topics)
            or index.vectors_.shape != doc_topics.shape or len(index) != int(manifest.get("n_documents", -1))):
        raise ArtifactError(f"{directory}: inconsistent shapes between the model, the index and the documents")
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
        lexical = LexicalIndex.load(ListedFiles(directory, manifest["files"]), mmap=mmap)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{directory}: cannot load the lexical index ({type(exc).__name__}: {exc})") from exc
    if len(lexical) != int(manifest["n_documents"]):
        raise ArtifactError(f"{directory}: the lexical index has {len(lexical)} rows for {manifest['n_documents']} documents")
    return lexical


def _load_optional(directory: str | os.PathLike[str], manifest: dict[str, Any], key: str, what: str,
                   load: Any, mmap: bool) -> Any:
    """An optional component (manifest entry ``key``) loaded with ``load(files, entry, mmap=...)``,
    or ``None`` when the artifact has none; checked against the number of documents."""
    entry = manifest.get(key)
    if not entry:
        return None
    try:
        component = load(ListedFiles(directory, manifest["files"]), entry, mmap=mmap)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{directory}: cannot load the {what} ({type(exc).__name__}: {exc})") from exc
    if len(component) != int(manifest["n_documents"]):
        raise ArtifactError(f"{directory}: the {what} has {len(component)} rows for {manifest['n_documents']} documents")
    return component


def load_map(directory: str | os.PathLike[str], manifest: dict[str, Any], mmap: bool = True) -> CorpusMap | None:
    """The artifact's corpus map (memory-mapped), or ``None`` if it was saved without one.

    Call after :func:`load_artifacts`, which has verified the files' sizes and checksums.

    Raises
    ------
    ArtifactError
        If the manifest lists a map that cannot be read or does not match the documents.
    """
    from .layout import CorpusMap

    return _load_optional(directory, manifest, "map", "corpus map", CorpusMap.load_files, mmap)


def load_embedding(directory: str | os.PathLike[str], manifest: dict[str, Any], mmap: bool = True) -> StaticEmbedding | None:
    """The artifact's static embeddings (memory-mapped), or ``None`` if it has none.

    Call after :func:`load_artifacts`, which has verified the files' sizes and checksums.

    Raises
    ------
    ArtifactError
        If the manifest lists embeddings that cannot be read or do not match the documents.
    """
    if not manifest.get("embedding"):
        return None
    try:
        from .embedding import StaticEmbedding
    except ImportError as exc:  # model2vec / tokenizers missing from this environment
        raise ArtifactError(f"{directory}: the model has static embeddings, which need model2vec "
                            f"(pip install model2vec): {exc}") from exc
    return _load_optional(directory, manifest, "embedding", "static embeddings", StaticEmbedding.load_files, mmap)


def save_label(directory: str | os.PathLike[str], topic: int, label: str) -> list[str]:
    """Change one topic's label in an artifact's manifest, atomically, under the lock.

    Only topic ``topic`` changes: the manifest is read from disk under the lock, so labels
    other processes saved meanwhile are kept. Returns the labels now on disk.

    Raises
    ------
    ArtifactError
        If the artifact cannot be read.
    IndexError
        If ``topic`` is not a topic of the artifact.
    """
    directory = Path(directory)
    with artifact_lock(directory):
        manifest = read_manifest(directory)
        n_topics = int(manifest["n_topics"])
        if isinstance(topic, bool) or not isinstance(topic, (int, np.integer)) or not 0 <= topic < n_topics:
            raise IndexError(f"topic must be an integer in [0, {n_topics}), not {topic!r}")
        if not isinstance(label, str) or not 0 < len(label) <= MAX_LABEL_CHARS:
            raise ValueError(f"a topic label must have 1 to {MAX_LABEL_CHARS} characters")
        manifest["labels"][int(topic)] = label
        atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
        return list(manifest["labels"])


def save_labels(directory: str | os.PathLike[str], labels: list[str]) -> None:
    """Set every label of an artifact at once (atomically, under the lock); prefer :func:`save_label`."""
    directory = Path(directory)
    with artifact_lock(directory):
        manifest = read_manifest(directory)
        if len(labels) != int(manifest["n_topics"]):
            raise ValueError(f"expected {manifest['n_topics']} labels, got {len(labels)}")
        manifest["labels"] = list(labels)
        atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
