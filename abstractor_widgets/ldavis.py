"""pyLDAvis for an :class:`~abstractor_widgets.abstractor.Abstractor`: offline, with our topic ids.

Three things differ from calling pyLDAvis directly:

* **Offline.** pyLDAvis loads d3 and LDAvis from CDNs and renders blank without a
  network. :func:`offline_html` inlines the copies shipped inside the installed
  pyLDAvis package (``pyLDAvis.urls.D3_LOCAL``, ``LDAVIS_LOCAL``, ``LDAVIS_CSS_LOCAL``)
  into one self-contained HTML fragment. d3 is evaluated with ``define``/``exports``/
  ``module`` hidden, so it becomes a global (``window.d3``, unless a d3 is already
  there) even when require.js is on the page; LDAvis always uses its own d3 v5.
  The stylesheet is scoped to the visualization's container (the original styles
  every ``path`` and ``text`` of the page, and widens Notebook's ``.container``).
* **Our topic numbers.** pyLDAvis re-sorts topics by size unless
  ``sort_topics=False`` and numbers them from 1. :func:`prepare` keeps our order
  (``sort_topics=False``); the LDAvis script still counts its topics 1..K internally
  (0 means "no topic selected" there), but everything it *shows* is patched to our
  0-based id ``k`` and label ``ab.model.labels_[k]``: the number in each circle,
  the circle's tooltip, the bar chart's title and the "Selected Topic" box (which
  also accepts our ids when typed). The prepared data carries ``topic_id`` and
  ``label`` columns in ``topic_coordinates`` (``mdsDat`` in the JSON).
* **Fast.** The topic sizes come from the model's own sufficient statistics (no
  re-tokenizing, no re-inference), and pyLDAvis's per-lambda ``Series.nlargest`` loop
  (80% of its run time on a 30k-word vocabulary) is replaced, while :func:`prepare`
  runs, by an equivalent numpy version (same terms, same order, ties included).

Examples
--------
>>> from abstractor_widgets import Abstractor, ldavis
>>> ab = Abstractor.load("artifacts/default")            # doctest: +SKIP
>>> ldavis.display(ab)                                    # doctest: +SKIP
>>> html = ldavis.offline_html(ldavis.prepare(ab), ab.model.labels_)   # doctest: +SKIP
>>> ldavis.top_documents(ab, topic=3, n=5)               # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pyLDAvis, pandas and IPython are imported lazily
    import pandas as pd
    from IPython.display import HTML
    from pyLDAvis import PreparedData

    from .abstractor import Abstractor

logger = logging.getLogger(__name__)

__all__ = [
    "prepare",
    "offline_html",
    "display",
    "top_documents",
    "top_documents_html",
    "with_topic_labels",
    "library_assets",
    "JS_PATCH_VERSION",
]

#: Bumped whenever the patches applied to the LDAvis script change.
JS_PATCH_VERSION = 1

_VISID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


# -- preparing the data ---------------------------------------------------------------
def _topic_sizes_from_model(ab: Abstractor) -> np.ndarray | None:
    """Expected number of training tokens per topic, from gensim's sufficient statistics.

    ``lda.state.sstats[k, w]`` is the model's estimate of how often word ``w`` was
    assigned to topic ``k`` in the training corpus (scaled to the corpus size): its
    row sums are exactly what pyLDAvis estimates with ``doc_topic_dists.T @ doc_lengths``.
    """
    state = getattr(ab.model.lda_, "state", None)
    sstats = getattr(state, "sstats", None)
    if sstats is None:
        return None
    sizes = np.asarray(sstats, dtype=np.float64).sum(axis=1)
    if sizes.shape != (ab.n_topics,) or not np.all(np.isfinite(sizes)) or sizes.sum() <= 0:
        return None
    return np.maximum(sizes, 0.0)


def _topic_sizes_from_documents(ab: Abstractor, n_docs: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(doc_topic_dists, doc_lengths)`` of (a sample of) the indexed documents.

    The mixtures come from ``doc_topics_`` (no re-inference); the lengths are the
    numbers of words each document has in the model's dictionary, which needs the
    documents to be tokenized again (about 0.2-2 ms each).
    """
    n = len(ab.documents)
    rows = np.arange(n)
    if n_docs is not None and n_docs < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=int(n_docs), replace=False))
    texts = [ab.documents.field("text", int(r)) for r in rows]
    words = ab.model.preprocessor_.transform(texts, n_jobs=1)
    token2id = ab.model.dictionary_.token2id
    lengths = np.array([sum(1 for w in ws if w in token2id) for ws in words], dtype=np.float64)
    mix = np.asarray(ab.model.doc_topics_, dtype=np.float64)[rows]
    keep = (lengths > 0) & (mix.sum(axis=1) > 0)
    if not keep.any():
        raise ValueError("none of the documents has a word of the model's dictionary")
    mix = mix[keep]
    return mix / mix.sum(axis=1, keepdims=True), lengths[keep]


