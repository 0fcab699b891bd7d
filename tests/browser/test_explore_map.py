"""The corpus explorer in a real browser: the Voilà dashboard (analyser + ExploreWidget) in
Debian's Chromium, over a copy of the session's small real model with a corpus map.

Points drawn (counted from the data handed to WebGL, and seen in the pixels), hover tooltip,
click loads a paper into the analyser, the "you are here" marker after typing, a lasso
selection reaching the kernel (its count and a CSV built in Python), filters, the trend
chart switching topic and category, and the dark theme (?voila-theme=dark).
"""

from __future__ import annotations

import csv
import io
import shutil

import pytest

from benchmarks.dashboard_browser import NOTEBOOK, Session, open_dashboard, set_text, voila_server

pytestmark = pytest.mark.browser

EXPLORE = ".abstractor-explore"
FRAME = f"{EXPLORE} .abstractor-map-frame"
TEXT = ("We train a deep convolutional neural network for image classification and object detection, "
        "and evaluate it on standard vision benchmarks.")


@pytest.fixture(scope="module")
def server(mapped_artifact, server_logs):
    srv = voila_server(mapped_artifact, log_dir=server_logs, name="voila-explore")
    srv.start(timeout=90)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def session(chromium, server):
    session = open_dashboard(chromium, server.url, viewport={"width": 1280, "height": 2200})
    session.page.wait_for_selector(f"{EXPLORE}[data-map-ready='true']", timeout=60_000)
    yield session
    assert not session.errors, session.errors
    assert not session.external, session.external
    session.close()


def _point(page, row):
    """Page coordinates of map point ``row`` (from the map's own projection)."""
    frame = page.locator(FRAME)
    box = frame.bounding_box()
    x, y = frame.evaluate("(f, row) => f.abstractorMap.screenPosition(row)", row)
    return box["x"] + x, box["y"] + y


def _visible_row(page, model, start=0):
    """A point inside the frame, away from its edges and from the topic labels."""
    frame = page.locator(FRAME)
    box = frame.bounding_box()
    labels = [b for b in (el.bounding_box() for el in page.locator(f"{FRAME} .abstractor-map-label").all()) if b]
    for row in range(start, len(model)):
        x, y = _point(page, row)
        inside = box["x"] + 30 < x < box["x"] + box["width"] - 30 and box["y"] + 30 < y < box["y"] + box["height"] - 30
        clear = all(not (b["x"] - 8 < x < b["x"] + b["width"] + 8 and b["y"] - 8 < y < b["y"] + b["height"] + 8) for b in labels)
        if inside and clear:
            return row, (x, y)
    raise AssertionError("no point found inside the map")


def _hover_until(page, row, xy, selector, timeout=10_000):
    """Move onto the point (regl-scatterplot picks within a few pixels) until ``selector`` shows."""
    for dx, dy in [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)]:
        page.mouse.move(xy[0] + dx + 20, xy[1] + dy + 20)
        page.mouse.move(xy[0] + dx, xy[1] + dy, steps=4)
        try:
            page.wait_for_selector(selector, timeout=timeout / 5)
            return
        except Exception:
            continue
    raise AssertionError(f"hovering point {row} never showed {selector}")


def test_every_point_is_drawn(session, model):
    page = session.page
    frame = page.locator(FRAME)
    assert int(frame.get_attribute("data-points")) == len(model)
    assert page.locator(f"{EXPLORE}").get_attribute("data-abstractor-theme") == "light"
    # the pixels: many coloured (non-background) pixels in the palette's colours
    from PIL import Image

    shot = Image.open(io.BytesIO(frame.screenshot())).convert("RGB")
    background = shot.getpixel((2, 2))
    pixels = list(shot.get_flattened_data()) if hasattr(shot, "get_flattened_data") else list(shot.getdata())
    coloured = sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p, background)) > 60)
    assert coloured > 2000, coloured
    labels = page.locator(f"{FRAME} .abstractor-map-label")
    assert labels.count() == model.n_topics
    assert labels.first.text_content() == model.topics[0]["label"]


