"""The "Semantically close" mark on similar papers, in a real browser (Debian Chromium).

A copy of the synthetic model gets static embeddings (the toy Model2Vec model of
``tests/synthetic_data.py``), ``abstractor serve`` serves it on 127.0.0.1, and a text is
chosen (with the Python API) whose list has papers the embedding brought in. The page
must mark exactly the hits the server's JSON API marks ``"semantic": true``, with text
(not colour alone), in light and dark.
"""

from __future__ import annotations

import shutil
import sys

import pytest
from benchmarks.dashboard_browser import HIT, TEXTAREA, Server, free_port, server_env, set_text

browser = pytest.mark.browser
BADGE = ".abstractor-semantic"
N = 10


@pytest.fixture(scope="module")
def embedded_model(synthetic_artifact, tmp_path_factory):
    from synthetic_data import make_static_model

    from abstractor_widgets import Abstractor

    root = tmp_path_factory.mktemp("semantic")
    copy = root / "model"
    shutil.copytree(synthetic_artifact, copy)
    ab = Abstractor.load(copy)
    ab.add_embedding(make_static_model(root / "static"), progress=False)
    ab = Abstractor.load(copy)
    for i in range(len(ab)):
        text = ab.documents[i].text
        hits = ab.similar(text, n=N)
        if any(h["semantic"] for h in hits) and not all(h["semantic"] for h in hits):
            return copy, text
    pytest.fail("no synthetic abstract has a list with both kinds of hits")


@pytest.fixture(scope="module")
def served(embedded_model, server_logs):
    artifact, text = embedded_model
    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from abstractor_widgets.cli import main; sys.exit(main())",
           "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    server = Server("abstractor-serve-semantic", cmd, server_env(artifact), port,
                    server_logs / "abstractor-serve-semantic.log", ready_path="/api/v1/topics")
    server.start(timeout=90)
    try:
        yield server.url, text
    finally:
        server.stop()


@browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_page_marks_exactly_the_hits_the_embedding_brought_in(chromium, served, scheme):
    url, text = served
    context = chromium.new_context(viewport={"width": 1280, "height": 1400}, color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        response = page.request.post(url + "api/v1/analyze", data={"text": text, "n": N})
        assert response.ok
        expected = [h["title"] for h in response.json()["similar"] if h.get("semantic")]
        assert expected and len(expected) < N  # the fixture chose a list with both kinds
        page.goto(url, wait_until="commit")
        page.wait_for_selector(TEXTAREA, state="visible", timeout=30_000)
        set_text(page, text)  # the "Show n" box appears with the first result
        page.locator(".abstractor-root input.abstractor-n").fill(str(N))
        page.locator(".abstractor-root input.abstractor-n").press("Enter")
        page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length === n", arg=[HIT, N], timeout=30_000)
        marked = page.eval_on_selector_all(
            HIT, f"lis => lis.filter(li => li.querySelector('{BADGE}')).map(li => li.querySelector('.abstractor-hit-title').textContent)")
        assert marked == expected
        badge = page.locator(BADGE).first
        assert badge.inner_text() == "Semantically close" and badge.get_attribute("title")
        colour, background = badge.evaluate("b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]")
        assert colour != background
        assert not errors, errors
    finally:
        context.close()
