"""Time to interactive and keystroke latency of the kernel-free web dashboard (``abstractor serve``).

Chromium (Debian's, through Playwright) against ``abstractor serve ARTIFACT`` on a free port
of 127.0.0.1. The model is ``--artifact`` (default ``artifacts/default``, the 60k model); when
it does not exist, a small one is trained on the first ``--train-docs`` abstracts of the shared
corpus into ``/tmp/abstractor-web-bench/model`` (once; reused afterwards).

Definitions
-----------
*Warm server*: ``/ready`` answers 200 (model loaded and verified) and one unmeasured visit has
already loaded the page and run one analysis (page cache, Python and V8 code warm). Every
measured visit then uses a **new browser context** (empty HTTP cache, no cookies: a
first-time visitor), one after the other.

*Time to interactive (input ready)*: from the navigation start of the page
(``performance.timeOrigin``) to ``performance.mark("abstractor-interactive")``, set by
``js/src/web.js`` right after the widget's view is rendered with the model's topics
(``GET /api/v1/topics`` answered) and the text box accepts input.

*Time to first coloured render*: from the navigation start to the first DOM state in which
the coloured view shows a typed abstract (``SAMPLE_TEXT``, 456 characters) with its topical
words. A script injected before the page loads types the abstract (sets the text box and
fires ``input``, as a paste does) the instant the page is interactive, and a
``MutationObserver`` timestamps the render: it is the page's own time to a first answer,
without a human's reaction time.

*Keystroke → coloured render*: once the page is steady (the corpus explorer under the analyser
has loaded and drawn its map), on a rendered abstract, ``--edits`` successive one-character
edits (the ``input`` event of the text box, the widget's normal typing path: sent at once
when idle, coalesced while a request is in flight), each timed from the event to the DOM
update that shows exactly the edited text (``performance.now()`` in the page; the
measurement code of ``benchmarks/dashboard_browser.py``). ``server_analysis_ms`` is the
facade's own time reported by the API.

Goals (issue 13): time to interactive ≤ 0.5 s on a warm server; keystroke → coloured render
p50 ≤ 40 ms. Bounded: ``--runs`` visits (default 10), ``--edits`` edits (default 60), and a
``--budget`` in seconds after which no new visit starts.

Usage::

    .venv/bin/python benchmarks/web_dashboard.py [--artifact DIR] [--runs 10] [--edits 60]

Writes ``benchmarks/results/web_dashboard.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from benchmarks import dashboard_browser as db  # the Chromium helpers shared with tests/browser

RESULTS = ROOT / "benchmarks" / "results"
FALLBACK_DIR = Path("/tmp/abstractor-web-bench")
GOALS = {"time_to_interactive_ms": 500.0, "keystroke_p50_ms": 40.0}

# Injected before any page script: types SAMPLE_TEXT when the page says it is interactive
# and timestamps the first render of it (milliseconds since navigation start).
_FIRST_RENDER_INIT = """
(() => {
  const TEXT = %s;
  const out = (window.__abstractorBench = {});
  const typeWhenReady = () => {
    const root = document.querySelector('.abstractor-root');
    const ta = root && root.querySelector('textarea.abstractor-textarea');
    const view = root && root.querySelector('.abstractor-text');
    if (!ta || !view || document.documentElement.dataset.abstractorReady !== 'true') return false;
    out.readyObservedMs = performance.now();
    const obs = new MutationObserver(() => {
      if (view.textContent === TEXT && view.querySelector('.abstractor-word')) {
        out.firstRenderMs = performance.now();
        obs.disconnect();
      }
    });
    obs.observe(view, {childList: true, subtree: true, characterData: true});
    out.typedMs = performance.now();
    ta.value = TEXT;
    ta.dispatchEvent(new InputEvent('input', {bubbles: true, inputType: 'insertFromPaste'}));
    return true;
  };
  const watch = new MutationObserver(() => { if (typeWhenReady()) watch.disconnect(); });
  watch.observe(document, {attributes: true, attributeFilter: ['data-abstractor-ready'], subtree: true, childList: true});
})();
"""

_TIMINGS_JS = """
() => {
  const nav = performance.getEntriesByType('navigation')[0] || {};
  const mark = performance.getEntriesByName('abstractor-interactive')[0];
  const res = (suffix) => {
    const r = performance.getEntriesByType('resource').find((e) => e.name.endsWith(suffix));
    return r ? {start: r.startTime, end: r.responseEnd, duration: r.duration} : null;
  };
  return {
    interactiveMs: mark ? mark.startTime : null,
    responseEndMs: nav.responseEnd ?? null,
    domContentLoadedMs: nav.domContentLoadedEventEnd ?? null,
    loadEventEndMs: nav.loadEventEnd ?? null,
    topics: res('/api/v1/topics'),
    webJs: res('/web.js'),
    bench: window.__abstractorBench || {},
  };
}
"""


def ensure_artifact(path: Path | None, train_docs: int) -> Path:
    """``path`` if it holds a model, else a small model trained once under /tmp."""
    if path is not None and (path / "manifest.json").is_file():
        return path
    target = FALLBACK_DIR / "model"
    if (target / "manifest.json").is_file():
        return target
    import pandas as pd

    from abstractor_widgets import Abstractor, Corpus
    from abstractor_widgets.corpus import default_corpus_path

    source = default_corpus_path()
    if source is None or not Path(source).is_file():
        raise SystemExit("no model at --artifact and no shared corpus to train one on")
    db.log(f"training a fallback model on {train_docs:,} abstracts of {source} into {target}")
    frame = pd.read_parquet(source).iloc[:train_docs]
    Abstractor.train(Corpus.from_frame(frame, name="web-bench"), 20, out=target, passes=3, progress=False, random_state=0)
    return target


def serve(artifact: Path, log_dir: Path) -> db.Server:
    port = db.free_port()
    cmd = [sys.executable, "-c", "import sys; from abstractor_widgets.cli import main; sys.exit(main())",
           "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return db.Server("abstractor-serve", cmd, db.server_env(artifact), port, log_dir / "abstractor-serve.log",
                     ready_path="/ready")  # fmt: skip


def wait_ready(url: str, timeout: float = 120.0) -> float:
    """Poll /ready until 200; return the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "ready", timeout=5) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        time.sleep(0.2)
    raise TimeoutError(f"{url}ready not 200 after {timeout:.0f} s")


