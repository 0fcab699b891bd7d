"""``notebooks/explore.ipynb`` served by Voilà, in Debian's Chromium, with the network blocked.

Every request whose host is not 127.0.0.1 / localhost is aborted and recorded: the page
must render the pyLDAvis view (K topic circles, the term bar chart) from what the local
server sends, and must not even *try* to reach another host. A screenshot goes to
``test-output/explore-voila.png``.

Voilà's own ``lab`` template links two Font Awesome stylesheets from cdn.jsdelivr.net
(for widget icons). That is Voilà's doing, not the notebook's, so the server runs with a
one-block template override (``OFFLINE_TEMPLATE`` below, written to a temporary
``JUPYTER_PATH``) that drops exactly those two links; everything else is the stock
``lab`` template. If Voilà changes the links, the strict network assertion fails and
says which URLs were attempted.

The fixtures here are local on purpose (Playwright's sync API used directly, no
pytest-playwright fixtures), so this file does not depend on a shared browser conftest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright")
pytest.importorskip("voila")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"
TEST_OUTPUT = ROOT / "test-output"
CHROMIUM = os.environ.get("ABSTRACTOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
N_TOPICS = 5
RENDER_TIMEOUT_MS = 180_000  # Voilà starts a kernel and runs the whole notebook first
FONT_AWESOME = "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@^5/css/{}.min.css"
OFFLINE_TEMPLATE = """{%- extends 'voila/templates/lab/index.html.j2' -%}
{%- block notebook_css -%}
{{ super()
   | replace('<link rel="stylesheet" href="URL_ALL" type="text/css" />', '')
   | replace('<link rel="stylesheet" href="URL_SHIMS" type="text/css" />', '') }}
{%- endblock notebook_css -%}
""".replace("URL_ALL", FONT_AWESOME.format("all")).replace("URL_SHIMS", FONT_AWESOME.format("v4-shims"))

pytestmark = pytest.mark.browser


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explore_artifact(tmp_path_factory) -> Path:
    """A small model: 1,500 shared-corpus documents (synthetic ones if absent), K=5."""
    from abstractor_widgets import Abstractor
    from abstractor_widgets.corpus import Corpus, default_corpus_path

    out = tmp_path_factory.mktemp("explore-voila") / "model"
    shared = default_corpus_path()
    if shared is not None and shared.is_file():
        import pandas as pd

        corpus = Corpus.from_frame(pd.read_parquet(shared).iloc[:1500], name="shared-head-1500")
    else:
        from synthetic_data import make_synthetic_frame

        corpus = Corpus.from_frame(make_synthetic_frame(400), name="synthetic")
    ab = Abstractor.train(corpus, N_TOPICS, out=out, passes=2, progress=False, random_state=0)
    ab.label_topic(1, "Topic <one> & \"friends\"")  # a label that needs escaping
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing or the process is gone
        return []


def _stop(proc: subprocess.Popen) -> None:
    """Stop Voilà's process group, then any kernel it started that outlived it.

    jupyter_client starts each kernel in a session (process group) of its own, so killing
    Voilà's group alone would not reach them; Voilà shuts them down on SIGTERM, and the
    stragglers are killed by pid.
    """
    kernels = _children(proc.pid)
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    for child in kernels:
        try:
            child.kill()
        except Exception:  # already gone
            pass


@pytest.fixture(scope="module")
def voila_url(explore_artifact, tmp_path_factory):
    """Voilà serving explore.ipynb on 127.0.0.1 (a free port) for ``explore_artifact``."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("voila-log") / "voila.log"
    jupyter_path = tmp_path_factory.mktemp("voila-templates")
    template = jupyter_path / "voila" / "templates" / "abstractor-offline"
    template.mkdir(parents=True)
    (template / "conf.json").write_text('{"base_template": "lab"}', encoding="utf-8")
    (template / "index.html.j2").write_text(OFFLINE_TEMPLATE, encoding="utf-8")
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(jupyter_path), env.get("JUPYTER_PATH")]))
    env["ABSTRACTOR_ARTIFACT"] = str(explore_artifact)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", "--show_tracebacks=True", "--template=abstractor-offline",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Voilà exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                # any answer will do: /api does not run the notebook
                with urllib.request.urlopen(f"{url}api", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # the server answers
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Voilà did not start:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.3)
        yield url
    finally:
        _stop(proc)
        if os.environ.get("ABSTRACTOR_SHOW_VOILA_LOG"):
            print(log_path.read_text(errors="replace"))


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium through Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Network:
    """Aborts and records every request that would leave the machine."""

    def __init__(self) -> None:
        self.blocked: list[str] = []
        self.seen: list[str] = []

    @staticmethod
    def local(url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob", "about", "file"}:
            return True
        return (parts.hostname or "") in LOCAL_HOSTS

    def observe(self, url: str) -> None:
        """Record a request the router does not see (websockets, service workers)."""
        self.seen.append(url)
        if not self.local(url):
            self.blocked.append(url)

    def route(self, route) -> None:
        url = route.request.url
        self.seen.append(url)
        if self.local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


@pytest.fixture()
def offline_page(chromium):
    """A page whose requests may only reach 127.0.0.1 (everything else aborted + recorded)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    network = Network()
    context.route("**/*", network.route)
    page = context.new_page()
    page.on("websocket", lambda ws: network.observe(ws.url))
    page.on("request", lambda request: None if network.local(request.url) else network.blocked.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.network, page.errors = network, errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


# -- tests ----------------------------------------------------------------------------------
def test_explore_in_voila_renders_pyldavis_offline(voila_url, offline_page):
    page = offline_page
    page.goto(voila_url, wait_until="domcontentloaded", timeout=RENDER_TIMEOUT_MS)
    root = page.locator(".abstractor-ldavis-root")
    dots = root.locator("svg circle.dot")
    dots.first.wait_for(state="attached", timeout=RENDER_TIMEOUT_MS)

    # exactly K topic circles, numbered with our 0-based ids, named in their tooltips
    assert dots.count() == N_TOPICS
    assert root.locator("svg text.txt").all_text_contents() == [str(k) for k in range(N_TOPICS)]
    tooltips = root.locator("svg circle.dot title").all_text_contents()
    assert tooltips[1] == 'Topic 1: Topic <one> & "friends"'
    # the term bar chart
    bars = root.locator("svg rect.bar-totals")
    assert bars.count() > 0
    assert root.locator("svg text.terms").count() == bars.count()

    # selecting a circle shows that topic under our id and name
    root.locator("svg circle.dot").nth(1).dispatch_event("click")
    title = root.locator("svg text.bubble-tool")
    assert "for Topic 1: Topic <one> & \"friends\"" in title.text_content()
    assert root.locator("input[type=text]").input_value() == "1"

    page.wait_for_timeout(500)
    TEST_OUTPUT.mkdir(exist_ok=True)
    # Voilà scrolls inside its own container: shoot the visualization itself
    page.locator(".abstractor-ldavis").screenshot(path=str(TEST_OUTPUT / "explore-voila.png"))

    assert not page.network.blocked, f"requests tried to leave 127.0.0.1: {page.network.blocked}"
    assert page.network.seen and all(Network.local(u) for u in page.network.seen)
    ldavis_errors = [e for e in page.errors if "ldavis" in e.lower() or "d3" in e.lower()]
    assert not ldavis_errors, ldavis_errors
    assert "#topic=" not in page.url  # LDAvis no longer rewrites the host page's URL


def test_offline_html_works_with_requirejs_and_accepts_our_ids(offline_page, explore_artifact, tmp_path):
    """The bare fragment, on a page where require.js is loaded first (as classic Notebook does)."""
    from abstractor_widgets import Abstractor, ldavis

    require_js = next(Path(sys.prefix).glob("share/jupyter/voila/templates/*/static/require.min.js"), None)
    if require_js is None:
        pytest.skip("no local require.js to load")
    ab = Abstractor.load(explore_artifact)
    fragment = ldavis.offline_html(ldavis.prepare(ab), ab.model.labels_, visid="ldavis_req")
    page_path = tmp_path / "page.html"
    page_path.write_text(
        f'<html><head><script src="{require_js.as_uri()}"></script></head><body>{fragment}</body></html>',
        encoding="utf-8",
    )
    page = offline_page
    page.goto(page_path.as_uri())
    dots = page.locator("#ldavis_req svg circle.dot")
    dots.first.wait_for(state="attached", timeout=20_000)
    assert dots.count() == ab.n_topics
    assert page.evaluate("typeof define === 'function' && !!define.amd"), "require.js did not load"
    assert page.evaluate("window.d3 && window.d3.version") == "5.16.0"

    # typing our id selects that topic; Next/Previous walk our ids
    box = page.locator("#ldavis_req input[type=text]")
    box.fill("3")
    box.dispatch_event("keyup")
    assert "for Topic 3" in page.locator("#ldavis_req svg text.bubble-tool").text_content()
    page.locator("#ldavis_req button", has_text="Next Topic").click()
    assert box.input_value() == "4"
    page.locator("#ldavis_req button", has_text="Clear Topic").click()
    assert box.input_value() == ""
    assert not page.network.blocked
    assert not page.errors, page.errors
