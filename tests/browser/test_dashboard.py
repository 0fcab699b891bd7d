"""The Voilà dashboard: ``abstractor_widgets.dashboard`` and the notebook (no browser),
then in a real browser (Debian Chromium): renders, colours, similar papers, actions,
hostile and huge input, empty state, light and dark themes.

The light browser tests share one dashboard page (``dashboard`` fixture, module-scoped):
each sets its own input first. Screenshots go to ``test-output/``.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from benchmarks.dashboard_browser import (
    HIT,
    SAMPLE_TEXT,
    TEXT_VIEW,
    TEXTAREA,
    WIDGET,
    WORD,
    open_dashboard,
    set_text,
    wait_result,
)

pytestmark = pytest.mark.browser  # every test here drives Chromium
browser = pytest.mark.browser

ARXIV = re.compile(r"^https://arxiv\.org/abs/\S+$")
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
]

# Effective colours from computed styles: a background is composited over the ancestors'
# backgrounds up to the canvas (white, or the page's colour-scheme canvas).
_COLOURS_JS = """
(el) => {
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c || '');
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3] + bottom[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    return [0, 1, 2].map((i) => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a).concat([a]);
  };
  const layers = [];
  for (let n = el; n && n.nodeType === 1; n = n.parentElement) layers.push(parse(getComputedStyle(n).backgroundColor));
  const dark = document.body.getAttribute('data-jp-theme-light') === 'false';
  let bg = dark ? [0, 0, 0, 1] : [255, 255, 255, 1];
  for (const layer of layers.reverse()) bg = over(layer, bg);
  const fg = over(parse(getComputedStyle(el).color), bg);
  return {fg: fg.slice(0, 3), bg: bg.slice(0, 3)};
}
"""


def _luminance(rgb):
    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(colours) -> float:
    a, b = _luminance(colours["fg"]), _luminance(colours["bg"])
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def word_colours(page) -> list[str]:
    """Computed underline colour of every topical word."""
    return page.eval_on_selector_all(WORD, "ws => ws.map(w => getComputedStyle(w).textDecorationColor)")


def hits(page) -> list[dict]:
    return page.eval_on_selector_all(
        HIT,
        """lis => lis.map(li => ({
            title: li.querySelector('.abstractor-hit-title')?.textContent,
            links: [...li.querySelectorAll('a[href]')].map(a => a.href),
        }))""",
    )


def wait_hits(page, n: int, timeout: float = 30.0) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n "
        "&& document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'",
        arg=[HIT, n],
        timeout=timeout * 1000,
    )


def set_n(page, n: int) -> None:
    box = page.locator(".abstractor-root input.abstractor-n")
    box.fill(str(n))
    box.press("Enter")
    wait_hits(page, n)


def wait_idle_and_synced(page, timeout: float = 30.0) -> str:
    """Wait until no request is pending and the coloured view shows the textarea's text."""
    page.wait_for_function(
        """([ta, view]) => {
            const root = document.querySelector('.abstractor-root');
            const t = document.querySelector(ta), v = document.querySelector(view);
            return root.getAttribute('aria-busy') === 'false' && t && v && v.textContent === t.value;
        }""",
        arg=[TEXTAREA, TEXT_VIEW],
        timeout=timeout * 1000,
    )
    return page.locator(TEXTAREA).input_value()


def screenshot(page, path) -> None:
    """The whole dashboard (the viewport grows to its height, Voilà scrolls inside)."""
    height = page.evaluate(
        "() => Math.ceil(document.querySelector('.abstractor-root').getBoundingClientRect().bottom + window.scrollY + 24)"
    )
    page.set_viewport_size({"width": 1280, "height": max(800, min(int(height), 4000))})
    page.screenshot(path=str(path), full_page=True)


# ------------------------------------------------------------------------- light theme
@browser
def test_dashboard_renders_header_and_empty_widget(dashboard, artifact):
    page = dashboard.page
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert page.locator("h1", has_text="Topics of an arXiv abstract").is_visible()
    facts = page.locator(".abstractor-dash-facts").inner_text()
    assert f"{manifest['n_documents']:,} papers" in facts, facts
    assert f"{manifest['n_topics']} LDA topics" in facts, facts
    assert page.locator(".abstractor-dash-howto li").count() >= 3
    assert page.locator(WIDGET).is_visible()
    # nothing typed yet: the empty state, no coloured words, no similar list
    empty = page.locator(".abstractor-root .abstractor-empty")
    assert empty.is_visible()
    assert "empty" in empty.inner_text().lower()
    assert page.locator(WORD).count() == 0
    assert not page.locator(".abstractor-root .abstractor-similar").is_visible()
    assert dashboard.errors == [], dashboard.errors
    assert dashboard.external == [], "the dashboard must work offline (no CDN)"


