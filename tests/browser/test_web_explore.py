"""The corpus explorer in the kernel-free web dashboard of ``abstractor serve`` (Debian Chromium).

The server is ``abstractor serve`` over a copy of the session's small real model with a
corpus map. The explorer is the same view as in the widget and the Voilà dashboard
(``js/src/explore.js``) over ``js/src/http-explore-model.js``: the points come as one
binary body, trends / filters / hover / export from the JSON API. Tests drive the page as
a user would; ground truth is the model itself (loaded here) and the server's API.
"""

from __future__ import annotations

import csv
import io
import sys
from urllib.parse import urlsplit

import pytest
from benchmarks.dashboard_browser import Server, free_port, server_env, serving, set_text
from test_explore_map import TEXT, _hover_until, _point, _visible_row
from test_web_dashboard import WebPage, background, luminance

pytestmark = pytest.mark.browser

EXPLORE = ".abstractor-explore"
FRAME = f"{EXPLORE} .abstractor-map-frame"


def serve_web(artifact, server_logs, name: str, **env: str):
    """``abstractor serve ARTIFACT`` on a free port for a module's tests (``env``: more
    environment variables); yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from abstractor_widgets.cli import main; sys.exit(main())",
           "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = Server(name, cmd, server_env(artifact, **env), port, server_logs / f"{name}.log",
                    ready_path="/api/v1/topics")  # fmt: skip
    for running in serving(server):
        yield running.url


@pytest.fixture(scope="module")
def url(mapped_artifact, server_logs):
    yield from serve_web(mapped_artifact, server_logs, "abstractor-serve-explore")


def _open(chromium, url, color_scheme="light"):
    session = WebPage(chromium, url, color_scheme=color_scheme, viewport={"width": 1280, "height": 2200}).open()
    session.page.wait_for_selector(f"{EXPLORE}[data-map-ready='true']", timeout=60_000)
    return session


@pytest.fixture(scope="module")
def web(chromium, url):
    session = _open(chromium, url)
    yield session
    assert not session.errors, session.errors
    assert not session.external(), session.external()
    session.close()


def test_every_point_is_drawn_from_the_binary_points(web, model):
    page = web.page
    frame = page.locator(FRAME)
    assert int(frame.get_attribute("data-points")) == len(model)
    # the data handed to WebGL: regl-scatterplot's own copy of the points
    drawn = frame.evaluate("f => { const p = f.abstractorMap.plot.get('points'); return [p.length, p[0][0], p[0][1], p[p.length - 1][2]]; }")
    coords = model.corpus_map.coords_
    assert drawn[0] == len(model)
    assert abs(drawn[1] - float(coords[0][0])) < 1e-6 and abs(drawn[2] - float(coords[0][1])) < 1e-6
    assert drawn[3] == int(model.model.doc_topics_[len(model) - 1].argmax())
    # and in the pixels
    from PIL import Image

    shot = Image.open(io.BytesIO(frame.screenshot())).convert("RGB")
    bg = shot.getpixel((2, 2))
    pixels = list(shot.get_flattened_data()) if hasattr(shot, "get_flattened_data") else list(shot.getdata())
    assert sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, bg)) > 60) > 2000
    assert page.locator(f"{FRAME} .abstractor-map-label").count() == model.n_topics
    # one binary request for the points, nothing per point
    paths = [urlsplit(u).path for u in web.requests]
    assert paths.count("/api/v1/map/points") == 1 and "/api/v1/map" in paths and "/api/v1/trends" in paths


def test_hover_shows_the_paper(web, model):
    page = web.page
    row, xy = _visible_row(page, model)
    tip = f"{FRAME} .abstractor-map-tip:not([hidden]) strong"
    _hover_until(page, row, xy, tip)
    shown = int(page.locator(f"{FRAME} .abstractor-map-tip").get_attribute("data-row"))
    doc = model.documents[shown]
    page.wait_for_function("([sel, t]) => document.querySelector(sel)?.textContent === t", arg=[tip, doc.title])
    meta = page.locator(f"{FRAME} .abstractor-map-tip .abstractor-map-tip-meta").first.text_content()
    assert (doc.published in meta) if doc.published else True
    assert any(urlsplit(u).path == f"/api/v1/map/rows/{shown}" for u in web.requests)


def test_click_loads_the_paper_and_marks_it(web, model):
    page = web.page
    row, xy = _visible_row(page, model, start=50)
    _hover_until(page, row, xy, f"{FRAME} .abstractor-map-tip:not([hidden])")
    hovered = int(page.locator(f"{FRAME} .abstractor-map-tip").get_attribute("data-row"))
    page.mouse.click(*_point(page, hovered))
    page.wait_for_function("() => /arXiv /.test(document.querySelector('.abstractor-root .abstractor-source')?.textContent || '')",
                           timeout=20_000)
    doc_id = page.locator(".abstractor-root .abstractor-source").text_content().split("arXiv ", 1)[1].split(":", 1)[0]
    loaded = model.documents.position(doc_id)
    fx, fy = page.locator(FRAME).evaluate("(f, row) => f.abstractorMap.screenPosition(row)", hovered)
    lx, ly = page.locator(FRAME).evaluate("(f, row) => f.abstractorMap.screenPosition(row)", loaded)
    assert abs(lx - fx) <= 6 and abs(ly - fy) <= 6, (hovered, loaded)
    page.wait_for_function("(t) => document.querySelector('.abstractor-root textarea').value === t", arg=model.documents[loaded].text,
                           timeout=20_000)
    expected = model.corpus_map.coords_[loaded]
    page.wait_for_function("([sel, x]) => (document.querySelector(sel)?.dataset.here || '').startsWith(String(x).slice(0, 5))",
                           arg=[FRAME, round(float(expected[0]), 5)], timeout=20_000)
    here = [float(v) for v in page.locator(FRAME).get_attribute("data-here").split(",")]
    assert abs(here[0] - expected[0]) < 1e-3 and abs(here[1] - expected[1]) < 1e-3
    assert web.posts[-1].get("paper_id") == doc_id and web.posts[-1].get("map") is True


def test_typing_places_you_are_here_and_rings_the_similar_papers(web, model):
    page = web.page
    set_text(page, TEXT)
    expected = model.place(TEXT)
    page.wait_for_function("([sel, x]) => (document.querySelector(sel)?.dataset.here || '').startsWith(String(x).slice(0, 5))",
                           arg=[FRAME, round(float(expected[0]), 5)], timeout=20_000)
    here = [float(v) for v in page.locator(FRAME).get_attribute("data-here").split(",")]
    assert abs(here[0] - expected[0]) < 1e-3 and abs(here[1] - expected[1]) < 1e-3
    assert page.locator(f"{FRAME} .abstractor-map-here").is_visible()
    n_hits = page.locator(".abstractor-root .abstractor-hit-title").count()
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length === n", arg=[f"{FRAME} .abstractor-map-ring", n_hits])
    ids = [m.split(" · ")[0] for m in page.locator(".abstractor-root .abstractor-hit-meta").all_text_contents()]
    rows = sorted(int(r.get_attribute("data-row")) for r in page.locator(f"{FRAME} .abstractor-map-ring").all())
    assert rows == sorted(model.documents.position(i) for i in ids)


def test_filters_restrict_the_map_the_trends_and_the_similar_papers(web, model):
    page = web.page
    set_text(page, TEXT)
    category = model.facets.categories[1]
    page.locator(f"{EXPLORE} .abstractor-filter-category").select_option(category)
    page.get_by_role("button", name="Apply filters").click()
    kept = int(model.filter_mask({"categories": [category]}).sum())
    page.wait_for_function("([sel, n]) => document.querySelector(sel)?.dataset.filtered === String(n)", arg=[FRAME, kept], timeout=20_000)
    page.wait_for_function("([sel, n]) => document.querySelector(sel)?.dataset.kept === String(n)",
                           arg=[f"{EXPLORE} .abstractor-filters", kept], timeout=20_000)
    page.wait_for_function(
        """(cat) => { const metas = [...document.querySelectorAll('.abstractor-root .abstractor-hit-meta')];
                      return metas.length > 0 && metas.every((m) => m.textContent.includes(cat)); }""",
        arg=category, timeout=20_000)
    assert web.posts[-1]["filters"]["categories"] == [category]
    # a keyword no paper has is refused with the server's message; the filters stay
    page.locator(f"{EXPLORE} .abstractor-filter-keyword").fill("zzzzqqqq")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_function("(sel) => /Filter not applied/.test(document.querySelector(sel)?.textContent || '')",
                           arg=f"{EXPLORE} .abstractor-explore-error", timeout=20_000)
    assert page.locator(FRAME).get_attribute("data-filtered") == str(kept)
    page.locator(f"{EXPLORE} .abstractor-filter-keyword").fill("")
    page.get_by_role("button", name="Clear", exact=True).click()
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.filtered === ''", arg=FRAME, timeout=20_000)


def test_trend_chart_switches_topic_and_category(web, model):
    page = web.page
    svg = page.locator(f"{EXPLORE} .abstractor-trend-svg")
    assert svg.locator("polyline").count() == model.n_topics
    page.locator(f"{EXPLORE} .abstractor-trend-chip[data-topic='2']").click()
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.highlight === '2'", arg=f"{EXPLORE} .abstractor-trend-svg")
    assert svg.locator("polyline.abstractor-on").get_attribute("data-topic") == "2"
    # linked: the analyser's legend and the map label highlight the same topic
    page.wait_for_selector(".abstractor-root .abstractor-topic.abstractor-on[data-topic='2']")
    assert page.locator(f"{FRAME} .abstractor-map-label[data-topic='2']").get_attribute("aria-pressed") == "true"
    category = model.trends().categories[0]
    page.locator(f"{EXPLORE} .abstractor-trend-category").select_option(category)
    page.wait_for_function("([sel, c]) => document.querySelector(sel)?.textContent.includes(c)",
                           arg=[f"{EXPLORE} .abstractor-trend-caption", f"({category})"])
    page.locator(".abstractor-root .abstractor-topic[data-topic='2'] .abstractor-topic-toggle").first.click()  # from the analyser: off
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.highlight === ''", arg=f"{EXPLORE} .abstractor-trend-svg")


def test_selection_and_similar_papers_export(web, model):
    page = web.page
    set_text(page, TEXT)
    frame = page.locator(FRAME)
    frame.focus()
    for _ in range(4):
        page.keyboard.press("+")
    page.get_by_role("button", name="Select papers in view").press("Enter")
    page.wait_for_function(f"() => Number(document.querySelector('{EXPLORE}').dataset.selection) > 0", timeout=20_000)
    count = int(page.locator(EXPLORE).get_attribute("data-selection"))
    assert 0 < count < len(model)
    with page.expect_download() as download:
        page.locator(f"{EXPLORE} [data-export='selection-csv']").click()
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0][:2] == ["id", "title"] and len(rows) - 1 == count
    view = frame.evaluate("f => [f.clientWidth, f.clientHeight]")
    for doc_id in [r[0] for r in rows[1:21]]:
        x, y = frame.evaluate("(f, row) => f.abstractorMap.screenPosition(row)", model.documents.position(doc_id))
        assert -2 <= x <= view[0] + 2 and -2 <= y <= view[1] + 2
    with page.expect_download() as download:
        page.locator(f"{EXPLORE} [data-export='similar-bibtex']").click()
    assert download.value.suggested_filename == "abstractor-similar.bib"
    bib = open(download.value.path(), encoding="utf-8").read()
    ids = [m.split(" · ")[0] for m in page.locator(".abstractor-root .abstractor-hit-meta").all_text_contents()]
    assert [line.split("arxiv:", 1)[1].rstrip(",") for line in bib.splitlines() if line.startswith("@misc{")] == ids
    page.get_by_role("button", name="Clear selection").press("Enter")
    page.keyboard.press("0")


def test_dark_theme_follows_the_system(chromium, url, output_dir):
    shots = {}
    for scheme in ("light", "dark"):
        session = _open(chromium, url, color_scheme=scheme)
        try:
            page = session.page
            set_text(page, TEXT)
            page.wait_for_selector(f"{FRAME} .abstractor-map-here:not([hidden])", timeout=20_000)
            assert page.locator(EXPLORE).get_attribute("data-abstractor-theme") == scheme
            shots[scheme] = background(page, EXPLORE)
            page.wait_for_timeout(300)
            page.locator(EXPLORE).screenshot(path=str(output_dir / f"web-explore-{scheme}.png"))
            assert not session.errors and not session.external()
        finally:
            session.close()
    assert luminance(shots["light"]) > 0.7 and luminance(shots["dark"]) < 0.1, shots