def test_hover_shows_the_paper(session, model):
    page = session.page
    row, xy = _visible_row(page, model)
    tip = f"{FRAME} .abstractor-map-tip:not([hidden]) strong"
    _hover_until(page, row, xy, tip)
    shown = int(page.locator(f"{FRAME} .abstractor-map-tip").get_attribute("data-row"))
    doc = model.documents[shown]
    page.wait_for_function("([sel, t]) => document.querySelector(sel)?.textContent === t", arg=[tip, doc.title])
    meta = page.locator(f"{FRAME} .abstractor-map-tip .abstractor-map-tip-meta").first.text_content()
    assert doc.categories.split()[0] in meta if doc.categories else True
    assert doc.published in meta if doc.published else True


def test_click_loads_the_paper_into_the_analyser(session, model):
    page = session.page
    row, xy = _visible_row(page, model, start=50)
    _hover_until(page, row, xy, f"{FRAME} .abstractor-map-tip:not([hidden])")
    hovered = int(page.locator(f"{FRAME} .abstractor-map-tip").get_attribute("data-row"))
    x, y = _point(page, hovered)
    fx, fy = page.locator(FRAME).evaluate("(f, row) => f.abstractorMap.screenPosition(row)", hovered)
    page.mouse.click(x, y)
    # the paper under the pointer (points overlap: the nearest one within a few pixels) is loaded
    page.wait_for_function("() => /arXiv /.test(document.querySelector('.abstractor-root .abstractor-source')?.textContent || '')",
                           timeout=20_000)
    source = page.locator(".abstractor-root .abstractor-source").text_content()
    doc_id = source.split("arXiv ", 1)[1].split(":", 1)[0]
    loaded = model.documents.position(doc_id)
    lx, ly = page.locator(FRAME).evaluate("(f, row) => f.abstractorMap.screenPosition(row)", loaded)
    assert abs(lx - fx) <= 6 and abs(ly - fy) <= 6, (hovered, loaded)
    doc = model.documents[loaded]
    page.wait_for_function("(t) => document.querySelector('.abstractor-root textarea').value === t", arg=doc.text, timeout=20_000)
    # the loaded paper is where "you are here" sits
    page.wait_for_selector(f"{FRAME} .abstractor-map-here:not([hidden])")
    page.wait_for_function("([sel, id]) => document.querySelector(sel)?.dataset.here !== ''", arg=[FRAME, doc_id])
    here = [float(v) for v in page.locator(FRAME).get_attribute("data-here").split(",")]
    expected = model.corpus_map.coords_[loaded]
    assert abs(here[0] - expected[0]) < 1e-3 and abs(here[1] - expected[1]) < 1e-3


def test_typing_places_you_are_here_and_rings_the_similar_papers(session, model):
    page = session.page
    assert page.locator(f"{FRAME} .abstractor-map-here").is_hidden()
    set_text(page, TEXT)
    page.wait_for_selector(f"{FRAME} .abstractor-map-here:not([hidden])", timeout=20_000)
    here = [float(v) for v in page.locator(FRAME).get_attribute("data-here").split(",")]
    expected = model.place(TEXT)
    assert abs(here[0] - expected[0]) < 1e-3 and abs(here[1] - expected[1]) < 1e-3
    n_hits = page.locator(".abstractor-root .abstractor-hit-title").count()
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length === n",
                           arg=[f"{FRAME} .abstractor-map-ring", n_hits])
    assert n_hits >= 1


def draw_lasso(page, frame: str = FRAME, fraction: float = 1 / 3) -> tuple[tuple[float, float], float]:
    """Draw a square lasso around the map's centre, of half side ``fraction`` of the frame's
    smaller side; returns its centre (frame pixels) and half side."""
    page.get_by_role("button", name="Lasso select").click()
    box = page.locator(frame).bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) * fraction
    page.mouse.move(cx - r, cy - r)
    page.mouse.down()
    for x, y in [(cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r), (cx - r, cy - r + 2)]:
        page.mouse.move(x, y, steps=12)
    page.mouse.up()
    return (box["width"] / 2, box["height"] / 2), r


