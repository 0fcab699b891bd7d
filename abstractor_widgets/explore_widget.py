"""The corpus explorer: map, topics over time, filters and export, linked to the analyser.

:class:`ExploreWidget` is an anywidget view next to an
:class:`~abstractor_widgets.widget.AbstractorWidget` (the analyser): the typed abstract is
a "you are here" marker on the map and its similar papers are ringed; clicking a point
loads that paper into the analyser; a topic highlighted anywhere is highlighted in both;
the filters restrict the analyser's similar papers, the map and the trends.

The map's points reach the browser as binary buffers (float32 x, y interleaved; uint8
dominant topic), not JSON lists: 9 bytes a paper. A corpus larger than
:data:`~abstractor_widgets.explore.MAX_MAP_POINTS` is drawn as a uniform sample of that many
papers (:class:`~abstractor_widgets.explore.MapSample`; 4 bytes more a point: its row); a
lasso or "Select papers in view" then sends the region, and the kernel selects every paper
inside it, drawn or not. The similar papers are ringed from their coordinates, drawn or not.

Examples
--------
>>> ab = Abstractor.load("artifacts/default")                       # doctest: +SKIP
>>> w = ab.widget()                                                  # doctest: +SKIP
>>> x = ab.explorer(w)            # or ExploreWidget(w)               # doctest: +SKIP
>>> display(w, x)                                                    # doctest: +SKIP
>>> x.filters = {"categories": ["cs.CL"], "date_from": "2025-06"}    # doctest: +SKIP
>>> x.select_rows([0, 1, 2]); x.selection                            # doctest: +SKIP
>>> print(x.export("selection", "bibtex"))                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget
import numpy as np
import traitlets as t

from .explore import (MAX_SELECTION, Filters, MapSample, SelectionTooLarge, records_frame, select_region,
                      to_bibtex, to_csv)
from .widget import AbstractorWidget, _asset, _preview

if TYPE_CHECKING:
    import pandas as pd

    from .abstractor import Abstractor

logger = logging.getLogger(__name__)

__all__ = ["MAX_SELECTION", "NO_MAP_MESSAGE", "ExploreWidget", "with_explorer"]

NO_MAP_MESSAGE = (
    "This model has no corpus map yet. Add one (about a minute for 60,000 papers) with "
    "`abstractor map {path}` or `Abstractor.build_map()`, then reload."
)
EXPORT_FORMATS = {"csv": ("text/csv", "csv"), "bibtex": ("application/x-bibtex", "bib")}


class _Rejected(ValueError):
    """A browser message the explorer refuses (becomes ``error``)."""


class ExploreWidget(anywidget.AnyWidget):
    """The whole corpus next to one abstract: a map, topics over time, filters, export.

    Parameters
    ----------
    analyser : AbstractorWidget
        The analyser this explorer follows and drives.
    n_categories : int
        Categories offered by the trend chart and the filter list.
    max_points : int, optional
        Most points the map draws (default :func:`~abstractor_widgets.explore.map_points_cap`:
        ``$ABSTRACTOR_MAP_POINTS`` or :data:`~abstractor_widgets.explore.MAX_MAP_POINTS`).
        A larger corpus is drawn as a uniform sample (:attr:`sample`).

    Attributes
    ----------
    selection : pandas.DataFrame
        The papers selected on the map (lasso / box), see :attr:`selection`.
    """

    _esm = _asset("explore.js", "export default { render({ el }) { el.textContent = 'abstractor_widgets: explore.js is not built'; } };\n")
    _css = _asset("explore.css", "/* explore.css is not built */\n")

    # map (kernel-owned; binary buffers)
    map_points = t.Bytes(b"", help="float32 x, y per point, interleaved, in [-1, 1].").tag(sync=True)
    map_topics = t.Bytes(b"", help="uint8 dominant topic per point.").tag(sync=True)
    map_rows = t.Bytes(b"", help="uint32 corpus row of each point (empty: every paper is drawn, point i is row i).").tag(sync=True)
    map_mask = t.Bytes(b"", help="uint8 1 = kept by the filters, per point (empty: no filter).").tag(sync=True)
    n_points = t.Int(0, help="Points drawn.").tag(sync=True)
    n_documents = t.Int(0, help="Papers in the corpus (more than n_points when the map is a sample).").tag(sync=True)
    map_status = t.Unicode("", help="Why there is no map ('' when there is one).").tag(sync=True)
    centroids = t.List(help="[[x, y] or None] per topic: where its label is drawn.").tag(sync=True)
    here = t.List(help="[x, y] of the analysed abstract on the map, or [].").tag(sync=True)
    similar_rows = t.List(help="Corpus rows of the analyser's similar papers.").tag(sync=True)
    similar_points = t.List(help="[x, y] of each of similar_rows (drawn on the map or not): the rings.").tag(sync=True)
    selection_count = t.Int(0).tag(sync=True)
    # shared with the analyser
    topics = t.List().tag(sync=True)
    highlight_topic = t.Int(None, allow_none=True).tag(sync=True)
    # trends and filters
    trends = t.Dict(help="TopicTrends.to_state(binary=True) for the current filters (shares as float32 buffers).").tag(sync=True)
    trend_category = t.Unicode("", help="Category of the trend chart ('' = all papers).").tag(sync=True)
    filters = t.Dict(help="{categories, date_from, date_to, keyword}.").tag(sync=True)
    filter_count = t.Int(0, help="Papers the filters keep.").tag(sync=True)
    categories = t.List(help="[[category, n_papers], ...], most frequent first.").tag(sync=True)
    month_range = t.List(help="[first, last] month of the corpus ('YYYY-MM').").tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    _BROWSER_WRITABLE: ClassVar[frozenset[str]] = frozenset({"highlight_topic", "trend_category", "filters"})

    def __init__(self, analyser: AbstractorWidget, n_categories: int = 30, max_points: int | None = None,
                 **kwargs: Any) -> None:
        if not isinstance(analyser, AbstractorWidget):
            raise TypeError(f"ExploreWidget needs an AbstractorWidget, not {type(analyser).__name__}")
        super().__init__(**kwargs)
        self._analyser = analyser
        self._selected = np.zeros(0, dtype=np.int64)
        self._mask: np.ndarray | None = None
        self._placed: tuple[Any, list[float]] | None = None  # (text, source, mix) -> where
        self._n_categories = n_categories
        self._max_points = max_points
        self._sample = MapSample.choose(0, 1)
        self._links = [t.link((analyser, "highlight_topic"), (self, "highlight_topic")),
                       t.dlink((analyser, "topics"), (self, "topics"))]
        self._load_model()
        analyser.observe(self._on_analysis, names=["doc_topics", "similar", "source"])
        self.on_msg(self._on_custom_msg)

    # ------------------------------------------------------------------ model
    @property
    def abstractor(self) -> Abstractor:
        return self._analyser.abstractor

    @property
    def analyser(self) -> AbstractorWidget:
        return self._analyser

    def _load_model(self) -> None:
        ab = self.abstractor
        facets = ab.facets
        corpus_map = ab.corpus_map
        with self.hold_sync():
            self.categories = [[c, int(n)] for c, n in zip(facets.categories[: self._n_categories],
                                                          facets.category_counts[: self._n_categories])]
            self.month_range = [facets.months[0], facets.months[-1]] if facets.months else []
            self.trends = ab.trends(n_categories=12).to_state(binary=True)
            self.filter_count = len(ab)
            self.n_documents = len(ab)
            if corpus_map is None:
                self._sample = MapSample.choose(0, 1)
                self.map_points, self.map_topics, self.map_rows, self.n_points, self.centroids = b"", b"", b"", 0, []
                self.map_status = NO_MAP_MESSAGE.format(path=ab.path or "ARTIFACT")
            else:
                # every paper, or a uniform sample of a large corpus (the dominant topics and
                # the labels' positions of the points drawn only)
                sample = self._sample = MapSample.choose(len(ab), self._max_points)
                points = np.ascontiguousarray(sample.take(corpus_map.coords_), dtype=np.float32)
                dominant = np.asarray(sample.take(ab.model.doc_topics_)).argmax(axis=1).astype(np.uint8)
                self.map_points = points.tobytes()
                self.map_topics = dominant.tobytes()
                self.map_rows = sample.rows_bytes()
                self.n_points = sample.n_points
                self.centroids = self._centroids(points, dominant, ab.n_topics)
                self.map_status = ""
        self._on_analysis()

    @property
    def sample(self) -> MapSample:
        """Which papers the map draws (every paper, or a uniform sample of a large corpus)."""
        return self._sample

    def reload(self) -> None:
        """Show the analyser's model as it is now (after ``analyser.reload()`` or an update):
        map, trends, categories; the filters are applied again and the selection cleared."""
        self._placed = None
        self._selected = np.zeros(0, dtype=np.int64)
        self.selection_count = 0
        self._load_model()
        self._on_filters({"new": self.filters})

    @staticmethod
    def _centroids(coords: np.ndarray, dominant: np.ndarray, n_topics: int) -> list[list[float] | None]:
        """Per topic, the median position of its papers (robust to a few far-flung ones)."""
        out: list[list[float] | None] = []
        for k in range(n_topics):
            rows = coords[dominant == k]
            out.append(np.round(np.median(rows, axis=0), 4).tolist() if len(rows) else None)
        return out

    def _on_analysis(self, _change: Any = None) -> None:
        """Follow the analyser: place its abstract, ring its similar papers."""
        ab = self.abstractor
        if ab.corpus_map is None:
            return
        try:
            source = self._analyser.source or {}
            key = (self._analyser.text, source.get("id"), tuple(self._analyser.doc_topics or ()))
            here = self._placed[1] if self._placed is not None and self._placed[0] == key else self._place(ab, source)
            self._placed = (key, here)
            rows = [ab.documents.position(h["id"]) for h in self._analyser.similar or [] if h.get("id") in ab.documents]
            coords = np.asarray(ab.corpus_map.coords_[rows], dtype=np.float64).reshape(-1, 2)
            with self.hold_sync():
                self.here = here
                self.similar_rows = rows
                self.similar_points = np.round(coords, 5).tolist()
        except Exception as exc:  # a view never raises
            logger.exception("ExploreWidget: placing the abstract failed")
            self.error = f"Could not place the abstract on the map: {_preview(str(exc), 200)}"

    def _place(self, ab: Abstractor, source: dict[str, Any]) -> list[float]:
        """Where the analysed abstract goes: a loaded paper's own point, else the transform."""
        here: list[float] = []
        if source.get("id") and source["id"] in ab.documents:
            here = np.round(np.asarray(ab.corpus_map.coords_[ab.documents.position(source["id"])], dtype=float), 4).tolist()
        elif any(x > 0 for x in self._analyser.doc_topics or []):
            from .layout import CorpusMap

            feature = CorpusMap.text_features(ab, self._analyser.text, np.asarray(self._analyser.doc_topics))
            here = [round(v, 4) for v in ab.corpus_map.place_one(feature)]
        return here

    # ------------------------------------------------------------------ filters
    @t.validate("filters")
    def _validate_filters(self, proposal: dict[str, Any]) -> dict[str, Any]:
        try:
            return Filters.from_dict(proposal["value"]).to_dict()
        except ValueError as exc:
            raise t.TraitError(str(exc)) from None

    @t.validate("trend_category")
    def _validate_trend_category(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value and value not in (self.trends or {}).get("categories", []):
            raise t.TraitError(f"unknown category {_preview(value)!r}")
        return value

    @t.validate("highlight_topic")
    def _validate_highlight(self, proposal: dict[str, Any]) -> int | None:
        value = proposal["value"]
        if value is not None and (isinstance(value, bool) or not 0 <= value < self.abstractor.n_topics):
            raise t.TraitError(f"highlight_topic must be None or a topic id in [0, {self.abstractor.n_topics - 1}]")
        return value

    @t.observe("filters")
    def _on_filters(self, change: dict[str, Any]) -> None:
        ab = self.abstractor
        try:
            mask = ab.filter_mask(change["new"])
        except ValueError as exc:
            self.error = f"Filter not applied: {_preview(str(exc), 200)}"
            return
        self._mask = mask
        with self.hold_sync():
            self.map_mask = b"" if mask is None else self._sample.take(mask).astype(np.uint8).tobytes()
            self.filter_count = len(ab) if mask is None else int(mask.sum())
            self.trends = ab.trends(filters=change["new"], n_categories=12).to_state(binary=True)
            if self.trend_category and self.trend_category not in self.trends["categories"]:
                self.trend_category = ""
            self.error = ""
        self._analyser.set_row_filter(mask)

    # ------------------------------------------------------------------ selection
    def select_rows(self, rows: Iterable[int]) -> None:
        """Select papers by map row (what a lasso does); ``[]`` clears."""
        rows = np.unique(np.asarray(rows if isinstance(rows, np.ndarray) else list(rows), dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(self.abstractor)):
            raise ValueError(f"rows must be in [0, {len(self.abstractor)})")
        self._selected = rows
        self.selection_count = len(rows)

    def select_region(self, polygon: Any) -> int:
        """Select every paper whose map position is inside ``polygon`` (``[[x, y], ...]`` in map
        coordinates) and kept by the filters, drawn on the map or not: what a lasso or
        "Select papers in view" does on a sampled map. Returns the number selected.

        Raises
        ------
        ValueError
            For an invalid polygon, a model without a map, or a region holding more than
            :data:`~abstractor_widgets.explore.MAX_SELECTION` papers (the selection is then cleared).
        """
        ab = self.abstractor
        if ab.corpus_map is None:
            raise ValueError("this model has no corpus map")
        try:
            rows = select_region(ab.corpus_map.coords_, polygon, self._mask)
        except SelectionTooLarge:
            self.select_rows([])
            raise
        self.select_rows(rows)
        return len(rows)

    def select_ids(self, ids: Iterable[str]) -> None:
        """Select papers by arXiv id (``KeyError`` for an unknown id)."""
        self.select_rows([self.abstractor.documents.position(i) for i in ids])

    @property
    def selected_rows(self) -> np.ndarray:
        return self._selected.copy()

    @property
    def selection(self) -> pd.DataFrame:
        """The selected papers: ``row, id, title, published, categories, topic, topic_label, x, y, url``."""
        import pandas as pd

        ab = self.abstractor
        rows = self._selected
        labels = [topic["label"] for topic in ab.topics]
        records = []
        dominant = np.asarray(ab.model.doc_topics_[rows]).argmax(axis=1) if len(rows) else np.zeros(0, int)
        coords = np.asarray(ab.corpus_map.coords_[rows]) if ab.corpus_map is not None and len(rows) else np.full((len(rows), 2), np.nan)
        for i, row in enumerate(rows.tolist()):
            doc = ab.documents[row]
            records.append({"row": row, "id": doc.id, "title": doc.title, "published": doc.published,
                            "categories": doc.categories, "topic": int(dominant[i]), "topic_label": labels[int(dominant[i])],
                            "x": float(coords[i, 0]), "y": float(coords[i, 1]), "url": f"https://arxiv.org/abs/{doc.id}"})
        return pd.DataFrame(records, columns=["row", "id", "title", "published", "categories", "topic", "topic_label", "x", "y", "url"])

    def export(self, what: str = "similar", fmt: str = "csv") -> str:
        """The analyser's similar papers (``"similar"``) or the selection as CSV or BibTeX."""
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"format must be one of {sorted(EXPORT_FORMATS)}")
        if what == "similar":
            items: Any = self._analyser.similar
        elif what == "selection":
            items = self.selection
        else:
            raise ValueError("what must be 'similar' or 'selection'")
        return to_csv(items) if fmt == "csv" else to_bibtex(items)

    # ------------------------------------------------------------------ browser input
    def set_state(self, sync_data: Any) -> None:
        """Apply a browser update, refusing kernel-owned traits and invalid values (-> ``error``)."""
        if not isinstance(sync_data, dict):
            self.error = "Ignored a malformed state update from the browser."
            return
        problems, resend = [], []
        for name, value in sync_data.items():
            if name not in self._BROWSER_WRITABLE:
                problems.append(f"The view may not set '{_preview(name)}'.")
                resend.append(name)
                continue
            try:
                super().set_state({name: value})
            except Exception as exc:
                problems.append(f"Ignored an invalid value for '{name}': {_preview(str(exc), 120)}")
                resend.append(name)
        if resend:
            self.send_state([n for n in resend if n in self.keys])
        if problems:
            self.error = " ".join(problems)

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        try:
            if not isinstance(content, dict) or not isinstance(content.get("type"), str):
                raise _Rejected("Ignored a message from the browser without a 'type'.")
            handler = self._HANDLERS.get(content["type"])
            if handler is None:
                raise _Rejected(f"Ignored a message of unknown type '{_preview(content['type'])}'.")
            handler(self, content, buffers or [])
        except _Rejected as exc:
            self.error = str(exc)
        except Exception as exc:
            logger.exception("ExploreWidget: message handler failed")
            self.error = f"Something went wrong: {_preview(str(exc), 200)}"

    def _row(self, content: dict[str, Any]) -> int:
        row = content.get("row")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(self.abstractor):
            raise _Rejected("A map point must be a row number of the corpus.")
        return row

    def _msg_hover(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        row = self._row(content)
        doc = self.abstractor.documents[row]
        topic = int(np.argmax(self.abstractor.model.doc_topics_[row])) if self.n_points else None
        self.send({"type": "hover", "row": row, "id": doc.id, "title": doc.title, "published": doc.published,
                   "categories": doc.categories, "topic": topic})

    def _msg_open(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        row = self._row(content)
        self._analyser.load_document(self.abstractor.documents.field("id", row))

    def _msg_select(self, _content: dict[str, Any], buffers: list[Any]) -> None:
        if len(buffers) != 1:
            raise _Rejected("A selection comes as one buffer of uint32 rows.")
        raw = memoryview(buffers[0]).cast("B")
        if len(raw) % 4:
            raise _Rejected("A selection comes as one buffer of uint32 rows.")
        if len(raw) // 4 > MAX_SELECTION:
            raise _Rejected(f"At most {MAX_SELECTION:,} papers can be selected at once.")
        rows = np.frombuffer(raw, dtype="<u4").astype(np.int64)
        try:
            self.select_rows(rows)
        except ValueError as exc:
            raise _Rejected(str(exc)) from None

    def _msg_select_region(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        try:
            self.select_region(content.get("polygon"))
        except ValueError as exc:
            raise _Rejected(f"Selection not made: {_preview(str(exc), 200)}") from None
        self.error = ""

    def _msg_export(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        what, fmt = content.get("what"), content.get("format")
        if what not in ("similar", "selection") or fmt not in EXPORT_FORMATS:
            raise _Rejected("Export what ('similar' or 'selection') as 'csv' or 'bibtex'?")
        mime, ext = EXPORT_FORMATS[fmt]
        text = self.export(what, fmt)
        name = re.sub(r"[^a-z0-9-]", "-", f"abstractor-{what}")
        self.send({"type": "download", "filename": f"{name}.{ext}", "mime": mime, "text": text,
                   "count": int(len(records_frame(self._analyser.similar if what == "similar" else self.selection)))})

    _HANDLERS: ClassVar[dict[str, Callable[..., None]]] = {
        "hover": _msg_hover,
        "open": _msg_open,
        "select": _msg_select,
        "select_region": _msg_select_region,
        "export": _msg_export,
    }

    def close(self) -> None:
        for link in self._links:
            link.unlink()
        try:
            self._analyser.unobserve(self._on_analysis, names=["doc_topics", "similar", "source"])
        except ValueError:
            pass
        super().close()


def with_explorer(board: Any) -> Any:
    """The dashboard (:func:`abstractor_widgets.dashboard.dashboard`) with the corpus explorer
    under it, linked to its analyser. A dashboard that failed (plain HTML) is returned as is,
    and so is one whose explorer cannot be built (the reason goes to the server log)."""
    widget = getattr(board, "widget", None)
    if not isinstance(widget, AbstractorWidget):
        return board
    try:
        explorer = ExploreWidget(widget)
    except Exception:  # the analyser still works without the explorer
        logger.exception("the corpus explorer could not be built")
        return board
    import ipywidgets

    box = ipywidgets.VBox([board, explorer], layout=ipywidgets.Layout(width="100%"))
    box.dashboard, box.explorer = board, explorer
    return box
