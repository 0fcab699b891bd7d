"""The Voilà dashboard: the default model, loaded once per kernel, around the widget.

The dashboard notebook (``abstractor_widgets/voila/dashboard.ipynb``, package data; the
repository links it as ``notebooks/dashboard.ipynb``) is a title and one call to
:func:`dashboard`; ``abstractor dashboard ARTIFACT`` serves it with Voilà (see
:mod:`abstractor_widgets.voila`), and it runs the same way in JupyterLab and Notebook 7.

* :func:`artifact_path` — which model to serve: ``$ABSTRACTOR_ARTIFACT``, else
  ``<repo>/artifacts/default``.
* :func:`load_or_train` — the model, memory-mapped and cached per kernel (every later call
  returns the same object); trains it once, with progress, when the artifact is missing
  (a file lock keeps two kernels from training the same artifact at once). Under
  ``abstractor dashboard`` the server verified the artifact's checksums once at start
  (``$ABSTRACTOR_ARTIFACT_VERIFIED`` = its digest): each kernel then checks the sizes and
  the pinned manifest digest only, and never trains.
* :func:`dashboard` — the layout: a header (corpus, number of topics, how to use) and the
  :class:`~abstractor_widgets.widget.AbstractorWidget`. Public by default: topic labels
  are read-only unless the operator allows renaming (``editable_labels=True`` or
  ``$ABSTRACTOR_EDIT_LABELS=1``). A failure shows visitors one short sentence
  (:data:`FAILURE_MESSAGE`); the traceback goes to the server's log (standard error).

Examples
--------
>>> from abstractor_widgets.dashboard import dashboard
>>> dashboard()                                         # doctest: +SKIP
>>> dashboard(path="artifacts/mine", n_similar=10)      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import IPython.display
import ipywidgets

if TYPE_CHECKING:
    from .abstractor import Abstractor
    from .widget import AbstractorWidget

logger = logging.getLogger(__name__)

__all__ = [
    "ARTIFACT_ENV_VAR", "VERIFIED_ENV_VAR", "EDIT_LABELS_ENV_VAR", "FAILURE_MESSAGE",
    "artifact_path", "labels_editable", "load_or_train", "dashboard", "header_html", "Dashboard",
]  # fmt: skip

#: Environment variable naming the artifact directory the dashboard serves.
ARTIFACT_ENV_VAR = "ABSTRACTOR_ARTIFACT"
#: Set by ``abstractor dashboard`` for its kernels: the digest of the artifact's manifest
#: (``store.artifact_digest``) after the server verified every checksum once at start.
#: A kernel then loads ``$ABSTRACTOR_ARTIFACT`` with ``verify=False`` (sizes only) and
#: that digest pinned, instead of re-hashing the whole artifact.
VERIFIED_ENV_VAR = "ABSTRACTOR_ARTIFACT_VERIFIED"
#: ``1`` (or ``true``/``yes``/``on``) lets visitors rename topics; anything else: read-only.
EDIT_LABELS_ENV_VAR = "ABSTRACTOR_EDIT_LABELS"
#: All a visitor sees when the dashboard cannot be shown (the log gets the traceback).
FAILURE_MESSAGE = "The dashboard could not load its model. The administrator has been notified."
#: Topics of the default model trained when the artifact is missing.
DEFAULT_TOPICS = 20
#: The repository checkout this module lives in.
REPO_ROOT = Path(__file__).resolve().parent.parent

_cache: dict[Path, Abstractor] = {}
_cache_lock = threading.Lock()


def artifact_path() -> Path:
    """The artifact directory to serve: ``$ABSTRACTOR_ARTIFACT`` or ``<repo>/artifacts/default``."""
    env = os.environ.get(ARTIFACT_ENV_VAR, "").strip()
    path = Path(env).expanduser() if env else REPO_ROOT / "artifacts" / "default"
    return path.resolve()


def labels_editable(value: bool | None = None) -> bool:
    """Whether visitors may rename topics: ``value`` if given, else ``$ABSTRACTOR_EDIT_LABELS``."""
    if value is not None:
        return bool(value)
    return os.environ.get(EDIT_LABELS_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


def _say(message: str, detail: str = "") -> None:
    """Progress for both audiences: the notebook output (``message``) and the server's
    terminal (``message`` and ``detail``, e.g. a path visitors need not see)."""
    print(message, flush=True)
    terminal = sys.__stderr__
    if terminal is not None and terminal is not sys.stdout:
        with contextlib.suppress(Exception):
            terminal.write(f"[abstractor dashboard] {message}{' ' + detail if detail else ''}\n")
            terminal.flush()


class _ServerLogHandler(logging.StreamHandler):
    """Writes to the process's real standard error (the server's log), never to a cell."""

    def __init__(self) -> None:
        super().__init__(sys.__stderr__)
        self.setFormatter(logging.Formatter("[abstractor dashboard] %(levelname)s %(name)s: %(message)s"))


def _route_logs_to_server() -> None:
    """Send the package's warnings and tracebacks to the server's log.

    In a kernel with no logging configured, Python's last-resort handler writes to
    ``sys.stderr``, which ipykernel shows in the cell: a traceback (and any server path in
    it) would reach the visitor's page. Voilà also strips stderr from cells; this is the
    other half: the operator gets the record.
    """
    package = logging.getLogger(__package__ or "abstractor_widgets")
    if any(isinstance(h, _ServerLogHandler) for h in package.handlers):
        return
    if logging.getLogger().handlers and sys.__stderr__ is sys.stderr:
        return  # a configured process outside a kernel: leave its logging alone
    if sys.__stderr__ is None:
        return
    handler = _ServerLogHandler()
    handler.setLevel(logging.WARNING)
    package.addHandler(handler)


@contextlib.contextmanager
def _train_lock(path: Path) -> Iterator[None]:
    """An exclusive lock next to ``path`` (two kernels never train one artifact twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.train.lock"
    with open(lock, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_or_train(
    path: str | os.PathLike[str] | None = None,
    *,
    n_topics: int = DEFAULT_TOPICS,
    progress: bool = True,
) -> Abstractor:
    """The model at ``path`` (default :func:`artifact_path`), loaded once per kernel.

    The artifact is memory-mapped (:meth:`Abstractor.load`), so every kernel serving the
    same artifact shares its large arrays through the page cache. When the directory has
    no ``manifest.json``, the model is first trained on the default corpus
    (``Abstractor.train(None, n_topics, out=path)``, a few minutes for 60,000 abstracts,
    with progress bars) and saved there atomically.

    Parameters
    ----------
    path : path-like, optional
    n_topics : int
        Topics of a model trained here (ignored when the artifact exists).
    progress : bool
        Show training progress.

    Returns
    -------
    Abstractor
        The same object for every call with the same path in this process.

    Raises
    ------
    abstractor_widgets.store.ArtifactError
        For a corrupt or incompatible artifact (delete it to retrain), or, under
        ``abstractor dashboard``, one that changed since the server verified it.
    abstractor_widgets.corpus.CorpusError
        When training is needed and no default corpus is found (set ``ABSTRACTOR_CORPUS``).
    """
    from .abstractor import Abstractor
    from .store import ArtifactError

    target = Path(path).expanduser().resolve() if path is not None else artifact_path()
    verified = os.environ.get(VERIFIED_ENV_VAR, "").strip() if target == artifact_path() else ""
    with _cache_lock:
        cached = _cache.get(target)
        if cached is not None:
            return cached
        if not (target / "manifest.json").is_file():
            if verified:  # the server verified an artifact that is gone now: never train here
                raise ArtifactError(f"{target}: the artifact verified at server start has no manifest any more")
            with _train_lock(target):
                if not (target / "manifest.json").is_file():  # another kernel may have finished it
                    _say(f"No model yet: training {n_topics} topics on the default corpus "
                         "(once; a few minutes for 60,000 abstracts) ...", f"({target})")  # fmt: skip
                    start = time.perf_counter()
                    Abstractor.train(None, n_topics, out=target, progress=progress)
                    _say(f"Trained and saved in {time.perf_counter() - start:.0f} s.")
        start = time.perf_counter()
        if verified:  # checksums verified once by the server: sizes + the pinned manifest digest
            abstractor = Abstractor.load(target, verify=False, expected_digest=verified)
        else:
            abstractor = Abstractor.load(target)
        _warm_up(abstractor)
        logger.info("loaded %r in %.2f s", abstractor, time.perf_counter() - start)
        _cache[target] = abstractor
        return abstractor


#: Analysed once after loading: the first query pays for lazy loads (the lemmatizer's
#: dictionary, ~0.5-1 s), which belong to kernel start-up (preheated by Voilà), not to
#: the visitor's first keystroke.
WARM_UP_TEXT = (
    "We propose a neural network model for image segmentation and language understanding, "
    "trained with reinforcement learning on large datasets."
)


def _warm_up(abstractor: Abstractor) -> None:
    try:
        abstractor.analyze(WARM_UP_TEXT, n=1)
    except Exception:  # a warm-up must never stop the dashboard
        logger.exception("warm-up analysis failed")


def _fmt_int(n: Any) -> str:
    try:
        return f"{int(n):,}"
    except (TypeError, ValueError):
        return "?"


#: The theme's text colour and font, for the header and the failure notice (shown alone).
_TEXT_CSS = """
.abstractor-dash-header, .abstractor-dash-failure {
  color: var(--jp-ui-font-color1, #1f2328);
  font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px);
}"""

_HEADER_CSS = """
<style>""" + _TEXT_CSS + """
.abstractor-dash-header {
  line-height: 1.5;
  padding: 4px 12px 8px;
  border-bottom: 1px solid var(--jp-border-color2, #e1e4e8);
  margin-bottom: 4px;
}
.abstractor-dash-header h1.abstractor-dash-title {
  margin: 0 0 4px; font-size: 1.6em; font-weight: 600; color: inherit;
}
.abstractor-dash-facts { margin: 0 0 6px; color: var(--jp-ui-font-color1, #1f2328); }
.abstractor-dash-facts b { font-variant-numeric: tabular-nums; }
.abstractor-dash-howto { margin: 0; padding-left: 1.4em; color: var(--jp-ui-font-color2, #59636e); }
.abstractor-dash-howto li { margin: 1px 0; }
.abstractor-dash-header code {
  color: inherit; background: var(--jp-layout-color2, #f2f4f7); padding: 0 3px; border-radius: 3px;
}
</style>
"""


def header_html(abstractor: Abstractor, title: str | None = None, editable_labels: bool = False) -> str:
    """The dashboard header: optional title, corpus size, K, and how to use it (escaped HTML).

    ``editable_labels`` adds the line on renaming topics (✎).
    """
    manifest = abstractor.manifest or {}
    corpus = manifest.get("corpus") or {}
    name = str(corpus.get("name") or "")
    if "/" in name or "\\" in name:  # a corpus trained from a file: its name, not its path
        name = Path(name).name
    size = len(abstractor)
    path = abstractor.path.name if abstractor.path is not None else ""
    facts = [
        f"<b>{_fmt_int(size)}</b> papers" + (f" ({html.escape(name)})" if name else ""),
        f"<b>{_fmt_int(abstractor.n_topics)}</b> LDA topics",
    ]
    if abstractor.default_method == "hybrid" and abstractor.embedding is not None:
        facts.append("similar papers by shared words, topics and meaning (static embeddings)")
    elif abstractor.default_method == "hybrid":
        facts.append("similar papers by shared words + topics")
    elif manifest.get("metric"):
        facts.append(f"similar papers by topics ({html.escape(str(manifest['metric']))})")
    if path:
        facts.append(f"model <code>{html.escape(path)}</code>")
    heading = f'<h1 class="abstractor-dash-title">{html.escape(title)}</h1>' if title else ""
    return (
        _HEADER_CSS
        + '<div class="abstractor-dash-header">'
        + heading
        + '<p class="abstractor-dash-facts">' + " · ".join(facts) + "</p>"
        + '<ul class="abstractor-dash-howto">'
        "<li><b>Paste or type</b> an abstract: every word the model knows is coloured by its topic, "
        "and the topic mix and the most similar papers update as you type.</li>"
        "<li><b>Random abstract</b> shows a paper of the corpus; click a similar paper's title to "
        "load its abstract, or its arXiv link to open it.</li>"
        "<li>Click a topic (or a coloured word) to highlight its words"
        + ("; ✎ renames a topic" if editable_labels else "")
        + "; <b>Rank by</b> chooses how similar papers are found, <b>Show</b> how many are listed.</li>"
        "</ul></div>"
    )


class Dashboard(ipywidgets.VBox):
    """The dashboard layout: :attr:`header` (an ``ipywidgets.HTML``) above :attr:`widget`."""

    def __init__(self, header: ipywidgets.HTML, widget: AbstractorWidget, **kwargs: Any) -> None:
        super().__init__(children=(header, widget), **kwargs)
        self.header = header
        self.widget = widget
        self.add_class("abstractor-dashboard")


_FAILURE_CSS = """
<style>""" + _TEXT_CSS + """
.abstractor-dash-failure {
  margin: 12px; padding: 12px 16px; border-radius: 6px;
  border: 1px solid var(--jp-warn-color1, #bf8700);
  background: var(--jp-layout-color1, #fff8c5);
}
</style>
"""


def failure_html(message: str = FAILURE_MESSAGE) -> str:
    """The short notice visitors see instead of the dashboard (escaped HTML)."""
    return _FAILURE_CSS + f'<div class="abstractor-dash-failure" role="alert">{html.escape(message)}</div>'


def _report_failure() -> None:
    """The current exception's traceback, to the server's log (never to the page)."""
    if _has_handler(logger):
        logger.error("the dashboard could not be shown", exc_info=True)
        return
    with contextlib.suppress(Exception):  # no handler: Python's last resort would print to the cell
        sys.__stderr__.write("[abstractor dashboard] the dashboard could not be shown\n" + traceback.format_exc())
        sys.__stderr__.flush()


def _has_handler(log: logging.Logger) -> bool:
    current: logging.Logger | None = log
    while current is not None:
        if current.handlers:
            return True
        current = current.parent if current.propagate else None
    return False


def dashboard(
    abstractor: Abstractor | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    text: str = "",
    n_similar: int = 5,
    editable_labels: bool | None = None,
    raise_errors: bool = False,
) -> Dashboard | IPython.display.HTML:
    """The dashboard: a header (title, corpus size, K, how to use) and the widget.

    Parameters
    ----------
    abstractor : Abstractor, optional
        The model to show; default :func:`load_or_train` of ``path``.
    path : path-like, optional
        Artifact directory (default :func:`artifact_path`).
    title : str, optional
        A heading inside the header (the notebook has its own title cell).
    text : str
        Initial abstract (empty: the widget shows its empty state).
    n_similar : int
        Similar papers listed at first.
    editable_labels : bool, optional
        Whether visitors may rename topics (a rename is saved into the shared artifact).
        Default: ``$ABSTRACTOR_EDIT_LABELS`` (``abstractor dashboard --edit-labels``), else
        read-only: the public mode.
    raise_errors : bool
        Raise instead of showing :data:`FAILURE_MESSAGE` (for programs and tests).

    Returns
    -------
    Dashboard or IPython.display.HTML
        An ``ipywidgets.VBox`` with ``.header`` (an ``ipywidgets.HTML``) and ``.widget`` (the
        :class:`AbstractorWidget`); or, when the model cannot be loaded or the view built,
        a plain HTML output (no widget: it is part of the page Voilà sends) with
        :data:`FAILURE_MESSAGE`; the traceback is logged to the server's standard error,
        never shown.
    """
    _route_logs_to_server()
    try:
        return _build(abstractor, path, title, text, n_similar, labels_editable(editable_labels))
    except Exception:
        if raise_errors:
            raise
        _report_failure()
        return IPython.display.HTML(failure_html())


def _build(
    abstractor: Abstractor | None,
    path: str | os.PathLike[str] | None,
    title: str | None,
    text: str,
    n_similar: int,
    editable: bool,
) -> Dashboard:
    from .widget import AbstractorWidget

    if abstractor is None:
        abstractor = load_or_train(path)
    header = ipywidgets.HTML(header_html(abstractor, title, editable_labels=editable))
    header.add_class("abstractor-dash-header-widget")
    widget = AbstractorWidget(abstractor, text=text, n_similar=n_similar, editable_labels=editable)
    return Dashboard(header, widget, layout=ipywidgets.Layout(width="100%"))
