"""The anywidget view over :class:`~abstractor_widgets.abstractor.Abstractor`.

:class:`AbstractorWidget` is a thin, stateful view: every piece of state the browser
shows lives in synced traitlets (so the last result survives re-display and HTML
export), every update makes exactly one ``abstractor.analyze(text, n)`` call, and
nothing the browser sends can raise in the kernel: malformed or hostile input only
sets :attr:`AbstractorWidget.error`.

Examples
--------
>>> w = Abstractor.load("artifacts/default").widget()         # doctest: +SKIP
>>> w.text = "We train a transformer on protein sequences."      # doctest: +SKIP
>>> [h["title"] for h in w.similar]                              # doctest: +SKIP
>>> w                                                            # doctest: +SKIP

See ``docs/widget.md`` for the state and message contract.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget
import traitlets as t

from .corpus import arxiv_url
from .model import MAX_LABEL_CHARS
from .text import MAX_TEXT_CHARS

if TYPE_CHECKING:
    from .abstractor import Abstractor

logger = logging.getLogger(__name__)

__all__ = [
    "AbstractorWidget",
    "PALETTE",
    "PATTERNS",
    "topic_style",
    "N_SIMILAR_MIN",
    "N_SIMILAR_MAX",
    "MAX_TEXT_CHARS",
    "MAX_LABEL_CHARS",
]

#: Okabe & Ito's colour-blind-safe palette (2008) without its black, which would vanish
#: on a dark background. Each colour is used as an underline and as a translucent
#: background tint behind text drawn in the theme's own foreground colour, so the text
#: keeps the theme's contrast in light and dark themes.
PALETTE: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
)
#: Second cue for models with more topics than colours: topic ``k`` gets colour
#: ``PALETTE[k % 7]`` and underline style ``PATTERNS[(k // 7) % 5]`` (35 distinct pairs).
PATTERNS: tuple[str, ...] = ("solid", "dashed", "dotted", "double", "wavy")

N_SIMILAR_MIN, N_SIMILAR_MAX = 1, 50
MAX_ID_CHARS = 200

# Characters a topic label may not contain: markup brackets, C0/C1 controls and the
# bidirectional overrides that can disguise text.
_FORBIDDEN_LABEL_CHARS = re.compile("[<>\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def topic_style(k: int) -> tuple[str, str]:
    """Colour and underline style of topic ``k`` (stable: depends on ``k`` only)."""
    return PALETTE[k % len(PALETTE)], PATTERNS[(k // len(PALETTE)) % len(PATTERNS)]


_STATIC = Path(__file__).parent / "static"
_MISSING_BUNDLE_ESM = """\
export default {
  render({ el }) {
    el.textContent = "abstractor_widgets: the front-end bundle is not built. "
      + "Run `npm --prefix js ci && npm --prefix js run build` (or `pip install -e .`).";
  },
};
"""


def _asset(name: str, fallback: str) -> Path | str:
    """The built file under ``static/`` or, when it is missing, inline ``fallback``.

    anywidget raises at class creation when ``_esm`` names a missing file; a source
    checkout without a JS build must still import (tests, the CLI, the facade).
    """
    path = _STATIC / name
    if path.is_file():
        return path
    logger.warning("%s is missing: build the front end with `npm --prefix js ci && "
                   "npm --prefix js run build` (or `pip install -e .`)", path)  # fmt: skip
    return fallback


class _Rejected(ValueError):
    """A browser message or state update that the widget refuses (becomes ``error``)."""


def _preview(value: object, limit: int = 40) -> str:
    """A short, printable description of untrusted input for error messages."""
    text = value if isinstance(value, str) else type(value).__name__
    short = _FORBIDDEN_LABEL_CHARS.sub("\N{REPLACEMENT CHARACTER}", text[:limit])
    return short if len(text) <= limit else short[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lean_hit(hit: dict[str, Any]) -> dict[str, Any]:
    """A hit without its abstract: the view loads a paper by id, so each update stays small."""
    return {key: value for key, value in hit.items() if key != "abstract"}


def _plain_spans(text: str) -> list[dict[str, Any]]:
    """One non-topical span covering ``text`` (or none for the empty string)."""
    if not text:
        return []
    return [{"start": 0, "end": len(text), "text": text, "topic": None, "weight": 0.0}]


def clean_label(label: object) -> str:
    """Validate a topic label typed by a user; raise ``ValueError`` with a readable reason."""
    if not isinstance(label, str):
        raise ValueError(f"A topic label must be text, not {type(label).__name__}.")
    if len(label) > 4 * MAX_LABEL_CHARS:  # refuse huge input before touching it
        raise ValueError(f"A topic label can have at most {MAX_LABEL_CHARS} characters.")
    if _FORBIDDEN_LABEL_CHARS.search(label):
        raise ValueError("A topic label cannot contain '<', '>' or control characters.")
    label = " ".join(label.split())
    if not label:
        raise ValueError("A topic label cannot be empty.")
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"A topic label can have at most {MAX_LABEL_CHARS} characters.")
    return label


class AbstractorWidget(anywidget.AnyWidget):
    """Colour an abstract by topic and list similar papers, in Jupyter or Voilà.

    Parameters
    ----------
    abstractor : Abstractor
        The facade to show (``Abstractor.load(path)`` or ``Abstractor.train(...)``).
    text : str
        Initial abstract.
    n_similar : int
        Number of similar papers, clamped to ``[1, 50]``.
    method : str
        Ranking of the similar papers: ``""`` (the model's default, ``"hybrid"`` when it
        has a lexical index) or one of :attr:`methods` (see ``Abstractor.similar``).

    Notes
    -----
    Setting :attr:`text`, :attr:`n_similar` or :attr:`method` (from Python or the browser) recomputes
    the result with one ``abstractor.analyze`` call. Actions are methods
    (:meth:`random_abstract`, :meth:`load_document`, :meth:`rename_topic`) that the
    browser triggers with custom messages ``{"type": "random"}``,
    ``{"type": "load_similar", "id": ...}`` and
    ``{"type": "rename_topic", "topic": k, "label": ...}``.
    """

    _esm = _asset("widget.js", _MISSING_BUNDLE_ESM)
    _css = _asset("widget.css", "/* abstractor_widgets: widget.css is not built */\n")

    # Inputs (the browser may write these).
    text = t.Unicode("", help="The abstract being analysed.").tag(sync=True)
    n_similar = t.Int(5, help="How many similar papers to list (1-50).").tag(sync=True)
    method = t.Unicode("", help="Ranking of similar papers: '' (the model's default) or one of `methods`.").tag(
        sync=True
    )
    highlight_topic = t.Int(None, allow_none=True, help="Topic whose words are emphasised.").tag(
        sync=True
    )
    request_id = t.Int(0, help="Counter the view bumps with every input it sends.").tag(sync=True)

    # Results (kernel-owned).
    spans = t.List(help="Span dicts covering `text` exactly.").tag(sync=True)
    doc_topics = t.List(help="Topic mix of `text` (K floats summing to 1, or zeros).").tag(sync=True)
    similar = t.List(help="Hit dicts of the most similar papers (without abstracts).").tag(sync=True)
    topics = t.List(help="[{id, label, color, pattern, terms}] for every topic.").tag(sync=True)
    reason = t.Unicode("", help="Why the result is empty ('' when it is not).").tag(sync=True)
    source = t.Dict(help="{id, title, url, ...} of the paper `text` was loaded from, or {}.").tag(
        sync=True
    )
    result_id = t.Int(0, help="`request_id` the current result answers.").tag(sync=True)
    elapsed_ms = t.Float(0.0, help="Time the last analysis took.").tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("", help="Human-readable problem with the last input or action.").tag(
        sync=True
    )
    max_text_chars = t.Int(MAX_TEXT_CHARS, read_only=True).tag(sync=True)
    n_similar_min = t.Int(N_SIMILAR_MIN, read_only=True, help="Smallest `n_similar` (the view's bound).").tag(sync=True)
    n_similar_max = t.Int(N_SIMILAR_MAX, read_only=True, help="Largest `n_similar` (the view's bound).").tag(sync=True)
    methods = t.List(help="Ranking methods the model supports (the first is its default).").tag(sync=True)
    editable_labels = t.Bool(True, help="Whether topic labels can be renamed from the view.").tag(sync=True)

    #: Traits a browser may set; any other synced trait it sends is refused and re-sent.
    _BROWSER_WRITABLE: ClassVar[frozenset[str]] = frozenset(
        {"text", "n_similar", "method", "highlight_topic", "request_id"}
    )
    _KERNEL_OWNED: ClassVar[frozenset[str]] = frozenset(
        {"spans", "doc_topics", "similar", "topics", "reason", "source", "result_id",
         "elapsed_ms", "busy", "error", "max_text_chars", "n_similar_min", "n_similar_max", "editable_labels",
         "methods"}
    )  # fmt: skip

    def __init__(
        self, abstractor: Abstractor, text: str = "", n_similar: int = 5, method: str = "", **kwargs: Any
    ) -> None:
        self._abstractor = abstractor
        self._n_topics = int(abstractor.n_topics)
        self._source_text: str | None = None
        self._holding = True  # no analysis until the constructor has set every input
        self._dirty = False
        self._row_filter = None  # an ExploreWidget's filters: rows the similar papers may come from
        super().__init__(**kwargs)
        self.topics = self._topic_state()
        self.methods = list(abstractor.methods)
        self.n_similar = n_similar
        self.method = method
        self.text = text
        self._holding = False
        self._update()
        self.on_msg(self._on_custom_msg)

    @property
    def abstractor(self) -> Abstractor:
        """The facade this widget shows."""
        return self._abstractor

    def reload(self) -> None:
        """Pick up the model as it is now on disk (e.g. after ``abstractor update``).

        The text and n stay; topics, spans and similar papers are recomputed.
        """
        self._abstractor = self._abstractor.reload()
        self._n_topics = int(self._abstractor.n_topics)
        self.topics = self._topic_state()
        self.methods = list(self._abstractor.methods)
        if self.method and self.method not in self.methods:
            self.method = ""  # the reloaded model lacks it (recomputes)
        self._update()

    def set_row_filter(self, mask: Any) -> None:
        """Rank similar papers among the rows where ``mask`` is true (``None``: every paper); re-analyses."""
        self._row_filter = mask
        self._update()

    # ------------------------------------------------------------------ validation
    @t.validate("text")
    def _validate_text(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if len(value) > MAX_TEXT_CHARS:
            raise t.TraitError(
                f"The text has {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}."
            )
        return value

    @t.validate("n_similar")
    def _validate_n_similar(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if isinstance(value, bool):
            raise t.TraitError("n_similar must be an integer.")
        return min(max(int(value), N_SIMILAR_MIN), N_SIMILAR_MAX)

    @t.validate("method")
    def _validate_method(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value and value not in self.methods:
            raise t.TraitError(f"method must be '' (the default) or one of {', '.join(self.methods)}.")
        return value

    @t.validate("highlight_topic")
    def _validate_highlight_topic(self, proposal: dict[str, Any]) -> int | None:
        value = proposal["value"]
        if value is not None and (isinstance(value, bool) or not 0 <= value < self._n_topics):
            raise t.TraitError(
                f"highlight_topic must be None or a topic id in [0, {self._n_topics - 1}]."
            )
        return value

    # ------------------------------------------------------------------ updates
    @t.observe("text", "n_similar", "method")
    def _on_input(self, _change: dict[str, Any]) -> None:
        if self._holding:
            self._dirty = True
        else:
            self._update()

    @contextmanager
    def _inputs_held(self) -> Iterator[None]:
        """Set several inputs without an analysis each: afterwards `_dirty` says whether one is due."""
        self._holding, self._dirty = True, False
        try:
            yield
        finally:
            self._holding = False

    def _update(self, problem: str = "") -> None:
        """Recompute every result trait with one ``analyze`` call; never raises."""
        text, n = self.text, self.n_similar
        if self.source and text != self._source_text:
            self.source, self._source_text = {}, None
        self.busy = True  # sent at once, before the (blocking) analysis
        exclude = self.source.get("id")
        reason, elapsed = "", 0.0
        try:
            # The loaded paper would be its own best match: ask for one more, drop it.
            if self._row_filter is None:
                analysis = self._abstractor.analyze(text, n + 1 if exclude else n, method=self.method or None)
            else:  # an ExploreWidget's filters: rank among the kept papers only
                from .explore import filtered_analyze

                analysis = filtered_analyze(self._abstractor, text, n + 1 if exclude else n, self.method or None,
                                            self._row_filter)
            spans, doc_topics = analysis.spans, analysis.doc_topics
            similar = [_lean_hit(h) for h in analysis.similar if h["id"] != exclude][:n]
            reason = analysis.reason or ""
            elapsed = round(analysis.elapsed_ms, 2)
        except Exception:  # a view never raises: show the problem instead
            logger.exception("AbstractorWidget: analysis failed")
            spans, doc_topics, similar = _plain_spans(text), [], []
            problem = "The analysis failed; the details are in the server's log."
        with self.hold_sync():
            self.spans, self.doc_topics, self.similar = spans, doc_topics, similar
            self.reason = reason
            self.elapsed_ms = elapsed
            self.error = problem
            self.result_id = self.request_id
            self.busy = False

    def _topic_state(self) -> list[dict[str, Any]]:
        """The facade's topics plus each one's colour and underline style."""
        return [
            dict(topic, color=color, pattern=pattern)
            for topic in self._abstractor.topics
            for color, pattern in [topic_style(topic["id"])]
        ]

    # ------------------------------------------------------------------ actions
    def random_abstract(self, seed: int | None = None) -> None:
        """Show a random paper of the corpus."""
        self._show_document(self._abstractor.random_document(seed=seed))

    def load_document(self, doc_id: str) -> None:
        """Show paper ``doc_id`` of the corpus (``KeyError`` if unknown)."""
        self._show_document(self._abstractor.document(doc_id))

    def rename_topic(self, topic: int, label: str) -> None:
        """Label topic ``topic`` (persists with the model) and refresh :attr:`topics`.

        Raises ``ValueError`` for an unknown topic or an invalid label.
        """
        if not self.editable_labels:
            raise ValueError("Topic labels are read-only in this view.")
        if not _is_int(topic) or not 0 <= topic < self._n_topics:
            raise ValueError(f"Unknown topic {_preview(str(topic))}: ids run from 0 to "
                             f"{self._n_topics - 1}.")  # fmt: skip
        self._abstractor.label_topic(topic, clean_label(label))
        with self.hold_sync():
            self.topics = self._topic_state()
            self.error = ""

    def _show_document(self, doc: Any) -> None:
        if len(doc.text) > MAX_TEXT_CHARS:
            raise _Rejected(f"Paper {_preview(doc.id)} is too long to show.")
        # The paper's source, its text and `busy` reach the view in one message (a view
        # never shows the new title over the old text); the result follows in a second.
        with self.hold_sync(), self._inputs_held():
            self._source_text = doc.text
            self.source = {
                "id": doc.id,
                "title": doc.title,
                "url": arxiv_url(doc.id),
                "categories": doc.categories,
                "published": doc.published,
            }
            self.text = doc.text
            self.busy = True
        self._update()  # even for the same text: `source` changed

    # ------------------------------------------------------------------ browser input
    def set_state(self, sync_data: Any) -> None:
        """Apply a state update from the browser, refusing what it may not set.

        Each key is applied on its own; a refused key is re-sent so the browser shows
        the kernel's value again, and the reason goes to :attr:`error`. At most one
        analysis runs, after every key has been applied.
        """
        if not isinstance(sync_data, dict):
            self.error = "Ignored a malformed state update from the browser."
            return
        problems: list[str] = []
        resend: list[str] = []
        with self._inputs_held():
            for name, value in sync_data.items():
                if name in self._KERNEL_OWNED:
                    problems.append(f"The view may not set '{name}'.")
                    resend.append(name)
                    continue
                try:
                    super().set_state({name: value})
                except Exception as exc:  # TraitError, or a from_json failure
                    problems.append(self._describe_bad_value(name, value, exc))
                    resend.append(name)
                    continue
                if name == "n_similar" and value != self.n_similar:
                    problems.append(
                        f"n_similar must be between {N_SIMILAR_MIN} and {N_SIMILAR_MAX}; "
                        f"using {self.n_similar}."
                    )
        if resend:
            self.send_state(resend)
        problem = " ".join(problems)
        if self._dirty:
            self._update(problem)
        else:
            with self.hold_sync():
                self.result_id = self.request_id
                if problems:
                    self.error = problem

    @staticmethod
    def _describe_bad_value(name: str, value: Any, exc: Exception) -> str:
        if isinstance(exc, t.TraitError) and name == "text" and isinstance(value, str):
            return str(exc)
        if isinstance(exc, t.TraitError) and name == "highlight_topic" and _is_int(value):
            return str(exc)
        return f"Ignored an invalid value for '{_preview(name)}' ({_preview(value)})."

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        try:
            self._handle_message(content)
        except _Rejected as exc:
            self.error = str(exc)
        except Exception:  # never let a browser message raise in the kernel
            logger.exception("AbstractorWidget: message handler failed")
            self.error = "Something went wrong; the details are in the server's log."
            self.busy = False

    def _handle_message(self, content: Any) -> None:
        if not isinstance(content, dict):
            raise _Rejected("Ignored a message from the browser that is not an object.")
        kind = content.get("type")
        if not isinstance(kind, str):
            raise _Rejected("Ignored a message from the browser without a 'type'.")
        handler = self._HANDLERS.get(kind)
        if handler is None:
            raise _Rejected(f"Ignored a message of unknown type '{_preview(kind)}'.")
        handler(self, content)

    def _msg_random(self, _content: dict[str, Any]) -> None:
        self.random_abstract()

    def _msg_load_similar(self, content: dict[str, Any]) -> None:
        doc_id = content.get("id")
        if not isinstance(doc_id, str) or not 0 < len(doc_id) <= MAX_ID_CHARS:
            raise _Rejected("A paper id must be a short, non-empty string.")
        try:
            self.load_document(doc_id)
        except KeyError:
            raise _Rejected(f"Unknown paper id '{_preview(doc_id)}'.") from None

    def _msg_rename_topic(self, content: dict[str, Any]) -> None:
        from .store import ArtifactError

        try:
            self.rename_topic(content.get("topic"), content.get("label"))
        except (ValueError, TypeError, IndexError) as exc:
            raise _Rejected(str(exc)) from None
        except (OSError, ArtifactError):
            logger.exception("AbstractorWidget: saving a topic label failed")
            raise _Rejected("The label could not be saved (the model's folder is read-only or changed); "
                            "the details are in the server's log.") from None

    _HANDLERS: ClassVar[dict[str, Callable[[AbstractorWidget, dict[str, Any]], None]]] = {
        "random": _msg_random,
        "load_similar": _msg_load_similar,
        "rename_topic": _msg_rename_topic,
    }
