"""Conversion of artifacts saved in the old pickled format (version 1), for trusted models only.

Version 1 stored the preprocessor with :mod:`pickle` and the dictionary and LDA model with
gensim's ``SaveLoad`` (pickle streams too): loading such a folder runs whatever its files
name. :func:`abstractor_widgets.store.load_artifacts` therefore refuses it, and this
module is the one place that still reads it, only when the caller says the folder is
trusted (``abstractor convert OLD NEW --trust-pickles``). The result is a version-2
artifact (JSON and ``.npy``) that loads without executing anything.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

from .fileio import ListedFiles, check_file_name, sha256_file
from .store import MANIFEST, PICKLED_FORMAT_VERSIONS, ArtifactError, DocumentTable, parse_manifest, save_artifacts

logger = logging.getLogger(__name__)

__all__ = ["convert_pickled_artifact"]


def _read_v1_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    manifest = parse_manifest(path)
    if manifest.get("format_version") not in PICKLED_FORMAT_VERSIONS:
        raise ArtifactError(f"{path}: format version {manifest.get('format_version')!r} is not the pickled format; nothing to convert")
    for name, info in manifest.get("files", {}).items():
        check_file_name(name)
        file = directory / name
        if not file.is_file() or file.stat().st_size != info["bytes"] or sha256_file(file) != info["sha256"]:
            raise ArtifactError(f"{file}: missing, truncated or modified (checksum mismatch)")
    return manifest


def convert_pickled_artifact(
    source: str | os.PathLike[str], target: str | os.PathLike[str], *, trust_pickles: bool = False
) -> Path:
    """Convert a version-1 (pickled) artifact into the current pickle-free format.

    Parameters
    ----------
    source : path-like
        The old artifact. Its pickles ARE executed: only for a folder you trust.
    target : path-like
        Where to write the converted artifact (atomically; may equal ``source``).
    trust_pickles : bool
        Must be ``True``: the explicit statement that ``source`` is trusted.

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    PermissionError
        Without ``trust_pickles``.
    ArtifactError
        If ``source`` is not an intact version-1 artifact.
    """
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    from .index import SimilarityIndex
    from .lexical import PREFIX, LexicalIndex
    from .model import TopicModel

    if trust_pickles is not True:
        raise PermissionError("converting a pickled artifact runs the code its files contain: pass trust_pickles=True "
                              "(`--trust-pickles`) only for a model from a source you trust")
    source = Path(source)
    manifest = _read_v1_manifest(source)
    files = ListedFiles(source, manifest["files"])
    try:
        with open(files.path("preprocessor.pkl"), "rb") as handle:
            preprocessor = pickle.load(handle)  # trusted by the caller
        dictionary = Dictionary.load(str(files.path("dictionary.gensim")))
        lda = LdaModel.load(str(files.path("lda.gensim")))
        doc_topics = files.array("doc_topics.npy", mmap=False)
        vectors = files.array("vectors.npy", mmap=False)
        documents = DocumentTable.open(files, mmap=False)
        lexical = LexicalIndex.load(files, mmap=False) if f"{PREFIX}json" in files else None
    except (OSError, ValueError, KeyError, pickle.UnpicklingError, AttributeError) as exc:
        raise ArtifactError(f"{source}: cannot read the pickled artifact ({type(exc).__name__}: {exc})") from exc
    params = {k: v for k, v in manifest["params"].items() if k != "preprocessor"}
    model = TopicModel(**params)._restore(preprocessor, dictionary, lda, manifest["labels"], doc_topics)
    index = SimilarityIndex.from_vectors(vectors, metric=manifest["metric"])
    index.load_extra(files, manifest.get("index"))
    extra = {key: manifest[key] for key in ("updates",) if key in manifest}
    extra["converted_from"] = {"format_version": manifest["format_version"], "created": manifest.get("created")}
    target = save_artifacts(target, model, index, documents, corpus_info=manifest.get("corpus"),
                            extra_manifest=extra, lexical=lexical)
    logger.info("converted %s (pickled format %s) into %s", source, manifest["format_version"], target)
    return target