def visit(browser: Any, url: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """One first-time visit: navigation → interactive → first coloured render of SAMPLE_TEXT."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        external: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(url) else external.append(r.url))
        page.add_init_script(_FIRST_RENDER_INIT % json.dumps(db.SAMPLE_TEXT))
        start = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=timeout * 1000)
        page.wait_for_function("() => window.__abstractorBench && window.__abstractorBench.firstRenderMs",
                               timeout=timeout * 1000, polling=20)  # fmt: skip
        wall = time.perf_counter() - start
        t = page.evaluate(_TIMINGS_JS)
        bench = t.pop("bench")
        return {
            "interactive_ms": _r(t["interactiveMs"]),
            "first_coloured_render_ms": _r(bench.get("firstRenderMs")),
            "typed_to_render_ms": _r(bench["firstRenderMs"] - bench["typedMs"]),
            "html_response_end_ms": _r(t["responseEndMs"]),
            "dom_content_loaded_ms": _r(t["domContentLoadedMs"]),
            "topics_request_ms": _r((t["topics"] or {}).get("duration")),
            "web_js_request_ms": _r((t["webJs"] or {}).get("duration")),
            "wall_goto_to_render_s": round(wall, 3),
            "external_requests": external,
        }
    finally:
        context.close()


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1)


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def measure(artifact: Path, *, runs: int, edits: int, budget: float, log_dir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {
        "benchmark": "web_dashboard",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": db.model_info(artifact),
        "machine": db.machine(),
        "goals": GOALS,
        "definitions": {
            "warm_server": "/ready is 200 and one unmeasured visit has loaded the page and run one analysis",
            "interactive_ms": "navigation start -> performance.mark('abstractor-interactive') (view rendered with the topics, input ready); new browser context per visit",
            "first_coloured_render_ms": "navigation start -> first render of SAMPLE_TEXT with coloured words, the text typed by an injected script the instant the page is interactive",
            "keystroke_ms": "input event of a one-character edit -> DOM shows exactly that text (performance.now in the page)",
        },
    }
    deadline = time.monotonic() + budget
    server = serve(artifact, log_dir)
    server.start(timeout=120)
    try:
        results["server_ready_s"] = round(wait_ready(server.url), 2)
        with sync_playwright() as pw:
            browser = db.launch_browser(pw)
            try:
                db.log("warm-up visit")
                visit(browser, server.url)
                db.log(f"{runs} first-time visits")
                visits = []
                for _ in range(runs):
                    if time.monotonic() > deadline:
                        db.log("time budget reached: no more visits")
                        break
                    visits.append(visit(browser, server.url))
                results["visits"] = visits
                results["time_to_interactive"] = {
                    key: {"median": _median(visits, key), "min": min((v[key] for v in visits), default=None),
                          "max": max((v[key] for v in visits), default=None)}  # fmt: skip
                    for key in ("interactive_ms", "first_coloured_render_ms", "typed_to_render_ms",
                                "html_response_end_ms", "dom_content_loaded_ms", "topics_request_ms")  # fmt: skip
                }
                results["external_requests"] = sorted({u for v in visits for u in v["external_requests"]})

                db.log(f"keystroke latency: {edits} one-character edits")
                context = browser.new_context(viewport={"width": 1280, "height": 1000})
                try:
                    page = context.new_page()
                    page.goto(server.url)
                    page.wait_for_selector(db.TEXTAREA, state="visible")
                    # steady state: the corpus explorer under the analyser has loaded and drawn its
                    # map (its code, points and first WebGL drawing take the main thread for a while)
                    page.wait_for_function(
                        "() => document.documentElement.dataset.exploreReady === 'true' && "
                        "(!document.querySelector('.abstractor-map-frame[data-points]') || "
                        "document.querySelector('.abstractor-explore').dataset.mapReady === 'true')", timeout=120_000)
                    page.evaluate("() => performance.setResourceTimingBufferSize(10000)")
                    lat = db.measure_keystroke_latency(page, edits=edits, immediate=False)
                    # the HTTP part of each edit: POST /api/v1/analyze, request start -> response end
                    trips = page.evaluate(
                        "() => performance.getEntriesByType('resource')"
                        ".filter((e) => e.name.endsWith('/api/v1/analyze')).map((e) => e.responseEnd - e.startTime)"
                    )
                    lat["analyze_round_trip_ms"] = db.summarize(trips[-edits:])
                finally:
                    context.close()
                lat["server_analysis_ms"] = lat.pop("kernel_analysis_ms")
                lat["text_chars"] = len(db.SAMPLE_TEXT) + 1
                results["keystroke_latency_ms"] = lat
            finally:
                browser.close()
    finally:
        server.stop()
    results["load_average_after"] = db.machine().get("load_average")
    tti = results["time_to_interactive"]["interactive_ms"]["median"]
    p50 = results["keystroke_latency_ms"].get("p50")
    results["goals_met"] = {
        "time_to_interactive": tti is not None and tti <= GOALS["time_to_interactive_ms"],
        "keystroke_p50": p50 is not None and p50 <= GOALS["keystroke_p50_ms"],
    }
    return results


def report(results: dict[str, Any]) -> str:
    tti = results["time_to_interactive"]
    lat = results["keystroke_latency_ms"]
    srv = lat.get("server_analysis_ms", {})
    model = results["model"]
    lines = [
        "# Web dashboard (`abstractor serve`): time to interactive and keystroke latency",
        "",
        f"{results['date']}, model {model.get('path')} ({model.get('n_documents')} documents, K={model.get('n_topics')}), "
        f"{results['machine'].get('chromium', 'Chromium')}, load average before {results['machine'].get('load_average')} "
        f"/ after {results.get('load_average_after')} on {results['machine'].get('cpus')} CPUs.",
        "",
        f"| measure ({len(results['visits'])} first-time visits, warm server) | median | min | max | goal |",
        "|---|---|---|---|---|",
    ]
    names = {
        "interactive_ms": ("navigation → input ready (time to interactive)", f"≤ {GOALS['time_to_interactive_ms']:.0f} ms"),
        "first_coloured_render_ms": ("navigation → first coloured render of a typed abstract", ""),
        "typed_to_render_ms": ("  of which: typed → coloured (first analysis)", ""),
        "html_response_end_ms": ("navigation → HTML received", ""),
        "dom_content_loaded_ms": ("navigation → DOMContentLoaded", ""),
        "topics_request_ms": ("GET /api/v1/topics (duration)", ""),
    }
    for key, (name, goal) in names.items():
        s = tti[key]
        lines.append(f"| {name} | {s['median']} ms | {s['min']} ms | {s['max']} ms | {goal} |")
    lines += [
        "",
        f"Keystroke → coloured render over {lat.get('n')} one-character edits ({lat.get('timeouts')} timeouts), "
        f"{lat.get('text_chars')}-character abstract: p50 **{lat.get('p50')} ms**, p95 {lat.get('p95')} ms, "
        f"max {lat.get('max')} ms (goal p50 ≤ {GOALS['keystroke_p50_ms']:.0f} ms); of which the HTTP round trip of "
        f"`POST /api/v1/analyze` p50 {lat.get('analyze_round_trip_ms', {}).get('p50')} ms and the server's analysis "
        f"p50 {srv.get('p50')} ms.",
        "",
        f"Goals met: {results['goals_met']}. Requests to other hosts: {results['external_requests'] or 'none'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=Path(os.environ.get("ABSTRACTOR_ARTIFACT") or ROOT / "artifacts" / "default"))
    parser.add_argument("--train-docs", type=int, default=4000, help="size of the fallback model (no --artifact)")
    parser.add_argument("--runs", type=int, default=10, help="first-time visits measured")
    parser.add_argument("--edits", type=int, default=60, help="one-character edits timed")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds after which no new visit starts")
    parser.add_argument("--out", type=Path, default=RESULTS / "web_dashboard.json")
    parser.add_argument("--log-dir", type=Path, default=db.TEST_OUTPUT / "bench-logs")
    args = parser.parse_args(argv)
    if not Path(db.CHROMIUM).exists():
        parser.error(f"{db.CHROMIUM} is missing (apt-get install chromium)")
    artifact = ensure_artifact(args.artifact.resolve(), args.train_docs)
    results = measure(artifact, runs=max(1, args.runs), edits=max(1, args.edits), budget=args.budget, log_dir=args.log_dir)
    text = report(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    args.out.with_suffix(".md").write_text(text + "\n")
    db.log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