def _nlargest_positions(values: np.ndarray, r: int) -> np.ndarray:
    """Per row, the positions of the ``r`` largest values, largest first.

    Same result as pandas ``Series.nlargest(r, keep="first")`` row by row: ties are
    broken by position (the first occurrence wins); NaNs are never chosen before a
    number.
    """
    k, v = values.shape
    r = min(r, v)
    neg = -np.where(np.isnan(values), -np.inf, values)
    part = np.argpartition(neg, r - 1, axis=1)[:, :r]
    kth = neg[np.arange(k)[:, None], part].max(axis=1)
    out = np.empty((k, r), dtype=np.int64)
    for row in range(k):
        candidates = np.flatnonzero(neg[row] <= kth[row])
        order = candidates[np.argsort(neg[row, candidates], kind="mergesort")]
        out[row] = order[:r]
    return out


def _fast_find_relevance_chunks(log_ttd: pd.DataFrame, log_lift: pd.DataFrame, R: int, lambda_seq: Sequence[float]) -> pd.DataFrame:
    """Drop-in replacement for ``pyLDAvis._prepare._find_relevance_chunks`` (numpy, no apply)."""
    import pandas as pd

    ttd = log_ttd.to_numpy(dtype=np.float64)
    lift = log_lift.to_numpy(dtype=np.float64)
    terms = np.asarray(log_ttd.columns)
    frames = []
    with np.errstate(invalid="ignore"):
        for lambda_ in lambda_seq:
            relevance = lambda_ * ttd + (1 - lambda_) * lift
            top = _nlargest_positions(relevance, R)  # (K, R)
            frames.append(pd.DataFrame(terms[top].T, columns=log_ttd.index))
    return pd.concat(frames)


@contextmanager
def _fast_relevance(enabled: bool = True) -> Iterator[None]:
    """Use :func:`_fast_find_relevance_chunks` inside pyLDAvis while the block runs."""
    import pyLDAvis._prepare as _prepare

    original = getattr(_prepare, "_find_relevance_chunks", None)
    if not enabled or original is None:
        yield
        return
    _prepare._find_relevance_chunks = _fast_find_relevance_chunks
    try:
        yield
    finally:
        _prepare._find_relevance_chunks = original