@browser
def test_typing_colours_words_in_several_topics(dashboard, output_dir):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT)
    assert page.locator(TEXT_VIEW).text_content() == SAMPLE_TEXT
    colours = word_colours(page)
    assert len(colours) >= 20
    assert len(set(colours)) >= 3, colours
    # the tint behind every word is a real colour, not transparent
    backgrounds = page.eval_on_selector_all(WORD, "ws => ws.map(w => getComputedStyle(w).backgroundColor)")
    assert all(b not in ("rgba(0, 0, 0, 0)", "transparent") for b in backgrounds)
    # topical words stay legible on their tint
    worst = min(contrast(page.eval_on_selector(f"{WORD} >> nth={i}", _COLOURS_JS)) for i in range(5))
    assert worst >= 4.5, worst
    assert not page.locator(".abstractor-root .abstractor-empty").is_visible()
    set_n(page, 5)
    screenshot(page, output_dir / "dashboard-light.png")


@browser
def test_similar_papers_have_arxiv_links(dashboard):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT + " Similar papers, please.")
    set_n(page, 5)
    found = hits(page)
    assert len(found) == 5
    for hit in found:
        assert hit["title"].strip()
        assert any(ARXIV.match(link) for link in hit["links"]), hit


@browser
def test_changing_n_changes_the_list_length(dashboard):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT + " How many?")
    for n in (8, 2, 5):
        set_n(page, n)
        assert len(hits(page)) == n
        assert all(any(ARXIV.match(x) for x in h["links"]) for h in hits(page))


@browser
def test_ranking_selector_switches_method_and_explanations(dashboard):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT + " Which ranking?")
    set_n(page, 5)
    select = page.get_by_label("Rank by")
    options = select.locator("option").all_text_contents()
    assert options == ["words + topics (default)", "shared words", "topics only"]

    def explained() -> list[bool]:
        return page.eval_on_selector_all(HIT, "lis => lis.map(li => li.textContent.includes('Shared terms:'))")

    assert all(explained())  # the default (hybrid) explains every hit by its shared terms
    default_titles = [h["title"] for h in hits(page)]
    select.select_option(label="topics only")
    page.wait_for_function(
        "([sel]) => [...document.querySelectorAll(sel)].every(li => !li.textContent.includes('Shared terms:'))"
        " && document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'",
        arg=[HIT], timeout=30_000,
    )
    assert len(hits(page)) == 5 and not any(explained())
    select.focus()  # keyboard: back to the default with the arrow keys
    page.keyboard.press("Home")
    select.select_option(value="")
    page.wait_for_function(
        "([sel]) => [...document.querySelectorAll(sel)].every(li => li.textContent.includes('Shared terms:'))"
        " && document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'",
        arg=[HIT], timeout=30_000,
    )
    assert [h["title"] for h in hits(page)] == default_titles


@browser
def test_random_abstract_changes_text_and_results(dashboard):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT)
    before_hits = hits(page)
    seen = {SAMPLE_TEXT}
    for _ in range(2):
        previous = page.locator(TEXTAREA).input_value()
        page.locator(".abstractor-root button", has_text="Random abstract").click()
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel).value !== old", arg=[TEXTAREA, previous], timeout=30_000
        )
        text = wait_idle_and_synced(page)
        assert text not in seen
        seen.add(text)
        source = page.locator(".abstractor-root .abstractor-source")
        assert source.is_visible() and "arXiv" in source.inner_text()
        assert page.locator(WORD).count() > 0
    assert hits(page) != before_hits


@browser
def test_clicking_a_similar_paper_loads_it(dashboard):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT)
    first = page.locator(HIT).first
    link = first.locator("a[href^='https://arxiv.org/abs/']").get_attribute("href")
    paper_id = link.rsplit("/abs/", 1)[1]
    title = first.locator(".abstractor-hit-title").inner_text()
    first.locator(".abstractor-hit-title").click()
    source = page.locator(".abstractor-root .abstractor-source")
    source.filter(has_text=paper_id).wait_for(timeout=30_000)
    text = wait_idle_and_synced(page)
    assert text != SAMPLE_TEXT and len(text) > 100
    assert title.strip() in source.inner_text()
    # the loaded paper is not listed as similar to itself
    assert all(not any(link.endswith("/" + paper_id) for link in h["links"]) for h in hits(page))
    assert page.locator(WORD).count() > 0


