"""Exploring the corpus: default topic names, topics over time, filters, export, the corpus map
(saved, loaded, extended by update, placing a text) and the ExploreWidget's contract."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from abstractor_widgets import Abstractor
from abstractor_widgets.explore import (
    MAP_POINTS_ENV,
    MAX_MAP_POINTS,
    Facets,
    Filters,
    MapSample,
    TopicTrends,
    default_topic_name,
    is_default_label,
    map_points_cap,
    region_polygon,
    rows_in_polygon,
    to_bibtex,
    to_csv,
)
from abstractor_widgets.explore_widget import NO_MAP_MESSAGE, ExploreWidget
from abstractor_widgets.layout import MAP_FILES, CorpusMap
from abstractor_widgets.store import ArtifactError, read_manifest
from synthetic_data import make_synthetic_frame

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
VISION_TEXT = "We segment each image with a convolution network and detect every object in the video scene depth camera."


def _frame(n_docs: int = 240, seed: int = 0) -> pd.DataFrame:
    """The synthetic corpus with months spread over half a year, two categories for some
    papers, a few undated ones (the month then comes from the arXiv id)."""
    frame = make_synthetic_frame(n_docs, seed=seed)
    frame["published"] = [f"{MONTHS[i % 6]}-{1 + i % 28:02d}" for i in range(len(frame))]
    frame.loc[frame.index % 10 == 3, "categories"] = frame["categories"] + " cs.LG"
    frame.loc[frame.index % 25 == 7, "published"] = ""  # ids 2401.* -> month 2024-01
    return frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def mapped_artifact(tmp_path_factory, frame):
    out = tmp_path_factory.mktemp("explore") / "model"
    Abstractor.train(frame, 4, out=out, passes=20, progress=False, random_state=1, no_above=0.9,
                     layout={"random_state": 0})
    return out


@pytest.fixture()
def mapped(mapped_artifact, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(mapped_artifact, copy)
    return Abstractor.load(copy)


@pytest.fixture(scope="module")
def unmapped_artifact(tmp_path_factory, frame):
    out = tmp_path_factory.mktemp("explore-nomap") / "model"
    Abstractor.train(frame, 4, out=out, passes=20, progress=False, random_state=1, no_above=0.9, layout=False)
    return out


# -- (a) readable default topic names -------------------------------------------------------
def test_default_topic_name_joins_strongest_terms():
    assert default_topic_name([("policy", 0.1), ("reward", 0.05), ("agent", 0.04), ("state", 0.01)]) == "policy · reward · agent"
    assert default_topic_name(["neural_network", "network", "graph", "node"]) == "neural network · graph · node"
    assert default_topic_name([]) == "(no terms)"
    assert is_default_label("Topic 7", 7) and not is_default_label("Topic 7", 3) and not is_default_label("RL", 7)


def test_topics_are_named_by_their_terms_until_labelled(mapped):
    topics = mapped.topics
    assert [t["id"] for t in topics] == list(range(4))
    for topic in topics:
        assert topic["label"] == " · ".join([term for term, _ in topic["terms"]][:3])
        assert not topic["label"].startswith("Topic ")
    before = [t["label"] for t in topics]
    mapped.label_topic(2, "Protein design")
    after = [t["label"] for t in mapped.topics]
    assert after[2] == "Protein design" and after[:2] == before[:2] and after[3] == before[3]
    assert Abstractor.load(mapped.path).topics[2]["label"] == "Protein design"
    assert read_manifest(mapped.path)["labels"][0] == "Topic 0"  # stored: still unnamed
    assert mapped.widget().topics[0]["label"] == before[0]


# -- (b) topics over time -------------------------------------------------------------------
def test_facets_months_and_categories(mapped, frame):
    facets = mapped.facets
    assert facets.months == MONTHS
    undated = frame.index[frame["published"] == ""]
    assert len(undated) and all(facets.months[facets.month[i]] == "2024-01" for i in undated)  # from the id 2401.*
    assert facets.categories[0] == "cs.LG" or facets.category_counts[0] >= facets.category_counts[1]
    lg = facets.in_categories(["cs.LG"])
    assert lg.tolist() == frame["categories"].str.contains("cs.LG").tolist()
    assert mapped.facets is facets  # decoded once


def test_trends_match_a_pandas_groupby(mapped, frame):
    trends = mapped.trends()
    assert isinstance(trends, TopicTrends) and trends.months == MONTHS
    mix = pd.DataFrame(np.asarray(mapped.model.doc_topics_, dtype=np.float64))
    month = [MONTHS[mapped.facets.month[i]] for i in range(len(frame))]
    expected = mix.groupby(month).mean()
    np.testing.assert_allclose(trends.frame().to_numpy(), expected.to_numpy(), atol=1e-5)
    assert trends.counts.tolist() == pd.Series(month).value_counts().sort_index().tolist()
    np.testing.assert_allclose(trends.shares.sum(axis=1), 1.0, atol=1e-4)
    # per category: papers listed in cs.CL only
    cl = frame["categories"].str.split().apply(lambda cats: "cs.CL" in cats).to_numpy()
    expected_cl = mix[cl].groupby(np.asarray(month)[cl]).mean()
    got = trends.frame("cs.CL")
    np.testing.assert_allclose(got.loc[expected_cl.index].to_numpy(), expected_cl.to_numpy(), atol=1e-5)
    assert mapped.trends() is trends  # computed once
    state = json.loads(json.dumps(trends.to_state()))
    assert state["months"] == MONTHS and len(state["shares"]) == 6 and len(state["shares"][0]) == 4


def test_trends_with_filters(mapped, frame):
    trends = mapped.trends(filters={"categories": ["q-bio.BM"]})
    assert trends.counts.sum() == frame["categories"].str.split().apply(lambda c: "q-bio.BM" in c).sum()


# -- (c) filters -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"categories": "x" * 41}, {"date_from": "January"}, {"date_to": "2024/01"}, {"keyword": 3},
    {"keyword": "w" * 201}, {"colour": "red"}, {"categories": [1, 2]},
])
def test_filters_reject_invalid_values(bad):
    with pytest.raises(ValueError):
        Filters.from_dict(bad)


def test_filter_mask_combines_category_dates_and_keyword(mapped, frame):
    assert mapped.filter_mask({}) is None and mapped.filter_mask(None) is None
    mask = mapped.filter_mask({"categories": ["cs.CV", "cs.RO"], "date_from": "2024-02", "date_to": "2024-03-15"})
    month = np.array([MONTHS[m] for m in mapped.facets.month])
    expected = np.array(frame["categories"].str.split().apply(lambda c: bool({"cs.CV", "cs.RO"} & set(c))), dtype=bool)
    expected &= (month >= "2024-02") & (month <= "2024-03")
    assert mask.tolist() == expected.tolist() and mask.any()
    words = mapped.filter_mask({"keyword": "gripper torque"})
    texts = (frame["title"] + " " + frame["abstract"]).str.lower()
    assert words.tolist() == (texts.str.contains("gripper") & texts.str.contains("torque")).tolist()
    with pytest.raises(ValueError, match="no word"):
        mapped.filter_mask({"keyword": "zzzqqq"})


def test_similar_filtered_ranks_among_kept_papers_only(mapped, frame):
    plain = mapped.similar(VISION_TEXT, n=5)
    assert [h["id"] for h in mapped.similar_filtered(VISION_TEXT, n=5)] == [h["id"] for h in plain]
    hits = mapped.similar_filtered(VISION_TEXT, n=5, filters={"categories": ["cs.CL"]})
    assert len(hits) == 5 and all("cs.CL" in h["categories"].split() for h in hits)
    assert not {h["id"] for h in hits} & {h["id"] for h in plain}  # vision papers filtered out, list still full
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    few = mapped.filter_mask({"categories": ["cs.CV"], "date_from": "2024-06", "keyword": "pixel"})
    hits = mapped.similar_filtered(VISION_TEXT, n=50, filters={"categories": ["cs.CV"], "date_from": "2024-06", "keyword": "pixel"})
    assert {h["id"] for h in hits} <= set(frame["id"][few]) and len(hits) == min(50, few.sum())
    empty = mapped.similar_filtered(VISION_TEXT, n=5, filters={"date_from": "2030-01"})
    assert empty == [] and empty.reason == "No paper matches the filters."
    # a paper excluded by id as well (the analysed paper itself), with the filter's rows
    from abstractor_widgets.explore import filtered_analyze

    mask = mapped.filter_mask({"categories": ["cs.CL"]})
    ranked = filtered_analyze(mapped, VISION_TEXT, 5, None, mask).similar
    without = filtered_analyze(mapped, VISION_TEXT, 5, None, mask, exclude_ids=[ranked[0]["id"], "no-such-id"]).similar
    assert len(without) == 5 and ranked[0]["id"] not in {h["id"] for h in without}
    assert all("cs.CL" in h["categories"].split() for h in without)
    assert len({h["id"] for h in without} & {h["id"] for h in ranked}) >= 3  # the others mostly stay


def test_widget_filter_restricts_similar_papers(mapped):
    w = mapped.widget(text=VISION_TEXT, n_similar=5)
    x = ExploreWidget(w)
    x.filters = {"categories": ["q-bio.BM"]}
    assert w.similar and all("q-bio.BM" in h["categories"].split() for h in w.similar)
    assert x.filter_count == int(mapped.filter_mask({"categories": ["q-bio.BM"]}).sum())
    assert len(x.map_mask) == len(mapped) and sum(x.map_mask) == x.filter_count
    assert sum(x.trends["counts"]) == x.filter_count
    x.filters = {}
    assert x.map_mask == b"" and any(h["categories"] == "cs.CV" for h in w.similar)
    x.send_state = lambda *a, **k: None
    x.set_state({"filters": {"date_from": "soon"}})
    assert "date_from" in x.error and x.filters == {"categories": [], "date_from": "", "date_to": "", "keyword": ""}


# -- (d) export ------------------------------------------------------------------------------
HITS = [
    {"id": "2507.12060", "title": "=cmd|' /C calc'!A0 and {braces} & 50% of $x$_1", "score": 0.91234,
     "categories": "cs.LG stat.ML", "published": "2025-07-16", "url": "https://arxiv.org/abs/2507.12060"},
    {"id": "cs/0701001", "title": "An  old\nstyle   id", "score": 0.5, "categories": "cs.AI", "published": ""},
]


def test_csv_export():
    rows = list(csv.reader(io.StringIO(to_csv(HITS))))
    assert rows[0] == ["id", "title", "year", "published", "categories", "url", "score"]
    assert rows[1][0] == "2507.12060" and rows[1][1].startswith("'=cmd")  # never a formula
    assert rows[1][2] == "2025" and rows[1][5] == "https://arxiv.org/abs/2507.12060" and rows[1][6] == "0.91234"
    assert rows[2][1] == "An old style id" and rows[2][5] == "https://arxiv.org/abs/cs/0701001" and rows[2][2] == ""
    assert to_csv([]).strip() == "id,title,year,published,categories,url,score"


def test_bibtex_export():
    bib = to_bibtex(HITS)
    entries = bib.strip().split("\n\n")
    assert len(entries) == 2 and entries[0].startswith("@misc{arxiv:2507.12060,") and entries[0].endswith("}")
    assert r"\{braces\} \& 50\% of \$x\$\_1" in entries[0]
    for field in ("year = {2025}", "eprint = {2507.12060}", "archivePrefix = {arXiv}", "primaryClass = {cs.LG}",
                  "url = {https://arxiv.org/abs/2507.12060}"):
        assert field in entries[0]
    assert "@misc{arxiv:cs/0701001," in entries[1] and "year" not in entries[1]
    assert entries[0].count("{") == entries[0].count("}")


def test_widget_exports_similar_and_selection(mapped):
    w = mapped.widget(text=VISION_TEXT, n_similar=3)
    x = ExploreWidget(w)
    rows = list(csv.reader(io.StringIO(x.export("similar", "csv"))))
    assert [r[0] for r in rows[1:]] == [h["id"] for h in w.similar]
    x.select_ids(["2401.00000", "2401.00004"])
    assert x.export("selection", "bibtex").count("@misc{") == 2
    sent = []
    x.send = lambda content, buffers=None: sent.append(content)
    x._on_custom_msg(x, {"type": "export", "what": "selection", "format": "csv"}, [])
    assert sent[-1]["type"] == "download" and sent[-1]["filename"] == "abstractor-selection.csv"
    assert sent[-1]["text"].splitlines()[1].startswith("2401.00000,")
    x._on_custom_msg(x, {"type": "export", "what": "everything", "format": "pdf"}, [])
    assert "Export" in x.error


# -- (e) the corpus map ----------------------------------------------------------------------
def test_map_is_saved_with_the_artifact_and_memory_mapped(mapped, mapped_artifact):
    manifest = read_manifest(mapped.path)
    assert set(MAP_FILES) <= set(manifest["map"]["files"]) <= set(manifest["files"])
    assert manifest["map"]["n_documents"] == len(mapped) == len(mapped.corpus_map)
    coords = np.asarray(mapped.corpus_map.coords_)
    assert coords.shape == (len(mapped), 2) and coords.dtype == np.float32
    assert np.abs(coords).max() <= 1.0 and coords.std(axis=0).min() > 0.1
    assert np.array_equal(coords, np.load(mapped_artifact / "map.coords.npy"))
    # papers of one synthetic topic sit together: nearest map neighbours share the dominant topic
    dominant = np.asarray(mapped.model.doc_topics_).argmax(axis=1)
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (dominant[d.argmin(axis=1)] == dominant).mean() > 0.9


def test_placing_a_text_and_an_indexed_paper(mapped, frame):
    row = 8
    x, y = mapped.place(frame["abstract"][row])
    coords = np.asarray(mapped.corpus_map.coords_)
    dominant = np.asarray(mapped.model.doc_topics_).argmax(axis=1)
    nearest = np.argsort(((coords - [x, y]) ** 2).sum(1))[:10]
    assert (dominant[nearest] == dominant[row]).mean() >= 0.8
    assert mapped.place("the of and") is None
    feature = CorpusMap.features_of(mapped, np.array([row]))
    assert np.allclose(mapped.corpus_map.place(feature)[0], mapped.corpus_map.place_one(feature[0]))


def test_update_extends_the_map_with_the_fitted_transform(mapped):
    before = np.array(mapped.corpus_map.coords_)
    new = _frame(40, seed=5)
    new["id"] = [f"2402.{i:05d}" for i in range(len(new))]
    assert mapped.update(new) == 40
    after = np.asarray(mapped.corpus_map.coords_)
    assert after.shape == (len(before) + 40, 2)
    assert np.array_equal(after[: len(before)], before)  # no new layout
    assert read_manifest(mapped.path)["map"]["n_documents"] == len(before) + 40
    dominant = np.asarray(mapped.model.doc_topics_).argmax(axis=1)
    old = before
    agree = []
    for i in range(len(before), len(after)):
        nearest = np.argsort(((old - after[i]) ** 2).sum(1))[:5]
        agree.append((dominant[nearest] == dominant[i]).mean())
    assert np.mean(agree) > 0.8


def test_artifact_without_map_still_loads_and_says_how_to_add_it(unmapped_artifact, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(unmapped_artifact, copy)
    ab = Abstractor.load(copy)
    assert ab.corpus_map is None and "map" not in read_manifest(copy) and ab.place(VISION_TEXT) is None
    x = ExploreWidget(ab.widget(text=VISION_TEXT))
    assert x.n_points == 0 and x.map_points == b"" and "build_map()" in x.map_status
    assert x.map_status == NO_MAP_MESSAGE.format(path=copy)
    assert x.trends["months"] == MONTHS  # trends and filters work without a map
    ab.build_map(random_state=0)
    assert len(Abstractor.load(copy).corpus_map) == len(ab)


def test_corrupt_map_is_refused(mapped):
    manifest = read_manifest(mapped.path)
    manifest["map"]["n_documents"] += 1
    (mapped.path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match="corpus map"):
        Abstractor.load(mapped.path)


# -- the ExploreWidget -----------------------------------------------------------------------
def test_explorer_sends_the_map_as_binary_buffers(mapped):
    w = mapped.widget()
    x = mapped.explorer(w)
    assert isinstance(x.map_points, bytes) and len(x.map_points) == 8 * len(mapped)
    points = np.frombuffer(x.map_points, dtype=np.float32).reshape(-1, 2)
    assert np.array_equal(points, np.asarray(mapped.corpus_map.coords_))
    topics = np.frombuffer(x.map_topics, dtype=np.uint8)
    assert topics.tolist() == np.asarray(mapped.model.doc_topics_).argmax(axis=1).tolist()
    assert len(x.centroids) == 4 and all(len(c) == 2 for c in x.centroids)
    state = x.get_state()
    assert isinstance(state["map_points"], (bytes, memoryview))
    assert x.topics == w.topics and x.here == []


def test_explorer_follows_the_analyser(mapped, frame):
    w = mapped.widget()
    x = ExploreWidget(w)
    w.text = VISION_TEXT
    assert len(x.here) == 2 and x.here == [round(v, 4) for v in mapped.place(VISION_TEXT)]
    assert x.similar_rows == [mapped.documents.position(h["id"]) for h in w.similar]
    w.load_document("2401.00010")
    assert x.here == np.round(np.asarray(mapped.corpus_map.coords_[10], dtype=float), 4).tolist()
    x.highlight_topic = 2
    assert w.highlight_topic == 2
    w.highlight_topic = None
    assert x.highlight_topic is None
    w.rename_topic(1, "Robots")
    assert x.topics[1]["label"] == "Robots"


def test_explorer_reload_after_an_update(mapped):
    w = mapped.widget()
    x = ExploreWidget(w)
    x.select_rows([0])
    new = _frame(20, seed=9)
    new["id"] = [f"2403.{i:05d}" for i in range(len(new))]
    mapped.update(new)
    x.reload()
    assert x.n_points == len(mapped) == 260 and len(x.map_points) == 8 * 260 and x.selection_count == 0
    assert sum(x.trends["counts"]) + x.trends["undated"] == 260


def test_explorer_messages(mapped):
    w = mapped.widget()
    x = ExploreWidget(w)
    sent = []
    x.send = lambda content, buffers=None: sent.append(content)
    x._on_custom_msg(x, {"type": "hover", "row": 5}, [])
    assert sent[-1] == {"type": "hover", "row": 5, "id": "2401.00005", "title": "A language paper number 5",
                        "published": mapped.documents[5].published, "categories": mapped.documents[5].categories,
                        "topic": int(np.asarray(mapped.model.doc_topics_[5]).argmax())}
    x._on_custom_msg(x, {"type": "open", "row": 7}, [])
    assert w.source["id"] == "2401.00007" and w.text == mapped.documents[7].text
    x._on_custom_msg(x, {"type": "select"}, [np.array([3, 1, 3, 2], dtype="<u4").tobytes()])
    assert x.selection_count == 3 and x.selection["id"].tolist() == ["2401.00001", "2401.00002", "2401.00003"]
    frame = x.selection
    assert list(frame.columns) == ["row", "id", "title", "published", "categories", "topic", "topic_label", "x", "y", "url"]
    assert frame["topic_label"].tolist() == [x.topics[k]["label"] for k in frame["topic"]]
    for bad in ({"type": "hover", "row": -1}, {"type": "hover", "row": True}, {"type": "open", "row": 10**9},
                {"type": "launch"}, {"no": "type"}, "text"):
        x.error = ""
        x._on_custom_msg(x, bad, [])
        assert x.error
    x.error = ""
    x._on_custom_msg(x, {"type": "select"}, [b"\x01\x02\x03"])
    assert x.error and x.selection_count == 3
    x._on_custom_msg(x, {"type": "select"}, [np.array([10**6], dtype="<u4").tobytes()])
    assert x.error and x.selection_count == 3
    x.set_state({"map_points": b""})
    assert "may not set" in x.error and len(x.map_points) == 8 * len(mapped)


# -- (f) HTML export of the widget state ---------------------------------------------------
def test_html_export_keeps_the_last_result_and_the_map_buffers(mapped, tmp_path):
    import base64
    import re

    from ipywidgets.embed import dependency_state, embed_minimal_html

    w = mapped.widget(text=VISION_TEXT, n_similar=3)
    x = ExploreWidget(w)
    x.select_rows([1, 2])
    out = tmp_path / "export.html"
    embed_minimal_html(out, views=[w, x], title="export", state=dependency_state([w, x], drop_defaults=False))
    html = out.read_text(encoding="utf-8")
    state = json.loads(re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', html, re.S).group(1))
    models = {m["state"].get("_anywidget_id", ""): m for m in state["state"].values()}
    analyser = next(m for k, m in models.items() if k.endswith("AbstractorWidget"))
    explorer = next(m for k, m in models.items() if k.endswith("ExploreWidget"))
    assert analyser["state"]["text"] == VISION_TEXT
    assert [h["id"] for h in analyser["state"]["similar"]] == [h["id"] for h in w.similar]
    buffers = {tuple(b["path"]): base64.b64decode(b["data"]) for b in explorer["buffers"]}
    assert buffers[("map_points",)] == x.map_points and buffers[("map_topics",)] == x.map_topics
    assert np.frombuffer(buffers[("trends", "shares")], dtype="<f4").size == len(x.trends["months"]) * 4
    assert explorer["state"]["here"] == x.here and explorer["state"]["similar_rows"] == x.similar_rows


def test_map_command_adds_a_map_to_a_copy(unmapped_artifact, tmp_path, capsys):
    """``abstractor map ARTIFACT --copy-to DIR``: the command that adds a corpus map to an old model."""
    from abstractor_widgets.cli import main

    copy = tmp_path / "with-map"
    assert main(["map", str(unmapped_artifact), "--copy-to", str(copy), "--n-neighbors", "5"]) == 0
    assert "corpus map of" in capsys.readouterr().out
    assert len(Abstractor.load(copy).corpus_map) == len(Abstractor.load(unmapped_artifact))
    assert "map" not in read_manifest(unmapped_artifact)  # the original is untouched
    assert main(["map", str(tmp_path / "missing")]) == 2


# -- placing one text: the pruned exact search (layout.CorpusMap.nearest) -------------------------
def _random_map(n: int = 6000, d: int = 100, seed: int = 0) -> CorpusMap:
    """A fitted-looking map over clustered unit rows (the search needs >= 4,096 rows, d > 72)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, d))
    rows = centres[rng.integers(0, 30, n)] + 0.6 * rng.normal(size=(n, d))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    m = CorpusMap()
    m.reference_ = rows
    m.coords_ = m.reference_coords_ = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    m.reference_rows_ = np.arange(n)
    return m