def prepare(
    ab: Abstractor,
    *,
    topic_sizes: Literal["model", "documents"] = "model",
    n_docs: int | None = 5000,
    seed: int = 0,
    R: int = 30,
    lambda_step: float = 0.01,
    mds: str = "pcoa",
    fast: bool = True,
    **kwargs: Any,
) -> PreparedData:
    """pyLDAvis data for the model of ``ab``, topics in our order, with our ids and labels.

    Built with ``pyLDAvis.prepare`` from the model's arrays (no re-inference):
    ``topic_term_dists`` is ``lda.get_topics()``, the vocabulary is the gensim
    dictionary, and ``sort_topics=False`` keeps topic ``k`` at position ``k``.

    Parameters
    ----------
    ab : Abstractor
        A trained or loaded model.
    topic_sizes : {"model", "documents"}
        Where the topics' sizes (circle areas, "% of tokens") come from.
        ``"model"`` (default, instant): the expected number of training tokens per
        topic from gensim's sufficient statistics. ``"documents"``: the stored topic
        mixtures of up to ``n_docs`` indexed documents weighted by their number of
        in-vocabulary words (tokenizes those documents again: slower).
    n_docs : int or None
        Sample size for ``topic_sizes="documents"`` (``None``: every document).
    seed : int
        Seed of that sample.
    R : int
        Terms shown in the bar chart.
    lambda_step : float
        Step of the relevance slider.
    mds : str
        pyLDAvis's projection of the topics (``"pcoa"``, ``"mmds"``, ``"tsne"``).
    fast : bool
        Use the numpy replacement for pyLDAvis's slowest step (same result).
    **kwargs
        Passed to ``pyLDAvis.prepare`` (``n_jobs`` defaults to 1: joblib worker
        processes cost more than they save here, and a Voilà kernel should not fork).

    Returns
    -------
    pyLDAvis.PreparedData
        ``topic_coordinates`` has two extra columns: ``topic_id`` (our 0-based id)
        and ``label`` (``ab.model.labels_``), one row per topic in our order.

    Raises
    ------
    ValueError
        For an unknown ``topic_sizes``.
    """
    import pyLDAvis

    model = ab.model
    k = ab.n_topics
    topic_term = np.asarray(model.lda_.get_topics(), dtype=np.float64)
    topic_term /= topic_term.sum(axis=1, keepdims=True)
    dictionary = model.dictionary_
    vocab = [dictionary[i] for i in range(topic_term.shape[1])]
    if topic_sizes == "model":
        sizes = _topic_sizes_from_model(ab)
        if sizes is None:
            logger.warning("the model has no usable sufficient statistics: sizing topics from the documents")
            doc_topic, lengths = _topic_sizes_from_documents(ab, n_docs, seed)
        else:
            # one pseudo-document holding the whole corpus: pyLDAvis only ever uses
            # doc_topic_dists.T @ doc_lengths, the expected tokens per topic
            total = float(sizes.sum())
            doc_topic, lengths = (sizes / total)[None, :], np.array([total])
    elif topic_sizes == "documents":
        doc_topic, lengths = _topic_sizes_from_documents(ab, n_docs, seed)
    else:
        raise ValueError(f"topic_sizes must be 'model' or 'documents', not {topic_sizes!r}")
    cfs = getattr(dictionary, "cfs", None) or {}
    # pyLDAvis checks its length, then recomputes it from the topics (LDAvis PR #41)
    term_frequency = np.array([cfs.get(i, 0) for i in range(len(vocab))], dtype=np.float64)
    kwargs.setdefault("n_jobs", 1)
    with _fast_relevance(fast), np.errstate(divide="ignore", invalid="ignore"):
        prepared = pyLDAvis.prepare(
            topic_term, doc_topic, lengths, vocab, term_frequency,
            R=R, lambda_step=lambda_step, mds=mds, sort_topics=False, start_index=1, **kwargs,
        )
    if list(prepared.topic_order) != list(range(1, k + 1)):  # pragma: no cover - pyLDAvis contract
        raise RuntimeError(f"pyLDAvis reordered the topics: {prepared.topic_order}")
    return with_topic_labels(prepared, list(model.labels_))


def with_topic_labels(prepared: PreparedData, labels: Sequence[str] | None = None) -> PreparedData:
    """A copy of ``prepared`` whose ``topic_coordinates`` carry our ids and labels.

    Our id of the topic drawn at position ``i`` is ``prepared.topic_order[i] - 1``
    (pyLDAvis's ``topic_order`` lists the original 1-based topic of each position), so
    this is right even for data prepared with ``sort_topics=True``.

    Parameters
    ----------
    prepared : pyLDAvis.PreparedData
    labels : sequence of str, optional
        Label of each topic id (``labels[k]``); existing labels (or ``"Topic k"``) when ``None``.
    """
    coords = prepared.topic_coordinates.copy()
    ids = [int(t) - 1 for t in prepared.topic_order]
    if labels is None:
        if "label" in coords.columns and "topic_id" in coords.columns:
            by_id = dict(zip(coords["topic_id"].astype(int), coords["label"].astype(str)))
            labels_list = [by_id.get(i, f"Topic {i}") for i in range(max(ids) + 1)]
        else:
            labels_list = [f"Topic {i}" for i in range(max(ids) + 1)]
    else:
        labels_list = [str(label) for label in labels]
        if len(labels_list) != len(ids):
            raise ValueError(f"got {len(labels_list)} labels for {len(ids)} topics")
    coords["topic_id"] = ids
    coords["label"] = [labels_list[i] for i in ids]
    return prepared._replace(topic_coordinates=coords)