@browser
def test_hostile_abstract_renders_as_literal_text(dashboard, output_dir):
    page = dashboard.page
    for text in ["\n".join(HOSTILE), SAMPLE_TEXT + "\n" + " ".join(HOSTILE) + " neural networks"]:
        set_text(page, text)  # waits until the coloured view's text equals the input
        assert page.locator(TEXTAREA).input_value() == text
        assert page.locator(TEXT_VIEW).text_content() == text
        injected = page.evaluate(
            """() => document.querySelectorAll(
                '.abstractor-root img, .abstractor-root script, .abstractor-root svg[onload], img[src="x"], [onerror], [onload]'
            ).length"""
        )
        assert injected == 0
        page.wait_for_timeout(300)  # an injected onerror/onload would have fired by now
    assert page.locator(WORD).count() > 0  # the second text is topical and visible
    assert dashboard.dialogs == []
    assert dashboard.errors == [], dashboard.errors
    screenshot(page, output_dir / "dashboard-hostile.png")


@browser
def test_100kb_of_text_stays_responsive(dashboard):
    page = dashboard.page
    big = (SAMPLE_TEXT + "\n") * (100_000 // (len(SAMPLE_TEXT) + 1) + 1)
    big = big[:100_000]
    limit = int(page.locator(TEXTAREA).get_attribute("maxlength") or 10**9)
    start = time.perf_counter()
    set_text(page, big[:limit], wait=False)
    text = wait_idle_and_synced(page, timeout=60)
    elapsed = time.perf_counter() - start
    assert len(text) == min(len(big), limit)
    assert page.locator(WORD).count() > 1000
    assert elapsed < 30, elapsed
    # the page still reacts: a later edit re-renders at once
    start = time.perf_counter()
    set_text(page, SAMPLE_TEXT + " After the flood.")
    assert time.perf_counter() - start < 10
    # 100 KB set programmatically (past the box's maxlength): the kernel refuses it with
    # a readable message and keeps the last good result
    page.evaluate(
        """([sel, big]) => {
            const ta = document.querySelector(sel);
            ta.value = big;
            ta.dispatchEvent(new InputEvent('input', {bubbles: true}));
            ta.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', ctrlKey: true, bubbles: true}));
        }""",
        [TEXTAREA, big],
    )
    error = page.locator(".abstractor-root .abstractor-error")
    error.wait_for(state="visible", timeout=30_000)
    assert "limit" in error.inner_text().lower()
    page.wait_for_function(
        "() => document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'", timeout=30_000
    )
    set_text(page, SAMPLE_TEXT + " Still alive.")
    assert page.locator(WORD).count() > 0


@browser
def test_empty_box_shows_the_empty_state(dashboard):
    page = dashboard.page
    set_text(page, SAMPLE_TEXT)
    assert not page.locator(".abstractor-root .abstractor-empty").is_visible()
    box = page.locator(TEXTAREA)
    box.fill("")
    box.press("Control+Enter")
    empty = page.locator(".abstractor-root .abstractor-empty")
    empty.wait_for(state="visible", timeout=30_000)
    assert "empty" in empty.inner_text().lower()
    assert page.locator(WORD).count() == 0
    assert not page.locator(".abstractor-root .abstractor-similar").is_visible()


# ------------------------------------------------------------------------- dark theme
@browser
def test_dark_theme_is_legible(chromium, voila_dark, output_dir):
    session = open_dashboard(chromium, voila_dark.url, viewport={"width": 1280, "height": 1600})
    page = session.page
    try:
        assert page.evaluate("document.body.getAttribute('data-jp-theme-light')") == "false"
        assert page.locator(WIDGET).get_attribute("data-abstractor-theme") == "dark"
        set_text(page, SAMPLE_TEXT)
        wait_result(page, SAMPLE_TEXT)
        assert len(set(word_colours(page))) >= 3
        page_bg = page.eval_on_selector("body", _COLOURS_JS)["bg"]
        assert _luminance(page_bg) < 0.1, page_bg  # a dark page, not a white box
        checks = {
            "header facts": ".abstractor-dash-facts",
            "header how-to": ".abstractor-dash-howto li",
            "widget title": ".abstractor-root .abstractor-title",
            "textarea": TEXTAREA,
            "coloured text": TEXT_VIEW,
            "topical word": WORD,
            "similar title": f"{HIT} .abstractor-hit-title",
            "topic legend": ".abstractor-root .abstractor-topics",
        }
        ratios = {name: contrast(page.eval_on_selector(sel, _COLOURS_JS)) for name, sel in checks.items()}
        low = {name: round(r, 2) for name, r in ratios.items() if r < 4.5}
        assert not low, f"contrast below 4.5:1 in the dark theme: {low}"
        # every topical word, on its own tint
        n = page.locator(WORD).count()
        worst = min(contrast(page.eval_on_selector(f"{WORD} >> nth={i}", _COLOURS_JS)) for i in range(0, n, 7))
        assert worst >= 4.5, worst
        screenshot(page, output_dir / "dashboard-dark.png")
        assert session.dialogs == [] and session.errors == []
    finally:
        session.close()