def test_placing_one_text_finds_exactly_the_nearest_reference_rows():
    m = _random_map()
    rng = np.random.default_rng(1)
    queries = m.reference_[rng.integers(0, len(m.reference_), 100)] + 0.3 * rng.normal(size=(100, 100)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert m._search() is not None
    for q in queries:
        near, sims = m.nearest(q)
        dots = m.reference_ @ q
        assert set(near) == set(np.argpartition(-dots, 9)[:10])
        assert np.allclose(np.sort(sims), np.sort(dots[near]))
        assert np.allclose(m.place_one(q), m.place(q[None, :])[0], atol=1e-6)
    # a small map scans all rows: no projection
    assert _random_map(n=500)._search() is None


def test_the_search_projection_is_saved_and_memory_mapped(tmp_path):
    from abstractor_widgets.fileio import ListedFiles
    from abstractor_widgets.layout import PROJECTED_FILE, PROJECTION_FILE

    m = _random_map()
    entry = m.save_files(tmp_path)
    assert {PROJECTION_FILE, PROJECTED_FILE} <= set(entry["files"]) and entry["search"]["dims"] == 64
    loaded = CorpusMap.load_files(ListedFiles(tmp_path, entry["files"]), entry)
    assert not loaded.reference_projected_.flags.writeable and not loaded.reference_projected_.flags.owndata  # mapped, read-only
    q = m.reference_[5]
    assert set(loaded.nearest(q)[0]) == set(m.nearest(q)[0])
    # a map saved without it (older artifacts) computes it once, with the same neighbours
    entry["files"] = [f for f in entry["files"] if f not in (PROJECTION_FILE, PROJECTED_FILE)]
    older = CorpusMap.load_files(ListedFiles(tmp_path, entry["files"]), entry)
    assert "projection_" not in older.__dict__ and set(older.nearest(q)[0]) == set(m.nearest(q)[0])
    # a projection that does not match its rows is refused
    np.save(tmp_path / PROJECTED_FILE, np.zeros((3, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="projection"):
        CorpusMap.load_files(ListedFiles(tmp_path, entry["files"] + [PROJECTION_FILE, PROJECTED_FILE]),
                             {**entry, "files": entry["files"] + [PROJECTION_FILE, PROJECTED_FILE]})


# -- (g) large corpora: vectorised facets and trends, the sampled map -------------------------
# The implementations before vectorising (issue 16), kept verbatim as the reference: the
# vectorised ones must give exactly these results on every input.
_REF_NEW_ID = re.compile(rb"^(\d{2})(\d{2})\.\d{4,5}")
_REF_OLD_ID = re.compile(rb"/(\d{2})(\d{2})\d{3}")


def _ref_strings(documents, name):
    blob = documents._blobs[name].tobytes()
    offsets = np.asarray(documents._offsets[name]).tolist()
    return [blob[a:b] for a, b in itertools.pairwise(offsets)]


def _ref_month_of(published, doc_id):
    if len(published) >= 7 and published[4:5] == b"-" and published[:4].isdigit() and published[5:7].isdigit():
        return published[:7]
    match = _REF_NEW_ID.match(doc_id) or _REF_OLD_ID.search(doc_id)
    if match:
        yy, mm = int(match.group(1)), int(match.group(2))
        if 1 <= mm <= 12:
            return b"%04d-%02d" % (1900 + yy if yy >= 90 else 2000 + yy, mm)
    return b""


def _reference_facets(documents):
    published = _ref_strings(documents, "published")
    ids = _ref_strings(documents, "id")
    dated = {}
    month_strings = []
    for p, i in zip(published, ids):
        month = dated.get(p)
        if month is None:
            month = _ref_month_of(p, i)
            if month and month == p[:7]:
                dated[p] = month
        month_strings.append(month)
    labels = sorted({m for m in month_strings if m})
    lookup = {m: k for k, m in enumerate(labels)}
    month = np.array([lookup.get(m, -1) for m in month_strings], dtype=np.int16)
    vocab, parsed, indices = {}, {}, []
    lengths = np.zeros(len(documents), dtype=np.int64)
    for i, cats in enumerate(_ref_strings(documents, "categories")):
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
    return Facets(months=[m.decode("ascii") for m in labels], month=month, categories=[names[k] for k in order],
                  category_counts=counts[order], cat_indptr=indptr,
                  cat_indices=rank[cat_indices].astype(np.int32) if len(cat_indices) else cat_indices)


def _reference_trends(doc_topics, facets, rows=None, n_categories=12, block=65536):
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
    sums = np.zeros((m + 1, k))
    cat_sums = np.zeros((c, m + 1, k))
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
        lo, hi = facets.cat_indptr[part], facets.cat_indptr[part + 1]
        lengths = hi - lo
        owner = np.repeat(np.arange(len(part)), lengths)
        pos = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        cat = facets.cat_indices[pos] if len(pos) else np.zeros(0, np.int32)
        keep = cat < c
        owner, cat = owner[keep], cat[keep].astype(np.int64)
        cell = cat * (m + 1) + month[owner]
        np.add.at(cat_sums.reshape(c * (m + 1), k), cell, mix[owner])
        cat_counts += np.bincount(cell, minlength=c * (m + 1)).reshape(c, m + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.nan_to_num(sums[:m] / counts[:m, None])
        cat_shares = np.nan_to_num(cat_sums[:, :m] / cat_counts[:, :m, None])
    return TopicTrends(months=list(facets.months), counts=counts[:m], shares=shares.astype(np.float32),
                       categories=list(cats), category_counts=cat_counts[:, :m],
                       category_shares=cat_shares.astype(np.float32), undated=int(counts[m]))


def _table(ids, published, categories):
    """A document table straight from raw bytes (invalid UTF-8 and all), as an artifact stores it."""
    from abstractor_widgets.corpus import FIELDS
    from abstractor_widgets.store import DocumentTable

    values = {"id": ids, "published": published, "categories": categories}
    blobs, offsets = {}, {}
    for field in FIELDS:
        items = values.get(field, [b""] * len(ids))
        offsets[field] = np.concatenate([[0], np.cumsum([len(v) for v in items])]).astype(np.int64)
        blobs[field] = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
    return DocumentTable(blobs, offsets, np.argsort(np.array(ids, dtype=object), kind="stable").astype(np.int64))


# Odd values seen in (or plausible for) arXiv metadata, and hostile ones.
ODD_PUBLISHED = [b"2024-01-15", b"2024-01", b"2024-13-01", b"2024-00-10", b"", b"2024", b"2024-1-05", b"20x4-01-01",
                 b"2024/01/01", b"1999-12-31T23:59:59Z", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9", b"2024-01\xff", b" 2024-01-01",
                 b"2024-011", b"0000-00", b"2024-0\xd9", b"\xd9\xa2024-01", b"2024-01-15 extra words beyond sixteen bytes"]
ODD_IDS = [b"2401.00001", b"2413.00001", b"2400.12345", b"0704.0001", b"9912.1234", b"0704.001", b"cs/0701001",
           b"math.GT/0309136", b"hep-th/9901001", b"a/b/0701001", b"x/0713001", b"x/07010", b"\xc3\xbc/0702001",
           b"2401.0001x", b"", b"/", b"2401.00001v2", b"24010.0001", b"abcd.efgh", b"cs/07a1001", b"\xd9\xa0704.0001",
           b"cond-mat/9305001", b"2401-00001", b"2401.\xd9\xa01234", b"0001.0001"]
ODD_CATEGORIES = [b"cs.LG", b"cs.LG stat.ML", b"cs.LG cs.LG stat.ML", b"stat.ML cs.LG", b"", b"  cs.LG\tstat.ML  ",
                  b"cs.\xc3\x84I", b"\xff\xfe", b"\xff\xfd", b"a" * 70, b"x " * 40, b"cs.CL\ncs.LG", b"cs.LG\x0bcs.AI",
                  b"cs.LG\x00", b"\x00", b"cs.LG\xc2\xa0cs.AI", b"q-bio.BM cs.LG math.ST physics.bio-ph eess.IV",
                  b"cs.LG stat.ML ", b"cs.lg"]


def _odd_table(n_random=3000, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(i, p, ODD_CATEGORIES[(a + b) % len(ODD_CATEGORIES)])
            for a, i in enumerate(ODD_IDS) for b, p in enumerate(ODD_PUBLISHED)]  # every id with every date
    for _ in range(n_random):
        rows.append((ODD_IDS[rng.integers(len(ODD_IDS))], ODD_PUBLISHED[rng.integers(len(ODD_PUBLISHED))],
                     ODD_CATEGORIES[rng.integers(len(ODD_CATEGORIES))]))
    return _table(*(list(column) for column in zip(*rows)))


def _assert_same_facets(got, expected):
    assert got.months == expected.months and got.categories == expected.categories
    for name in ("month", "category_counts", "cat_indptr", "cat_indices"):
        a, b = getattr(got, name), getattr(expected, name)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name


def test_vectorised_facets_equal_the_reference_on_odd_values():
    table = _odd_table()
    facets = Facets.from_documents(table)
    _assert_same_facets(facets, _reference_facets(table))
    # the odd values did what they should: a bad month from a date kept as the date says, a
    # bad month from an id dropped, old-style ids decoded, duplicates counted once
    assert "2024-13" in facets.months and "2024-00" in facets.months and "1999-12" in facets.months
    assert (facets.month == -1).any() and "2007-01" in facets.months
    assert facets.categories.count("\ufffd\ufffd") == 2  # two different invalid byte strings, one name
    for value in (b"", b"cs.LG", b"0"):  # one paper, no paper
        _assert_same_facets(Facets.from_documents(_table([b"2401.00001"], [value], [value])),
                            _reference_facets(_table([b"2401.00001"], [value], [value])))
    _assert_same_facets(Facets.from_documents(_table([], [], [])), _reference_facets(_table([], [], [])))


def test_facets_of_the_model_equal_the_reference(mapped):
    _assert_same_facets(mapped.facets, _reference_facets(mapped.documents))


def test_facets_survive_a_hash_collision(monkeypatch):
    """Every category list hashed to one value: the check against each code's first value
    catches it and the exact factorisation gives the same facets."""
    from abstractor_widgets import explore

    table = _odd_table(500, seed=3)
    real = explore._Field._hash
    monkeypatch.setattr(explore._Field, "_hash", lambda self: (np.zeros_like(real(self)[0]), real(self)[1]))
    _assert_same_facets(Facets.from_documents(table), _reference_facets(table))
    field = explore._Field(table, "categories")
    codes, first = field.factorize(hashed=False)
    assert len(first) == len({field.value(r) for r in range(len(codes))})


@pytest.mark.parametrize("n_categories", [0, 1, 12])
def test_trends_equal_the_reference(mapped, n_categories):
    doc_topics = mapped.model.doc_topics_
    facets = mapped.facets
    mask = mapped.filter_mask({"categories": ["cs.LG"]})
    ids = np.array([5, 3, 3, 200, 17, 0, 239])  # unsorted, a duplicate counts twice
    for rows in (None, mask, ids, np.zeros(0, dtype=np.int64), np.zeros(len(mapped), dtype=bool)):
        for block in (65536, 7):
            got = TopicTrends.compute(doc_topics, facets, rows=rows, n_categories=n_categories, block=block)
            expected = _reference_trends(doc_topics, facets, rows=rows, n_categories=n_categories)
            assert got.months == expected.months and got.categories == expected.categories
            assert got.undated == expected.undated and np.array_equal(got.counts, expected.counts)
            assert np.array_equal(got.category_counts, expected.category_counts)
            np.testing.assert_allclose(got.shares, expected.shares, atol=1e-6)
            np.testing.assert_allclose(got.category_shares, expected.category_shares, atol=1e-6)


def test_trends_equal_the_reference_on_odd_facets():
    table = _odd_table(2000, seed=5)
    facets = Facets.from_documents(table)
    rng = np.random.default_rng(1)
    doc_topics = rng.dirichlet(np.ones(6), size=len(table)).astype(np.float32)
    for rows in (None, rng.random(len(table)) < 0.3):
        got = TopicTrends.compute(doc_topics, facets, rows=rows, n_categories=30, block=1000)
        expected = _reference_trends(doc_topics, facets, rows=rows, n_categories=30)
        assert np.array_equal(got.counts, expected.counts) and np.array_equal(got.category_counts, expected.category_counts)
        np.testing.assert_allclose(got.shares, expected.shares, atol=1e-6)
        np.testing.assert_allclose(got.category_shares, expected.category_shares, atol=1e-6)
        assert got.undated == expected.undated > 0


def test_map_sample_is_uniform_deterministic_and_translates_both_ways():
    every = MapSample.choose(40, cap=50)
    assert not every.sampled and every.rows.tolist() == list(range(40)) and every.rows_bytes() == b""
    values = np.arange(40) * 2
    assert every.take(values) is values
    sample = MapSample.choose(100_000, cap=10_000)
    assert sample.sampled and sample.n_points == 10_000 and sample.n_documents == 100_000
    assert np.all(np.diff(sample.rows) > 0) and sample.rows[0] >= 0 and sample.rows[-1] < 100_000
    assert np.array_equal(sample.rows, MapSample.choose(100_000, cap=10_000).rows)
    counts = np.bincount(sample.rows // 10_000, minlength=10)  # uniform over the corpus
    assert counts.min() > 850 and counts.max() < 1150, counts
    assert np.isin(sample.rows, MapSample.choose(101_000, cap=10_000).rows).mean() > 0.95  # appending keeps most
    points = np.array([0, 17, 9_999])
    rows = sample.row_of(points)
    assert sample.point_of(rows).tolist() == points.tolist()
    missing = np.setdiff1d(np.arange(100), sample.rows)[:3]
    assert sample.point_of(missing).tolist() == [-1, -1, -1]
    assert sample.point_of([99_999_999]).tolist() == [-1]
    with pytest.raises(IndexError):
        sample.row_of([10_000])
    assert np.frombuffer(sample.rows_bytes(), dtype="<u4").tolist() == sample.rows.tolist()
    assert sample.describe() == "Showing 10,000 of 100,000 papers"
    with pytest.raises(ValueError):
        MapSample.choose(10, cap=0)


def test_map_sample_is_the_same_in_another_process():
    import subprocess
    import sys

    code = ("from abstractor_widgets.explore import MapSample; "
            "print(MapSample.choose(5000, cap=300).rows.tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == MapSample.choose(5000, cap=300).rows.tolist()


def test_map_points_cap_from_the_environment(monkeypatch):
    monkeypatch.delenv(MAP_POINTS_ENV, raising=False)
    assert map_points_cap() == MAX_MAP_POINTS
    monkeypatch.setenv(MAP_POINTS_ENV, "250")
    assert map_points_cap() == 250 and MapSample.choose(1000).n_points == 250
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(MAP_POINTS_ENV, bad)
        with pytest.raises(ValueError, match=MAP_POINTS_ENV):
            map_points_cap()


def _inside(coords, polygon):
    """Even-odd test, point by point (the definition rows_in_polygon vectorises)."""
    out = []
    for i, (x, y) in enumerate(np.asarray(coords, dtype=np.float64)):
        inside = False
        for (ax, ay), (bx, by) in zip(polygon, polygon[1:] + polygon[:1]):
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
        if inside:
            out.append(i)
    return out


def test_rows_in_polygon_is_the_even_odd_rule_over_every_paper():
    rng = np.random.default_rng(4)
    coords = rng.uniform(-1, 1, (3000, 2)).astype(np.float32)
    star = [[0.9 * np.cos(a) * (0.4 if k % 2 else 1), 0.9 * np.sin(a) * (0.4 if k % 2 else 1)]
            for k, a in enumerate(np.linspace(0, 2 * np.pi, 10, endpoint=False))]
    bow = [[-0.5, -0.5], [0.5, 0.5], [0.5, -0.5], [-0.5, 0.5]]  # self-crossing
    for polygon in (star, bow, [[-2, -2], [2, -2], [2, 2], [-2, 2]], [[0, 0], [0.1, 0], [0.05, 0]]):
        assert rows_in_polygon(coords, np.array(polygon)).tolist() == _inside(coords, polygon)
    mask = rng.random(3000) < 0.5
    expected = [r for r in _inside(coords, star) if mask[r]]
    assert rows_in_polygon(coords, np.array(star), mask).tolist() == expected
    assert rows_in_polygon(coords, np.array([[5, 5], [6, 5], [6, 6]])).tolist() == []


@pytest.mark.parametrize("bad", [None, [[0, 0], [1, 1]], [[0, 0], [1, "x"], [1, 1]], [[0, 0], [1, 0], [float("nan"), 1]],
                                 [[0, 0, 0], [1, 0], [1, 1]], [[0, 0], [1, 0], [True, 1]], [[0, 0]] * 10_001, "polygon"])
def test_a_region_must_be_a_polygon_of_finite_points(bad):
    with pytest.raises(ValueError):
        region_polygon(bad)


def test_explorer_samples_a_large_corpus_and_keeps_everything_keyed_by_row(mapped):
    """A cap (50 points) below the corpus (240 papers): the points, topics, rows, mask, rings,
    hover, open, select and the region selection all refer to the right papers."""
    w = mapped.widget(n_similar=12)
    x = ExploreWidget(w, max_points=50)
    sample = x.sample
    coords = np.asarray(mapped.corpus_map.coords_)
    rows = np.frombuffer(x.map_rows, dtype="<u4")
    assert x.n_points == 50 and x.n_documents == len(mapped) == 240 and sample.sampled
    assert rows.tolist() == sample.rows.tolist() == MapSample.choose(240, 50).rows.tolist()
    assert np.array_equal(np.frombuffer(x.map_points, dtype=np.float32).reshape(-1, 2), coords[rows])
    dominant = np.asarray(mapped.model.doc_topics_).argmax(axis=1)
    assert np.frombuffer(x.map_topics, dtype=np.uint8).tolist() == dominant[rows].tolist()
    # the similar papers: rows and coordinates, drawn or not
    w.text = VISION_TEXT
    assert x.similar_rows == [mapped.documents.position(h["id"]) for h in w.similar]
    assert any(sample.point_of([r])[0] == -1 for r in x.similar_rows)  # some are not drawn
    np.testing.assert_allclose(x.similar_points, coords[x.similar_rows], atol=1e-5)
    # hover and open take corpus rows, drawn or not
    sent = []
    x.send = lambda content, buffers=None: sent.append(content)
    hidden = int(np.setdiff1d(np.arange(240), rows)[0])
    for row in (int(rows[7]), hidden):
        x._on_custom_msg(x, {"type": "hover", "row": row}, [])
        assert sent[-1]["row"] == row and sent[-1]["id"] == mapped.documents[row].id and sent[-1]["topic"] == dominant[row]
    x._on_custom_msg(x, {"type": "open", "row": int(rows[3])}, [])
    assert w.source["id"] == mapped.documents[int(rows[3])].id
    # the filter mask: one byte a point
    x.filters = {"categories": ["cs.CL"]}
    mask = mapped.filter_mask({"categories": ["cs.CL"]})
    assert np.frombuffer(x.map_mask, dtype=np.uint8).tolist() == mask[rows].astype(np.uint8).tolist()
    assert x.filter_count == int(mask.sum()) and sum(x.trends["counts"]) + x.trends["undated"] == x.filter_count
    # a lasso: every paper inside that the filters keep, drawn or not
    polygon = [[-1.5, -1.5], [0.2, -1.5], [0.2, 1.5], [-1.5, 1.5]]
    x._on_custom_msg(x, {"type": "select_region", "polygon": polygon}, [])
    expected = [r for r in _inside(coords, polygon) if mask[r]]
    assert not x.error and x.selected_rows.tolist() == expected and x.selection_count == len(expected)
    assert len(np.setdiff1d(expected, rows)) > 0  # papers that are not drawn are selected too
    assert x.selection["id"].tolist() == [mapped.documents[r].id for r in expected]
    x.filters = {}
    x._on_custom_msg(x, {"type": "select"}, [rows[:4].astype("<u4").tobytes()])
    assert x.selected_rows.tolist() == rows[:4].tolist()


def test_a_region_above_the_selection_limit_is_refused_with_a_message(mapped, monkeypatch):
    from abstractor_widgets import explore, explore_widget

    x = ExploreWidget(mapped.widget(), max_points=50)
    x.select_rows([1, 2])
    monkeypatch.setattr(explore, "MAX_SELECTION", 30)  # a region's limit (select_region)
    monkeypatch.setattr(explore_widget, "MAX_SELECTION", 30)  # a selection's buffer
    x._on_custom_msg(x, {"type": "select_region", "polygon": [[-5, -5], [5, -5], [5, 5], [-5, 5]]}, [])
    assert "240 papers" in x.error and "at most 30" in x.error and x.selection_count == 0
    x.error = ""
    x._on_custom_msg(x, {"type": "select_region", "polygon": [[0, 0], [1, 1]]}, [])
    assert "Selection not made" in x.error and x.selection_count == 0
    x._on_custom_msg(x, {"type": "select"}, [np.arange(31, dtype="<u4").tobytes()])
    assert "At most 30 papers" in x.error


def test_the_web_api_serves_a_sampled_map_and_selects_regions_over_every_paper(mapped, monkeypatch):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from abstractor_widgets import explore, service

    monkeypatch.setenv(MAP_POINTS_ENV, "50")
    coords = np.asarray(mapped.corpus_map.coords_)
    with TestClient(service.create_app(mapped)) as client:
        info = client.get("/api/v1/map").json()
        assert info["n_points"] == 50 and info["n_documents"] == 240 and info["sampled"] is True
        body = client.get("/api/v1/map/points").content
        assert len(body) == 13 * 50 == info["points_bytes"]
        rows = np.frombuffer(body[9 * 50:], dtype="<u4")
        assert rows.tolist() == MapSample.choose(240, 50).rows.tolist()
        assert np.array_equal(np.frombuffer(body[:400], dtype="<f4").reshape(-1, 2), coords[rows])
        # a similar paper's ring: its row and coordinates, drawn or not
        hits = client.post("/api/v1/analyze", json={"text": VISION_TEXT, "n": 12, "map": True}).json()["similar"]
        for hit in hits:
            assert hit["row"] == mapped.documents.position(hit["id"])
            assert abs(hit["x"] - coords[hit["row"], 0]) < 1e-4 and abs(hit["y"] - coords[hit["row"], 1]) < 1e-4
        # a hover on a paper that is not drawn
        hidden = int(np.setdiff1d(np.arange(240), rows)[0])
        assert client.get(f"/api/v1/map/rows/{hidden}").json()["id"] == mapped.documents[hidden].id
        # a region: every paper inside that the filters keep
        polygon = [[-1.5, -1.5], [0.2, -1.5], [0.2, 1.5], [-1.5, 1.5]]
        r = client.post("/api/v1/map/select", json={"polygon": polygon, "filters": {"categories": ["cs.CL"]}})
        mask = mapped.filter_mask({"categories": ["cs.CL"]})
        expected = [i for i in _inside(coords, polygon) if mask[i]]
        assert r.status_code == 200 and np.frombuffer(r.content, dtype="<u4").tolist() == expected
        assert int(r.headers["x-selection-count"]) == len(expected)
        assert client.post("/api/v1/map/select", json={"polygon": [[0, 0], [1, 1]]}).status_code == 422
        assert client.post("/api/v1/map/select", json={"polygon": polygon, "colour": 1}).status_code == 400
        monkeypatch.setattr(explore, "MAX_SELECTION", 10)  # the limit select_region applies
        r = client.post("/api/v1/map/select", json={"polygon": [[-5, -5], [5, -5], [5, 5], [-5, 5]]})
        assert r.status_code == 413 and "240 papers" in r.json()["error"]["message"]
    monkeypatch.delenv(MAP_POINTS_ENV)
    with TestClient(service.create_app(mapped)) as client:  # below the cap: every paper, as before
        info = client.get("/api/v1/map").json()
        assert info["n_points"] == info["n_documents"] == 240 and info["sampled"] is False
        assert len(client.get("/api/v1/map/points").content) == 9 * 240
