"""The kernel-free web dashboard of ``abstractor serve`` in a real browser (Debian Chromium).

The server is ``abstractor serve ARTIFACT`` on a free port of 127.0.0.1 (started and
stopped by the ``web_server`` fixture, on the session's small real model), or an already
running one named by ``ABSTRACTOR_WEB_URL`` (quick reruns). The page is the widget's own
view over ``js/src/http-model.js``: every test drives it as a user would (typing,
clicking) and checks the DOM; ground truth comes from the server's own JSON API. Every
request the pages make is recorded: none may leave 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from urllib.parse import urlsplit

import pytest
from benchmarks.dashboard_browser import (
    HIT,
    SAMPLE_TEXT,
    TEXT_VIEW,
    TEXTAREA,
    WIDGET,
    WORD,
    Server,
    free_port,
    server_env,
    set_text,
    wait_result,
)

browser = pytest.mark.browser

HOSTILE = '<img src=x onerror=alert(1)> <script>alert("x")</script> "><svg onload=alert(1)> neural network'
N_INPUT = ".abstractor-root input.abstractor-n"
METHOD = ".abstractor-root select.abstractor-method"
ERROR = ".abstractor-root .abstractor-error"
SOURCE = ".abstractor-root .abstractor-source"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def web_url(artifact, server_logs):
    """URL of the dashboard: ``abstractor serve`` started here, or ``$ABSTRACTOR_WEB_URL``."""
    override = os.environ.get("ABSTRACTOR_WEB_URL")
    if override:
        yield override.rstrip("/") + "/"
        return
    if importlib.util.find_spec("abstractor_widgets.service") is None:
        pytest.skip("abstractor_widgets.service (`abstractor serve`) is not in this checkout")
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from abstractor_widgets.cli import main; sys.exit(main())",
           "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = Server("abstractor-serve", cmd, server_env(artifact), port, server_logs / "abstractor-serve.log",
                    ready_path="/api/v1/topics")  # fmt: skip
    server.start(timeout=90)
    try:
        yield server.url
    finally:
        server.stop()


class WebPage:
    """A page of the dashboard in its own context: records requests, dialogs, errors, console."""

    def __init__(self, browser, url: str, *, color_scheme: str = "light", viewport=None) -> None:
        self.url = url
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 1400}, color_scheme=color_scheme)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.posts: list[dict] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("request", self._on_request)
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))

    def _on_request(self, request) -> None:
        self.requests.append(request.url)
        if request.method == "POST" and request.url.endswith("/api/v1/analyze"):
            self.posts.append(json.loads(request.post_data or "null"))

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self) -> WebPage:
        self.page.goto(self.url, wait_until="commit")
        self.page.wait_for_selector(TEXTAREA, state="visible", timeout=30_000)
        return self

    def api(self, path: str):
        response = self.page.request.get(self.url + path.lstrip("/"))
        assert response.ok, (path, response.status)
        return response.json()

    def external(self) -> list[str]:
        """Requests that went anywhere but this server's 127.0.0.1 origin."""
        origin = urlsplit(self.url)
        return [u for u in self.requests
                if (urlsplit(u).scheme, urlsplit(u).hostname, urlsplit(u).port) != (origin.scheme, "127.0.0.1", origin.port)]  # fmt: skip

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def web(chromium, web_url):
    """One light page shared by the module's tests (each sets its own input first)."""
    session = WebPage(chromium, web_url).open()
    yield session
    assert not session.errors, session.errors
    assert not session.external(), session.external()
    session.close()


def wait_idle_and_synced(page, timeout: float = 30.0) -> str:
    """Wait until nothing is pending and the coloured view shows the text box's text; return it."""
    page.wait_for_function(
        """([ta, view]) => {
            const root = document.querySelector('.abstractor-root');
            const t = document.querySelector(ta), v = document.querySelector(view);
            return root.getAttribute('aria-busy') === 'false' && t && v && t.value && v.textContent === t.value;
        }""",
        arg=[TEXTAREA, TEXT_VIEW],
        timeout=timeout * 1000,
    )
    return page.locator(TEXTAREA).input_value()