def test_lasso_selection_reaches_python(session, model):
    page = session.page
    _, r = draw_lasso(page)
    page.wait_for_function(f"() => Number(document.querySelector('{EXPLORE}').dataset.selection) > 0", timeout=20_000)
    count = int(page.locator(EXPLORE).get_attribute("data-selection"))
    assert f"{count:,} papers selected" in page.locator(f"{EXPLORE} .abstractor-selection-count").text_content()
    # the kernel's selection: its CSV (built in Python) has one row per selected paper, inside the lasso
    with page.expect_download() as download:
        page.locator(f"{EXPLORE} [data-export='selection-csv']").click()
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0][:2] == ["id", "title"] and len(rows) - 1 == count
    ids = {r[0] for r in rows[1:]}
    view = page.locator(FRAME).evaluate("f => [f.clientWidth, f.clientHeight]")
    inside = 0
    for doc_id in list(ids)[:50]:
        x, y = page.locator(FRAME).evaluate("(f, row) => f.abstractorMap.screenPosition(row)", model.documents.position(doc_id))
        inside += abs(x - view[0] / 2) <= r + 2 and abs(y - view[1] / 2) <= r + 2
    assert inside == min(50, len(ids))


def test_keyboard_zoom_and_select_papers_in_view(session, model):
    page = session.page
    frame = page.locator(FRAME)
    frame.focus()
    for _ in range(4):
        page.keyboard.press("+")
    page.keyboard.press("ArrowLeft")
    page.get_by_role("button", name="Select papers in view").press("Enter")
    page.wait_for_function(f"() => Number(document.querySelector('{EXPLORE}').dataset.selection) > 0", timeout=20_000)
    count = int(page.locator(EXPLORE).get_attribute("data-selection"))
    assert 0 < count < len(model)  # zoomed in: only part of the corpus is in view
    page.get_by_role("button", name="Clear selection").press("Enter")
    page.wait_for_function(f"() => document.querySelector('{EXPLORE}').dataset.selection === '0'", timeout=20_000)


def test_filters_restrict_the_map_and_the_similar_papers(session, model):
    page = session.page
    set_text(page, TEXT)
    category = model.facets.categories[1]
    page.locator(f"{EXPLORE} .abstractor-filter-category").select_option(category)
    page.get_by_role("button", name="Apply filters").click()
    kept = int(model.filter_mask({"categories": [category]}).sum())
    page.wait_for_function("([sel, n]) => document.querySelector(sel)?.dataset.kept === String(n)",
                           arg=[f"{EXPLORE} .abstractor-filters", kept], timeout=20_000)
    page.wait_for_function("([sel, n]) => document.querySelector(sel)?.dataset.filtered === String(n)", arg=[FRAME, kept])
    page.wait_for_function(
        """(cat) => { const metas = [...document.querySelectorAll('.abstractor-root .abstractor-hit-meta')];
                      return metas.length > 0 && metas.every((m) => m.textContent.includes(cat)); }""",
        arg=category, timeout=20_000)
    page.get_by_role("button", name="Clear", exact=True).click()
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.filtered === ''", arg=FRAME)


def test_trend_chart_switches_topic_and_category(session, model):
    page = session.page
    svg = page.locator(f"{EXPLORE} .abstractor-trend-svg")
    assert svg.locator("polyline").count() == model.n_topics
    page.locator(f"{EXPLORE} .abstractor-trend-chip[data-topic='3']").click()
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.highlight === '3'", arg=f"{EXPLORE} .abstractor-trend-svg")
    assert svg.locator("polyline.abstractor-on").get_attribute("data-topic") == "3"
    assert svg.locator("polyline.abstractor-off").count() == model.n_topics - 1
    # linked: the analyser's legend and the map label highlight the same topic
    page.wait_for_selector(".abstractor-root .abstractor-topic.abstractor-on[data-topic='3']")
    assert page.locator(f"{FRAME} .abstractor-map-label[data-topic='3']").get_attribute("aria-pressed") == "true"
    category = model.trends().categories[0]
    page.locator(f"{EXPLORE} .abstractor-trend-category").select_option(category)
    page.wait_for_function("([sel, c]) => document.querySelector(sel)?.textContent.includes(c)",
                           arg=[f"{EXPLORE} .abstractor-trend-caption", f"({category})"])
    page.locator(f"{FRAME} .abstractor-map-label[data-topic='3']").press("Enter")  # keyboard: toggles it off everywhere
    page.wait_for_function("(sel) => document.querySelector(sel)?.dataset.highlight === ''", arg=f"{EXPLORE} .abstractor-trend-svg")


