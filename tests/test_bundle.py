"""The front-end bundle: built, self-contained (no CDN), free of HTML injection, shipped in the wheel.

The bundle is build output (``abstractor_widgets/static/`` is git-ignored): ``pip install -e .``
or ``npm --prefix js ci && npm --prefix js run build`` writes it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "abstractor_widgets" / "static"
JS_SRC = ROOT / "js" / "src"
BUNDLE = {"widget.js": STATIC / "widget.js", "widget.css": STATIC / "widget.css"}
#: The kernel-free web dashboard of `abstractor serve` (js/src/web.js + http-model.js, js/web/).
WEB = {f"web/{name}": STATIC / "web" / name for name in ("index.html", "web.js", "web.css")}
BUILD_HINT = "build it with `npm --prefix js ci && npm --prefix js run build` (or `pip install -e .`)"

# Ways to put markup into the DOM from a string. The view uses textContent / text nodes only.
HTML_SINKS = re.compile(r"\.(?:innerHTML|outerHTML)\s*\+?=(?!=)|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser")
REMOTE_URL = re.compile(r"""(?:https?:)?//(?:cdn|unpkg|esm\.sh|cdnjs|jsdelivr|fonts\.googleapis)|https?://[\w.-]+\.\w+""", re.I)


def read(name: str) -> str:
    path = BUNDLE[name]
    if not path.is_file():
        pytest.fail(f"{path} is missing: {BUILD_HINT}")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(BUNDLE))
def test_bundle_is_built_and_not_empty(name):
    assert len(read(name)) > 1000, f"{name} looks truncated: {BUILD_HINT}"


def test_bundle_is_an_anywidget_module():
    js = read("widget.js")
    assert re.search(r"export\s*\{[^}]*\bas default\b[^}]*\}|export default", js)
    assert "render" in js


def test_widget_points_at_the_bundle():
    from abstractor_widgets.widget import AbstractorWidget

    # anywidget turns Path values into FileContents at class creation; the inline fallback
    # (used only when the bundle is missing) is a multi-line string.
    assert "FileContents" in type(AbstractorWidget._esm).__name__
    assert "FileContents" in type(AbstractorWidget._css).__name__
    assert str(AbstractorWidget._esm) == BUNDLE["widget.js"].read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [BUNDLE["widget.js"], *sorted(JS_SRC.glob("*.js"))], ids=lambda p: p.name)
def test_no_html_injection(path):
    if not path.is_file():
        pytest.fail(f"{path} is missing: {BUILD_HINT}")
    hits = HTML_SINKS.findall(path.read_text(encoding="utf-8"))
    assert not hits, f"{path.name} writes HTML from strings: {hits}"


@pytest.mark.parametrize("name", sorted(BUNDLE))
def test_no_remote_resources(name):
    text = read(name)
    assert not REMOTE_URL.findall(text), "the widget must work offline (no CDN / remote URLs)"
    assert "@import" not in text
    assert not re.search(r"\bimport\s*\(\s*['\"`]", text), "no dynamic imports of remote modules"


def test_css_classes_are_prefixed():
    css = read("widget.css")
    classes = set(re.findall(r"\.(-?[_a-zA-Z][\w-]*)", re.sub(r"url\([^)]*\)|\d+\.\d+", "", css)))
    assert classes, "no class selectors found"
    assert all(c.startswith("abstractor-") for c in classes), sorted(c for c in classes if not c.startswith("abstractor-"))


@pytest.mark.parametrize("name", sorted(WEB))
def test_web_dashboard_is_built_offline_and_free_of_html_injection(name):
    path = WEB[name]
    if not path.is_file():
        pytest.fail(f"{path} is missing: {BUILD_HINT}")
    text = path.read_text(encoding="utf-8")
    assert len(text) > 500, f"{name} looks truncated: {BUILD_HINT}"
    assert not REMOTE_URL.findall(text), "the web dashboard must work offline (no CDN / remote URLs)"
    assert "@import" not in text
    if name.endswith(".js"):
        assert not HTML_SINKS.findall(text), f"{name} writes HTML from strings"
        assert "render" in text and "api/v1/" in text


def test_web_page_needs_no_inline_script():
    """The service sends `Content-Security-Policy: default-src 'self'`: no inline code or styles."""
    html = WEB["web/index.html"].read_text(encoding="utf-8") if WEB["web/index.html"].is_file() else pytest.fail(BUILD_HINT)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I)
    assert scripts == [(' type="module" src="web.js"', "")], scripts
    assert re.search(r'<link rel="stylesheet" href="web.css"', html)
    assert not re.search(r"<style|\son\w+\s*=|\sstyle\s*=|javascript:", html, re.I)
    assert re.search(r"<title>[^<]+</title>", html)


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_bundle_loads_as_an_es_module():
    script = (
        "const m = await import(process.argv[1]);"
        "if (typeof m.default?.render !== 'function') { throw new Error('no default.render'); }"
        "console.log('ok');"
    )
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", script, BUNDLE["widget.js"].as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_js_unit_tests():
    result = subprocess.run(
        [NODE, "--test", *sorted(str(p) for p in (ROOT / "js" / "test").glob("*.test.js"))],
        capture_output=True, text=True, timeout=120, cwd=ROOT / "js",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _wheel_command(out: Path) -> list[str] | None:
    """`python -m build --wheel` if available, else `pip wheel`; offline-friendly when possible."""
    isolated = importlib.util.find_spec("hatchling") is None or importlib.util.find_spec("hatch_jupyter_builder") is None
    if importlib.util.find_spec("build") is not None:
        return [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), *([] if isolated else ["--no-isolation"]), str(ROOT)]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out),
                *([] if isolated else ["--no-build-isolation"]), str(ROOT)]  # fmt: skip
    return None


def test_wheel_ships_the_bundle(tmp_path):
    command = _wheel_command(tmp_path)
    if command is None:
        pytest.skip("neither `build` nor `pip` is installed")
    read("widget.js")  # the hook only rebuilds when the bundle is missing; report that case clearly
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list(tmp_path.glob("abstractor_widgets-*.whl"))
    assert len(wheels) == 1, list(tmp_path.iterdir())
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        for name, path in {**BUNDLE, **WEB}.items():
            member = f"abstractor_widgets/static/{name}"
            assert member in names, f"{member} is not in the wheel"
            assert wheel.read(member) == path.read_bytes()