def wait_hits(page, n: int, timeout: float = 30.0) -> None:
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n "
        "&& document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'",
        arg=[HIT, n],
        timeout=timeout * 1000,
    )


def hit_ids(page) -> list[str]:
    return page.eval_on_selector_all(HIT, "lis => lis.map(li => li.querySelector('.abstractor-hit-meta').textContent.split(' · ')[0])")


def background(page, selector: str) -> list[int]:
    """The computed background colour of ``selector`` as [r, g, b]."""
    colour = page.eval_on_selector(selector, "el => getComputedStyle(el).backgroundColor")
    return [int(float(x)) for x in re.findall(r"[\d.]+", colour)[:3]]


def luminance(rgb) -> float:
    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


# --------------------------------------------------------------------------- tests
@browser
def test_page_loads_with_title_header_and_the_models_settings(web):
    page = web.page
    config = web.api("api/v1/topics")
    assert "Abstractor" in page.title()
    assert page.locator("h1").inner_text() == "Abstractor"
    assert page.locator("#corpus-size").inner_text() == f"{config['n_topics']} topics over {config['n_documents']:,} papers."
    assert page.locator(TEXTAREA).get_attribute("maxlength") == str(config["max_text_chars"])
    assert page.evaluate("document.documentElement.dataset.abstractorReady") == "true"
    # every topic in the legend, in id order, labels read-only (no rename buttons or hint)
    ids = page.eval_on_selector_all(".abstractor-root .abstractor-topic-id", "els => els.map(e => Number(e.textContent))")
    assert ids == [t["id"] for t in config["topics"]]
    assert page.locator(".abstractor-root .abstractor-rename, .abstractor-root [aria-label^='Rename']").count() == 0
    assert "renames" not in page.locator(".abstractor-root .abstractor-topics").inner_text()
    # the ranking list offers the model's methods, its default first
    options = page.eval_on_selector_all(f"{METHOD} option", "os => os.map(o => o.value)")
    if len(config["methods"]) > 1:
        assert options[0] == "" and sorted(options[1:]) == sorted(m for m in config["methods"] if m != config["default_method"])
    assert not [c for c in web.console if "Content Security Policy" in c], web.console


@browser
def test_typing_colours_words_and_shows_the_mix_and_similar_papers(web):
    page = web.page
    box = page.locator(TEXTAREA)
    box.fill("")
    text = "Graph neural networks for image segmentation with reinforcement learning"
    box.press_sequentially(text)  # real key presses: the view analyses while typing
    wait_result(page, text)
    words = page.eval_on_selector_all(
        WORD, "ws => ws.map(w => [w.textContent, getComputedStyle(w).textDecorationColor, getComputedStyle(w).backgroundColor])"
    )
    assert len(words) >= 4, words
    assert all(w[0].strip() and w[0] in text for w in words)
    assert all(w[1] not in ("", "rgba(0, 0, 0, 0)") and w[2] != "rgba(0, 0, 0, 0)" for w in words), words
    assert len({w[1] for w in words}) >= 1
    # the words are coloured exactly as the API says
    analysis = page.request.post(web.url + "api/v1/analyze", data={"text": text, "n": 5, "method": None}).json()
    topical = [s["text"] for s in analysis["spans"] if s["topic"] is not None]
    assert [w[0] for w in words] == topical
    segments = page.locator(".abstractor-root .abstractor-doc .abstractor-mix-seg")
    assert segments.count() == sum(1 for x in analysis["doc_topics"] if x >= 0.005)
    wait_hits(page, 5)
    titles = page.eval_on_selector_all(f"{HIT} .abstractor-hit-title", "bs => bs.map(b => b.textContent)")
    assert titles == [h["title"] or h["id"] for h in analysis["similar"]]
    # why similar: the shared topics / terms of the API's hits
    why = page.locator(f"{HIT} .abstractor-why")
    assert why.count() == sum(1 for h in analysis["similar"] if h.get("shared_topics") or h.get("shared_terms"))
    if analysis["similar"][0].get("shared_terms"):
        assert analysis["similar"][0]["shared_terms"][0] in why.first.inner_text()
    status = page.locator(".abstractor-root .abstractor-status-text").inner_text()
    assert re.fullmatch(rf"{len(topical)} topical words? · [\d.]+ ms", status), status
    # links only to arXiv, opened safely
    for a in page.locator(f"{HIT} a[href]").all():
        assert a.get_attribute("href").startswith("https://arxiv.org/abs/")
        assert a.get_attribute("rel") == "noopener noreferrer"


