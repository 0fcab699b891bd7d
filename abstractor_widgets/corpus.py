"""Corpora of research abstracts: loading, cleaning and streaming.

A :class:`Corpus` is an ordered collection of documents with five string fields:
``id``, ``title``, ``text`` (the abstract), ``categories`` (space-separated arXiv
categories, primary first) and ``published`` (``YYYY-MM-DD`` or ``''``).

Sources
-------
* a pandas ``DataFrame`` (:meth:`Corpus.from_frame`);
* ``.parquet``, ``.csv``, ``.jsonl`` / ``.json`` files, optionally ``.gz`` compressed
  (:meth:`Corpus.from_path`);
* the Kaggle "arXiv metadata snapshot" (JSON lines with ``id``, ``title``,
  ``abstract``, ``categories``, ``update_date``, ``versions`` ...), read *streaming*
  with a category filter so that a multi-GB file is never held whole
  (:func:`iter_arxiv_snapshot`, :meth:`Corpus.from_arxiv_snapshot`).

Examples
--------
>>> import pandas as pd
>>> corpus = Corpus.from_frame(pd.DataFrame({"id": ["1"], "abstract": ["A short text."]}))
>>> corpus[0].text
'A short text.'
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FIELDS = ("id", "title", "text", "categories", "published")

#: Environment variable that overrides the default corpus path.
CORPUS_ENV_VAR = "ABSTRACTOR_CORPUS"

# Accepted spellings of each field in input files, in order of preference.
_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "arxiv_id", "doc_id", "paper_id"),
    "title": ("title",),
    "text": ("text", "abstract", "summary"),
    "categories": ("categories", "category", "tags"),
    "published": ("published", "update_date", "date", "year"),
}
_REQUIRED = ("id", "text")
_WHITESPACE = re.compile(r"\s+")
_ARXIV_VERSION = re.compile(r"v\d+$")


class CorpusError(ValueError):
    """A corpus file or frame cannot be used (missing file, columns or bad records)."""


class CorpusWarning(UserWarning):
    """Documents were dropped or merged while cleaning a corpus."""


@dataclass(frozen=True, slots=True)
class Document:
    """One paper of a corpus.

    Attributes
    ----------
    id : str
        arXiv identifier without version (or any unique id for other corpora).
    title : str
        Paper title (may be empty).
    text : str
        The abstract, as given.
    categories : str
        Space-separated categories, primary first; ``''`` when unknown.
    published : str
        ``YYYY-MM-DD`` or ``''``.
    """

    id: str
    title: str
    text: str
    categories: str = ""
    published: str = ""

    @property
    def primary_category(self) -> str:
        """The first-listed category, or ``''``."""
        return self.categories.split(" ", 1)[0] if self.categories else ""

    @property
    def url(self) -> str:
        """The paper's arXiv abstract page."""
        return arxiv_url(self.id)

    def to_dict(self) -> dict[str, str]:
        """The document as a plain dict (field name → value)."""
        return {f: getattr(self, f) for f in FIELDS}


def arxiv_url(doc_id: str) -> str:
    """Return ``https://arxiv.org/abs/<id>`` for an arXiv identifier."""
    return f"https://arxiv.org/abs/{doc_id}"


def default_corpus_path() -> Path | None:
    """Locate the default corpus.

    The environment variable ``ABSTRACTOR_CORPUS`` wins; otherwise the shared arXiv ML
    corpus ``../shared/data/arxiv_ml_abstracts.parquet`` is searched next to the current
    directory and next to this package's checkout.

    Returns
    -------
    pathlib.Path or None
        The path, or ``None`` when no default corpus exists on this machine.
    """
    env = os.environ.get(CORPUS_ENV_VAR)
    if env:
        return Path(env).expanduser()
    relative = Path("shared") / "data" / "arxiv_ml_abstracts.parquet"
    checkout = Path(__file__).resolve().parent.parent
    for start in (Path.cwd().resolve(), checkout):
        for base in (start, *list(start.parents)[:3]):
            if (base / relative).is_file():
                return base / relative
    return None


