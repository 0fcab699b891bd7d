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

if TYPE_CHECKING:
    import pandas as pd

    from .abstractor import Abstractor, Analysis
    from .store import DocumentTable

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_NAME_TERMS",
    "default_topic_name",
    "topic_label",
    "is_default_label",
    "Facets",
    "TopicTrends",
    "Filters",
    "filter_mask",
    "filtered_analyze",
    "records_frame",
    "to_csv",
    "to_bibtex",
    "EXPORT_COLUMNS",
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


def _strings(documents: DocumentTable, name: str) -> list[bytes]:
    """One field of every document as bytes (one pass over the memory-mapped blob)."""
    blob = documents._blobs[name].tobytes()
    offsets = np.asarray(documents._offsets[name]).tolist()  # Python ints: 4x faster slicing than numpy scalars
    return [blob[a:b] for a, b in zip(offsets, offsets[1:])]


def _month_of(published: bytes, doc_id: bytes) -> bytes:
    """``b"YYYY-MM"`` from the publication date, else from an arXiv id (``2507.12060``,
    ``cs/0701001``), else ``b""``."""
    if len(published) >= 7 and published[4:5] == b"-" and published[:4].isdigit() and published[5:7].isdigit():
        return published[:7]
    match = _NEW_ID.match(doc_id) or _OLD_ID.search(doc_id)
    if match:
        yy, mm = int(match.group(1)), int(match.group(2))
        if 1 <= mm <= 12:
            return b"%04d-%02d" % (1900 + yy if yy >= 90 else 2000 + yy, mm)
    return b""


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
        # dates and category lists repeat (a few thousand distinct values for millions of
        # papers): each distinct value is parsed once
        published = _strings(documents, "published")
        ids = _strings(documents, "id")
        dated: dict[bytes, bytes] = {}
        month_strings = []
        for p, i in zip(published, ids):
            month = dated.get(p)
            if month is None:
                month = _month_of(p, i)
                if month and month == p[:7]:  # from the date alone: reusable for every paper of that date
                    dated[p] = month
            month_strings.append(month)
        labels = sorted({m for m in month_strings if m})
        lookup = {m: k for k, m in enumerate(labels)}
        month = np.array([lookup.get(m, -1) for m in month_strings], dtype=np.int16)
        vocab: dict[bytes, int] = {}
        parsed: dict[bytes, list[int]] = {}
        indices: list[int] = []
        lengths = np.zeros(len(documents), dtype=np.int64)
        for i, cats in enumerate(_strings(documents, "categories")):
            found = parsed.get(cats)
            if found is None:
                found = parsed[cats] = [vocab.setdefault(cat, len(vocab)) for cat in dict.fromkeys(cats.split())]
            indices += found
            lengths[i] = len(found)
        indptr = np.zeros(len(documents) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        cat_indices = np.asarray(indices, dtype=np.int32)
        counts = np.bincount(cat_indices, minlength=len(vocab)).astype(np.int64)
        order = np.argsort(-counts, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        names = [c.decode("utf-8", "replace") for c in vocab]
        return cls(
            months=[m.decode("ascii") for m in labels],
            month=month,
            categories=[names[k] for k in order],
            category_counts=counts[order],
            cat_indptr=indptr,
            cat_indices=rank[cat_indices].astype(np.int32) if len(cat_indices) else cat_indices,
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

        Reads the (memory-mapped) matrix in blocks: O(N K) time, O(months x K x categories) memory.
        """
        started = time.perf_counter()
        n, k = doc_topics.shape
        m = len(facets.months)
        cats = facets.categories[:n_categories]
        c = len(cats)
        if rows is None:
            selected = np.arange(n)
        elif rows.dtype == bool:
            selected = np.flatnonzero(rows)
        else:
            selected = np.asarray(rows, dtype=np.int64)
        sums = np.zeros((m + 1, k), dtype=np.float64)  # last row: undated
        cat_sums = np.zeros((c, m + 1, k), dtype=np.float64)
        counts = np.zeros(m + 1, dtype=np.int64)
        cat_counts = np.zeros((c, m + 1), dtype=np.int64)
        for start in range(0, len(selected), block):
            part = selected[start:start + block]
            mix = np.asarray(doc_topics[part], dtype=np.float64)
            month = facets.month[part].astype(np.int64)
            month[month < 0] = m
            np.add.at(sums, month, mix)
            counts += np.bincount(month, minlength=m + 1)
            if not c:
                continue
            # (document, category) pairs for the top categories
            lo, hi = facets.cat_indptr[part], facets.cat_indptr[part + 1]
            lengths = hi - lo
            owner = np.repeat(np.arange(len(part)), lengths)
            pos = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            cat = facets.cat_indices[pos] if len(pos) else np.zeros(0, np.int32)
            keep = cat < c
            owner, cat = owner[keep], cat[keep].astype(np.int64)
            cell = cat * (m + 1) + month[owner]
            flat = cat_sums.reshape(c * (m + 1), k)
            np.add.at(flat, cell, mix[owner])
            cat_counts += np.bincount(cell, minlength=c * (m + 1)).reshape(c, m + 1)
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
    excluded = tuple(np.flatnonzero(~mask).tolist()) + tuple(excluded_rows)
    words = [t.text for t in ab.model.preprocessor_.tokens(text)]
    doc = np.asarray(analysis.doc_topics, dtype=np.float32)
    ranked, carried, query = _rank_excluding(ab, doc, words, method, n, excluded, text)
    kept = [i for i, (r, _) in enumerate(ranked) if mask[r]][:n]
    analysis.similar = ab._hits([ranked[i] for i in kept], query, [carried[i] for i in kept])
    analysis.elapsed_ms += (time.perf_counter() - started) * 1000
    return analysis


def _rank_excluding(ab: Abstractor, doc: np.ndarray, words: list[str], method: str | None, n: int,
                    excluded: tuple[int, ...], text: str | None = None) -> tuple[list[tuple[int, float]], list[bool], Any]:
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