@browser
def test_fast_typing_ends_on_the_last_keystroke(web):
    """Keys typed while a request is in flight are coalesced; the last text always wins."""
    page = web.page
    set_text(page, SAMPLE_TEXT)
    posts_before = len(web.posts)
    suffix = " Transformers for speech and protein folding."
    page.locator(TEXTAREA).press("End")
    page.keyboard.type(suffix, delay=5)
    wait_result(page, SAMPLE_TEXT + suffix)
    sent = web.posts[posts_before:]
    assert sent and sent[-1]["text"] == SAMPLE_TEXT + suffix
    assert len(sent) <= len(suffix)  # never more than one request per key


@browser
def test_random_abstract_loads_a_paper_of_the_corpus(web):
    page = web.page
    set_text(page, "placeholder text about neural networks")
    page.get_by_role("button", name="Random abstract").click()
    page.wait_for_function("sel => document.querySelector(sel).value !== 'placeholder text about neural networks'", arg=TEXTAREA)
    text = wait_idle_and_synced(page)
    source = page.locator(SOURCE)
    assert source.is_visible()
    paper_id = re.match(r"arXiv (\S+): ", source.inner_text()).group(1)
    doc = web.api(f"api/v1/documents/{paper_id}")
    assert text == doc["abstract"]
    assert source.locator("a").get_attribute("href") == doc["url"]
    assert paper_id not in hit_ids(page), "a loaded paper is never similar to itself"


@browser
def test_clicking_a_similar_paper_loads_its_abstract(web):
    page = web.page
    set_text(page, SAMPLE_TEXT)
    wait_hits(page, page.evaluate("() => Number(document.querySelector('.abstractor-root input.abstractor-n').value)"))
    first = hit_ids(page)[0]
    title = page.locator(f"{HIT} .abstractor-hit-title").first.inner_text()
    page.locator(f"{HIT} .abstractor-hit-title").first.click()
    page.wait_for_function("([sel, id]) => document.querySelector(sel)?.textContent.startsWith(`arXiv ${id}:`)", arg=[SOURCE, first])
    text = wait_idle_and_synced(page)
    assert text == web.api(f"api/v1/documents/{first}")["abstract"]
    assert title in page.locator(SOURCE).inner_text()
    assert first not in hit_ids(page)
    assert page.evaluate("() => document.activeElement?.classList.contains('abstractor-text')"), "focus moves to the abstract"
    # editing the loaded text forgets its source
    page.locator(TEXTAREA).press("End")
    page.keyboard.type(" more")
    wait_result(page, text + " more")
    assert not page.locator(SOURCE).is_visible()


@browser
def test_show_n_and_rank_by(web):
    page = web.page
    set_text(page, SAMPLE_TEXT)
    n_box = page.locator(N_INPUT)
    for n in (3, 12, 1):
        n_box.fill(str(n))
        n_box.press("Enter")
        wait_hits(page, n)
        assert web.posts[-1]["n"] == n
    n_box.fill("500")
    n_box.press("Enter")
    wait_hits(page, 50)
    assert n_box.input_value() == "50"
    n_box.fill("5")
    n_box.press("Enter")
    wait_hits(page, 5)

    methods = web.api("api/v1/topics")["methods"]
    if "lda" not in methods or len(methods) < 2:
        pytest.skip("this model offers one ranking only")
    default_ids = hit_ids(page)
    page.select_option(METHOD, "lda")
    page.wait_for_function("() => document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'")
    assert web.posts[-1] == {"text": SAMPLE_TEXT, "n": 5, "method": "lda", "map": True}  # map: the explorer is on the page
    wait_hits(page, 5)
    expected = page.request.post(web.url + "api/v1/analyze", data={"text": SAMPLE_TEXT, "n": 5, "method": "lda"}).json()
    assert hit_ids(page) == [h["id"] for h in expected["similar"]]
    page.select_option(METHOD, "")
    page.wait_for_function("() => document.querySelector('.abstractor-root').getAttribute('aria-busy') === 'false'")
    assert web.posts[-1]["method"] is None
    wait_hits(page, 5)
    assert hit_ids(page) == default_ids