def test_dark_theme_from_the_url(chromium, server, output_dir):
    session = Session(chromium, {"width": 1280, "height": 2200})
    try:
        page = session.page
        page.goto(server.url + "?voila-theme=dark", wait_until="commit", timeout=90_000)
        page.wait_for_selector(f"{EXPLORE}[data-map-ready='true']", timeout=90_000)
        assert page.locator("body").get_attribute("data-jp-theme-light") == "false"
        page.wait_for_function(f"() => document.querySelector('{EXPLORE}').dataset.abstractorTheme === 'dark'")
        assert page.locator(".abstractor-root").get_attribute("data-abstractor-theme") == "dark"
        rgb = page.locator(FRAME).evaluate("f => getComputedStyle(f).backgroundColor")
        channels = [int(v) for v in rgb[rgb.index("(") + 1: rgb.index(")")].split(",")[:3]]
        assert sum(channels) / 3 < 80, rgb
        page.locator(EXPLORE).screenshot(path=str(output_dir / "explore-dark.png"))
        assert not session.errors, session.errors
    finally:
        session.close()


def test_jupyterlab_renders_the_explorer_without_a_map(chromium, jupyter_lab, model):
    """In JupyterLab, over the session's model without a map: the explorer says how to add
    one; trends and filters work; keys typed in it stay in it."""
    from tests.browser.test_lab import _CELLS_JS, open_and_run

    shutil.copy(NOTEBOOK, jupyter_lab.root / "explore-lab.ipynb")
    session = open_and_run(chromium, jupyter_lab.url + "lab/tree/explore-lab.ipynb")
    page = session.page
    try:
        page.wait_for_selector(f"{EXPLORE} .abstractor-map-status:not([hidden])", timeout=60_000)
        assert "build_map()" in page.locator(f"{EXPLORE} .abstractor-map-status").text_content()
        assert page.locator(f"{EXPLORE} .abstractor-trend-svg polyline").count() == model.n_topics
        cells = page.evaluate(_CELLS_JS)
        keyword = page.locator(f"{EXPLORE} .abstractor-filter-keyword")
        keyword.fill("network")
        keyword.press("Enter")  # applies the filter; JupyterLab must not run the cell
        page.wait_for_function("(sel) => /of [0-9,]+ papers match/.test(document.querySelector(sel)?.textContent || '')",
                               arg=f"{EXPLORE} .abstractor-filter-count", timeout=60_000)
        assert page.evaluate(_CELLS_JS) == cells, "a key in the explorer reached JupyterLab"
        assert session.dialogs == [] and not session.errors, session.errors
    finally:
        session.close()


