"""A sampled corpus map in a real browser (issue 16): the Voilà dashboard and the web page of
``abstractor serve`` over the session's 3,000-paper model with the map capped at 300 points
(``ABSTRACTOR_MAP_POINTS``, inherited by the Voilà kernels), as a 2.7M-paper model is capped
at ``MAX_MAP_POINTS``.

The page must say that it shows a sample, and a lasso must select every paper inside it,
drawn or not (the kernel / the server tests every paper's position); the similar papers are
ringed even when they are not drawn. Ground truth: the model, loaded here.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from test_explore_map import TEXT, _hover_until, draw_lasso
from test_web_dashboard import WebPage
from test_web_explore import serve_web

from abstractor_widgets.explore import MAP_POINTS_ENV, MapSample
from benchmarks.dashboard_browser import (
    open_dashboard,
    server_env,
    serving,
    set_text,
    voila_server,
)

pytestmark = pytest.mark.browser

CAP = 300
EXPLORE = ".abstractor-explore"
FRAME = f"{EXPLORE} .abstractor-map-frame"


@pytest.fixture(scope="module")
def voila(mapped_artifact, server_logs):
    yield from serving(voila_server(mapped_artifact, log_dir=server_logs, name="voila-sampled",
                                    env=server_env(mapped_artifact, **{MAP_POINTS_ENV: str(CAP)})))


@pytest.fixture(scope="module")
def web_url(mapped_artifact, server_logs):
    yield from serve_web(mapped_artifact, server_logs, "abstractor-serve-sampled", **{MAP_POINTS_ENV: str(CAP)})


def _screen_positions(page, coords):
    """Where each paper (drawn or not) is on screen, from the map's own projection."""
    return np.array(page.locator(FRAME).evaluate(
        "(f, xy) => xy.map(([x, y]) => f.abstractorMap.project(x, y))", np.asarray(coords, dtype=float).tolist()))


def _visible_point(page):
    """A drawn point inside the frame, away from its edges and from the topic labels (page coordinates)."""
    frame = page.locator(FRAME)
    box = frame.bounding_box()
    labels = [b for b in (el.bounding_box() for el in page.locator(f"{FRAME} .abstractor-map-label").all()) if b]
    for point in range(CAP):
        x, y = frame.evaluate("(f, i) => f.abstractorMap.screenPosition(i)", point)
        x, y = box["x"] + x, box["y"] + y
        inside = box["x"] + 40 < x < box["x"] + box["width"] - 40 and box["y"] + 40 < y < box["y"] + box["height"] - 40
        if inside and all(not (b["x"] - 8 < x < b["x"] + b["width"] + 8 and b["y"] - 8 < y < b["y"] + b["height"] + 8) for b in labels):
            return point, (x, y)
    raise AssertionError("no drawn point found inside the map")


def _check_sample(page, model):
    frame = page.locator(FRAME)
    assert int(frame.get_attribute("data-points")) == CAP and frame.get_attribute("data-sampled") == "true"
    note = page.locator(f"{EXPLORE} .abstractor-map-sample")
    assert note.is_visible()
    assert note.text_content().startswith(f"Showing {CAP:,} of {len(model):,} papers")
    assert frame.get_attribute("aria-describedby") == note.get_attribute("id")  # read with the map
    assert f"{len(model):,} papers" in page.locator(f"{EXPLORE} .abstractor-filter-count").text_content()
    # the points handed to WebGL are the sample's, in its order
    rows = MapSample.choose(len(model), CAP).rows
    drawn = frame.evaluate("f => { const p = f.abstractorMap.plot.get('points'); return [p.length, p[5][0], p[5][1], f.abstractorMap.rowOf(5)]; }")
    assert drawn[0] == CAP and drawn[3] == rows[5]
    assert abs(drawn[1] - float(model.corpus_map.coords_[rows[5]][0])) < 1e-6
    return rows