# -- offline HTML ---------------------------------------------------------------------
def _library_files() -> dict[str, Path]:
    import pyLDAvis.urls as urls

    files = {"d3": Path(urls.D3_LOCAL), "ldavis": Path(urls.LDAVIS_LOCAL), "css": Path(urls.LDAVIS_CSS_LOCAL)}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the installed pyLDAvis lacks its bundled JavaScript/CSS files: {missing}")
    return files


def _replace_once(source: str, pattern: str, replacement: str, what: str) -> str:
    new, count = re.subn(pattern, lambda _m: replacement, source, flags=re.DOTALL)
    if count != 1:
        raise RuntimeError(
            f"cannot patch the LDAvis script ({what}: anchor found {count} times); "
            "this pyLDAvis version is not supported by abstractor_widgets.ldavis"
        )
    return new


def _patch_ldavis(source: str) -> str:
    """Make LDAvis *show* our 0-based ids and labels; its internal 1-based slots stay."""
    source = _replace_once(
        source,
        r"K = data\['mdsDat'\]\.x\.length;",
        """K = data['mdsDat'].x.length;
        // abstractor_widgets: slot s (1..K, pyLDAvis's numbering) <-> our topic id and label
        var abMds = data['mdsDat'];
        var abIds = abMds.topic_id || abMds.topics.map(function(t) { return t - 1; });
        var abLabels = abMds.label || [];
        function abIndex(slot) { return abMds.topics.indexOf(+slot); }
        function abTopicId(slot) { var i = abIndex(slot); return i < 0 ? slot : abIds[i]; }
        function abTopicName(slot, maxLength) {
            var i = abIndex(slot), id = abTopicId(slot), label = i < 0 ? "" : String(abLabels[i] || "");
            if (maxLength && label.length > maxLength) label = label.slice(0, maxLength - 1) + "\u2026";
            return (label && label !== "Topic " + id) ? "Topic " + id + ": " + label : "Topic " + id;
        }
        function abSlotOf(text) {
            var i = abIds.map(String).indexOf(String(text).trim());
            return i < 0 ? NaN : abMds.topics[i];
        }""",
        "topic id helpers",
    )
    source = _replace_once(
        source,
        r"\.text\(function\(d\) \{\s*return d\.topics;\s*\}\);",
        ".text(function(d) {\n                return abTopicId(d.topics);\n            });",
        "circle numbers",
    )
    source = _replace_once(
        source,
        r"\.attr\(\"id\", function\(d\) \{\s*return \(topicID \+ d\.topics\);\s*\}\)",
        """.attr("id", function(d) {
                return (topicID + d.topics);
            })
            .each(function(d) { d3.select(this).append("title").text(abTopicName(d.topics)); })""",
        "circle tooltips",
    )
    source = _replace_once(
        source,
        r"\" Most Relevant Terms for Topic \" \+ topics \+ \" \(\"",
        '" Most Relevant Terms for " + abTopicName(topics, 32) + " ("',  # long names would be clipped
        "bar chart title",
    )
    source = _replace_once(
        source,
        r"topicInput\.id = topicID;",
        """topicInput.id = topicID;
            // the box shows (and accepts) our topic ids; LDAvis reads and writes slots
            var abNative = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value");
            Object.defineProperty(topicInput, "value", {
                configurable: true,
                get: function() {
                    var text = String(abNative.get.call(this)).trim();
                    return text === "" ? "0" : String(abSlotOf(text));
                },
                set: function(slot) { abNative.set.call(this, +slot > 0 ? String(abTopicId(+slot)) : ""); }
            });
            topicInput.value = 0;
            topicInput.placeholder = "id";""",
        "topic input box",
    )
    # LDAvis writes its state into the page URL (history.replaceState): inside Lab,
    # Notebook or Voila that rewrites the application's own URL. Turn it off.
    source = _replace_once(
        source,
        r"function state_save\(replace\) \{",
        "function state_save(replace) {\n            return;  // abstractor_widgets: never touch the host page's URL",
        "URL state",
    )
    return source


