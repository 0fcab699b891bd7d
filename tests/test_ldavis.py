"""Unit tests of abstractor_widgets.ldavis: offline HTML, our topic ids and labels, escaping."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

pyLDAvis = pytest.importorskip("pyLDAvis")

from abstractor_widgets import Abstractor, ldavis  # noqa: E402

HOSTILE = '</script><script>window.__pwned = 1</script><!-- "quoted" \'single\' & <b>bold</b> \u2028'


@pytest.fixture(scope="module")
def ab(synthetic_artifact) -> Abstractor:
    """Read-only: tests that rename topics use ``synthetic_abstractor`` (a private copy)."""
    return Abstractor.load(synthetic_artifact)


@pytest.fixture(scope="module")
def prepared(ab):
    return ldavis.prepare(ab)


def _data_of(html: str) -> dict:
    """The JSON the fragment hands to LDAvis."""
    match = re.search(r"\n  var data = (.*?);\n  var tries", html, flags=re.DOTALL)
    assert match, "no data in the HTML"
    return json.loads(match.group(1))


# -- prepared data ----------------------------------------------------------------------
def test_prepare_keeps_our_topic_order_ids_and_labels(ab, prepared):
    k = ab.n_topics
    coords = prepared.topic_coordinates
    assert len(coords) == k
    assert list(prepared.topic_order) == list(range(1, k + 1)), "pyLDAvis re-sorted the topics"
    assert coords["topic_id"].tolist() == list(range(k))
    assert coords["label"].tolist() == list(ab.model.labels_)
    assert coords["topics"].tolist() == list(range(1, k + 1))  # LDAvis's internal slots
    assert coords["Freq"].sum() == pytest.approx(100.0)
    # topic k's bar chart (Category "Topic{k+1}") holds topic k's strongest term
    for topic, terms in enumerate(ab.model.topics(1)):
        rows = prepared.topic_info[prepared.topic_info.Category == f"Topic{topic + 1}"]
        assert terms[0][0] in set(rows.Term)


def test_prepare_uses_current_labels(synthetic_abstractor):
    synthetic_abstractor.label_topic(2, "Robots & <grippers>")
    coords = ldavis.prepare(synthetic_abstractor).topic_coordinates
    assert coords.set_index("topic_id").loc[2, "label"] == "Robots & <grippers>"


def test_topic_sizes_from_model_and_documents_agree(ab, prepared):
    by_docs = ldavis.prepare(ab, topic_sizes="documents", n_docs=None)
    assert by_docs.topic_coordinates["topic_id"].tolist() == list(range(ab.n_topics))
    np.testing.assert_allclose(by_docs.topic_coordinates["Freq"], prepared.topic_coordinates["Freq"], atol=10)
    with pytest.raises(ValueError, match="topic_sizes"):
        ldavis.prepare(ab, topic_sizes="nope")


def test_fast_relevance_gives_pyldavis_result(ab, prepared):
    slow = ldavis.prepare(ab, fast=False)
    pd.testing.assert_frame_equal(prepared.topic_info, slow.topic_info)
    pd.testing.assert_frame_equal(prepared.token_table, slow.token_table)
    pd.testing.assert_frame_equal(prepared.topic_coordinates, slow.topic_coordinates)
    # the patch is undone afterwards
    import pyLDAvis._prepare as _prepare

    assert _prepare._find_relevance_chunks is not ldavis._fast_find_relevance_chunks


def test_nlargest_positions_matches_pandas_with_ties_and_nans():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(5, 40)).astype(np.float64)  # many ties
    values[0, :3] = np.nan
    for r in (1, 5, 17, 40):
        got = ldavis._nlargest_positions(values, r)
        for row in range(len(values)):
            expected = pd.Series(values[row]).nlargest(r, keep="first").index.to_numpy()
            assert got[row][: len(expected)].tolist() == expected.tolist()


def test_prepare_emits_no_pandas_or_numpy_warnings(ab):
    """The compatibility check of the pinned stack (pandas 3, numpy 2.4, pyLDAvis 3.4.1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ldavis.prepare(ab)
        ldavis.prepare(ab, fast=False)


def test_with_topic_labels_maps_sorted_data_back_to_our_ids(ab):
    """Data prepared by pyLDAvis with its default re-sorting still gets the right ids."""
    topic_term = np.asarray(ab.model.lda_.get_topics(), dtype=np.float64)
    topic_term /= topic_term.sum(axis=1, keepdims=True)
    sizes = np.array([1.0, 4.0, 2.0, 3.0])[: ab.n_topics]
    vocab = [ab.model.dictionary_[i] for i in range(topic_term.shape[1])]
    raw = pyLDAvis.prepare(topic_term, (sizes / sizes.sum())[None, :], [1000.0], vocab, np.ones(len(vocab)), n_jobs=1)
    assert list(raw.topic_order) != list(range(1, ab.n_topics + 1))  # pyLDAvis sorted by size
    labels = [f"name {k}" for k in range(ab.n_topics)]
    coords = ldavis.with_topic_labels(raw, labels).topic_coordinates
    assert coords["topic_id"].tolist() == [t - 1 for t in raw.topic_order]
    assert coords["label"].tolist() == [labels[t - 1] for t in raw.topic_order]
    np.testing.assert_allclose(coords["Freq"].to_numpy(), 100 * sizes[coords["topic_id"]] / sizes.sum())
    with pytest.raises(ValueError, match="labels"):
        ldavis.with_topic_labels(raw, ["too", "few"])


# -- offline HTML -----------------------------------------------------------------------
def test_html_loads_nothing_from_the_network(ab, prepared):
    html = ldavis.offline_html(prepared, ab.model.labels_)
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\s(src|href)\s*=", html, flags=re.IGNORECASE)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html, flags=re.IGNORECASE)
    assert "@import" not in html
    for cdn in ("cdn.jsdelivr.net", "cdnjs", "unpkg.com", "d3js.org/d3.v5"):
        assert cdn not in html
    assert "require.config" not in html and "$.getScript" not in html


def test_html_inlines_d3_ldavis_and_scoped_css(prepared):
    import pyLDAvis.urls as urls

    html = ldavis.offline_html(prepared, visid="ldavis_test1")
    d3 = open(urls.D3_LOCAL, encoding="utf-8").read()
    assert d3[:2000] in html and d3[-2000:] in html
    assert "var LDAvis = function" in html
    assert "abTopicId(d.topics)" in html  # our patches are in
    assert "history.replaceState" in html and "never touch the host page's URL" in html
    assert 'id="ldavis_test1"' in html
    assert "window.d3 = d3lib" in html  # d3 becomes a global ...
    assert "(function (define, exports, module)" in html  # ... even when require.js is present
    style = re.search(r"<style>(.*?)</style>", html, flags=re.DOTALL).group(1)
    assert "#ldavis_test1 path" in style and "#ldavis_test1 text" in style
    for line in style.splitlines():
        assert line.startswith("#ldavis_test1 "), line
    assert ".container" not in style and ".output_area" not in style


def test_html_data_has_k_circles_with_our_ids_and_labels(ab, prepared):
    labels = [f"Label {k}" for k in range(ab.n_topics)]
    data = _data_of(ldavis.offline_html(prepared, labels))
    mds = data["mdsDat"]
    assert len(mds["x"]) == ab.n_topics
    assert mds["topic_id"] == list(range(ab.n_topics))
    assert mds["label"] == labels
    assert mds["topics"] == list(range(1, ab.n_topics + 1))
    assert data["topic.order"] == list(range(1, ab.n_topics + 1))


def test_hostile_labels_are_escaped(ab, prepared):
    labels = [HOSTILE + str(k) for k in range(ab.n_topics)]
    html = ldavis.offline_html(prepared, labels)
    assert "</script><script>" not in html
    assert html.count("</script>") == 1  # ours
    assert html.count("<script") == 1
    assert "<!--" not in html and "\u2028" not in html
    assert "<b>bold</b>" not in html
    assert _data_of(html)["mdsDat"]["label"] == labels  # the exact text survives


def test_html_visid_validation(prepared):
    for bad in ("has space", "1starts-with-digit", 'quote"', "<x>", ""):
        with pytest.raises(ValueError):
            ldavis.offline_html(prepared, visid=bad)
    a, b = ldavis.offline_html(prepared), ldavis.offline_html(prepared)
    ids = [re.search(r'id="(ldavis_abstractor_[0-9a-f]+)"', h).group(1) for h in (a, b)]
    assert ids[0] != ids[1]


def test_ldavis_patches_fail_loudly_on_an_unknown_script():
    source = ldavis._library_files()["ldavis"].read_text(encoding="utf-8")
    assert "abTopicName" in ldavis._patch_ldavis(source)
    with pytest.raises(RuntimeError, match="not supported"):
        ldavis._patch_ldavis(source.replace("Most Relevant Terms for Topic", "Most Relevant Terms in Topic"))


def test_display_returns_an_html_object(ab):
    from IPython.display import HTML

    shown = ldavis.display(ab)
    assert isinstance(shown, HTML)
    assert "abstractor-ldavis" in shown.data


# -- top documents ----------------------------------------------------------------------
def test_top_documents(ab):
    weights = np.asarray(ab.model.doc_topics_)
    for topic in range(ab.n_topics):
        frame = ldavis.top_documents(ab, topic, n=5)
        assert list(frame.columns) == ["id", "title", "weight", "categories", "published", "url"]
        assert frame.index.tolist() == [1, 2, 3, 4, 5] and frame.index.name == "rank"
        assert frame["weight"].is_monotonic_decreasing
        best = int(np.argmax(weights[:, topic]))
        assert frame.iloc[0]["id"] == ab.documents[best].id
        assert frame.iloc[0]["weight"] == pytest.approx(weights[best, topic], abs=1e-4)
        assert all(u == f"https://arxiv.org/abs/{i}" for i, u in zip(frame["id"], frame["url"]))
    assert len(ldavis.top_documents(ab, 0, n=10_000)) == len(ab)
    for bad_topic in (-1, ab.n_topics, 1.5, True):
        with pytest.raises(IndexError):
            ldavis.top_documents(ab, bad_topic)
    with pytest.raises(ValueError):
        ldavis.top_documents(ab, 0, n=0)


def test_top_documents_html_escapes_everything():
    frame = pd.DataFrame(
        [
            {"id": '2401.0"1<x>', "title": "<img src=x onerror=alert(1)> & co", "weight": 0.5,
             "categories": "<cs.LG>", "published": "2024-01-01", "url": 'https://arxiv.org/abs/2401.0"1<x>'},
            {"id": "2401.2", "title": "Sneaky link", "weight": 0.25, "categories": "", "published": "",
             "url": "javascript:alert(1)"},
        ],
        index=pd.RangeIndex(1, 3, name="rank"),
    )
    html = ldavis.top_documents_html(frame, caption="<script>alert(1)</script>")
    assert "<img" not in html and "<script" not in html and "<x>" not in html and "<cs.LG>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in html
    assert 'href="https://arxiv.org/abs/2401.0&quot;1&lt;x&gt;"' in html
    assert "javascript:" not in html and "<td>Sneaky link</td>" in html  # not turned into a link
    assert 'rel="noopener noreferrer"' in html
    assert "50.0%" in html and "25.0%" in html