# -- the renderer of a large map (js/src/map-renderer.js) ------------------------------------
MAP_PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="explore.css"></head>
<body><div class="abstractor-explore" style="width:900px"><div id="host"></div></div>
<script type="module">
import { createCorpusMap } from "./explore.js";
const PALETTE = ["#E69F00","#56B4E9","#009E73","#F0E442","#0072B2","#D55E00","#CC79A7"];
window.mount = async (n, options) => {
  const map = createCorpusMap(options);
  document.getElementById("host").replaceChildren(map.el);
  await new Promise((r) => requestAnimationFrame(r));
  const pts = new Float32Array(2 * n), tp = new Uint8Array(n);
  let seed = 7; const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < n; i++) { const k = i % 20, a = k / 20 * 6.283;
    pts[2*i] = 0.6 * Math.cos(a) + (rnd() - 0.5) * 0.5; pts[2*i+1] = 0.6 * Math.sin(a) + (rnd() - 0.5) * 0.5; tp[i] = k; }
  await map.setData(pts, tp, Array.from({length: 20}, (_, k) => ({label: "t" + k, color: PALETTE[k % 7]})));
  window.map = map;
  return map.stats.renderer;
};
// move the camera one step per animation frame; the pixels of the last frame drawn while moving
// (a frame composited from the cache, if any: each set() is followed by a redraw at rest)
window.move = async (steps) => {
  const canvas = window.map.frame.querySelector("canvas");
  const stats = window.map.stats.render;
  let url = null, composited = stats.composited;
  const off = window.map.plot.subscribe("drawing", () => {
    if (!url || stats.composited > composited || stats.exact > 0 && window.map.stats.renderer === "direct") url = canvas.toDataURL();
    composited = stats.composited;
  });
  const before = { ...stats };
  for (let i = 1; i <= steps; i++) {
    window.map.plot.set({ cameraTarget: [0.03 * i, 0.02 * i], cameraDistance: 1 - 0.05 * i });
    await new Promise((r) => requestAnimationFrame(r));
  }
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  window.map.plot.unsubscribe(off);
  return { url, exact: stats.exact - before.exact, composited: stats.composited - before.composited };
};
window.ready = true;
</script></body></html>"""


@pytest.fixture(scope="module")
def map_page(tmp_path_factory):
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    import abstractor_widgets

    root = tmp_path_factory.mktemp("map-page")
    static = Path(abstractor_widgets.__file__).parent / "static"
    for name in ("explore.js", "explore.css"):
        (root / name).write_bytes((static / name).read_bytes())
    (root / "index.html").write_text(MAP_PAGE, encoding="utf-8")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()


def _pixels(data_url):
    import base64

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGBA")).astype(int)


def _canvas_now(page):
    """The canvas's pixels as drawn in the next frame (read in the same task as the drawing)."""
    return _pixels(page.evaluate("""() => new Promise((resolve) => {
        const canvas = window.map.frame.querySelector("canvas");
        const off = window.map.plot.subscribe("drawing", () => { window.map.plot.unsubscribe(off); resolve(canvas.toDataURL()); });
        window.map.plot.redraw(); })"""))


def test_a_large_map_moves_its_cached_image_and_rests_on_an_exact_drawing(chromium, map_page):
    """60,000 points: while the camera moves, frames show the cached image of the points (no
    point drawn again); at rest the canvas holds exactly the pixels of drawing every point."""
    import numpy as np

    session = Session(chromium, {"width": 1000, "height": 700})
    try:
        page = session.page
        page.goto(map_page)
        page.wait_for_function("window.ready === true")
        pages = {}
        for mode, options in (("exact", {"cache": False}), ("cached", {"settleMs": 60_000})):
            assert page.evaluate("([n, o]) => window.mount(n, o)", [60_000, options]) == ("direct" if mode == "exact" else "direct+cache")
            page.wait_for_timeout(300)
            rest = _canvas_now(page)
            moved = page.evaluate("(s) => window.move(s)", 8)
            pages[mode] = {"rest": rest, "moving": _pixels(moved["url"]), **moved}
        # the exact renderer draws the points every frame; the cached one only composites
        assert pages["exact"]["composited"] == 0 and pages["exact"]["exact"] >= 7
        # (the cached: one drawing of the points into the image when the gesture starts, and
        # one at rest after the last set(): regl-scatterplot redraws once more after set())
        assert pages["cached"]["exact"] <= 2 and pages["cached"]["composited"] >= 7
        # at rest: the same pixels (the cache is never shown then), every point coloured
        rest_exact, rest_cached = pages["exact"]["rest"], pages["cached"]["rest"]
        assert rest_exact.shape == rest_cached.shape
        assert np.count_nonzero(np.abs(rest_exact - rest_cached).sum(-1)) <= 0.001 * rest_exact[..., 0].size
        assert np.count_nonzero(rest_cached[..., 3]) > 100_000
        # moving (zoomed in 1.7x and panned): the image lands where the points are, softer
        a, b = pages["exact"]["moving"][..., 3] > 0, pages["cached"]["moving"][..., 3] > 0
        assert (a & b).sum() / (a | b).sum() > 0.85
        # after the camera rests (settleMs), the canvas is again an exact drawing
        page.evaluate("() => window.mount(60000, {})")
        page.evaluate("(s) => window.move(s)", 8)
        page.wait_for_timeout(600)
        settled = _canvas_now(page)
        assert page.evaluate("() => window.map.stats.render.settles") >= 1
        assert np.count_nonzero(np.abs(settled - pages["exact"]["moving"]).sum(-1)) <= 0.001 * settled[..., 0].size
        assert not session.errors, session.errors
    finally:
        session.close()
