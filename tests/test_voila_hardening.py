"""The public Voilà dashboard, hardened (issue 12, item 5), without a browser.

* The packaged configuration: XSRF checks on (nothing disables them), the page's XSRF
  cookie issued, the kernel cap and idle culling configured, no tracebacks for visitors.
* :class:`~abstractor_widgets.voila.server.CappedKernelManager` on real kernels: the
  cap refuses one kernel more with an HTTP 503 error, and frees up after a shutdown.
* :func:`~abstractor_widgets.dashboard.dashboard`: read-only labels unless the operator
  allows renaming; a failure shows one short sentence and logs the traceback.
* A real Voilà server with the packaged configuration serving a broken model: the
  visitor sees the short message and no server path; a cookie-less POST (or DELETE) to
  a kernel endpoint is refused (403) and the kernel lives on; a raw ``execute_request``
  sent over the kernel's websocket is not executed (its code would create a file).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from abstractor_widgets import dashboard as dash
from abstractor_widgets.voila import CONFIG_DIR, NOTEBOOK, SHARE_DIR, TEMPLATE, dashboard_environment, voila_argv
from abstractor_widgets.voila.server import (
    DEFAULT_MAX_KERNELS,
    MAX_KERNELS_ENV_VAR,
    CappedKernelManager,
    KernelLimitReached,
    max_kernels_from_env,
)

ROOT = Path(__file__).resolve().parent.parent

from benchmarks import dashboard_browser as db  # the server helpers shared with the browser tests

KERNEL_ID = re.compile(r'"kernelId":\s*"([0-9a-f-]{36})"')


def _config() -> dict:
    return json.loads((CONFIG_DIR / "voila.json").read_text())


def _walk(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    yield path, value


# ---------------------------------------------------------------------------- configuration
def test_package_ships_the_dashboard_files():
    assert NOTEBOOK.is_file() and NOTEBOOK.suffix == ".ipynb"
    template = SHARE_DIR / "voila" / "templates" / TEMPLATE
    for name in ("conf.json", "index.html.j2", "503.html", "error.html", "abstractor-page.html"):
        assert (template / name).is_file(), name
    # one source of truth: the repository's notebook is a link to the packaged one
    assert (ROOT / "notebooks" / "dashboard.ipynb").resolve() == NOTEBOOK.resolve()
    assert not (ROOT / "voila").exists()


def test_configuration_turns_xsrf_on():
    config = _config()
    assert not [path for path, value in _walk(config) if path and path[-1] == "disable_check_xsrf" and value]
    tornado = config["Voila"]["tornado_settings"]
    assert tornado["xsrf_cookies"] is True
    assert tornado["xsrf_cookie_kwargs"]["samesite"] == "Strict"
    assert config["Voila"]["identity_provider_class"] == "abstractor_widgets.voila.server.DashboardIdentityProvider"


def test_configuration_caps_kernels_culls_idle_ones_and_hides_tracebacks():
    config = _config()
    voila = config["VoilaConfiguration"]
    assert voila["multi_kernel_manager_class"] == "abstractor_widgets.voila.server.CappedKernelManager"
    assert voila["show_tracebacks"] is False
    assert voila["preheat_kernel"] is True and voila["default_pool_size"] >= 1
    assert voila["file_allowlist"] == []  # the package directory is Voilà's root: serve no file from it
    culling = config["MappingKernelManager"]
    assert culling["cull_connected"] is True  # culled even while a tab stays open
    assert 0 < culling["cull_idle_timeout"] <= 3600 and 0 < culling["cull_interval"] <= culling["cull_idle_timeout"]
    assert "administrator" in config["VoilaExecutor"]["cell_error_instruction"]


def test_voila_argv_and_environment(tmp_path):
    argv = voila_argv(port=9999, host="127.0.0.1", extra=["--theme=dark"])
    assert argv[0] == str(NOTEBOOK) and argv[-1] == "--theme=dark"
    assert f"--Voila.config_file_paths={CONFIG_DIR}" in argv and "--Voila.port_retries=0" in argv
    env = dashboard_environment(tmp_path, digest="ab" * 32, max_kernels=3, edit_labels=False,
                                base={"JUPYTER_PATH": "/x", "ANYWIDGET_HMR": "1"})  # fmt: skip
    assert env[dash.ARTIFACT_ENV_VAR] == str(tmp_path.resolve())
    assert env[dash.VERIFIED_ENV_VAR] == "ab" * 32
    assert env[MAX_KERNELS_ENV_VAR] == "3" and env[dash.EDIT_LABELS_ENV_VAR] == "0"
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(SHARE_DIR), "/x"]
    assert "ANYWIDGET_HMR" not in env
    env = dashboard_environment(tmp_path, edit_labels=True, base={dash.VERIFIED_ENV_VAR: "stale"})
    assert dash.VERIFIED_ENV_VAR not in env and env[dash.EDIT_LABELS_ENV_VAR] == "1"


def test_max_kernels_from_the_environment():
    assert max_kernels_from_env({}) == DEFAULT_MAX_KERNELS
    assert max_kernels_from_env({MAX_KERNELS_ENV_VAR: " 7 "}) == 7
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match=MAX_KERNELS_ENV_VAR):
            max_kernels_from_env({MAX_KERNELS_ENV_VAR: bad})


def test_cli_dashboard_refuses_a_broken_artifact(tmp_path, capsys):
    from abstractor_widgets.cli import main

    (tmp_path / "manifest.json").write_text("{not json")
    assert main(["dashboard", str(tmp_path), "--port", "1"]) == 2
    assert "manifest" in capsys.readouterr().err


def test_cli_dashboard_parses_its_options():
    from abstractor_widgets.cli import build_parser

    args = build_parser().parse_args(
        ["dashboard", "art", "--port", "9000", "--max-kernels", "4", "--edit-labels", "--voila", "--theme=dark"]
    )
    assert (args.port, args.host, args.max_kernels, args.edit_labels) == (9000, "127.0.0.1", 4, True)
    assert args.voila_args == ["--theme=dark"]


# ---------------------------------------------------------------------------- the kernel cap
def test_capped_kernel_manager_refuses_one_kernel_too_many(tmp_path):
    """Real kernels: the cap counts running kernels, answers 503, and frees up on shutdown."""

    async def scenario() -> None:
        manager = CappedKernelManager(max_kernels=1, connection_dir=str(tmp_path), root_dir=str(tmp_path))
        first = await manager.start_kernel(kernel_name="python3")
        try:
            assert manager.kernels_in_use == 1
            with pytest.raises(KernelLimitReached) as refused:
                await manager.start_kernel(kernel_name="python3")
            assert refused.value.status_code == 503 and refused.value.limit == 1
            assert manager.list_kernel_ids() == [first]
            await manager.shutdown_kernel(first, now=True)
            second = await manager.start_kernel(kernel_name="python3")
            assert manager.list_kernel_ids() == [second]
        finally:
            await manager.shutdown_all(now=True)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_max_kernels_traitlet_reads_the_environment(monkeypatch):
    monkeypatch.setenv(MAX_KERNELS_ENV_VAR, "5")
    assert CappedKernelManager().max_kernels == 5
    monkeypatch.delenv(MAX_KERNELS_ENV_VAR)
    assert CappedKernelManager().max_kernels == DEFAULT_MAX_KERNELS
    with pytest.raises(Exception, match="at least 1"):
        CappedKernelManager(max_kernels=0)


# ---------------------------------------------------------------------------- dashboard()
@pytest.fixture()
def clean_logging():
    """Remove the server-log handler dashboard() adds to the package logger."""
    package = logging.getLogger("abstractor_widgets")
    before = list(package.handlers)
    yield
    package.handlers[:] = before


def test_labels_are_read_only_unless_the_operator_allows_renaming(synthetic_abstractor, monkeypatch, clean_logging):
    monkeypatch.delenv(dash.EDIT_LABELS_ENV_VAR, raising=False)
    board = dash.dashboard(synthetic_abstractor, raise_errors=True)
    assert board.widget.editable_labels is False
    assert "renames a topic" not in board.header.value
    monkeypatch.setenv(dash.EDIT_LABELS_ENV_VAR, "1")
    board = dash.dashboard(synthetic_abstractor, raise_errors=True)
    assert board.widget.editable_labels is True and "renames a topic" in board.header.value
    assert dash.dashboard(synthetic_abstractor, editable_labels=False, raise_errors=True).widget.editable_labels is False
    monkeypatch.setenv(dash.EDIT_LABELS_ENV_VAR, "0")
    assert dash.dashboard(synthetic_abstractor, editable_labels=True, raise_errors=True).widget.editable_labels is True
    assert dash.labels_editable() is False


def test_a_failure_shows_a_short_message_and_logs_the_traceback(tmp_path, monkeypatch, caplog, clean_logging):
    broken = tmp_path / "secret-server-path" / "model"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{not json")
    monkeypatch.delenv(dash.VERIFIED_ENV_VAR, raising=False)
    with caplog.at_level(logging.ERROR, logger="abstractor_widgets.dashboard"):
        view = dash.dashboard(path=broken)
    assert not isinstance(view, dash.Dashboard)
    shown = view._repr_html_()
    assert dash.FAILURE_MESSAGE in shown
    assert "secret-server-path" not in shown and "Traceback" not in shown
    record = next(r for r in caplog.records if r.name == "abstractor_widgets.dashboard")
    assert record.exc_info is not None and "secret-server-path" in caplog.text  # the operator gets it
    with pytest.raises(Exception, match="manifest"):
        dash.dashboard(path=broken, raise_errors=True)


def test_a_verified_artifact_is_loaded_with_its_digest_pinned(synthetic_artifact, tmp_path, monkeypatch):
    """Under ``abstractor dashboard`` a kernel checks sizes and the pinned digest only."""
    import shutil

    from abstractor_widgets.store import ArtifactError, artifact_digest

    copy = tmp_path / "model"
    shutil.copytree(synthetic_artifact, copy)
    monkeypatch.setenv(dash.ARTIFACT_ENV_VAR, str(copy))
    monkeypatch.setattr(dash, "_cache", {})
    monkeypatch.setenv(dash.VERIFIED_ENV_VAR, "0" * 64)  # not this artifact's digest
    with pytest.raises(ArtifactError):
        dash.load_or_train()
    monkeypatch.setenv(dash.VERIFIED_ENV_VAR, artifact_digest(copy))
    assert dash.load_or_train().n_topics == 4
    # a verified artifact that disappears is never retrained inside a kernel
    monkeypatch.setattr(dash, "_cache", {})
    monkeypatch.setenv(dash.ARTIFACT_ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(ArtifactError, match="verified at server start"):
        dash.load_or_train()
    assert not (tmp_path / "gone").exists()


# ---------------------------------------------------------------------------- a real server
@pytest.fixture(scope="module")
def broken_voila(tmp_path_factory):
    """Plain Voilà with the packaged configuration, serving a model whose manifest is garbage.

    The model's directory name is a marker that must never reach the page.
    """
    root = tmp_path_factory.mktemp("voila-broken")
    model = root / "private-server-dir" / "model"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text("{not json")
    port = db.free_port()
    env = dashboard_environment(model, base=db.server_env(model))
    env.pop(dash.VERIFIED_ENV_VAR, None)
    cmd = [sys.executable, "-m", "voila", *voila_argv(port=port)]
    server = db.Server("voila-broken", cmd, env, port, root / "voila.log", ready_path="/voila/static/voila.js", cwd=root)
    server.start(timeout=90)
    try:
        with urllib.request.urlopen(server.url, timeout=90) as response:
            server.page_status = response.status
            server.page = response.read().decode("utf-8")
        server.kernel_id = KERNEL_ID.search(server.page).group(1)
        yield server
    finally:
        server.stop()


def test_a_broken_model_shows_visitors_a_short_message_and_no_path(broken_voila):
    page = broken_voila.page
    assert broken_voila.page_status == 200
    assert 'content="abstractor-widgets dashboard"' in page  # the packaged template
    assert dash.FAILURE_MESSAGE in page
    for secret in ("private-server-dir", "manifest.json", "Traceback", "ArtifactError", "JSONDecodeError"):
        assert secret not in page, secret
    log = Path(broken_voila.log_path).read_text(errors="replace")
    assert "Traceback" in log and "private-server-dir" in log  # the operator's log has it all


def _request(url: str, method: str, **headers: str) -> int:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_cookieless_post_or_delete_to_a_kernel_endpoint_is_refused(broken_voila):
    base, kernel = broken_voila.url, broken_voila.kernel_id
    assert _request(f"{base}voila/api/shutdown/{kernel}", "POST") == 403
    assert _request(f"{base}api/kernels/{kernel}", "DELETE") == 403
    # a forged token without the matching cookie is refused too
    assert _request(f"{base}voila/api/shutdown/{kernel}", "POST", **{"X-XSRFToken": "2|00|00|00"}) == 403
    assert _request(f"{base}api/kernels/{kernel}", "GET") == 200  # the kernel lives on
    assert len(broken_voila.kernels()) >= 1


def test_the_page_gets_an_xsrf_cookie_that_its_own_shutdown_request_passes_with(broken_voila):
    """Voilà's page echoes the ``_xsrf`` cookie in its shutdown beacon: with the cookie the
    request passes (so 403 above is the XSRF check, and the page's own request works)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(broken_voila.url, timeout=90) as response:
        kernel = KERNEL_ID.search(response.read().decode("utf-8")).group(1)
    token = next((c.value for c in jar if c.name == "_xsrf"), None)
    assert token, "the dashboard page sets no _xsrf cookie"
    body = f"_xsrf={token}".encode()
    request = urllib.request.Request(f"{broken_voila.url}voila/api/shutdown/{kernel}", data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    with opener.open(request, timeout=30) as response:
        assert response.status == 204
    assert _request(f"{broken_voila.url}api/kernels/{kernel}", "GET") == 404


MARKER_CODE = "import pathlib; pathlib.Path({path!r}).write_text('executed')"


def _message(msg_type: str, content: dict, session: str) -> str:
    return json.dumps({
        "header": {"msg_id": uuid.uuid4().hex, "username": "visitor", "session": session, "msg_type": msg_type,
                   "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": [],
    })  # fmt: skip


def test_a_raw_execute_request_over_the_kernel_websocket_is_not_executed(broken_voila, tmp_path):
    from tornado.websocket import websocket_connect

    marker = tmp_path / "executed.txt"
    control = tmp_path / "control.txt"
    exec(MARKER_CODE.format(path=str(control)))  # the code does create its file when it runs
    assert control.read_text() == "executed"

    async def exchange() -> list[dict]:
        session = uuid.uuid4().hex
        url = f"ws://127.0.0.1:{broken_voila.port}/api/kernels/{broken_voila.kernel_id}/channels?session_id={session}"
        ws = await websocket_connect(url)
        received: list[dict] = []
        try:
            code = MARKER_CODE.format(path=str(marker))
            ws.write_message(_message("execute_request", {"code": code, "silent": False, "store_history": True,
                                                          "user_expressions": {}, "allow_stdin": False}, session))  # fmt: skip
            ws.write_message(_message("kernel_info_request", {}, session))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                raw = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
                if raw is None:
                    break
                message = json.loads(raw)
                received.append(message)
                if message.get("msg_type") == "kernel_info_reply":
                    await asyncio.sleep(2.0)  # an executed request would have answered by now
                    with contextlib.suppress(asyncio.TimeoutError):
                        while True:
                            raw = await asyncio.wait_for(ws.read_message(), 0.5)
                            if raw is None:
                                break
                            received.append(json.loads(raw))
                    break
        finally:
            ws.close()
        return received

    received = asyncio.run(exchange())
    types = [m.get("msg_type") for m in received]
    assert "kernel_info_reply" in types  # the websocket reaches the kernel
    assert "execute_reply" not in types and "execute_input" not in types
    assert not marker.exists()