class Corpus(Sequence[Document]):
    """An ordered, cleaned collection of :class:`Document`.

    Parameters
    ----------
    frame : pandas.DataFrame
        A frame with exactly the columns ``id, title, text, categories, published``
        (strings). Use the ``from_*`` constructors for anything else: they map column
        names, clean the records and warn about what they drop.
    name : str, optional
        Where the corpus came from (a path or a description), used in messages.
    """

    def __init__(self, frame: pd.DataFrame, name: str = "<frame>") -> None:
        missing = [f for f in FIELDS if f not in frame.columns]
        if missing:
            raise CorpusError(f"{name}: missing column(s) {missing}")
        self._frame = frame.loc[:, list(FIELDS)].reset_index(drop=True)
        self.name = name
        self.dropped: dict[str, int] = {}

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "<frame>") -> Corpus:
        """Build a corpus from any frame with an id and a text column.

        Column names are matched case-insensitively against common spellings
        (``abstract``/``summary`` for the text, ``update_date`` for the date ...).
        Rows with an empty text are dropped, duplicate ids keep their first row; both
        are counted in :attr:`dropped` and reported with a :class:`CorpusWarning`.

        Raises
        ------
        CorpusError
            If the id or text column is missing, or nothing is left after cleaning.
        TypeError
            If ``frame`` is not a DataFrame.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        lower = {str(c).lower(): c for c in frame.columns}
        columns: dict[str, Any] = {}
        for field, aliases in _ALIASES.items():
            source = next((lower[a] for a in aliases if a in lower), None)
            if source is None:
                if field in _REQUIRED:
                    raise CorpusError(
                        f"{name}: no {field!r} column (looked for {', '.join(aliases)}; "
                        f"found {', '.join(map(str, frame.columns)) or 'no columns'})"
                    )
                columns[field] = pd.Series([""] * len(frame), index=frame.index, dtype=object)
            else:
                columns[field] = frame[source]
        clean = pd.DataFrame({f: _as_str(columns[f]) for f in FIELDS})
        clean["id"] = clean["id"].str.strip().str.replace(_ARXIV_VERSION, "", regex=True)
        clean["title"] = clean["title"].str.replace(_WHITESPACE, " ", regex=True).str.strip()
        clean["categories"] = clean["categories"].str.replace(_WHITESPACE, " ", regex=True).str.strip()
        return cls._cleaned(clean, name)

    @classmethod
    def _cleaned(cls, clean: pd.DataFrame, name: str) -> Corpus:
        dropped: dict[str, int] = {}
        empty = (clean["text"].str.strip() == "") | (clean["id"] == "")
        if empty.any():
            dropped["empty"] = int(empty.sum())
            clean = clean[~empty]
        duplicated = clean["id"].duplicated(keep="first")
        if duplicated.any():
            dropped["duplicate_ids"] = int(duplicated.sum())
            clean = clean[~duplicated]
        if dropped:
            detail = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in dropped.items())
            warnings.warn(f"{name}: dropped {detail} document(s)", CorpusWarning, stacklevel=3)
        if clean.empty:
            raise CorpusError(f"{name}: no documents with an id and a non-empty text")
        corpus = cls(clean, name=name)
        corpus.dropped = dropped
        return corpus

    @classmethod
    def from_documents(cls, documents: Iterable[Document | dict], name: str = "<documents>") -> Corpus:
        """Build a corpus from :class:`Document` objects or dicts with the same fields."""
        rows = [d.to_dict() if isinstance(d, Document) else dict(d) for d in documents]
        if not rows:
            raise CorpusError(f"{name}: no documents")
        return cls.from_frame(pd.DataFrame(rows), name=name)

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        categories: Iterable[str] | None = None,
        limit: int | None = None,
        progress: bool = False,
    ) -> Corpus:
        """Load a corpus file, choosing the reader by the file's suffix.

        Parameters
        ----------
        path : path-like
            ``.parquet``, ``.csv``, ``.jsonl``/``.json`` (JSON lines; Kaggle arXiv
            snapshot or one object per line with an id and a text field), optionally
            compressed (``.gz``, ``.bz2``, ``.zip``).
        categories : iterable of str, optional
            Keep only documents listing one of these categories (``"cs.*"`` matches an
            archive). Applied while streaming for JSON lines.
        limit : int, optional
            Keep at most this many documents (after filtering).
        progress : bool
            Show a progress bar while streaming JSON lines.

        Raises
        ------
        CorpusError
            If the file is missing, unreadable, of an unknown type or lacks columns.
        """
        path = Path(path)
        if not path.exists():
            raise CorpusError(f"{path}: no such file")
        if path.is_dir():
            raise CorpusError(f"{path}: is a directory, expected a corpus file")
        suffixes = [s.lower() for s in path.suffixes]
        kind = next((s for s in reversed(suffixes) if s in {".parquet", ".pq", ".csv", ".jsonl", ".json", ".ndjson"}), None)
        try:
            if kind in {".parquet", ".pq"}:
                frame = pd.read_parquet(path)
            elif kind == ".csv":
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            elif kind in {".jsonl", ".json", ".ndjson"}:
                docs = iter_arxiv_snapshot(path, categories=categories, progress=progress)
                if limit is not None:
                    docs = _take(docs, limit)
                frame = pd.DataFrame([d.to_dict() for d in docs], columns=list(FIELDS))
                if frame.empty:
                    what = f" in categories {sorted(categories)}" if categories else ""
                    raise CorpusError(f"{path}: no documents{what}")
                return cls._cleaned(frame, str(path))
            else:
                raise CorpusError(
                    f"{path}: unknown corpus format {''.join(path.suffixes) or '(no suffix)'}; "
                    "expected .parquet, .csv, .jsonl or .json"
                )
        except CorpusError:
            raise
        except Exception as exc:  # pandas / pyarrow raise many types for bad files
            raise CorpusError(f"{path}: cannot read {kind[1:]} file: {exc}") from exc
        corpus = cls.from_frame(frame, name=str(path))
        if categories is not None:
            corpus = corpus.filter_categories(categories)
        if limit is not None:
            corpus = corpus.head(limit)
        return corpus

    @classmethod
    def from_arxiv_snapshot(
        cls,
        path: str | os.PathLike[str],
        categories: Iterable[str] | None = None,
        limit: int | None = None,
        progress: bool = True,
    ) -> Corpus:
        """Stream the Kaggle arXiv metadata snapshot, keeping only some categories.

        See :func:`iter_arxiv_snapshot`; memory grows with the documents kept, not with
        the size of the file.
        """
        return cls.from_path(path, categories=categories, limit=limit, progress=progress)

    # -- sequence protocol ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._frame)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            sub = Corpus(self._frame.iloc[index], name=self.name)
            return sub
        row = self._frame.iloc[int(index)]
        return Document(*(row[f] for f in FIELDS))

    def __iter__(self) -> Iterator[Document]:
        for values in self._frame.itertuples(index=False, name=None):
            yield Document(*values)

    def __repr__(self) -> str:
        return f"Corpus({len(self)} documents from {self.name})"

    # -- views ----------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the underlying frame (columns ``id, title, text, categories, published``)."""
        return self._frame.copy()

    @property
    def ids(self) -> list[str]:
        """Document ids, in corpus order."""
        return self._frame["id"].tolist()

    @property
    def texts(self) -> list[str]:
        """Abstracts, in corpus order."""
        return self._frame["text"].tolist()

    def head(self, n: int) -> Corpus:
        """The first ``n`` documents."""
        return self[: max(0, int(n))]

    def sample(self, n: int, seed: int = 0) -> Corpus:
        """``n`` documents drawn without replacement (all of them if ``n >= len``), in corpus order."""
        n = min(int(n), len(self))
        rows = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return Corpus(self._frame.iloc[rows], name=f"{self.name}[sample {n}, seed {seed}]")

    def filter_categories(self, categories: Iterable[str]) -> Corpus:
        """Documents listing at least one of ``categories`` (``"cs.*"`` matches an archive)."""
        match = CategoryFilter(categories)
        keep = self._frame["categories"].map(match)
        return Corpus(self._frame[keep], name=f"{self.name}[{match}]")

    def content_hash(self) -> str:
        """A sha256 over ids and texts: identifies the training data in a manifest."""
        import hashlib

        digest = hashlib.sha256()
        for doc_id, text in zip(self._frame["id"], self._frame["text"]):
            digest.update(doc_id.encode("utf-8", "surrogatepass"))
            digest.update(b"\x00")
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x01")
        return digest.hexdigest()

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the corpus atomically (temporary file, then rename)."""
        from .fileio import atomic_write_path

        path = Path(path)
        with atomic_write_path(path) as tmp:
            self._frame.to_parquet(tmp, index=False)
        return path


class CategoryFilter:
    """A predicate on a space-separated category string.

    ``CategoryFilter(["stat.ML", "cs.*"])("cs.LG math.ST")`` is true. ``None`` or an
    empty list accepts everything.
    """

    def __init__(self, categories: Iterable[str] | None) -> None:
        if isinstance(categories, str):
            categories = categories.replace(",", " ").split()
        wanted = [c.strip() for c in (categories or []) if c and c.strip()]
        self.exact = frozenset(c for c in wanted if not c.endswith(".*") and c != "*")
        self.prefixes = tuple(c[:-1] for c in wanted if c.endswith(".*"))
        self.accept_all = not wanted or "*" in wanted

    def __call__(self, categories: str) -> bool:
        if self.accept_all:
            return True
        for category in categories.split():
            if category in self.exact or (self.prefixes and category.startswith(self.prefixes)):
                return True
        return False

    def __str__(self) -> str:
        return "*" if self.accept_all else " ".join(sorted(self.exact) + [p + "*" for p in self.prefixes])


def _open_binary(path: Path) -> IO[bytes]:
    """Open a possibly compressed file for streaming reads of raw lines (bytes).

    Lines stay bytes so that the pre-filter needs no decoding and a bad UTF-8 sequence is
    reported by ``json.loads`` with the file and line number, in every format.
    """
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/")]
        if len(members) != 1:
            archive.close()
            raise CorpusError(f"{path}: expected one file in the zip archive, found {len(members)}")
        return archive.open(members[0])
    return open(path, "rb")


_CATEGORIES_KEY = b'"categories":"'


def _raw_categories(raw: bytes) -> str | None:
    """The ``categories`` value sliced out of a raw compact JSON line, or ``None``.

    A JSON string cannot hold an unescaped ``"``, so in a compact line (the Kaggle
    snapshot's) the bytes ``"categories":"`` can only be that key, and its value ends at
    the next ``"`` unless it holds an escape. ``None`` (parse the line instead) when the
    key is absent, appears twice, is spaced differently or its value holds a backslash.
    """
    i = raw.find(_CATEGORIES_KEY)
    if i < 0 or raw.find(_CATEGORIES_KEY, i + 1) >= 0:
        return None
    i += len(_CATEGORIES_KEY)
    j = raw.find(b'"', i)
    if j < 0 or b"\\" in raw[i:j]:
        return None
    return raw[i:j].decode("utf-8", "replace")


_CREATED = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|6[01]) GMT"
)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def _collapse(text: str) -> str:
    """Whitespace runs to one space, stripped (same as ``_WHITESPACE.sub(" ", text).strip()``, 4x faster)."""
    return " ".join(text.split())


def _published(record: dict[str, Any]) -> str:
    """``YYYY-MM-DD`` of the first version (snapshot) or of a date field."""
    versions = record.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[0], dict):
        created = versions[0].get("created")
        if isinstance(created, str):
            fast = _CREATED.fullmatch(created)  # the snapshot's form, without strptime's cost
            if fast:
                try:
                    return date(int(fast.group(3)), _MONTHS[fast.group(2)], int(fast.group(1))).isoformat()
                except ValueError:
                    pass
            try:
                return datetime.strptime(created, "%a, %d %b %Y %H:%M:%S %Z").strftime("%Y-%m-%d")
            except ValueError:
                pass
    for key in _ALIASES["published"]:
        value = record.get(key)
        if value:
            return str(value)[:10]
    return ""


def iter_arxiv_snapshot(
    path: str | os.PathLike[str],
    categories: Iterable[str] | None = None,
    progress: bool = False,
    errors: str = "raise",
) -> Iterator[Document]:
    """Stream documents from a JSON-lines file such as the Kaggle arXiv snapshot.

    Each line is one JSON object; the fields are found by the same aliases as
    :meth:`Corpus.from_frame` (``abstract`` for the text, ``versions[0].created`` or
    ``update_date`` for the date). Whitespace in titles and abstracts is collapsed, as in
    the shared corpus. Only one line is held at a time.

    Parameters
    ----------
    path : path-like
        The file (``.json``/``.jsonl``, optionally ``.gz``/``.bz2``/``.zip``).
    categories : iterable of str, optional
        Keep only records listing one of these (``"cs.*"`` matches an archive). The
        category test runs on the raw line first (the wanted names must occur in it, and
        the ``"categories":"..."`` value sliced out of it must match), so skipped records
        are not parsed; a parsed record's categories are tested before it is built.
    progress : bool
        Show a tqdm bar over bytes read.
    errors : {"raise", "skip"}
        What to do with a malformed line: raise :class:`CorpusError` naming the file and
        line number, or skip it (counted and reported with a :class:`CorpusWarning`).

    Yields
    ------
    Document
    """
    if errors not in {"raise", "skip"}:
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    match = CategoryFilter(categories)
    quick_tokens = None if match.accept_all or match.prefixes else [c.encode() for c in match.exact]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"reading {path.name}")
    skipped = 0
    try:
        handle = _open_binary(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise CorpusError(f"{path}: cannot open: {exc}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if bar is not None:
                bar.update(len(raw))
            if not match.accept_all:
                # cheap pre-filters: a wanted category must appear somewhere in the line ...
                if quick_tokens is not None and not any(t in raw for t in quick_tokens):
                    continue
                # ... and the categories value, when it can be sliced out exactly, must match
                raw_categories = _raw_categories(raw)
                if raw_categories is not None and not match(raw_categories):
                    continue
            if raw.isspace():
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                if errors == "raise":
                    raise CorpusError(f"{path}:{number}: malformed JSON line: {exc}") from exc
                skipped += 1
                continue
            doc = _document_from_record(record, match)
            if doc is False:  # other categories
                continue
            if doc is None:
                if errors == "raise":
                    raise CorpusError(f"{path}:{number}: record has no id or no abstract/text field")
                skipped += 1
                continue
            yield doc
    if bar is not None:
        bar.close()
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed line(s)", CorpusWarning, stacklevel=2)


def _document_from_record(record: dict[str, Any], match: CategoryFilter | None = None) -> Document | None | bool:
    """The record's Document; ``None`` without an id or a text field; ``False`` if ``match`` rejects it."""

    def first(field: str) -> str:
        for key in _ALIASES[field]:
            value = record.get(key)
            if value is not None:
                return value if isinstance(value, str) else str(value)
        return ""

    categories = _collapse(first("categories"))
    if match is not None and not match(categories):
        return False
    doc_id = _ARXIV_VERSION.sub("", first("id").strip())
    if not doc_id or not any(record.get(k) is not None for k in _ALIASES["text"]):
        return None
    # a blank abstract is kept here and dropped (and counted) by Corpus cleaning
    return Document(
        id=doc_id,
        title=_collapse(first("title")),
        text=_collapse(first("text")),
        categories=categories,
        published=_published(record),
    )


def _take(items: Iterator[Document], n: int) -> Iterator[Document]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


def _as_str(series: pd.Series) -> pd.Series:
    """Strings everywhere: missing values become ``''``."""
    return series.astype(object).where(series.notna(), "").map(lambda v: v if isinstance(v, str) else str(v))


def load_corpus(
    path: str | os.PathLike[str] | None = None,
    *,
    categories: Iterable[str] | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> Corpus:
    """Load ``path``, or the default corpus (see :func:`default_corpus_path`).

    Raises
    ------
    CorpusError
        If no path is given and no default corpus exists.
    """
    if path is None:
        path = default_corpus_path()
        if path is None:
            raise CorpusError(
                "no corpus given and no default corpus found: pass a path or set "
                f"{CORPUS_ENV_VAR} (the default is ../shared/data/arxiv_ml_abstracts.parquet)"
            )
    return Corpus.from_path(path, categories=categories, limit=limit, progress=progress)
