"""Real-browser measurements of the Voilà dashboard (Playwright + Debian Chromium).

Measures, on a given model (``--artifact``, default ``$ABSTRACTOR_ARTIFACT`` or
``artifacts/default``):

* **keystroke → coloured render latency** in Voilà, in the browser: 50 one-character
  edits of a real abstract; for each, the time from the ``input`` event to the DOM
  update of the coloured text (a ``MutationObserver`` and ``performance.now()``). Two
  paths: *immediate* (the edit is followed by Ctrl+Enter, which the widget sends at
  once: kernel round trip + render) and *typing* (the edit alone: the widget's
  debounce, then the same round trip);
* **time from request to interactive widget**, cold (a Voilà server without kernel
  preheating: kernel start + notebook run) and preheated (``abstractor_widgets/voila/voila.json``:
  ``preheat_kernel``, a pool of one kernel that already ran the notebook); also to the corpus
  explorer's map drawn (``map_ready_s``);
* **a filter change** in the corpus explorer: a category chosen and applied, until the map
  shows the kept papers (kernel: mask, trends, the analyser's filtered similar papers; page:
  the mask drawn), and the filter cleared again;
* **kernel memory** with 1 and 5 concurrent dashboard sessions (psutil: RSS, PSS, USS
  of every kernel, and how much of it is the memory-mapped model), and the marginal
  memory per extra session.

Usage::

    .venv/bin/python benchmarks/dashboard_browser.py [--artifact DIR] [--json OUT]

This module is also the helper library of ``tests/browser/`` (servers, browser
launch, waiting for the widget, the measurements): one implementation for both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# the dashboard ships as package data (abstractor_widgets/voila): the notebook, voila.json
# and a Jupyter data directory with the "abstractor" template (JUPYTER_PATH)
PACKAGE_VOILA = ROOT / "abstractor_widgets" / "voila"
NOTEBOOK = PACKAGE_VOILA / "dashboard.ipynb"
VOILA_CONFIG_DIR = PACKAGE_VOILA
VOILA_SHARE = PACKAGE_VOILA / "share"
TEST_OUTPUT = ROOT / "test-output"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

#: An abstract mixing several fields (vision, language, RL, federated learning ...): its
#: words fall into several topics of any model trained on the shared ML corpus.
SAMPLE_TEXT = (
    "We propose a graph neural network for semantic segmentation of medical images, trained "
    "with reinforcement learning from human feedback. A large language model generates "
    "captions and answers questions about each image, while a diffusion model synthesises "
    "training data. Experiments on benchmark datasets show that the method improves accuracy, "
    "robustness and privacy in federated learning, and reduces the inference cost of the "
    "transformer on mobile robots."
)
#: Typed one character at a time after SAMPLE_TEXT by the latency measurement.
TYPED_SUFFIX = " We also study speech recognition and protein structure prediction with attention."

#: ``VoilaKernelManager.fill_delay`` of abstractor_widgets/voila/voila.json plus a margin.
POOL_REFILL_S = 3.0

WIDGET = ".abstractor-root"
EXPLORE = ".abstractor-explore"
TEXTAREA = ".abstractor-root textarea.abstractor-textarea"
TEXT_VIEW = ".abstractor-root .abstractor-text"
WORD = ".abstractor-root .abstractor-text .abstractor-word"
HIT = ".abstractor-root .abstractor-hits > li.abstractor-hit"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(artifact: str | os.PathLike[str] | None, **extra: str) -> dict[str, str]:
    """The environment of a test server (inherited by its kernels, pooled ones included)."""
    env = dict(os.environ)
    if artifact is not None:
        env["ABSTRACTOR_ARTIFACT"] = str(Path(artifact).resolve())
    # the kernels import the package from this checkout even when it is not pip-installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.pop("ANYWIDGET_HMR", None)
    env.update(extra)
    return env


class Server:
    """A Jupyter-family server in its own process group, on 127.0.0.1:``port``."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str], port: int,
                 log_path: Path, ready_path: str = "/", cwd: Path = ROOT) -> None:  # fmt: skip
        self.name, self.cmd, self.env, self.port = name, list(cmd), env, port
        self.log_path, self.ready_path, self.cwd = log_path, ready_path, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} not ready on port {self.port} after {timeout:.0f} s:\n{self.tail()}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        if self.ready_path is None:
            return True
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + self.ready_path, timeout=5) as r:
                return r.status < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def processes(self) -> list[Any]:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []

    def kernels(self) -> list[Any]:
        """The server's kernel processes (``ipykernel_launcher``), oldest first."""
        import psutil

        out = []
        for proc in self.processes():
            try:
                if "ipykernel_launcher" in " ".join(proc.cmdline()):
                    out.append(proc)
            except psutil.Error:
                continue
        return sorted(out, key=lambda p: p.create_time())

    def stop(self) -> None:
        """SIGTERM the process group (the server shuts its kernels down), then make sure."""
        import psutil

        if self.proc is None:
            return
        children = self.processes()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            # kernels run in their own sessions: end the ones this server started, by pid,
            # now (the server's graceful shutdown would wait for each of them)
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


