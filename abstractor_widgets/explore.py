"""Exploring the whole corpus: readable topic names, topics over time, filters and export.

Everything here is computed from what an artifact already stores (the documents'
``published`` and ``categories`` fields, the document-topic matrix, the lexical index),
once per loaded model, never per request. The corpus map (the 2-D layout) lives in
:mod:`abstractor_widgets.layout`; the widget that shows all of it is
:class:`abstractor_widgets.explore_widget.ExploreWidget`.

Examples
--------
>>> ab = Abstractor.load("artifacts/default")                       # doctest: +SKIP
>>> ab.trends().frame().tail(3)          # month x topic share            # doctest: +SKIP
>>> ab.trends(category="cs.CL").frame()                              # doctest: +SKIP
>>> f = Filters(categories=("cs.CL",), date_from="2025-06", keyword="retrieval")
>>> ab.similar_filtered("dense retrieval for question answering", n=5, filters=f)  # doctest: +SKIP
>>> to_bibtex(ab.similar("graph neural networks"))                    # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .index import sorted_unique

if TYPE_CHECKING:
    import pandas as pd

    from .abstractor import Abstractor, Analysis
    from .store import DocumentTable

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_NAME_TERMS",
    "EXPORT_COLUMNS",
    "MAX_MAP_POINTS",
    "MAX_SELECTION",
    "Facets",
    "Filters",
    "MapSample",
    "TopicTrends",
    "default_topic_name",
    "filter_mask",
    "filtered_analyze",
    "is_default_label",
    "map_points_cap",
    "records_frame",
    "rows_in_polygon",
    "select_region",
    "SelectionTooLarge",
    "to_bibtex",
    "to_csv",
    "topic_label",
]

# -- readable topic names ---------------------------------------------------------------
#: Terms in a default topic name ("policy · reward · agent").
DEFAULT_NAME_TERMS = 3
_DEFAULT_LABEL = re.compile(r"Topic (\d+)")


def is_default_label(label: str, k: int) -> bool:
    """Whether ``label`` is the placeholder ``"Topic k"`` a model gets before anyone names it."""
    match = _DEFAULT_LABEL.fullmatch(label or "")
    return match is not None and int(match.group(1)) == int(k)


def default_topic_name(terms: Sequence[Any], n: int = DEFAULT_NAME_TERMS) -> str:
    """A readable name from a topic's strongest terms: ``"policy · reward · agent"``.

    ``terms`` are strings or ``(term, weight)`` pairs, strongest first; phrases keep their
    spaces (``neural_network`` -> ``neural network``). Terms already contained in an earlier
    one (``network`` after ``neural network``) are skipped.
    """
    chosen: list[str] = []
    for term in terms:
        word = str(term[0] if isinstance(term, (list, tuple)) else term).replace("_", " ").strip()
        if not word or any(word in c.split() or c in word.split() for c in chosen):
            continue
        chosen.append(word)
        if len(chosen) == n:
            break
    return " \u00b7 ".join(chosen)[:80] or "(no terms)"


# -- per-document facets (month, categories) -------------------------------------------
_NEW_ID = re.compile(rb"^(\d{2})(\d{2})\.\d{4,5}")
_OLD_ID = re.compile(rb"/(\d{2})(\d{2})\d{3}")


def _month_of(published: bytes, doc_id: bytes) -> bytes:
    """``b"YYYY-MM"`` from the publication date, else from an arXiv id (``2507.12060``,
    ``cs/0701001``), else ``b""``. (The rule :meth:`Facets.from_documents` applies to every
    paper at once; this form is used for the ids it does not decode itself.)"""
    if len(published) >= 7 and published[4:5] == b"-" and published[:4].isdigit() and published[5:7].isdigit():
        return published[:7]
    match = _NEW_ID.match(doc_id) or _OLD_ID.search(doc_id)
    if match:
        yy, mm = int(match.group(1)), int(match.group(2))
        if 1 <= mm <= 12:
            return b"%04d-%02d" % (1900 + yy if yy >= 90 else 2000 + yy, mm)
    return b""


# Vectorised reading of a memory-mapped text field (blob + offsets): each value's bytes as
# little-endian 64-bit words (word k = bytes 8k..8k+7, byte 8k the least significant; zero
# past the value's end), gathered for every document at once through an unaligned
# 1-byte-strided view of the blob.
_WORD_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_DIGIT_LOW = np.uint64(0x0F0F0F0F0F0F0F0F)
_DIGIT_HIGH = np.uint64(0xF0F0F0F0F0F0F0F0)


def _ascii_digits(words: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    """Whether the bytes at ``positions`` of each word are ASCII digits (all at once: a digit
    is 0x3N with N <= 9, and N + 6 carries into bit 4 exactly when N > 9)."""
    mask = np.uint64(sum(0xFF << (8 * j) for j in positions))
    high = np.uint64(sum(0x30 << (8 * j) for j in positions))
    carry = np.uint64(sum(0x10 << (8 * j) for j in positions))
    six = np.uint64(sum(0x06 << (8 * j) for j in positions))
    return ((words & (mask & _DIGIT_HIGH)) == high) & ((((words & (mask & _DIGIT_LOW)) + six) & carry) == 0)


def _byte(words: np.ndarray, j: int) -> np.ndarray:
    return (words >> np.uint64(8 * j)) & np.uint64(0xFF)


def _digit(words: np.ndarray, j: int) -> np.ndarray:
    return _byte(words, j).astype(np.int64) - 0x30


class _Field:
    """One field of every document: starts, lengths and its bytes as words (see above)."""

    def __init__(self, documents: DocumentTable, name: str) -> None:
        blob = np.ascontiguousarray(documents._blobs[name], dtype=np.uint8).reshape(-1)  # the mapped file: no copy
        offsets = np.asarray(documents._offsets[name], dtype=np.int64)
        self.starts = offsets[:-1]
        self.lengths = np.diff(offsets)
        self.n_words = int((self.lengths.max() + 7) // 8) if len(self.lengths) else 0
        self._blob = blob
        # words starting in the blob's last 8 bytes would read past its end: they come from a
        # zero-padded copy of those bytes
        self._body = np.ndarray((max(len(blob) - 7, 0),), dtype="<u8", buffer=blob, strides=(1,)) if len(blob) >= 8 else \
            np.zeros(0, dtype="<u8")
        self._tail_start = len(self._body)
        tail = np.zeros(16, dtype=np.uint8)
        tail[: len(blob) - self._tail_start] = blob[self._tail_start:]
        self._tail = np.ndarray((9,), dtype="<u8", buffer=tail, strides=(1,))

    def _words_at(self, positions: np.ndarray) -> np.ndarray:
        """The little-endian 64-bit word starting at each byte position (zeros past the end)."""
        positions = np.minimum(positions, len(self._blob))
        if not len(positions) or positions.max() < self._tail_start:
            return self._body[positions].astype(np.uint64)
        out = np.empty(len(positions), dtype=np.uint64)
        near = positions >= self._tail_start
        out[~near] = self._body[positions[~near]]
        out[near] = self._tail[positions[near] - self._tail_start]
        return out

    def word(self, k: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Word ``k`` (bytes ``8k .. 8k + 7``) of every value (or of ``rows``), as uint64."""
        starts, lengths = (self.starts, self.lengths) if rows is None else (self.starts[rows], self.lengths[rows])
        out = np.zeros(len(lengths), dtype=np.uint64)
        live = np.flatnonzero(lengths > 8 * k)
        if len(live) == len(lengths):
            return self._words_at(starts + 8 * k) & _WORD_MASKS[np.minimum(lengths - 8 * k, 8)]
        out[live] = self._words_at(starts[live] + 8 * k) & _WORD_MASKS[np.minimum(lengths[live] - 8 * k, 8)]
        return out

    def value(self, row: int) -> bytes:
        start = int(self.starts[row])
        return self._blob[start: start + int(self.lengths[row])].tobytes()

    def _hash(self) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """A 64-bit hash of every value (its length and words), and the words: for each k, the
        rows long enough to have word k and their word k."""
        n = len(self.lengths)
        h = self.lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        words = []
        rows = np.arange(n)
        for k in range(self.n_words):
            rows = rows[self.lengths[rows] > 8 * k]
            word = self._words_at(self.starts[rows] + 8 * k) & _WORD_MASKS[np.minimum(self.lengths[rows] - 8 * k, 8)]
            words.append((rows, word))
            mixed = (h if len(rows) == n else h[rows]) ^ word
            mixed *= np.uint64(0xBF58476D1CE4E5B9)
            mixed ^= mixed >> np.uint64(31)
            if len(rows) == n:
                h = mixed
            else:
                h[rows] = mixed
        return h, words

    def factorize(self, hashed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Equal values -> equal codes, numbered in order of first appearance; also the row
        where each code first appears. A 64-bit hash of every value (its length and words),
        factorised, then checked word by word against each code's first value; on a
        collision (or with ``hashed=False``) the exact way: the words factorised one after
        the other."""
        import pandas as pd

        n = len(self.lengths)
        if hashed:
            h, words = self._hash()
            codes = pd.factorize(h)[0].astype(np.int64)
            first = _first_rows(codes)
            firsts = first[codes]
            same = bool((self.lengths[firsts] == self.lengths).all())
            dense = np.zeros(n, dtype=np.uint64)
            for rows, word in words:  # a row and its code's first row have the same length, so the same words
                if not same:
                    break
                dense[rows] = word
                same = bool((dense[firsts[rows]] == word).all())
            if same:
                return codes, first
            logger.info("facets: a 64-bit hash collision; factorising exactly")
        codes = pd.factorize(self.lengths)[0].astype(np.int64)
        for k in range(self.n_words):
            word = pd.factorize(self.word(k))[0].astype(np.int64)
            codes = pd.factorize(codes * (int(word.max(initial=0)) + 1) + word)[0].astype(np.int64)
        return codes, _first_rows(codes)


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of each code's first appearance, for codes numbered in order of first appearance."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.concatenate(([True], running[1:] > running[:-1])))


def _month_keys(documents: DocumentTable) -> np.ndarray:
    """Every document's month as the big-endian integer of its 7 bytes ``YYYY-MM`` (0: none;
    such integers sort as the strings do), by :func:`_month_of`'s rule."""
    published = _Field(documents, "published")
    n = len(published.lengths)
    keys = np.zeros(n, dtype=np.uint64)
    if not n:
        return keys
    p0 = published.word(0)
    dated = (published.lengths >= 7) & _ascii_digits(p0, (0, 1, 2, 3, 5, 6)) & (_byte(p0, 4) == 0x2D)
    keys[dated] = (p0[dated] & _WORD_MASKS[7]).byteswap() >> np.uint64(8)  # its first 7 bytes, big-endian
    rest = np.flatnonzero(~dated)
    if not len(rest):
        return keys
    # the others: from a new-style arXiv id (YYMM.NNNN...), the rest one by one
    ids = _Field(documents, "id")
    i0, i1 = ids.word(0, rest), ids.word(1, rest)
    new = (ids.lengths[rest] >= 9) & _ascii_digits(i0, (0, 1, 2, 3, 5, 6, 7)) & (_byte(i0, 4) == 0x2E) & _ascii_digits(i1, (0,))
    yy = _digit(i0, 0) * 10 + _digit(i0, 1)
    mm = _digit(i0, 2) * 10 + _digit(i0, 3)
    year = np.where(yy >= 90, 1900 + yy, 2000 + yy)
    ascii_month = np.zeros(len(rest), dtype=np.uint64)
    for j, digit in enumerate([year // 1000, year // 100 % 10, year // 10 % 10, year % 10, None, mm // 10, mm % 10]):
        byte = np.full(len(rest), 0x2D, dtype=np.uint64) if digit is None else (digit + 0x30).astype(np.uint64)
        ascii_month |= byte << np.uint64(8 * (6 - j))
    good = new & (mm >= 1) & (mm <= 12)
    keys[rest[good]] = ascii_month[good]
    for row in rest[~new].tolist():  # old-style ids (cs/0701001) and anything else
        month = _month_of(published.value(row), ids.value(row))
        keys[row] = int.from_bytes(month, "big") if month else 0
    return keys


@dataclass
class Facets:
    """What filters and trends need of every document, decoded once per model.

    Attributes
    ----------
    months : list of str
        Sorted ``"YYYY-MM"`` labels.
    month : numpy.ndarray of int16, (N,)
        Index into ``months`` (-1: unknown date). From ``published``, else from the arXiv id.
    categories : list of str
        Every category, most frequent first.
    category_counts : numpy.ndarray of int64
    cat_indptr, cat_indices : numpy.ndarray
        Document -> categories (CSR): document ``i`` is in
        ``categories[cat_indices[cat_indptr[i]:cat_indptr[i + 1]]]``.
    """

    months: list[str]
    month: np.ndarray
    categories: list[str]
    category_counts: np.ndarray
    cat_indptr: np.ndarray
    cat_indices: np.ndarray

    @classmethod
    def from_documents(cls, documents: DocumentTable) -> Facets:
        """Decode every document's month and categories, vectorised over the memory-mapped
        fields (about 1 s for 2.7M papers): the months from the bytes of ``published`` (else
        of the id), each distinct category list split once."""
        n = len(documents)
        # months: "YYYY-MM" as 7-byte big-endian integers, which sort as the strings do
        keys = _month_keys(documents)
        labels = np.unique(keys[keys != 0])
        month = (np.searchsorted(labels, keys) if len(labels) else np.zeros(n, dtype=np.int64)).astype(np.int16)
        month[keys == 0] = -1
        # categories: each distinct list (a few thousand for millions of papers) split once,
        # in order of first appearance (so a category's number is its first appearance's)
        field = _Field(documents, "categories")
        codes, first = field.factorize()
        vocab: dict[bytes, int] = {}
        lists = [[vocab.setdefault(cat, len(vocab)) for cat in dict.fromkeys(field.value(row).split())] for row in first.tolist()]
        list_lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        list_indptr = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(list_lengths, out=list_indptr[1:])
        list_indices = np.fromiter((c for cats in lists for c in cats), dtype=np.int32, count=int(list_indptr[-1]))
        lengths = list_lengths[codes] if n else np.zeros(0, dtype=np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        within = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        cat_indices = list_indices[np.repeat(list_indptr[:-1][codes] if n else np.zeros(0, np.int64), lengths) + within]
        counts = np.bincount(cat_indices, minlength=len(vocab)).astype(np.int64)
        order = np.argsort(-counts, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        names = [c.decode("utf-8", "replace") for c in vocab]
        return cls(
            months=[int(key).to_bytes(7, "big").decode("ascii") for key in labels.tolist()],
            month=month,
            categories=[names[k] for k in order],
            category_counts=counts[order],
            cat_indptr=indptr,
            cat_indices=rank[cat_indices].astype(np.int32) if len(cat_indices) else cat_indices.astype(np.int32),
        )

    def __len__(self) -> int:
        return len(self.month)

    def in_categories(self, names: Iterable[str]) -> np.ndarray:
        """Boolean mask of the documents listed in any of ``names``."""
        wanted = {self.categories.index(n) for n in names if n in self.categories}
        hit = np.isin(self.cat_indices, np.fromiter(wanted, dtype=np.int32, count=len(wanted)))
        owner = np.repeat(np.arange(len(self)), np.diff(self.cat_indptr))
        mask = np.zeros(len(self), dtype=bool)
        mask[owner[hit]] = True
        return mask

    def month_index(self, value: str, end: bool = False) -> int:
        """Index of the first month ``>= value`` (or, with ``end``, the last ``<= value``)."""
        key = str(value)[:7]
        import bisect

        return bisect.bisect_right(self.months, key) - 1 if end else bisect.bisect_left(self.months, key)


# -- topics over time ------------------------------------------------------------------
@dataclass
class TopicTrends:
    """Each topic's share of the corpus per month, overall and per arXiv category.

    ``shares[m, k]`` is the mean of topic ``k`` over the papers of month ``m`` (the rows
    sum to 1 for months with papers, 0 otherwise); ``counts[m]`` is their number.
    ``category_shares[c, m, k]`` and ``category_counts[c, m]`` are the same over the papers
    listed in ``categories[c]`` (a paper counts in each of its categories).
    """

    months: list[str]
    counts: np.ndarray
    shares: np.ndarray
    categories: list[str]
    category_counts: np.ndarray
    category_shares: np.ndarray
    undated: int = 0
    elapsed_ms: float = 0.0

    @classmethod
    def compute(
        cls,
        doc_topics: np.ndarray,
        facets: Facets,
        rows: np.ndarray | None = None,
        n_categories: int = 12,
        block: int = 65536,
    ) -> TopicTrends:
        """Aggregate the stored document-topic matrix (``rows``: a boolean mask or row ids).

        Reads the (memory-mapped) matrix in blocks: O(N K) time, O(months x K x categories)
        memory. Each block's sums are one sparse product: a one-hot matrix (month, or
        category x month, by document) times the block's topic rows.
        """
        from scipy import sparse

        started = time.perf_counter()
        n, k = doc_topics.shape
        m = len(facets.months)
        cats = facets.categories[:n_categories]
        c = len(cats)
        if rows is None:
            selected = None
            total = n
        elif rows.dtype == bool:
            selected = np.flatnonzero(rows)
            total = len(selected)
        else:
            selected = np.asarray(rows, dtype=np.int64)
            total = len(selected)
        sums = np.zeros((m + 1, k), dtype=np.float64)  # last row: undated
        cat_sums = np.zeros((c * (m + 1), k), dtype=np.float64)
        counts = np.zeros(m + 1, dtype=np.int64)
        cat_counts = np.zeros(c * (m + 1), dtype=np.int64)
        for start in range(0, total, block):
            if selected is None:  # every row: contiguous blocks, no gather
                part = slice(start, min(start + block, n))
                mix = np.asarray(doc_topics[part])
                month = facets.month[part].astype(np.int64)
                lengths = np.diff(facets.cat_indptr[start: part.stop + 1])
                cat = facets.cat_indices[facets.cat_indptr[start]: facets.cat_indptr[part.stop]]
            else:
                ids = selected[start: start + block]
                mix = np.asarray(doc_topics[ids])
                month = facets.month[ids].astype(np.int64)
                lo = facets.cat_indptr[ids]
                lengths = facets.cat_indptr[ids + 1] - lo
                pos = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
                cat = facets.cat_indices[pos] if len(pos) else np.zeros(0, np.int32)
            b = len(month)
            month[month < 0] = m
            one_hot = sparse.csc_matrix((np.ones(b), month, np.arange(b + 1)), shape=(m + 1, b))
            sums += one_hot @ mix
            counts += np.bincount(month, minlength=m + 1)
            if not c:
                continue
            # (document, category) pairs for the top categories
            owner = np.repeat(np.arange(b), lengths)
            keep = cat < c
            owner = owner[keep]
            cell = cat[keep].astype(np.int64) * (m + 1) + month[owner]
            pairs = sparse.csr_matrix((np.ones(len(cell)), (cell, owner)), shape=(c * (m + 1), b))
            cat_sums += pairs @ mix
            cat_counts += np.bincount(cell, minlength=c * (m + 1))
        cat_sums = cat_sums.reshape(c, m + 1, k)
        cat_counts = cat_counts.reshape(c, m + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.nan_to_num(sums[:m] / counts[:m, None])
            cat_shares = np.nan_to_num(cat_sums[:, :m] / cat_counts[:, :m, None])
        return cls(
            months=list(facets.months),
            counts=counts[:m],
            shares=shares.astype(np.float32),
            categories=list(cats),
            category_counts=cat_counts[:, :m],
            category_shares=cat_shares.astype(np.float32),
            undated=int(counts[m]),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def frame(self, category: str | None = None, counts: bool = False) -> pd.DataFrame:
        """Month x topic shares as a DataFrame (``counts``: add an ``n_papers`` column)."""
        import pandas as pd

        if category is None:
            shares, n = self.shares, self.counts
        else:
            c = self.categories.index(category)
            shares, n = self.category_shares[c], self.category_counts[c]
        frame = pd.DataFrame(shares, index=pd.Index(self.months, name="month"))
        frame.columns.name = "topic"
        if counts:
            frame["n_papers"] = n
        return frame

    def to_state(self, binary: bool = False) -> dict[str, Any]:
        """State for the widget. JSON lists (shares rounded to 4 decimals), or with ``binary``
        the two share arrays as little-endian float32 bytes (``shares``: months x topics,
        ``category_shares``: categories x months x topics), which the widget sends as
        binary buffers: ~200 KB instead of ~420 KB of JSON for 187 months x 20 topics."""
        pack = (lambda a: np.ascontiguousarray(a, dtype="<f4").tobytes()) if binary else (lambda a: np.round(a, 4).tolist())
        return {
            "months": self.months,
            "counts": self.counts.tolist(),
            "n_topics": int(self.shares.shape[1]),
            "shares": pack(self.shares),
            "categories": self.categories,
            "category_counts": self.category_counts.tolist(),
            "category_shares": pack(self.category_shares),
            "undated": self.undated,
        }


# -- the map's points: every paper, or a sample of a large corpus ------------------------
#: Most points the corpus map draws (the explorer's widget and the web page). A larger corpus
#: is drawn as a uniform sample of this many papers (:class:`MapSample`); everything else
#: (selections, filters, similar papers, search) still covers every paper. Chosen by
#: measurement in software WebGL (docs/explore.md): the cost of every exact frame (hover,
#: selection, lasso, rest after a gesture) grows with the points drawn.
MAX_MAP_POINTS = 100_000
#: Environment variable overriding :data:`MAX_MAP_POINTS` (a positive integer).
MAP_POINTS_ENV = "ABSTRACTOR_MAP_POINTS"
#: Most papers one selection on the map may hold.
MAX_SELECTION = 2_000_000
#: Most vertices of a selected region (a lasso) sent from the browser.
MAX_REGION_VERTICES = 10_000
_SAMPLE_SEED = 0x5EED_0F_3A9


def map_points_cap() -> int:
    """The cap in force: ``$ABSTRACTOR_MAP_POINTS`` if set (a positive integer), else
    :data:`MAX_MAP_POINTS`."""
    import os

    raw = os.environ.get(MAP_POINTS_ENV, "").strip()
    if not raw:
        return MAX_MAP_POINTS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAP_POINTS_ENV} must be a positive integer, not {raw!r}")
    return value


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that scatters consecutive integers."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True, eq=False)
class MapSample:
    """Which papers the corpus map draws, and the one translation between the map's points
    and the corpus's rows.

    Every paper when the corpus has at most ``cap`` papers (point ``i`` is row ``i``);
    otherwise the ``cap`` rows with the smallest seeded hash of their row number: a uniform
    sample, the same in every process and on every machine (no random state), in row order.
    Appending papers keeps most of the sample.

    Attributes
    ----------
    n_documents : int
    rows : numpy.ndarray of int64
        The row of each point, increasing.
    """

    n_documents: int
    rows: np.ndarray

    @classmethod
    def choose(cls, n_documents: int, cap: int | None = None) -> MapSample:
        cap = map_points_cap() if cap is None else int(cap)
        if cap < 1:
            raise ValueError("the map needs a cap of at least one point")
        n = int(n_documents)
        if n <= cap:
            return cls(n, np.arange(n, dtype=np.int64))
        hashed = _splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(_SAMPLE_SEED))
        rows = np.sort(np.argpartition(hashed, cap - 1)[:cap]).astype(np.int64)
        return cls(n, rows)

    @property
    def n_points(self) -> int:
        return len(self.rows)

    @property
    def sampled(self) -> bool:
        """Whether some papers are not drawn."""
        return self.n_points < self.n_documents

    def row_of(self, points: Any) -> np.ndarray:
        """The corpus rows of map points (``IndexError`` outside ``[0, n_points)``)."""
        points = np.asarray(points, dtype=np.int64)
        if points.size and (points.min() < 0 or points.max() >= self.n_points):
            raise IndexError(f"map points are in [0, {self.n_points})")
        return self.rows[points]

    def point_of(self, rows: Any) -> np.ndarray:
        """The map point of each row, -1 for rows that are not drawn."""
        rows = np.asarray(rows, dtype=np.int64)
        at = np.searchsorted(self.rows, rows)
        found = at < self.n_points
        found[found] = self.rows[at[found]] == rows[found]
        return np.where(found, at, -1)

    def take(self, values: np.ndarray) -> np.ndarray:
        """Per-paper ``values`` (first axis: rows) -> per point (the same array when every paper is drawn)."""
        return values if not self.sampled else np.asarray(values)[self.rows]

    def rows_bytes(self) -> bytes:
        """The points' rows as little-endian uint32 (``b""`` when every paper is drawn: point i is row i)."""
        return self.rows.astype("<u4").tobytes() if self.sampled else b""

    def describe(self) -> str:
        """``"Showing 100,000 of 2,700,000 papers"`` (or all of them)."""
        if self.sampled:
            return f"Showing {self.n_points:,} of {self.n_documents:,} papers"
        return f"Showing all {self.n_documents:,} papers"


def region_polygon(value: Any) -> np.ndarray:
    """Validate a region drawn on the map: ``[[x, y], ...]`` (3 to :data:`MAX_REGION_VERTICES`
    finite map coordinates) -> float64 array (V, 2). Raises ``ValueError``."""
    if not isinstance(value, (list, tuple)) or not 3 <= len(value) <= MAX_REGION_VERTICES:
        raise ValueError(f"a region is a list of 3 to {MAX_REGION_VERTICES:,} [x, y] points")
    if not all(isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)
               for v in value):
        raise ValueError("a region's points are [x, y] pairs of numbers")
    polygon = np.asarray(value, dtype=np.float64)
    if not np.isfinite(polygon).all():
        raise ValueError("a region's coordinates must be finite numbers")
    return polygon


class SelectionTooLarge(ValueError):
    """A region holding more than :data:`MAX_SELECTION` papers."""


def select_region(coords: np.ndarray, polygon: Any, mask: np.ndarray | None = None) -> np.ndarray:
    """What a lasso (or "Select papers in view") selects on the map: the rows of every paper
    inside ``polygon`` (validated by :func:`region_polygon`) that ``mask`` keeps, drawn or not.

    Raises
    ------
    ValueError
        For an invalid polygon; :class:`SelectionTooLarge` above :data:`MAX_SELECTION` papers.
    """
    rows = rows_in_polygon(coords, region_polygon(polygon), mask)
    if len(rows) > MAX_SELECTION:
        raise SelectionTooLarge(f"the region holds {len(rows):,} papers; at most {MAX_SELECTION:,} can be selected at "
                                "once: zoom in or draw a smaller region")
    return rows


def rows_in_polygon(coords: np.ndarray, polygon: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Rows whose map position is inside ``polygon`` (and kept by ``mask``), increasing.

    Every paper is tested, drawn or not. Even-odd rule, a point on a lower edge counts as
    inside (the crossing-number test on ``min(y1, y2) <= y < max(y1, y2)``). The papers in
    the polygon's bounding box are sorted by y once; each edge then tests only the papers
    in its own band of y, so the work is about the number of those papers, whatever the
    number of edges.
    """
    polygon = np.asarray(polygon, dtype=np.float64)
    x, y = coords[:, 0], coords[:, 1]
    (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
    near = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    if mask is not None:
        near &= mask
    candidates = np.flatnonzero(near)
    if not len(candidates):
        return candidates
    py = np.asarray(y[candidates], dtype=np.float64)
    order = np.argsort(py, kind="stable")
    py, px = py[order], np.asarray(x[candidates], dtype=np.float64)[order]
    inside = np.zeros(len(candidates), dtype=bool)
    for (ax, ay), (bx, by) in zip(polygon, np.roll(polygon, -1, axis=0)):
        if ay == by:
            continue
        lo, hi = np.searchsorted(py, (min(ay, by), max(ay, by)), side="left")
        if lo == hi:
            continue
        band = py[lo:hi]
        inside[lo:hi] ^= px[lo:hi] < ax + (band - ay) * (bx - ax) / (by - ay)
    return np.sort(candidates[order[inside]])


# -- filters ---------------------------------------------------------------------------
MAX_KEYWORD_CHARS = 200


@dataclass(frozen=True)
class Filters:
    """Restrict similar papers, the map and the trends.

    Attributes
    ----------
    categories : tuple of str
        Keep papers listed in any of them (empty: all).
    date_from, date_to : str
        ``"YYYY-MM"`` (or ``"YYYY-MM-DD"``, the day is ignored), inclusive; ``""`` is open.
        Papers without a known month are dropped when either bound is set.
    keyword : str
        Keep papers whose title or abstract contains every word of it (as the lexical
        index sees words: lemmatised, stopwords ignored).
    """

    categories: tuple[str, ...] = ()
    date_from: str = ""
    date_to: str = ""
    keyword: str = ""

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> Filters:
        """Validate a dict (e.g. from the browser); raises ``ValueError`` with a readable reason."""
        value = dict(value or {})
        unknown = set(value) - {"categories", "date_from", "date_to", "keyword"}
        if unknown:
            raise ValueError(f"unknown filter {sorted(unknown)[0]!r}")
        cats = value.get("categories") or ()
        if isinstance(cats, str):
            cats = (cats,)
        if not isinstance(cats, (list, tuple)) or not all(isinstance(c, str) and 0 < len(c) <= 40 for c in cats) or len(cats) > 50:
            raise ValueError("categories must be a list of short strings")
        dates = []
        for key in ("date_from", "date_to"):
            text = value.get(key) or ""
            if not isinstance(text, str) or (text and not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text)):
                raise ValueError(f"{key} must be 'YYYY-MM' or 'YYYY-MM-DD'")
            dates.append(text[:7])
        keyword = value.get("keyword") or ""
        if not isinstance(keyword, str) or len(keyword) > MAX_KEYWORD_CHARS:
            raise ValueError(f"the keyword must be text of at most {MAX_KEYWORD_CHARS} characters")
        return cls(tuple(dict.fromkeys(cats)), dates[0], dates[1], " ".join(keyword.split()))

    def to_dict(self) -> dict[str, Any]:
        return {"categories": list(self.categories), "date_from": self.date_from, "date_to": self.date_to,
                "keyword": self.keyword}

    @property
    def active(self) -> bool:
        return bool(self.categories or self.date_from or self.date_to or self.keyword)


def keyword_mask(ab: Abstractor, keyword: str) -> tuple[np.ndarray, list[str]]:
    """Documents containing every indexed word of ``keyword``; also returns the words used.

    Raises
    ------
    ValueError
        If the model has no lexical index, or no word of ``keyword`` is indexed.
    """
    if ab.lexical is None:
        raise ValueError("keyword search needs the lexical index, which this model was saved without")
    words = [t.text for t in ab.model.preprocessor_.tokens(keyword)]
    mask = np.ones(len(ab), dtype=bool)
    used = []
    for word in dict.fromkeys(words):
        row = ab.lexical.transform_query([word])
        if not row.nnz:
            continue
        mask &= np.asarray(ab.lexical.scores(row)) > 0
        used.append(word)
    if not used:
        raise ValueError(f"no word of {keyword!r} is in the index")
    return mask, used


def filter_mask(ab: Abstractor, filters: Filters | Mapping[str, Any] | None) -> np.ndarray | None:
    """Boolean mask of the documents the filters keep (``None``: no filter is set)."""
    filters = filters if isinstance(filters, Filters) else Filters.from_dict(filters)
    if not filters.active:
        return None
    facets = ab.facets
    mask = np.ones(len(ab), dtype=bool)
    if filters.categories:
        mask &= facets.in_categories(filters.categories)
    if filters.date_from or filters.date_to:
        lo = facets.month_index(filters.date_from) if filters.date_from else 0
        hi = facets.month_index(filters.date_to, end=True) if filters.date_to else len(facets.months) - 1
        mask &= (facets.month >= lo) & (facets.month <= hi)
    if filters.keyword:
        mask &= keyword_mask(ab, filters.keyword)[0]
    return mask


def filtered_analyze(ab: Abstractor, text: str, n: int, method: str | None, mask: np.ndarray | None,
                     exclude_ids: Sequence[str] = ()) -> Analysis:
    """:meth:`Abstractor.analyze` with the similar papers restricted to ``mask``.

    Ranks among the kept rows only (the rest are excluded from the ranking, not dropped
    afterwards), so a filter keeping 20 papers still fills the list when it can.
    """
    if mask is None:
        return ab.analyze(text, n=n, method=method)
    analysis = ab.analyze(text, n=0, method=method)
    if not n or analysis.reason:
        return analysis
    started = time.perf_counter()
    excluded_rows = [ab.documents.position(i) for i in exclude_ids if i in ab.documents]
    keep = int(mask.sum()) - sum(1 for r in excluded_rows if mask[r])
    n = min(int(n), max(keep, 0))
    if n <= 0:
        analysis.reason = "No paper matches the filters."
        return analysis
    excluded = np.flatnonzero(~mask)  # sorted, as the candidate stage reads it fastest
    if excluded_rows:
        excluded = sorted_unique(np.concatenate([excluded, np.asarray(excluded_rows, dtype=np.int64)]))
    words = [t.text for t in ab.model.preprocessor_.tokens(text)]
    doc = np.asarray(analysis.doc_topics, dtype=np.float32)
    ranked, carried, query = _rank_excluding(ab, doc, words, method, n, excluded, text)
    kept = [i for i, (r, _) in enumerate(ranked) if mask[r]][:n]
    analysis.similar = ab._hits([ranked[i] for i in kept], query, [carried[i] for i in kept])
    analysis.elapsed_ms += (time.perf_counter() - started) * 1000
    return analysis


def _rank_excluding(ab: Abstractor, doc: np.ndarray, words: list[str], method: str | None, n: int,
                    excluded: tuple[int, ...] | np.ndarray, text: str | None = None) -> tuple[list[tuple[int, float]], list[bool], Any]:
    """Rank with the facade's ranker (static embeddings included when the model has them),
    never returning ``excluded`` rows; also which hits the static embedding carried."""
    import dataclasses

    from .ranking import single_threaded_blas

    ranker = ab.ranker
    method = ranker.check_method(method)
    query = dataclasses.replace(ranker.query(doc, words, method, text=text), exclude_rows=excluded)
    with single_threaded_blas():
        ranked, carried = ranker.rank_explained(query, n, method)
    return ranked, carried, query


# -- export ----------------------------------------------------------------------------
#: Columns of a CSV export, in order.
EXPORT_COLUMNS = ("id", "title", "year", "published", "categories", "url", "score")


def _year(record: Mapping[str, Any]) -> str:
    published = str(record.get("published") or "")
    if re.match(r"\d{4}", published):
        return published[:4]
    match = _NEW_ID.match(str(record.get("id") or "").encode())
    if match:
        return str(2000 + int(match.group(1)) if int(match.group(1)) < 90 else 1900 + int(match.group(1)))
    return ""


def _records(items: Any) -> list[dict[str, Any]]:
    if hasattr(items, "to_dict") and hasattr(items, "columns"):  # a DataFrame
        return items.to_dict("records")
    return [dict(item) for item in items]


def records_frame(items: Any) -> pd.DataFrame:
    """Hits (dicts) or a selection (DataFrame) as a DataFrame with :data:`EXPORT_COLUMNS`."""
    import pandas as pd

    rows = []
    for r in _records(items):
        doc_id = str(r.get("id") or "")
        rows.append({
            "id": doc_id,
            "title": " ".join(str(r.get("title") or "").split()),
            "year": _year(r),
            "published": str(r.get("published") or ""),
            "categories": str(r.get("categories") or ""),
            "url": str(r.get("url") or f"https://arxiv.org/abs/{doc_id}"),
            "score": r.get("score") if isinstance(r.get("score"), (int, float)) else None,
        })
    return pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))


def to_csv(items: Any) -> str:
    """CSV (RFC 4180, header row) of hits or a selection: :data:`EXPORT_COLUMNS`.

    Cells starting with ``=``, ``+``, ``-`` or ``@`` get a leading apostrophe, so a
    spreadsheet never evaluates a title as a formula.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in records_frame(items).itertuples(index=False):
        cells = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in row]
        writer.writerow([("'" + c) if c[:1] in ("=", "+", "-", "@") else c for c in cells])
    return out.getvalue()


_BIB_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$",
                "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _bib_text(text: str) -> str:
    return "".join(_BIB_ESCAPES.get(ch, ch) for ch in " ".join(text.split()))


def to_bibtex(items: Any) -> str:
    """BibTeX ``@misc`` entries (arXiv's own style: eprint, archivePrefix, primaryClass, url).

    Keys are ``arxiv:<id>`` (unique per paper); TeX special characters in titles are escaped.
    """
    entries = []
    for r in records_frame(items).to_dict("records"):
        doc_id = r["id"]
        fields = [("title", "{" + _bib_text(r["title"]) + "}")]
        if r["year"]:
            fields.append(("year", r["year"]))
        fields += [("eprint", doc_id), ("archivePrefix", "arXiv")]
        primary = r["categories"].split()[0] if r["categories"].split() else ""
        if primary:
            fields.append(("primaryClass", primary))
        fields.append(("url", r["url"]))
        key = re.sub(r"[^A-Za-z0-9.:/-]", "_", f"arxiv:{doc_id}")
        body = ",\n".join(f"  {name} = {{{_bib_value(value)}}}" if name != "title" else f"  {name} = {{{value}}}"
                          for name, value in fields)
        entries.append(f"@misc{{{key},\n{body}\n}}\n")
    return "\n".join(entries)


def _bib_value(value: str) -> str:
    return re.sub(r"[{}\\]", "", value)


def topic_label(label: str, k: int, terms: Sequence[Any]) -> str:
    """What a topic is called: the user's ``label``, or its strongest terms while it still
    has the placeholder ``"Topic k"`` (ids never change)."""
    return default_topic_name(terms) if is_default_label(label, k) else label
