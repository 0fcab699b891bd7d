"""The dashboard notebook in JupyterLab 4 and Notebook 7 (one Jupyter server, real Chromium).

The server opens temporary copies of ``notebooks/dashboard.ipynb`` (Lab autosaves outputs).
Cells are run with ``window.jupyterapp.commands.execute('notebook:run-all-cells')``
(``expose_app_in_browser``); every selector is scoped to the widget (``.abstractor-…``).
"""

from __future__ import annotations

import re

import pytest
from benchmarks.dashboard_browser import HIT, SAMPLE_TEXT, TEXT_VIEW, TEXTAREA, WORD, Session, set_text, wait_widget

pytestmark = pytest.mark.browser

ARXIV = re.compile(r"^https://arxiv\.org/abs/\S+$")
TIMEOUT = 180.0

_APP_READY_JS = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  return Boolean(w && w.sessionContext && w.content && w.content.widgets && w.content.widgets.length === 2);
}"""
_KERNEL_READY_JS = """async () => {
  const w = window.jupyterapp.shell.currentWidget;
  await w.context.ready;
  await w.sessionContext.ready;
  return w.sessionContext.session && w.sessionContext.session.kernel ? w.sessionContext.session.kernel.name : null;
}"""
_CELLS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.widgets.map((c) => [c.model.type, c.model.type === 'code' ? c.model.executionCount : null]);
}"""


def open_and_run(chromium, url: str) -> Session:
    session = Session(chromium, viewport={"width": 1400, "height": 1400})
    page = session.page
    page.goto(url, wait_until="commit", timeout=TIMEOUT * 1000)
    page.wait_for_function(_APP_READY_JS, timeout=TIMEOUT * 1000, polling=250)
    assert page.evaluate(_KERNEL_READY_JS) == "python3"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    wait_widget(page, TIMEOUT)
    return session


def screenshot(page, path) -> None:
    """The notebook from its top: title cell, code cell, and the widget below them."""
    page.locator(".jp-Notebook .jp-Cell").first.scroll_into_view_if_needed()
    page.screenshot(path=str(path))


def hit_links(page) -> list[list[str]]:
    return page.eval_on_selector_all(HIT, "lis => lis.map(li => [...li.querySelectorAll('a[href]')].map(a => a.href))")


def check_core(page) -> None:
    """Colours in >= 3 topics, 5 similar papers with arXiv links, random, n."""
    set_text(page, SAMPLE_TEXT, timeout=60)
    colours = page.eval_on_selector_all(WORD, "ws => ws.map(w => getComputedStyle(w).textDecorationColor)")
    assert len(set(colours)) >= 3, colours
    links = hit_links(page)
    assert len(links) == 5 and all(any(ARXIV.match(x) for x in h) for h in links), links
    # Random abstract changes the text and the results
    page.locator(".abstractor-root button", has_text="Random abstract").click()
    page.wait_for_function(
        """([ta, view, old]) => {
            const t = document.querySelector(ta), v = document.querySelector(view);
            return t.value !== old && v.textContent === t.value
                && document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false';
        }""",
        arg=[TEXTAREA, TEXT_VIEW, SAMPLE_TEXT],
        timeout=60_000,
    )
    assert hit_links(page) != links
    # n changes the list length
    box = page.locator(".abstractor-root input.abstractor-n")
    box.fill("3")
    box.press("Enter")
    page.wait_for_function("([sel]) => document.querySelectorAll(sel).length === 3", arg=[HIT], timeout=60_000)


def test_jupyterlab(chromium, jupyter_lab, output_dir):
    session = open_and_run(chromium, jupyter_lab.url + "lab/tree/lab.ipynb")
    page = session.page
    try:
        cells = page.evaluate(_CELLS_JS)
        assert cells[1][0] == "code" and cells[1][1] == 1, cells
        check_core(page)
        # clicking a similar paper loads it
        first = page.locator(HIT).first
        paper_id = first.locator("a[href^='https://arxiv.org/abs/']").get_attribute("href").rsplit("/abs/", 1)[1]
        first.locator(".abstractor-hit-title").click()
        page.locator(".abstractor-root .abstractor-source").filter(has_text=paper_id).wait_for(timeout=60_000)
        # keys typed in the widget stay in the widget: Enter is a newline, Ctrl+Enter
        # analyses (JupyterLab would otherwise run the cell or enter edit mode)
        box = page.locator(TEXTAREA)
        box.fill(SAMPLE_TEXT)
        box.press("End")
        box.press("Enter")
        box.type("More text")
        box.press("Control+Enter")
        expected = SAMPLE_TEXT + "\nMore text"
        page.wait_for_function(
            "([view, text]) => document.querySelector(view).textContent === text", arg=[TEXT_VIEW, expected],
            timeout=60_000,
        )
        assert page.evaluate(_CELLS_JS) == cells, "a key in the widget reached JupyterLab"
        assert page.locator(WORD).count() > 0
        screenshot(page, output_dir / "lab.png")
        assert session.dialogs == []
    finally:
        session.close()


def test_notebook7(chromium, jupyter_lab, output_dir):
    session = open_and_run(chromium, jupyter_lab.url + "notebooks/nb7.ipynb")
    page = session.page
    try:
        check_core(page)
        screenshot(page, output_dir / "notebook7.png")
        assert session.dialogs == []
    finally:
        session.close()