def serving(server: Server, timeout: float = 90.0) -> Iterator[Server]:
    """Start ``server``, yield it, stop it: ``yield from serving(...)`` in a pytest fixture."""
    server.start(timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def voila_server(artifact: str | os.PathLike[str], *, log_dir: Path, theme: str | None = None,
                 preheat: bool | None = None, port: int | None = None, name: str = "voila",
                 extra: Sequence[str] = (), max_kernels: int | None = None, edit_labels: bool = False,
                 env: dict[str, str] | None = None) -> Server:  # fmt: skip
    """The dashboard as ``scripts/dashboard.sh`` serves it: ``abstractor dashboard ARTIFACT``
    (the artifact verified once, the packaged notebook, ``voila.json`` and template).

    ``preheat=None`` keeps the config (preheating on); ``False`` turns it off on Voilà's
    command line (which wins over the config file). ``extra``: more Voilà options.
    ``env``: the server's environment (default :func:`server_env`).
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "abstractor_widgets.cli", "dashboard", str(Path(artifact).resolve()),
           "--host=127.0.0.1", f"--port={port}"]  # fmt: skip
    if max_kernels is not None:
        cmd.append(f"--max-kernels={max_kernels}")
    if edit_labels:
        cmd.append("--edit-labels")
    voila = [f"--theme={theme}"] if theme else []
    if preheat is not None:
        voila.append(f"--VoilaConfiguration.preheat_kernel={preheat}")
    voila += list(extra)
    if voila:
        cmd += ["--voila", *voila]
    # readiness: the port, then a static file (a GET of "/" would start a kernel)
    env = server_env(artifact) if env is None else env
    return Server(name, cmd, env, port, log_dir / f"{name}.log", ready_path="/voila/static/voila.js")


def jupyter_server(root_dir: Path, artifact: str | os.PathLike[str], *, log_dir: Path,
                   port: int | None = None, name: str = "lab") -> Server:  # fmt: skip
    """JupyterLab (which also serves Notebook 7 at ``/notebooks/``), isolated in ``root_dir``."""
    port = port or free_port()
    home = root_dir.parent / f".{name}-jupyter"
    env = server_env(
        artifact,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    # the kernelspec and labextensions live in the venv (sys.prefix): still found
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.token=",
           "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root_dir}",
           "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]  # fmt: skip
    return Server(name, cmd, env, port, log_dir / f"{name}.log", ready_path="/api/status", cwd=root_dir)


def wait_kernels_idle(server: Server, count: int = 1, *, timeout: float = 90.0,
                      cpu_below: float = 10.0, quiet_s: float = 1.0) -> list[Any]:  # fmt: skip
    """Wait until ``server`` has at least ``count`` kernels and all of them are idle.

    Used to know that a preheated kernel has finished running the notebook.
    """
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = server.kernels()
        if len(kernels) >= count:
            with contextlib.suppress(psutil.Error):
                for k in kernels:
                    k.cpu_percent(None)
                time.sleep(quiet_s)
                if all(k.cpu_percent(None) < cpu_below for k in kernels):
                    return kernels
                continue
        time.sleep(0.3)
    raise TimeoutError(f"{server.name}: {count} idle kernel(s) not reached in {timeout:.0f} s")


# ---------------------------------------------------------------------------- browser
def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


class Session:
    """A page in its own context, recording dialogs and page errors."""

    def __init__(self, browser: Any, viewport: dict[str, int] | None = None) -> None:
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 1000})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []  # requests that would leave the machine
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", self._on_request)
        self.page.on("websocket", lambda ws: self._on_request(ws))

    def _on_request(self, request: Any) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(request.url)
        if parts.scheme not in {"data", "blob", "about"} and parts.hostname not in {"127.0.0.1", "localhost"}:
            self.external.append(request.url)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        with contextlib.suppress(Exception):
            dialog.dismiss()

    def close(self) -> None:
        # leave the page first: Voilà shuts the page's kernel down when it is unloaded
        with contextlib.suppress(Exception):
            self.page.goto("about:blank", timeout=10_000)
        with contextlib.suppress(Exception):
            self.context.close()


def wait_widget(page: Any, timeout: float = 90.0) -> None:
    """Wait until the widget is rendered and its view is connected to the kernel."""
    page.wait_for_selector(TEXTAREA, state="visible", timeout=timeout * 1000)


def wait_result(page: Any, text: str, timeout: float = 30.0) -> None:
    """Wait until the coloured view shows exactly ``text`` and no request is pending."""
    page.wait_for_function(
        """([text, sel]) => {
            const root = document.querySelector('.abstractor-root');
            const view = document.querySelector(sel);
            return root && view && root.getAttribute('aria-busy') === 'false' && view.textContent === text;
        }""",
        arg=[text, TEXT_VIEW],
        timeout=timeout * 1000,
        polling=50,
    )


def set_text(page: Any, text: str, *, wait: bool = True, timeout: float = 30.0) -> None:
    """Type ``text`` into the widget (replacing what is there) and analyse it at once."""
    box = page.locator(TEXTAREA)
    box.fill(text)
    box.press("Control+Enter")
    if wait:
        wait_result(page, text, timeout)


def open_dashboard(browser: Any, url: str, *, timeout: float = 90.0,
                   viewport: dict[str, int] | None = None) -> Session:  # fmt: skip
    session = Session(browser, viewport)
    session.page.goto(url, wait_until="commit", timeout=timeout * 1000)
    wait_widget(session.page, timeout)
    return session


# ---------------------------------------------------------------------------- measurements
_LATENCY_JS = """
async ({texts, immediate, gapMs, timeoutMs}) => {
  const root = document.querySelector('.abstractor-root');
  const ta = root.querySelector('textarea.abstractor-textarea');
  const view = root.querySelector('.abstractor-text');
  const status = root.querySelector('.abstractor-status-text');
  const out = [];
  for (const text of texts) {
    const sample = await new Promise((resolve) => {
      let t0 = 0;
      const timer = setTimeout(() => { obs.disconnect(); resolve({ms: null, kernelMs: null}); }, timeoutMs);
      const obs = new MutationObserver(() => {
        if (view.textContent === text && view.querySelector('.abstractor-word')) {
          const ms = performance.now() - t0;
          obs.disconnect();
          clearTimeout(timer);
          const m = /([0-9.]+) ms/.exec(status ? status.textContent : '');
          resolve({ms, kernelMs: m ? Number(m[1]) : null});
        }
      });
      obs.observe(view, {childList: true, subtree: true, characterData: true});
      t0 = performance.now();
      ta.value = text;
      ta.dispatchEvent(new InputEvent('input', {bubbles: true, inputType: 'insertText', data: text.slice(-1)}));
      if (immediate) {
        ta.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', ctrlKey: true, bubbles: true, cancelable: true}));
      }
    });
    out.push(sample);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return out;
}
"""


def edit_sequence(n: int = 50, base: str = SAMPLE_TEXT, suffix: str = TYPED_SUFFIX) -> list[str]:
    """``n`` successive one-character edits: ``base`` plus the first 1..n characters of ``suffix``."""
    suffix = (suffix * (n // len(suffix) + 1))[:n]
    return [base + suffix[: i + 1] for i in range(n)]


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    ok = sorted(v for v in values if v is not None)
    if not ok:
        return {"n": 0, "timeouts": len(values)}

    def q(p: float) -> float:  # nearest-rank percentile
        return ok[min(len(ok) - 1, max(0, int(round(p / 100 * len(ok) + 0.5)) - 1))]

    return {
        "n": len(ok),
        "timeouts": len(values) - len(ok),
        "p50": round(statistics.median(ok), 1),
        "p95": round(q(95), 1),
        "mean": round(statistics.fmean(ok), 1),
        "min": round(ok[0], 1),
        "max": round(ok[-1], 1),
    }


def measure_keystroke_latency(page: Any, *, edits: int = 50, immediate: bool = True,
                              gap_ms: int = 40, base: str = SAMPLE_TEXT) -> dict[str, Any]:  # fmt: skip
    """Input event → coloured-text DOM update, measured in the page, for ``edits`` edits."""
    set_text(page, base)  # start from a rendered result
    samples = page.evaluate(
        _LATENCY_JS,
        {"texts": edit_sequence(edits, base), "immediate": immediate, "gapMs": gap_ms, "timeoutMs": 15000},
    )
    result = summarize([s["ms"] for s in samples])
    result["kernel_analysis_ms"] = summarize([s["kernelMs"] for s in samples])
    result["samples_ms"] = [None if s["ms"] is None else round(s["ms"], 1) for s in samples]
    return result


_MAP_READY_JS = """
(timeoutMs) => new Promise((resolve) => {
  const ready = () => document.querySelector('.abstractor-explore[data-map-ready="true"]');
  const none = () => document.querySelector('.abstractor-explore .abstractor-map-status:not([hidden])');  // no map
  if (ready()) return resolve(performance.now());
  if (none()) return resolve(null);
  const timer = setTimeout(() => { obs.disconnect(); resolve(null); }, timeoutMs);
  const obs = new MutationObserver(() => {
    if (ready()) { obs.disconnect(); clearTimeout(timer); resolve(performance.now()); }
    else if (none()) { obs.disconnect(); clearTimeout(timer); resolve(null); }
  });
  obs.observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-map-ready', 'hidden']});
})
"""


def time_to_interactive(browser: Any, url: str, sample: str = SAMPLE_TEXT, timeout: float = 120.0,
                        keep: bool = False) -> tuple[dict[str, float], Session | None]:  # fmt: skip
    """Seconds from the request to the visible widget, to the corpus explorer's map drawn
    (``map_ready_s``, when the page has an explorer with a map), and to the first coloured result.

    With ``keep=True`` the session stays open and is returned (else ``None``).
    """
    session = Session(browser)
    try:
        start = time.perf_counter()
        session.page.goto(url, wait_until="commit", timeout=timeout * 1000)
        wait_widget(session.page, timeout)
        visible = time.perf_counter() - start
        result = {"widget_visible_s": round(visible, 2)}
        with contextlib.suppress(Exception):  # the dashboard's corpus explorer: its map drawn (in the page's clock)
            session.page.wait_for_selector(EXPLORE, state="attached", timeout=min(timeout, 30) * 1000)
            painted_at = session.page.evaluate(_MAP_READY_JS, min(timeout, 60) * 1000)
            now_at = session.page.evaluate("performance.now()")
            if painted_at is not None:
                result["map_ready_s"] = round(time.perf_counter() - start - (now_at - painted_at) / 1000, 2)
        set_text(session.page, sample, timeout=timeout)
        result["first_result_s"] = round(time.perf_counter() - start, 2)
    except BaseException:
        session.close()
        raise
    if not keep:
        session.close()
        session = None
    return result, session


_FILTER_JS = """
async ({category, timeoutMs}) => {
  const root = document.querySelector('.abstractor-explore');
  const frame = root.querySelector('.abstractor-map-frame');
  const select = root.querySelector('.abstractor-filter-category');
  const apply = [...root.querySelectorAll('button')].find((b) => b.textContent === 'Apply filters');
  const clear = [...root.querySelectorAll('.abstractor-filters button')].find((b) => b.textContent === 'Clear');
  const hits = () => document.querySelector('.abstractor-root .abstractor-hits')?.textContent || '';
  const until = (test) => new Promise((resolve) => {
    const t0 = performance.now();
    if (test()) return resolve(0);
    const timer = setTimeout(() => { obs.disconnect(); resolve(null); }, timeoutMs);
    const obs = new MutationObserver(() => { if (test()) { obs.disconnect(); clearTimeout(timer); resolve(performance.now() - t0); } });
    obs.observe(document.body, {subtree: true, attributes: true, childList: true, characterData: true});
  });
  const mapless = !!root.querySelector('.abstractor-map-status:not([hidden])');  // nothing to wait for on the map
  const before = hits();
  select.value = category;
  const applied = mapless ? Promise.resolve(null) : until(() => frame.dataset.filtered !== undefined && frame.dataset.filtered !== '');
  const similar = until(() => hits() !== before);  // the analyser's similar papers, ranked among the kept
  apply.click();
  const [applyMs, similarMs] = await Promise.all([applied, similar]);
  await new Promise((r) => setTimeout(r, 500));
  const kept = root.querySelector('.abstractor-filters').dataset.kept;
  const filtered = hits();
  const cleared = mapless ? Promise.resolve(null) : until(() => frame.dataset.filtered === '');
  const back = until(() => hits() !== filtered);
  clear.click();
  const [clearMs, similarBackMs] = await Promise.all([cleared, back]);
  return {applyMs, similarMs, clearMs, similarBackMs, kept};
}
"""


def measure_filter_change(page: Any, *, runs: int = 3, timeout: float = 60.0) -> dict[str, Any]:
    """A category filter applied in the explorer until the map shows the kept papers
    (``apply_ms``) and until the analyser's similar papers change (``similar_ms``: ranked among
    the kept papers), then cleared again (``clear_ms``, ``similar_back_ms``); ms in the page,
    ``runs`` times with the most frequent categories (the analyser shows an abstract)."""
    categories = page.evaluate(
        "() => [...document.querySelectorAll('.abstractor-explore .abstractor-filter-category option')].map((o) => o.value).filter(Boolean)")
    samples = [page.evaluate(_FILTER_JS, {"category": c, "timeoutMs": timeout * 1000}) for c in categories[:runs]]
    return {
        "categories": categories[:runs],
        "apply_ms": summarize([s["applyMs"] for s in samples]),
        "similar_ms": summarize([s["similarMs"] for s in samples]),
        "clear_ms": summarize([s["clearMs"] for s in samples]),
        "similar_back_ms": summarize([s["similarBackMs"] for s in samples]),
        "kept": [s["kept"] for s in samples],
    }


def _kernel_memory(proc: Any, artifact: Path) -> dict[str, float]:
    mib = 1 / 2**20
    info = proc.memory_full_info()
    model_rss = model_pss = 0
    prefix = str(artifact.resolve())
    for region in proc.memory_maps(grouped=True):
        if region.path.startswith(prefix):
            model_rss += region.rss
            model_pss += region.pss
    return {
        "pid": proc.pid,
        "rss_mib": round(info.rss * mib, 1),
        "pss_mib": round(info.pss * mib, 1),
        "uss_mib": round(info.uss * mib, 1),
        "model_mmap_rss_mib": round(model_rss * mib, 1),
        "model_mmap_pss_mib": round(model_pss * mib, 1),
    }


def _memory_snapshot(kernels: Sequence[Any], artifact: Path) -> dict[str, Any]:
    per = [_kernel_memory(k, artifact) for k in kernels]
    total = {key: round(sum(p[key] for p in per), 1) for key in per[0] if key != "pid"} if per else {}
    return {"kernels": len(per), "total": total, "per_kernel": per}


def measure_memory(browser: Any, server: Server, artifact: str | os.PathLike[str],
                   counts: Sequence[int] = (1, 5), sessions: Sequence[Session] = (),
                   timeout: float = 180.0) -> dict[str, Any]:  # fmt: skip
    """Kernel memory with 1, then 5 concurrent dashboard sessions (each ran an analysis).

    ``sessions`` are already-open dashboard pages of ``server`` to count first (they are
    closed at the end, with the ones opened here). New pages of one step are opened in
    parallel. Only the kernels of these sessions are measured: the server's kernels are
    matched to sessions by start order (``server`` must not preheat).
    """
    artifact = Path(artifact)
    open_sessions = list(sessions)
    before = {k.pid for k in server.kernels()} if not open_sessions else set()
    snapshots: dict[str, Any] = {}
    try:
        for count in sorted(counts):
            fresh = [Session(browser) for _ in range(count - len(open_sessions))]
            for session in fresh:
                session.page.goto(server.url, wait_until="commit", timeout=timeout * 1000)
            open_sessions += fresh
            for i, session in enumerate(fresh):
                wait_widget(session.page, timeout)
                set_text(session.page, SAMPLE_TEXT + f" Session {i}.", timeout=timeout)
            kernels = [k for k in server.kernels() if k.pid not in before]
            snapshots[str(count)] = _memory_snapshot(kernels[-count:], artifact)
    finally:
        for session in open_sessions:
            session.close()
    lo, hi = min(counts), max(counts)
    if str(lo) in snapshots and str(hi) in snapshots and hi > lo:
        a, b = snapshots[str(lo)]["total"], snapshots[str(hi)]["total"]
        snapshots["marginal_per_extra_session_mib"] = {
            key.replace("_mib", ""): round((b[key] - a[key]) / (hi - lo), 1)
            for key in ("rss_mib", "pss_mib", "uss_mib", "model_mmap_rss_mib", "model_mmap_pss_mib")
        }
    return snapshots


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count()}  # fmt: skip
    with contextlib.suppress(OSError):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    with contextlib.suppress(Exception):
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=10)
        info["chromium"] = out.stdout.strip()
    return info


def model_info(artifact: Path) -> dict[str, Any]:
    with contextlib.suppress(Exception):
        manifest = json.loads((artifact / "manifest.json").read_text())
        return {"path": str(artifact), "n_topics": manifest.get("n_topics"),
                "n_documents": manifest.get("n_documents"),
                "corpus": (manifest.get("corpus") or {}).get("name")}  # fmt: skip
    return {"path": str(artifact)}


def measure_all(browser: Any, preheated: Server, cold: Server, artifact: str | os.PathLike[str], *,
                edits: int = 50, typing_edits: int | None = None, tti_runs: int = 2,
                sessions: Sequence[int] = (1, 5), filter_timeout: float = 60.0) -> dict[str, Any]:  # fmt: skip
    """Every measurement, on two running Voilà servers: ``preheated`` (the repository's
    config) and ``cold`` (preheating off; it must serve no other page meanwhile).

    ``edits`` one-character edits for the immediate path, ``typing_edits`` (default the
    same) for the debounced typing path. ``filter_timeout``: the most a filter change is
    waited for (a filter that keeps the same similar papers waits for all of it).
    """
    artifact = Path(artifact)
    results: dict[str, Any] = {"model": model_info(artifact), "machine": machine(),
                               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip

    log(f"time to interactive: preheated x{tti_runs}")
    pre = []
    for _ in range(tti_runs):
        time.sleep(POOL_REFILL_S)  # a used pool kernel is replaced after fill_delay
        wait_kernels_idle(preheated, 1)  # the pool's kernel has run the notebook
        pre.append(time_to_interactive(browser, preheated.url)[0])
    log(f"time to interactive: cold x{tti_runs}")
    cold_runs = [time_to_interactive(browser, cold.url)[0] for _ in range(tti_runs - 1)]
    first, session = time_to_interactive(browser, cold.url, keep=True)
    cold_runs.append(first)
    results["time_to_interactive"] = {"preheated": pre, "cold": cold_runs}
    for name, runs in (("preheated", pre), ("cold", cold_runs)):
        results["time_to_interactive"][f"{name}_median"] = {
            key: round(statistics.median(r[key] for r in runs if key in r), 2) for key in runs[0]
        }

    log(f"keystroke latency: {edits} edits immediate, {typing_edits or edits} typing")
    try:
        results["keystroke_latency_ms"] = {
            "immediate": measure_keystroke_latency(session.page, edits=edits, immediate=True),
            "typing": measure_keystroke_latency(session.page, edits=typing_edits or edits, immediate=False),
            "bars": {"p50": 60, "p95": 150},
            "text_chars": len(SAMPLE_TEXT) + 1,
        }
    except BaseException:
        session.close()
        raise

    if session.page.locator(f"{EXPLORE} .abstractor-filter-category").count():
        log("filter change in the explorer")
        try:
            results["filter_change"] = measure_filter_change(session.page, timeout=filter_timeout)
        except BaseException:
            session.close()
            raise

    log(f"kernel memory with {', '.join(map(str, sessions))} sessions")
    results["memory"] = measure_memory(browser, cold, artifact, counts=sessions, sessions=[session])
    results["load_average_after"] = machine().get("load_average")
    return results


def report(results: dict[str, Any]) -> str:
    lat = results["keystroke_latency_ms"]
    tti = results["time_to_interactive"]
    mem = results["memory"]
    lines = [f"model: {results['model']}", f"machine: {results['machine']}"]
    for path in ("immediate", "typing"):
        s = lat[path]
        k = s.get("kernel_analysis_ms", {})
        lines.append(f"keystroke -> coloured render ({path}): p50 {s.get('p50')} ms, p95 {s.get('p95')} ms, "
                     f"max {s.get('max')} ms over {s.get('n')} edits ({s.get('timeouts')} timeouts); "
                     f"kernel analysis p50 {k.get('p50')} ms")  # fmt: skip
    for kind in ("cold", "preheated"):
        m = tti[f"{kind}_median"]
        lines.append(f"request -> widget ({kind}): visible {m['widget_visible_s']} s, map drawn {m.get('map_ready_s')} s, "
                     f"first result {m['first_result_s']} s (runs: {tti[kind]})")  # fmt: skip
    if "filter_change" in results:
        f = results["filter_change"]
        lines.append(f"filter change (category): map p50 {f['apply_ms'].get('p50')} ms, similar papers p50 "
                     f"{f['similar_ms'].get('p50')} ms; cleared: map {f['clear_ms'].get('p50')} ms, similar papers "
                     f"{f['similar_back_ms'].get('p50')} ms ({f['categories']})")
    for count in (k for k in mem if k.isdigit()):
        t = mem[count]["total"]
        lines.append(f"{count} session(s): {mem[count]['kernels']} kernel(s), total RSS {t.get('rss_mib')} MiB, "
                     f"PSS {t.get('pss_mib')} MiB, USS {t.get('uss_mib')} MiB, model mmap RSS "
                     f"{t.get('model_mmap_rss_mib')} MiB")  # fmt: skip
    if "marginal_per_extra_session_mib" in mem:
        lines.append(f"marginal per extra session (MiB): {mem['marginal_per_extra_session_mib']}")
    return "\n".join(lines)


@contextlib.contextmanager
def servers(artifact: Path, log_dir: Path) -> Iterator[tuple[Server, Server]]:
    pre = voila_server(artifact, log_dir=log_dir, name="voila-preheated")
    cold = voila_server(artifact, log_dir=log_dir, name="voila-cold", preheat=False)
    try:
        pre.start()
        cold.start()
        yield pre, cold
    finally:
        cold.stop()
        pre.stop()


def main(argv: Sequence[str] | None = None) -> int:
    default = os.environ.get("ABSTRACTOR_ARTIFACT") or str(ROOT / "artifacts" / "default")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", default=default, help="model directory (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2, help="time-to-interactive runs of each kind")
    parser.add_argument("--log-dir", type=Path, default=TEST_OUTPUT / "bench-logs")
    args = parser.parse_args(argv)
    artifact = Path(args.artifact).resolve()
    if not (artifact / "manifest.json").is_file():
        parser.error(f"no model at {artifact} (train one: abstractor train --out {artifact})")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, servers(artifact, args.log_dir) as (pre, cold):
        browser = launch_browser(pw)
        try:
            results = measure_all(browser, pre, cold, artifact, edits=args.edits, tti_runs=args.runs)
        finally:
            browser.close()
    print(report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
