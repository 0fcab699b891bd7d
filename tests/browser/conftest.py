"""Real-browser fixtures: Debian Chromium (through pytest-playwright) and servers on 127.0.0.1.

* ``chromium`` is Debian's Chromium (``/usr/bin/chromium`` with the flags of
  ``dashboard_browser.CHROMIUM_ARGS``) through Playwright's sync API, one per module (see
  the fixture); tests make their own contexts with :class:`dashboard_browser.Session`,
  which records dialogs and page errors.
* Servers (``voila_light``, ``voila_dark``, ``voila_cold``, ``jupyter_lab``) run on a free
  port of 127.0.0.1 in their own process group, with ``ABSTRACTOR_ARTIFACT`` pointing at
  the session's small real model (``shared_artifact``); they are polled until ready and
  killed (process group, then their kernels by pid) at teardown. Server logs are in a
  temporary directory, printed when a server fails to start.
* The helpers (server start/stop, waiting for the widget, measurements) live in
  ``benchmarks/dashboard_browser.py``, shared with the benchmark (imported as a package module).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import dashboard_browser as db

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config, items):
    if not Path(db.CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{db.CHROMIUM} is missing (apt-get install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium through Playwright's sync API (headless, no sandbox: root).

    Module-scoped on purpose: only one sync Playwright may run at a time in a thread, and
    other modules here start their own (``test_explore_voila.py``); a session-wide
    instance (or pytest-playwright's session fixtures) would collide with them.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = db.launch_browser(pw)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """``test-output/`` (git-ignored): screenshots and measurements."""
    db.TEST_OUTPUT.mkdir(parents=True, exist_ok=True)
    return db.TEST_OUTPUT


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def artifact(request) -> Path:
    """The model the servers serve: the session's ``shared_artifact`` (K=12, 3,000 real
    abstracts), or an existing model named by ``ABSTRACTOR_BROWSER_ARTIFACT`` (skips the
    training, for quick reruns)."""
    import os

    override = os.environ.get("ABSTRACTOR_BROWSER_ARTIFACT")
    if override:
        return Path(override).resolve()
    return request.getfixturevalue("shared_artifact")


@pytest.fixture(scope="session")
def voila_light(artifact, server_logs):
    """Voilà with the repository's config (kernel preheating on), light theme."""
    yield from db.serving(db.voila_server(artifact, log_dir=server_logs, name="voila-light"))


@pytest.fixture(scope="module")
def voila_dark(artifact, server_logs):
    """Voilà with ``--theme=dark`` (and the repository's config)."""
    yield from db.serving(db.voila_server(artifact, log_dir=server_logs, theme="dark", name="voila-dark"))


@pytest.fixture(scope="module")
def voila_cold(artifact, server_logs):
    """Voilà without kernel preheating: every visit starts a kernel and runs the notebook."""
    yield from db.serving(db.voila_server(artifact, log_dir=server_logs, preheat=False, name="voila-cold"))


@pytest.fixture(scope="module")
def jupyter_lab(artifact, server_logs, tmp_path_factory):
    """JupyterLab (also serving Notebook 7) on a temporary copy of the dashboard notebook.

    ``lab.ipynb`` and ``nb7.ipynb`` are copies (Lab autosaves outputs into what it opens).
    """
    root = tmp_path_factory.mktemp("lab") / "root"
    root.mkdir()
    for name in ("lab.ipynb", "nb7.ipynb"):
        shutil.copy(db.NOTEBOOK, root / name)
    server = db.jupyter_server(root, artifact, log_dir=server_logs, name="jupyter-lab")
    server.root = root
    yield from db.serving(server)


@pytest.fixture(scope="module")
def dashboard(chromium, voila_light):
    """One light Voilà dashboard page shared by a module's tests (each sets its own input)."""
    session = db.open_dashboard(chromium, voila_light.url, viewport={"width": 1280, "height": 1600})
    yield session
    session.close()


@pytest.fixture(scope="session")
def mapped_artifact(artifact, tmp_path_factory) -> Path:
    """A copy of ``artifact`` with a corpus map (laid out once per session, reproducibly);
    the explorer's tests only read it."""
    from abstractor_widgets import Abstractor

    copy = tmp_path_factory.mktemp("mapped") / "model"
    shutil.copytree(artifact, copy)
    ab = Abstractor.load(copy, warm=False)
    if ab.corpus_map is None:
        ab.build_map(random_state=0)
    return copy


@pytest.fixture(scope="module")
def model(mapped_artifact):
    """The mapped model, loaded in the test process (ground truth for the pages)."""
    from abstractor_widgets import Abstractor

    return Abstractor.load(mapped_artifact, warm=False)