def _check_lasso_selects_every_paper_inside(page, model, rows, download_selector):
    (cx, cy), r = draw_lasso(page, FRAME, 1 / 4)
    page.wait_for_function(f"() => Number(document.querySelector('{EXPLORE}').dataset.selection) > 0", timeout=20_000)
    count = int(page.locator(EXPLORE).get_attribute("data-selection"))
    screen = _screen_positions(page, model.corpus_map.coords_)
    dx, dy = np.abs(screen[:, 0] - cx), np.abs(screen[:, 1] - cy)
    surely_in = int(((dx < r - 3) & (dy < r - 3)).sum())
    maybe_in = int(((dx <= r + 3) & (dy <= r + 3)).sum())
    assert surely_in <= count <= maybe_in, (surely_in, count, maybe_in)
    drawn_inside = int(((dx[rows] <= r + 3) & (dy[rows] <= r + 3)).sum())
    assert count > drawn_inside  # more than the drawn points: the papers that are not drawn too
    with page.expect_download() as download:
        page.locator(download_selector).click()
    with open(download.value.path(), encoding="utf-8") as f:
        table = list(csv.reader(io.StringIO(f.read())))
    selected = [model.documents.position(line[0]) for line in table[1:]]
    assert len(selected) == count
    assert all(dx[s] <= r + 3 and dy[s] <= r + 3 for s in selected)
    assert set(selected) - set(rows.tolist())  # the export holds papers that are not drawn


def test_voila_shows_a_sample_and_a_lasso_selects_every_paper_inside(chromium, voila, model):
    session = open_dashboard(chromium, voila.url, viewport={"width": 1280, "height": 2200})
    page = session.page
    try:
        page.wait_for_selector(f"{EXPLORE}[data-map-ready='true']", timeout=60_000)
        rows = _check_sample(page, model)
        # hover: the tooltip of a drawn point is its corpus row's paper
        point, xy = _visible_point(page)
        _hover_until(page, point, xy, f"{FRAME} .abstractor-map-tip:not([hidden]) strong")
        shown = int(page.locator(f"{FRAME} .abstractor-map-tip").get_attribute("data-row"))
        assert shown in set(rows.tolist())
        page.wait_for_function("([sel, t]) => document.querySelector(sel)?.textContent === t",
                               arg=[f"{FRAME} .abstractor-map-tip strong", model.documents[shown].title], timeout=10_000)
        # the similar papers are ringed, drawn or not
        set_text(page, TEXT)
        n_hits = page.locator(".abstractor-root .abstractor-hit-title").count()
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length === n",
                               arg=[f"{FRAME} .abstractor-map-ring", n_hits], timeout=20_000)
        ringed = [int(e.get_attribute("data-row")) for e in page.locator(f"{FRAME} .abstractor-map-ring").all()]
        assert n_hits >= 1 and len(ringed) == n_hits
        _check_lasso_selects_every_paper_inside(page, model, rows, f"{EXPLORE} [data-export='selection-csv']")
        # cleared in the kernel too (the selection may hold no drawn point)
        page.get_by_role("button", name="Clear selection").click()
        page.wait_for_function(f"() => document.querySelector('{EXPLORE}').dataset.selection === '0'", timeout=20_000)
        assert not session.errors, session.errors
        assert not session.external, session.external
    finally:
        session.close()


def test_the_web_page_shows_a_sample_and_a_lasso_selects_every_paper_inside(chromium, web_url, model):
    web = WebPage(chromium, web_url, viewport={"width": 1280, "height": 2200}).open()
    page = web.page
    try:
        page.wait_for_selector(f"{EXPLORE}[data-map-ready='true']", timeout=60_000)
        rows = _check_sample(page, model)
        _check_lasso_selects_every_paper_inside(page, model, rows, f"{EXPLORE} [data-export='selection-csv']")
        assert any(u.endswith("/api/v1/map/select") for u in web.requests)
        assert not web.errors, web.errors
        assert not web.external(), web.external()
    finally:
        web.close()
