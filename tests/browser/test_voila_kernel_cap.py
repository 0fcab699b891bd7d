"""The hardened Voilà dashboard in Debian Chromium: kernel cap, XSRF, read-only labels.

One server, ``abstractor dashboard ARTIFACT --max-kernels 1`` (the preheated kernel is
the only one allowed): the first visitor gets the dashboard, typing colours words and
the labels are read-only; a second visitor meanwhile gets the "busy, try again" page
(HTTP 503, the template's look, no traceback); when the first tab closes, its shutdown
request passes the XSRF check (the page got its ``_xsrf`` cookie), the kernel ends, and
the second visitor, trying again, gets a working dashboard.
"""

from __future__ import annotations

import time

import pytest
from benchmarks.dashboard_browser import (
    SAMPLE_TEXT,
    TEXTAREA,
    WORD,
    Session,
    set_text,
    voila_server,
    wait_widget,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def capped_voila(artifact, server_logs):
    server = voila_server(artifact, log_dir=server_logs, name="voila-capped", max_kernels=1)
    server.start(timeout=90)
    try:
        yield server
    finally:
        server.stop()


def _wait_kernels(server, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(server.kernels()) == count:
            return
        time.sleep(0.3)
    raise AssertionError(f"{server.name}: {len(server.kernels())} kernels, expected {count}")


def _visit(chromium, url: str) -> tuple[Session, int]:
    session = Session(chromium, {"width": 1280, "height": 1200})
    responses: list[int] = []
    session.page.on("response", lambda r: responses.append(r.status) if r.url == url else None)
    response = session.page.goto(url, wait_until="domcontentloaded", timeout=90_000)
    return session, response.status


def test_kernel_cap_shows_the_busy_page_and_frees_up_when_a_tab_closes(chromium, capped_voila, output_dir):
    server = capped_voila
    _wait_kernels(server, 1)  # the preheated kernel
    first, status = _visit(chromium, server.url)
    second = third = None
    try:
        assert status == 200
        wait_widget(first.page)
        set_text(first.page, SAMPLE_TEXT)
        assert first.page.locator(WORD).count() >= 10
        # public mode: the labels cannot be renamed from the page
        assert first.page.locator(".abstractor-root [data-focus-key^='rename-']").count() == 0
        assert "renames" not in first.page.locator(".abstractor-root").inner_text()
        assert "_xsrf" in {c["name"] for c in first.context.cookies()}

        second, status = _visit(chromium, server.url)
        assert status == 503
        busy = second.page.locator("body").inner_text()
        assert "The dashboard is busy" in busy and "try again" in busy.lower()
        assert "Traceback" not in busy and "kernel limit" not in busy.lower() and len(busy) < 400
        assert second.page.locator("link[rel=stylesheet]").count() >= 1  # the template's look
        assert not second.external and not second.errors
        second.page.screenshot(path=str(output_dir / "dashboard-busy.png"))
        assert len(server.kernels()) == 1

        first.close()  # Voilà's page posts its shutdown beacon with the _xsrf cookie's token
        first = None
        _wait_kernels(server, 0, timeout=30)  # ... which passed the XSRF check: the kernel ended
        log = server.log_path.read_text(errors="replace")
        assert "403 POST /voila/api/shutdown" not in log

        # trying again, as the busy page says: the freed slot may first go to the pool's refill
        # (on a loaded machine a retry a few seconds later gets the kernel)
        deadline = time.monotonic() + 45
        third, status = _visit(chromium, server.url)
        while status == 503 and time.monotonic() < deadline:
            third.close()
            time.sleep(3)
            third, status = _visit(chromium, server.url)
        assert status == 200
        wait_widget(third.page)
        third.page.locator(TEXTAREA).fill(SAMPLE_TEXT)  # typing colours words
        third.page.wait_for_selector(WORD, timeout=30_000)
        assert third.page.locator(WORD).count() >= 10
        assert not third.dialogs and not third.errors
    finally:
        for session in (first, second, third):
            if session is not None:
                session.close()
