"""``abstractor dashboard`` from an installed wheel (issue 13, item 3).

The test builds the wheel from this checkout, installs it (``--no-deps``) into a fresh
virtual environment whose only view of the dependencies is a ``.pth`` line naming this
environment's site-packages (nothing is downloaded; the checkout itself is not on the
path: the editable install's hook in that directory is not processed), and
``JUPYTER_PATH`` naming this environment's ``share/jupyter`` for the dependencies' data
files (Voilà's own templates; a real install puts them in the new environment). Then,
from a temporary directory, it runs ``abstractor dashboard ARTIFACT`` of the new
environment and requests the page: HTTP 200 with the packaged template and the widget's
output, served from the notebook inside the new environment, whose kernel runs the new
environment's Python.
"""

from __future__ import annotations

import importlib.util
import os
import time
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

from benchmarks import dashboard_browser as db  # the server helpers shared with the browser tests

pytestmark = pytest.mark.slow

PACKAGE_DATA = (
    "abstractor_widgets/voila/dashboard.ipynb",
    "abstractor_widgets/voila/voila.json",
    "abstractor_widgets/voila/share/voila/templates/abstractor/index.html.j2",
    "abstractor_widgets/voila/share/voila/templates/abstractor/conf.json",
    "abstractor_widgets/voila/share/voila/templates/abstractor/503.html",
    "abstractor_widgets/voila/share/voila/templates/abstractor/error.html",
    "abstractor_widgets/voila/share/voila/templates/abstractor/abstractor-page.html",
    "abstractor_widgets/voila/server.py",
)


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (ROOT / "abstractor_widgets" / "static" / "widget.js").is_file():
        pytest.skip("the widget's bundle is not built (pip install -e . runs npm)")
    out = tmp_path_factory.mktemp("wheel")
    if importlib.util.find_spec("hatchling") and importlib.util.find_spec("hatch_jupyter_builder"):
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)]
    else:  # an isolated build fetches the build backend from the package index
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT)]
    _run(cmd, cwd=out)
    (path,) = out.glob("abstractor_widgets-*.whl")
    return path


def test_the_wheel_ships_the_dashboard(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert not missing, f"not in {wheel.name}: {missing}"


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel; dependencies seen through one ``.pth`` line."""
    home = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(home)])
    python = home / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (purelib / "_dependencies_from_the_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet",
          str(wheel)])  # fmt: skip
    return home


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH"}}
    env["PATH"] = os.pathsep.join([str(home / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(home)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # the dependencies' data files (Voilà's templates and static files) stay where they
    # were installed, like their code (the .pth line)
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    return env


def _get_page(url: str, timeout: float = 120.0) -> tuple[int, str]:
    """The whole page, within ``timeout`` in total (Voilà's heartbeats keep a stuck page open)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while time.monotonic() < deadline:
            chunk = response.read1(65536)
            if not chunk:
                return response.status, b"".join(chunks).decode("utf-8")
            chunks.append(chunk)
    raise TimeoutError(f"{url}: the page did not finish in {timeout:.0f} s:\n{b''.join(chunks)[-1500:]!r}")


def test_the_installed_package_is_the_wheel_not_the_checkout(venv, tmp_path):
    probe = ("import abstractor_widgets, abstractor_widgets.voila as v, sys; "
             "print(abstractor_widgets.__file__); print(v.NOTEBOOK); print(v.NOTEBOOK.is_file())")  # fmt: skip
    lines = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_clean_env(venv)).stdout.split()
    assert Path(lines[0]).is_relative_to(venv) and Path(lines[1]).is_relative_to(venv) and lines[2] == "True"
    assert not Path(lines[0]).is_relative_to(ROOT)


def test_abstractor_dashboard_from_the_wheel_serves_the_voila_page(venv, synthetic_artifact, tmp_path):
    port = db.free_port()
    cmd = [str(venv / "bin" / "abstractor"), "dashboard", str(synthetic_artifact), "--port", str(port)]
    server = db.Server("voila-wheel", cmd, _clean_env(venv), port, tmp_path / "voila.log",
                       ready_path="/voila/static/voila.js", cwd=tmp_path)  # fmt: skip
    server.start(timeout=120)
    try:
        status, page = _get_page(server.url)
        kernels = [" ".join(k.cmdline()) for k in server.kernels()]
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert status == 200, log[-2000:]
    assert 'content="abstractor-widgets dashboard"' in page  # the packaged template
    assert "application/vnd.jupyter.widget-view+json" in page, log[-2000:]  # dashboard() made its widgets
    assert "could not" not in page and "There was an error" not in page
    assert "verified in" in log and "manifest digest" in log  # verified once, at start
    assert str(venv / "lib") in log  # Voilà served the notebook installed in the new environment
    assert kernels and all(k.startswith(str(venv)) for k in kernels), kernels  # the kernels run its Python