@browser
def test_hostile_text_is_shown_as_text(web):
    page = web.page
    set_text(page, HOSTILE)
    assert page.locator(TEXT_VIEW).text_content() == HOSTILE
    assert page.locator(f"{WIDGET} img, {WIDGET} script, {WIDGET} svg").count() == 0
    # (the explorer's own trend chart is the page's one svg)
    assert page.evaluate("() => document.querySelectorAll('img, script:not([src]), svg:not(.abstractor-trend-svg)').length") == 0
    page.wait_for_timeout(300)  # give an injected handler the time to run
    assert web.dialogs == []
    assert not web.errors


@browser
def test_over_limit_text_shows_the_servers_message(web):
    page = web.page
    set_text(page, "A short abstract about graph neural networks.")
    limit = web.api("api/v1/topics")["max_text_chars"]
    # past the text box's maxlength, as a script or an old browser could
    page.evaluate(
        """([sel, n]) => {
            const ta = document.querySelector(sel);
            ta.value = 'word '.repeat(Math.ceil(n / 5) + 10);
            ta.dispatchEvent(new InputEvent('input', {bubbles: true}));
        }""",
        [TEXTAREA, limit],
    )
    error = page.locator(ERROR)
    error.wait_for(state="visible")
    message = error.inner_text()
    assert re.search(r"limit|long|characters|large", message, re.I), message
    assert not message.startswith("The server answered"), "the service's own message is shown"
    assert page.get_attribute(ERROR, "role") == "alert"
    # like the kernel, the view keeps the last accepted text and its result
    wait_result(page, "A short abstract about graph neural networks.")
    page.locator(f"{ERROR} button").click()
    assert not error.is_visible()


@browser
def test_dark_scheme_follows_the_system(chromium, web_url):
    backgrounds = {}
    for scheme in ("light", "dark"):
        session = WebPage(chromium, web_url, color_scheme=scheme).open()
        try:
            set_text(session.page, SAMPLE_TEXT)
            assert session.page.get_attribute(WIDGET, "data-abstractor-theme") == scheme
            backgrounds[scheme] = (background(session.page, "body"), background(session.page, WIDGET))
            fg = session.page.eval_on_selector(WIDGET, "el => getComputedStyle(el).color")
            body_text = [int(x) for x in re.findall(r"\d+", fg)[:3]]
            assert (luminance(body_text) > 0.5) == (scheme == "dark"), (scheme, fg)
            assert not session.errors and not session.external()
        finally:
            session.close()
    for light, dark in zip(backgrounds["light"], backgrounds["dark"], strict=True):
        assert luminance(light) > 0.7 and luminance(dark) < 0.05, backgrounds


@browser
def test_no_request_leaves_the_server(chromium, web_url):
    """A whole visit (load, type, random, load a similar paper, re-rank) stays on 127.0.0.1."""
    session = WebPage(chromium, web_url).open()
    try:
        page = session.page
        set_text(page, SAMPLE_TEXT)
        page.get_by_role("button", name="Random abstract").click()
        page.wait_for_function("sel => document.querySelector(sel).offsetParent !== null", arg=SOURCE)
        wait_idle_and_synced(page)
        page.locator(f"{HIT} .abstractor-hit-title").first.click()
        wait_idle_and_synced(page)
        page.locator(".abstractor-root .abstractor-topic-toggle").first.click()
        page.wait_for_timeout(200)
        assert session.requests, "no request recorded"
        assert session.external() == []
        paths = {urlsplit(u).path for u in session.requests}
        assert {"/", "/web.js", "/web.css", "/api/v1/topics", "/api/v1/analyze", "/api/v1/random"} <= paths, paths
        assert any(p.startswith("/api/v1/documents/") for p in paths)
        assert not session.errors and not session.dialogs
    finally:
        session.close()
