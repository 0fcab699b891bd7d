"""Static sentence embeddings (Model2Vec): the hybrid ranking's fourth signal.

A *static* embedding model (`model2vec <https://github.com/MinishLab/model2vec>`_) keeps
one vector per token of a sentence transformer's vocabulary, distilled from the
transformer (here all-MiniLM-L6-v2, ``scripts/distill_static.py``). A text's vector is the
mean of its tokens' vectors: a tokenizer call and a table lookup in numpy, no neural
network at query time, no PyTorch in the kernel.

The model and the corpus's document vectors are saved with the artifact as arrays and
JSON (no pickle, nothing executed; see ``docs/security.md``)::

    embedding.tokens.npy        float16/float32 (V, d): the token table
    embedding.tokenizer.json    the tokenizer (Hugging Face ``tokenizers`` JSON: data, parsed
                                by the Rust library, never run)
    embedding.documents.npy     float16 (N, d): every document's unit vector (row i = document i)

and memory-mapped on load. :meth:`StaticEmbedding.from_pretrained` reads a distilled
model's directory (``model.safetensors``, ``tokenizer.json``, ``config.json``) the same
way; :meth:`StaticEmbedding.fit` embeds the documents.

Examples
--------
>>> embedding = StaticEmbedding.from_pretrained("artifacts/static-minilm")   # doctest: +SKIP
>>> embedding.fit(["title. abstract", ...])                                 # doctest: +SKIP
>>> embedding.encode_one("a pasted abstract").shape                         # doctest: +SKIP
(256,)
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .index import row_array

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDING_FILES", "EmbeddingError", "StaticEmbedding", "document_text"]

TOKENS_FILE = "embedding.tokens.npy"
TOKENIZER_FILE = "embedding.tokenizer.json"
DOCUMENTS_FILE = "embedding.documents.npy"
EMBEDDING_FILES = (TOKENS_FILE, TOKENIZER_FILE, DOCUMENTS_FILE)
#: Bounds on what a model directory may hold (a hostile file must not exhaust memory).
MAX_TOKENIZER_BYTES = 32 * 2**20
MAX_VOCABULARY = 2_000_000
MAX_DIM = 4096
#: Tokens embedded per text (the transformer's own limit; longer texts are truncated).
MAX_TOKENS = 512
#: Texts embedded per call when embedding a corpus (bounds the memory of one batch).
BATCH = 2048
#: Words whose word pieces are remembered by the query path (bounds its memory).
WORD_CACHE_MAX = 200_000

# The query path's shortcut for ASCII text under a BERT tokenizer (lower-casing normaliser,
# BertPreTokenizer, WordPiece): what the Rust pipeline does, in three string operations and
# a per-word cache. Control characters are dropped (tab, newline and return are spaces),
# words are runs of letters and digits, every ASCII punctuation character is a word.
_ASCII_CONTROL = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")


class EmbeddingError(ValueError):
    """A static model or its saved arrays cannot be used (missing, malformed, too large)."""


def document_text(title: str, text: str) -> str:
    """The text a document is embedded from: ``"title. abstract"`` (the title alone is a
    strong summary; a typed query has no title and is embedded as it is)."""
    title = (title or "").strip()
    return f"{title}. {text}" if title else text


def _tokenizer_from_json(payload: str) -> Any:
    from tokenizers import Tokenizer

    if len(payload.encode("utf-8")) > MAX_TOKENIZER_BYTES:
        raise EmbeddingError(f"the tokenizer is larger than {MAX_TOKENIZER_BYTES} bytes")
    try:
        return Tokenizer.from_str(payload)
    except Exception as exc:  # the Rust parser raises its own exception type
        raise EmbeddingError(f"the tokenizer cannot be read ({exc})") from exc


def _check_table(vectors: np.ndarray, n_tokens: int) -> None:
    if vectors.ndim != 2 or not 0 < vectors.shape[1] <= MAX_DIM:
        raise EmbeddingError(f"the token table must be (V, d) with 0 < d <= {MAX_DIM}, not {vectors.shape}")
    if vectors.dtype not in (np.float16, np.float32):
        raise EmbeddingError(f"the token table must be float16 or float32, not {vectors.dtype}")
    if len(vectors) != n_tokens or n_tokens > MAX_VOCABULARY:
        raise EmbeddingError(f"the token table has {len(vectors)} rows for a vocabulary of {n_tokens} tokens")


def _is_plain_bert(tokenizer: Any) -> bool:
    """Whether the tokenizer is exactly a lower-casing BERT WordPiece one (the query path's shortcut)."""
    from tokenizers import models, normalizers, pre_tokenizers

    normalizer = tokenizer.normalizer
    return (isinstance(normalizer, normalizers.BertNormalizer) and normalizer.lowercase is True
            and normalizer.clean_text is True and normalizer.strip_accents in (None, True)
            and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
            and isinstance(tokenizer.model, models.WordPiece))


class StaticEmbedding:
    """A static embedding model and the unit vectors of the corpus's documents.

    Parameters
    ----------
    vectors : numpy.ndarray (V, d), float16 or float32
        One vector per token id of ``tokenizer``.
    tokenizer : tokenizers.Tokenizer
    source : dict, optional
        Where the model came from (teacher, dimensions, ...), kept in the manifest.

    Attributes
    ----------
    documents_ : numpy.ndarray (N, d), float16
        Unit vector of each document (after :meth:`fit` or loading).
    """

    def __init__(self, vectors: np.ndarray, tokenizer: Any, source: dict[str, Any] | None = None) -> None:
        from model2vec import StaticModel

        _check_table(vectors, tokenizer.get_vocab_size())
        # model2vec encodes (tokenize, look up, average); normalising is done here, in float32
        self.model = StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=False, max_length=MAX_TOKENS)
        self.source = dict(source or {})
        self.documents_: np.ndarray | None = None
        self._fast = _is_plain_bert(tokenizer)
        self._word_pieces: dict[str, tuple[int, ...]] = {}

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | Path) -> StaticEmbedding:
        """Read a distilled Model2Vec directory (``model.safetensors``, ``tokenizer.json``,
        ``config.json``), as written by ``scripts/distill_static.py``.

        Only those three files are opened; the tensors are read with ``safetensors``
        (a format with no code in it) and nothing is fetched from the network.

        Raises
        ------
        EmbeddingError
            If a file is missing, malformed or too large.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        directory = Path(directory)
        paths = {name: directory / name for name in ("model.safetensors", "tokenizer.json", "config.json")}
        missing = [name for name, path in paths.items() if not path.is_file()]
        if missing:
            raise EmbeddingError(f"{directory} is not a static model directory: no {', '.join(missing)} "
                                 "(build one with scripts/distill_static.sh)")
        try:
            config = json.loads(paths["config.json"].read_text(encoding="utf-8"))
            tensors = load_file(str(paths["model.safetensors"]))
        except (OSError, ValueError, SafetensorError) as exc:
            raise EmbeddingError(f"{directory}: cannot read the static model ({exc})") from exc
        if not isinstance(config, dict) or "embeddings" not in tensors:
            raise EmbeddingError(f"{directory}: model.safetensors has no 'embeddings' tensor")
        if "mapping" in tensors or "weights" in tensors:
            raise EmbeddingError(f"{directory}: vocabulary-quantised models are not supported")
        tokenizer = _tokenizer_from_json(paths["tokenizer.json"].read_text(encoding="utf-8"))
        source = {key: config[key] for key in ("model_type", "apply_pca", "sif_coefficient", "hidden_dim", "pooling")
                  if key in config and isinstance(config[key], (str, int, float, bool, type(None)))}
        source["teacher"] = str(config.get("teacher", Path(str(config.get("tokenizer_name", "unknown"))).name))[:200]
        return cls(np.ascontiguousarray(tensors["embeddings"]), tokenizer, source)

    def fit(self, texts: Sequence[str], progress: bool = False) -> StaticEmbedding:
        """Embed the corpus's documents (``texts``, in row order); sets :attr:`documents_`."""
        start = time.perf_counter()
        self.documents_ = self._encode_many(texts, progress)
        self.source["documents_seconds"] = round(time.perf_counter() - start, 2)
        return self

    def add(self, texts: Sequence[str]) -> np.ndarray:
        """Append the vectors of new documents (``Abstractor.update``); returns their rows."""
        self._check_fitted()
        new = self._encode_many(texts, progress=False)
        first = len(self.documents_)
        self.documents_ = np.concatenate([np.asarray(self.documents_), new])
        return np.arange(first, first + len(new))

    # -- encoding ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.model.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (float32, shape ``(len(texts), d)``); zeros for a text with no token."""
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self.model.encode(list(texts), use_multiprocessing=False, show_progress_bar=False),
                             dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

    def encode_one(self, text: str) -> np.ndarray:
        """The unit vector (float32, ``(d,)``) of one text; zeros if it has no token.

        The same vector as :meth:`encode`; for ASCII text under a BERT tokenizer it is
        computed without the full tokenizer pipeline (a per-word cache of word pieces),
        about 5 times faster.
        """
        if not (self._fast and text.isascii()):
            return self.encode([text])[0]
        ids: list[int] = []
        pieces = self._word_pieces
        text = text[: MAX_TOKENS * self.model.median_token_length]  # as model2vec cuts a text before tokenizing
        for word in _ASCII_WORDS.findall(text.translate(_ASCII_CONTROL).lower()):
            known = pieces.get(word)
            if known is None:
                known = tuple(token.id for token in self.model.tokenizer.model.tokenize(word))
                if len(pieces) < WORD_CACHE_MAX:
                    pieces[word] = known
            ids.extend(known)
            if len(ids) >= MAX_TOKENS:
                break
        unk = self.model.unk_token_id
        ids = [i for i in ids[:MAX_TOKENS] if i != unk]
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        vector = np.asarray(self.model.embedding[ids], dtype=np.float32).mean(axis=0)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else np.zeros(self.dim, dtype=np.float32)

    def _encode_many(self, texts: Sequence[str], progress: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float16)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="static embeddings", unit="doc")
        for start in range(0, len(texts), BATCH):
            chunk = list(texts[start : start + BATCH])
            out[start : start + len(chunk)] = self.encode(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return out

    # -- ranking ----------------------------------------------------------------------------
    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored unit vectors of documents ``rows`` (float32, ``(len(rows), d)``)."""
        self._check_fitted()
        return np.asarray(self.documents_[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def similarity(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of a unit query vector to documents ``rows``, clipped to [0, 1]."""
        if not len(rows) or not np.any(query):
            return np.zeros(len(rows), dtype=np.float32)
        return np.clip(self.vectors(rows) @ np.asarray(query, dtype=np.float32), 0.0, 1.0)

    def nearest(self, query: np.ndarray, k: int, exclude_rows: Sequence[int] = ()) -> np.ndarray:
        """Rows of the ``k`` documents most similar to a unit query vector, best first
        (an exact scan, in blocks of :data:`BATCH` rows, ties by row)."""
        self._check_fitted()
        if k <= 0 or not np.any(query):
            return np.zeros(0, dtype=np.int64)
        query = np.asarray(query, dtype=np.float32)
        scores = np.empty(len(self.documents_), dtype=np.float32)
        for start in range(0, len(scores), 8 * BATCH):
            block = np.asarray(self.documents_[start : start + 8 * BATCH], dtype=np.float32)
            scores[start : start + len(block)] = block @ query
        excluded = row_array(exclude_rows)
        excluded = excluded[(excluded >= 0) & (excluded < len(scores))]
        scores[excluded] = -np.inf
        k = min(int(k), len(scores) - len(np.unique(excluded)))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        top = np.argpartition(-scores, k - 1)[:k]
        return top[np.lexsort((top, -scores[top]))].astype(np.int64)

    def __len__(self) -> int:
        return 0 if self.documents_ is None else len(self.documents_)

    def _check_fitted(self) -> None:
        if self.documents_ is None:
            raise RuntimeError("no document vectors yet: call fit() first")

    # -- files ------------------------------------------------------------------------------
    def save_files(self, directory: str | Path) -> dict[str, Any]:
        """Write the ``embedding.*`` files; returns the manifest entry."""
        self._check_fitted()
        directory = Path(directory)
        np.save(directory / TOKENS_FILE, np.ascontiguousarray(self.model.embedding), allow_pickle=False)
        (directory / TOKENIZER_FILE).write_text(self.model.tokenizer.to_str(), encoding="utf-8")
        np.save(directory / DOCUMENTS_FILE, np.ascontiguousarray(self.documents_, dtype=np.float16), allow_pickle=False)
        return {"kind": "model2vec", "dim": self.dim, "vocabulary": int(len(self.model.embedding)),
                "n_documents": len(self), "max_tokens": MAX_TOKENS, "source": self.source, "files": list(EMBEDDING_FILES)}

    @classmethod
    def load_files(cls, files: Any, entry: dict[str, Any], mmap: bool = True) -> StaticEmbedding:
        """Open the embedding written by :meth:`save_files` from the artifact's listed files
        (``fileio.ListedFiles``); the two tables are memory-mapped.

        Raises
        ------
        EmbeddingError
            If the files do not match the entry.
        """
        if not isinstance(entry, dict) or entry.get("kind") != "model2vec":
            raise EmbeddingError("unsupported embedding entry")
        tokenizer = _tokenizer_from_json(files.path(TOKENIZER_FILE).read_text(encoding="utf-8"))
        vectors = files.array(TOKENS_FILE, mmap=mmap)
        embedding = cls(vectors, tokenizer, entry.get("source") if isinstance(entry.get("source"), dict) else None)
        documents = files.array(DOCUMENTS_FILE, mmap=mmap)
        if documents.ndim != 2 or documents.dtype != np.float16 or documents.shape[1] != embedding.dim:
            raise EmbeddingError(f"{DOCUMENTS_FILE} must be float16 (N, {embedding.dim}), not {documents.dtype} {documents.shape}")
        if int(entry.get("dim", -1)) != embedding.dim or int(entry.get("n_documents", -1)) != len(documents):
            raise EmbeddingError("the embedding's arrays do not match its manifest entry")
        embedding.documents_ = documents
        return embedding

    def __repr__(self) -> str:
        return f"StaticEmbedding(dim={self.dim}, vocabulary={len(self.model.embedding)}, documents={len(self)})"