def _scoped_css(css: str, scope: str) -> str:
    """LDAvis's stylesheet with every rule limited to ``scope`` (page-wide rules dropped)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        parts = [s.strip() for s in selectors.split(",") if s.strip()]
        if any(".container" in s or ".output_area" in s for s in parts):
            continue  # Notebook-classic layout hacks: they would resize the host page
        rules.append(", ".join(f"{scope} {s}" for s in parts) + " {" + " ".join(body.split()) + "}")
    return "\n".join(rules)


@functools.lru_cache(maxsize=1)
def library_assets() -> dict[str, str]:
    """The inlined libraries: ``{"d3", "ldavis" (patched), "css", "key"}``.

    Read from the installed pyLDAvis package; ``key`` identifies this exact set
    (the page evaluates the libraries once per key).
    """
    files = _library_files()
    d3 = files["d3"].read_text(encoding="utf-8")
    ldavis = _patch_ldavis(files["ldavis"].read_text(encoding="utf-8"))
    css = files["css"].read_text(encoding="utf-8")
    for name, text in (("d3", d3), ("ldavis", ldavis)):
        if re.search(r"</script|<!--", text, flags=re.IGNORECASE):
            raise RuntimeError(f"the bundled {name} script cannot be inlined safely (it contains '</script' or '<!--')")
    digest = hashlib.sha256((d3 + ldavis).encode("utf-8")).hexdigest()[:12]
    return {"d3": d3, "ldavis": ldavis, "css": css, "key": f"__abstractorLDAvis_{JS_PATCH_VERSION}_{digest}"}


def _script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, ``<!--``, U+2028/9)."""
    from pyLDAvis.utils import NumPyEncoder

    text = json.dumps(data, cls=NumPyEncoder)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


_TEMPLATE = """<div class="abstractor-ldavis" style="overflow-x: auto; max-width: 100%;">
<style>{css}</style>
<div id="{visid}" class="abstractor-ldavis-root" style="background-color: white; color: black; width: 1210px;"></div>
</div>
<script type="text/javascript">
(function () {{
  var KEY = {key};
  if (!window[KEY]) {{
    // d3 v5 (inlined from pyLDAvis's package): define/exports/module hidden, so the UMD
    // wrapper never registers with require.js and always returns the library object
    var holder = {{}};
    (function (define, exports, module) {{
{d3}
    }}).call(holder, undefined, undefined, undefined);
    var d3lib = holder.d3;
    if (typeof window.d3 === "undefined") {{ window.d3 = d3lib; }}
    window[KEY] = {{
      d3: d3lib,
      LDAvis: (function (d3) {{
{ldavis}
        return LDAvis;
      }})(d3lib)
    }};
  }}
  var data = {data};
  var tries = 0;
  function render() {{
    // the output may be attached to the page after its scripts ran: wait for it
    var el = document.getElementById({visid_json});
    if (!el) {{ if (tries++ < 600) {{ setTimeout(render, 50); }} return; }}
    if (el.getAttribute("data-rendered")) {{ return; }}
    el.setAttribute("data-rendered", "1");
    new window[KEY].LDAvis("#" + {visid_json}, data);
  }}
  render();
}})();
</script>
"""


def offline_html(prepared: PreparedData, labels: Sequence[str] | None = None, *, visid: str | None = None) -> str:
    """A self-contained HTML fragment drawing ``prepared`` with no network access.

    d3, LDAvis and its stylesheet are inlined from the installed pyLDAvis package;
    nothing is fetched. The fragment works in JupyterLab, Notebook 7, Voilà and in a
    plain HTML page, with or without require.js.

    Parameters
    ----------
    prepared : pyLDAvis.PreparedData
        From :func:`prepare` (or ``pyLDAvis.prepare``).
    labels : sequence of str, optional
        ``labels[k]`` names our topic ``k``; the labels stored in ``prepared`` when
        ``None``.
    visid : str, optional
        Id of the visualization's element (letters, digits, ``_``, ``-``); random
        (``ldavis_abstractor_...``) by default.

    Returns
    -------
    str
        HTML. Every label and term reaches the page as JSON inside the script and is
        drawn as text (never parsed as HTML).
    """
    if visid is None:
        visid = f"ldavis_abstractor_{uuid.uuid4().hex[:12]}"
    elif not _VISID.match(visid):
        raise ValueError(f"visid must start with a letter and contain only letters, digits, '_' or '-': {visid!r}")
    prepared = with_topic_labels(prepared, labels)
    assets = library_assets()
    return _TEMPLATE.format(
        css=_scoped_css(assets["css"], f"#{visid}"),
        visid=visid,
        visid_json=json.dumps(visid),
        key=json.dumps(assets["key"]),
        d3=assets["d3"],
        ldavis=assets["ldavis"],
        data=_script_json(prepared.to_dict()),
    )


def display(ab: Abstractor, **prepare_kwargs: Any) -> HTML:
    """pyLDAvis of ``ab`` as an IPython HTML object (offline, our ids and labels).

    Parameters
    ----------
    ab : Abstractor
    **prepare_kwargs
        Passed to :func:`prepare`.
    """
    from IPython.display import HTML

    return HTML(offline_html(prepare(ab, **prepare_kwargs), list(ab.model.labels_)))


# -- top documents ----------------------------------------------------------------------
def top_documents(ab: Abstractor, topic: int, n: int = 10) -> pd.DataFrame:
    """The ``n`` indexed documents with the largest share of ``topic``.

    Parameters
    ----------
    ab : Abstractor
    topic : int
        Our topic id (0-based, as in the widget).
    n : int
        Rows wanted; clamped to the corpus size.

    Returns
    -------
    pandas.DataFrame
        Index ``rank`` (1 = strongest); columns ``id``, ``title``, ``weight`` (the
        topic's share of the document, in [0, 1]), ``categories``, ``published``, ``url``
        (``https://arxiv.org/abs/<id>``).

    Raises
    ------
    IndexError
        If ``topic`` is not a topic id.
    ValueError
        If ``n < 1``.
    """
    import pandas as pd

    from .corpus import arxiv_url

    if isinstance(topic, bool) or not isinstance(topic, (int, np.integer)) or not 0 <= topic < ab.n_topics:
        raise IndexError(f"topic must be an integer in [0, {ab.n_topics}), not {topic!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, not {n!r}")
    weights = np.asarray(ab.model.doc_topics_[:, int(topic)], dtype=np.float64)
    n = min(int(n), len(weights))
    rows = np.argpartition(-weights, n - 1)[:n] if n < len(weights) else np.arange(len(weights))
    rows = rows[np.lexsort((rows, -weights[rows]))]  # strongest first, ties by row
    records = []
    for row in rows:
        doc = ab.documents[int(row)]
        records.append({
            "id": doc.id, "title": doc.title, "weight": round(float(weights[row]), 4),
            "categories": doc.categories, "published": doc.published, "url": arxiv_url(doc.id),
        })
    frame = pd.DataFrame.from_records(records, columns=["id", "title", "weight", "categories", "published", "url"])
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="rank")
    return frame


def top_documents_html(frame: pd.DataFrame, caption: str | None = None) -> str:
    """An HTML table of :func:`top_documents` with arXiv links; every value is escaped.

    Titles link to their ``url`` (only ``http(s)`` URLs become links); ``caption``
    is escaped too.
    """
    esc = functools.partial(html.escape, quote=True)
    rows = []
    for rank, rec in zip(frame.index, frame.to_dict("records")):
        url = str(rec.get("url", ""))
        title = esc(str(rec.get("title", "")) or str(rec.get("id", "")))
        link = (
            f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{title}</a>'
            if url.startswith(("https://", "http://")) else title
        )
        rows.append(
            "<tr>"
            f"<td>{esc(str(rank))}</td>"
            f"<td><code>{esc(str(rec.get('id', '')))}</code></td>"
            f"<td>{link}</td>"
            f"<td style=\"text-align: right\">{float(rec.get('weight', 0.0)):.1%}</td>"
            f"<td>{esc(str(rec.get('categories', '')))}</td>"
            f"<td>{esc(str(rec.get('published', '')))}</td>"
            "</tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("#", "arXiv id", "title", "share", "categories", "published"))
    cap = f"<caption style=\"text-align: left\">{esc(caption)}</caption>" if caption else ""
    return (
        f'<table class="abstractor-top-documents">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
