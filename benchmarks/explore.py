"""Measurements of the corpus explorer (issue 15): layout, placement, trends, bytes, browser.

    .venv/bin/python benchmarks/explore.py                    # everything (about 15 minutes)
    .venv/bin/python benchmarks/explore.py --only layout      # layout, place, trends, bytes, browser

Sections
--------
layout   time and quality of the 2-D layout of the 60k corpus: UMAP (umap-learn) and t-SNE
         (openTSNE), on every paper and fitted on a 20,000-paper sample with the rest placed
         by the map's transform. Quality, over 2,000 random papers: how many of a paper's 10
         nearest neighbours in feature space stay among its 10 nearest on the map (kNN
         preservation), and how often its 10 map neighbours share its dominant topic.
         Placement error: papers fitted on, placed again by the transform as if new (own row
         left out): median distance to their laid-out position, as a share of the map's width.
place    placing one abstract: the transform alone (feature row -> x, y; the pruned exact search,
         and side by side the full scan of every reference row) and from the text (tokenization,
         topic inference, LSA embedding, transform), on 300 held-out abstracts.
trends   TopicTrends.compute over the 60k doc-topic matrix (uncached), and a filtered one.
bytes    what the map sends to the browser for 60k papers (binary) vs the same as JSON lists.
voila    in the Voilà dashboard on the 60k model: from the explorer appearing to its map's first paint.
web      the same in the web dashboard of ``abstractor serve`` (three visits, nothing cached).
browser  headless Chromium (Debian's, SwiftShader WebGL: no GPU) on a static page with the
         bundled map module: first paint of 1k, 60k and 1M points (``--sizes``; time from handing
         the arrays to the map until its first draw event), pan / zoom frames per second (the
         camera moved every animation frame for 3 s; frames counted by the map's draw events),
         and the cost of a frame with the camera still (a hover: what a selection or each step
         of a lasso costs too), which grows with the points drawn and chose MAX_MAP_POINTS.

Results: ``benchmarks/results/explore.json`` and ``explore.md``; the machine's load average
is recorded with each section (2 shared cores: numbers vary with what else runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
ARTIFACT = ROOT / "artifacts" / "default"
CACHE = Path(os.environ.get("ABSTRACTOR_BENCH_CACHE", "/tmp/abstractor-bench")) / "explore"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def pctl(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))]


# -- layout -----------------------------------------------------------------------------
def _quality(features: np.ndarray, coords: np.ndarray, dominant: np.ndarray, n: int = 2000) -> dict[str, float]:
    from sklearn.neighbors import NearestNeighbors

    sample = np.random.default_rng(0).choice(len(features), n, replace=False)
    near_x = NearestNeighbors(n_neighbors=11).fit(features).kneighbors(features[sample], return_distance=False)[:, 1:]
    near_y = NearestNeighbors(n_neighbors=11).fit(coords).kneighbors(coords[sample], return_distance=False)[:, 1:]
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(near_x, near_y)])
    return {
        "knn10_preservation": round(float(kept), 4),
        "map_neighbours_same_topic": round(float(np.mean(dominant[near_y] == dominant[sample][:, None])), 4),
        "feature_neighbours_same_topic": round(float(np.mean(dominant[near_x] == dominant[sample][:, None])), 4),
    }


def _placement_error(corpus_map: Any, n: int = 1000) -> float:
    """Reference papers placed again as if new (their own row left out)."""
    reference, positions = np.asarray(corpus_map.reference_), np.asarray(corpus_map.reference_coords_)
    rows = np.random.default_rng(1).choice(len(reference), n, replace=False)
    errors = []
    for row in rows:
        dots = reference @ reference[row]
        dots[row] = -np.inf
        k = corpus_map.k
        near = np.argpartition(-dots, k - 1)[:k]
        sims = dots[near]
        spread = max(float(sims.max() - sims.min()), 1e-3)
        w = np.exp((sims - sims.max()) / spread * 3.0)
        guess = (w[:, None] * positions[near]).sum(0) / w.sum()
        errors.append(float(np.linalg.norm(guess - positions[row])))
    width = float(np.ptp(positions[:, 0]))
    return round(statistics.median(errors) / width, 4)


def bench_layout(ab: Any, variants: list[str]) -> dict[str, Any]:
    from abstractor_widgets.layout import CorpusMap

    features = CorpusMap.features_of(ab)
    dominant = np.asarray(ab.model.doc_topics_).argmax(axis=1)
    out: dict[str, Any] = {"n_documents": len(features), "dim": int(features.shape[1])}
    for variant in variants:
        method, _, sample = variant.partition("-")
        max_fit = int(sample) if sample else None
        log(f"layout {variant} (load {load()})")
        before = load()
        # a fresh process: includes import and numba JIT compilation, as a training run pays them
        code = (
            "import sys, time, numpy as np; t = time.perf_counter(); sys.path.insert(0, %r)\n"
            "from abstractor_widgets import Abstractor\nfrom abstractor_widgets.layout import CorpusMap\n"
            "ab = Abstractor.load(%r, warm=False); f = CorpusMap.features_of(ab); t0 = time.perf_counter()\n"
            "m = CorpusMap(method=%r, max_fit=%r).fit(f)\n"
            "np.save(%r, np.asarray(m.coords_)); np.save(%r, np.asarray(m.reference_rows_))\n"
            "print(time.perf_counter() - t0, m.fit_seconds_)\n"
        ) % (str(ROOT), str(ARTIFACT), method, max_fit, str(CACHE / f"{variant}.coords.npy"), str(CACHE / f"{variant}.rows.npy"))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        fit_seconds = float(proc.stdout.split()[-1])
        coords = np.load(CACHE / f"{variant}.coords.npy")
        corpus_map = CorpusMap(method=method, max_fit=max_fit)
        rows = np.load(CACHE / f"{variant}.rows.npy")
        corpus_map.reference_, corpus_map.reference_coords_, corpus_map.coords_ = features[rows], coords[rows], coords
        out[variant] = {
            "fit_seconds": round(fit_seconds, 1),
            "process_seconds": round(wall, 1),
            "fitted_on": int(len(rows)),
            **_quality(features, coords, dominant),
            "placement_error_share_of_width": _placement_error(corpus_map),
            "load_before": before,
            "load_after": load(),
        }
        log(f"  {out[variant]}")
    return out


# -- place --------------------------------------------------------------------------------
def bench_place(ab: Any) -> dict[str, Any]:
    import pandas as pd

    from abstractor_widgets.layout import CorpusMap
    from abstractor_widgets.ranking import single_threaded_blas

    frame = pd.read_parquet("/work/shared/data/arxiv_ml_abstracts.parquet", columns=["abstract"])
    texts = frame["abstract"].sample(300, random_state=3).tolist()
    features = [CorpusMap.text_features(ab, t) for t in texts]
    transform, end_to_end, full_scan = [], [], []
    corpus_map = ab.corpus_map
    t0 = time.perf_counter()
    corpus_map._search()  # the pruned search's projection: loaded, or computed once per process
    search_ms = (time.perf_counter() - t0) * 1000
    same = 0
    with single_threaded_blas():
        for f in features:
            t0 = time.perf_counter()
            corpus_map.place_one(f)
            transform.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            corpus_map.place(f[None, :])  # the full scan (every reference row read)
            full_scan.append((time.perf_counter() - t0) * 1000)
            dots = np.asarray(corpus_map.reference_ @ f)
            same += set(corpus_map.nearest(f)[0].tolist()) == set(np.argpartition(-dots, corpus_map.k - 1)[: corpus_map.k].tolist())
        for text in texts:
            t0 = time.perf_counter()
            ab.place(text)
            end_to_end.append((time.perf_counter() - t0) * 1000)
    return {
        "transform_ms": {"p50": round(pctl(transform, 50), 3), "p95": round(pctl(transform, 95), 3)},
        "transform_full_scan_ms": {"p50": round(pctl(full_scan, 50), 3), "p95": round(pctl(full_scan, 95), 3)},
        "same_neighbours_as_full_scan": f"{same}/{len(features)}",
        "search_projection": "loaded" if "projection_" in corpus_map.__dict__ else f"computed in {search_ms:.0f} ms",
        "from_text_ms": {"p50": round(pctl(end_to_end, 50), 3), "p95": round(pctl(end_to_end, 95), 3)},
        "n": len(texts),
        "load": load(),
    }


# -- trends ---------------------------------------------------------------------------------
def bench_trends(ab: Any) -> dict[str, Any]:
    from abstractor_widgets.explore import Facets, TopicTrends

    t0 = time.perf_counter()
    facets = Facets.from_documents(ab.documents)
    facets_ms = (time.perf_counter() - t0) * 1000
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        TopicTrends.compute(ab.model.doc_topics_, facets)
        runs.append((time.perf_counter() - t0) * 1000)
    filtered = []
    for _ in range(5):
        t0 = time.perf_counter()
        ab.trends(filters={"categories": ["cs.CL"], "date_from": "2025-06"})
        filtered.append((time.perf_counter() - t0) * 1000)
    return {"facets_ms": round(facets_ms, 1), "compute_ms_median": round(statistics.median(runs), 1),
            "filtered_ms_median": round(statistics.median(filtered), 1), "load": load()}


# -- bytes ------------------------------------------------------------------------------------
def bench_bytes(ab: Any) -> dict[str, Any]:
    from abstractor_widgets.explore_widget import ExploreWidget

    x = ExploreWidget(ab.widget())
    binary = len(x.map_points) + len(x.map_topics)
    coords = np.frombuffer(x.map_points, dtype=np.float32).reshape(-1, 2)
    as_json = len(json.dumps({"points": np.round(coords.astype(float), 4).tolist(),
                              "topics": np.frombuffer(x.map_topics, dtype=np.uint8).tolist()}))
    from ipywidgets.widgets.widget import _remove_buffers

    state, _paths, buffers = _remove_buffers(x.get_state())
    code = {k: len(state.pop(k, "")) for k in ("_esm", "_css")}
    return {"n_points": x.n_points, "map_binary_bytes": binary, "map_as_json_lists_bytes_4_decimals": as_json,
            "all_binary_buffers_bytes": sum(len(memoryview(b).cast("B")) for b in buffers),
            "json_state_bytes_without_code": len(json.dumps(state)), "code_bytes_esm_css": code}


# -- browser ---------------------------------------------------------------------------------
PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="explore.css"></head>
<body><div class="abstractor-explore" style="width:900px"><div id="host"></div></div>
<script type="module">
import { createCorpusMap } from "./explore.js";
const PALETTE = ["#E69F00","#56B4E9","#009E73","#F0E442","#0072B2","#D55E00","#CC79A7"];
window.run = async (n, seconds, options = {}) => {
  const host = document.getElementById("host");
  host.replaceChildren();
  const map = createCorpusMap(options);
  host.append(map.el);
  await new Promise((r) => requestAnimationFrame(r));
  const pts = new Float32Array(2 * n), tp = new Uint8Array(n);
  let seed = 7; const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < n; i++) { const k = i % 20, a = k / 20 * 6.283, r = 0.6;
    pts[2*i] = r * Math.cos(a) + (rnd() - 0.5) * 0.5; pts[2*i+1] = r * Math.sin(a) + (rnd() - 0.5) * 0.5; tp[i] = k; }
  const topics = Array.from({length: 20}, (_, k) => ({label: "t" + k, color: PALETTE[k % 7]}));
  const t0 = performance.now();
  await map.setData(pts, tp, topics);
  await new Promise((r) => { const check = () => map.stats.firstPaintMs !== null ? r() : requestAnimationFrame(check); check(); });
  const firstPaint = map.stats.firstPaintMs;
  // a user looks at the map before moving it: wait until it rests (the cached renderer then
  // draws its image of the points offscreen; how long that took is reported)
  const restStart = performance.now();
  await new Promise((r) => { const check = () => (map.stats.renderer !== "direct+cache" || n < 10000 || map.stats.render.imageReady || performance.now() - restStart > 20000) ? r() : setTimeout(check, 50); setTimeout(check, 700); });
  const restMs = performance.now() - restStart;
  const frames0 = map.stats.frames; const r0 = map.stats.render ? { ...map.stats.render } : null; const start = performance.now(); let i = 0;
  await new Promise((resolve) => { const step = () => {
    i++; const t = (performance.now() - start) / 1000;
    map.plot.set({ cameraTarget: [0.3 * Math.sin(t * 2), 0.3 * Math.cos(t * 2)], cameraDistance: 1 + 0.5 * Math.sin(t) });
    if (t < seconds) requestAnimationFrame(step); else resolve(); };
    requestAnimationFrame(step); });
  const elapsed = (performance.now() - start) / 1000;
  const frames = map.stats.frames - frames0;
  const r1 = map.stats.render ? { ...map.stats.render } : null;
  map.destroy();
  return { n, renderer: map.stats.renderer, firstPaintMs: firstPaint, restMs, createMs: map.stats.createMs, drawMs: map.stats.drawMs, fps: frames / elapsed, rafPerSecond: i / elapsed,
           exactDrawsPerSecond: r1 && r0 ? (r1.exact - r0.exact) / elapsed : frames / elapsed };
};
window.mount = async (n, options = {}) => {
  const host = document.getElementById("host");
  host.replaceChildren();
  const map = createCorpusMap(options);
  host.append(map.el);
  await new Promise((r) => requestAnimationFrame(r));
  const pts = new Float32Array(2 * n), tp = new Uint8Array(n);
  let seed = 7; const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < n; i++) { const k = i % 20, a = k / 20 * 6.283, r = 0.6;
    pts[2*i] = r * Math.cos(a) + (rnd() - 0.5) * 0.5; pts[2*i+1] = r * Math.sin(a) + (rnd() - 0.5) * 0.5; tp[i] = k; }
  const topics = Array.from({length: 20}, (_, k) => ({label: "t" + k, color: PALETTE[k % 7]}));
  await map.setData(pts, tp, topics);
  await new Promise((r) => { const check = () => map.stats.firstPaintMs !== null ? r() : requestAnimationFrame(check); check(); });
  await new Promise((r) => setTimeout(r, 300));
  window.mounted = map;
  const box = map.frame.getBoundingClientRect();
  return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
};
window.gesture = async (kind, seconds) => {
  const map = window.mounted, canvas = map.frame.querySelector("canvas");
  const box = canvas.getBoundingClientRect(), cx = box.left + box.width / 2, cy = box.top + box.height / 2;
  const at = (x, y) => ({ clientX: x, clientY: y, bubbles: true, cancelable: true, view: window });
  const f0 = map.stats.frames, e0 = map.stats.render ? map.stats.render.exact : f0, start = performance.now();
  let k = 0;
  if (kind === "drag") canvas.dispatchEvent(new MouseEvent("mousedown", { ...at(cx, cy), button: 0, buttons: 1 }));
  await new Promise((resolve) => { const step = () => {
    k++; const t = (performance.now() - start) / 1000;
    if (kind === "drag") window.dispatchEvent(new MouseEvent("mousemove", { ...at(cx + 120 * Math.cos(2 * t), cy + 80 * Math.sin(2 * t)), buttons: 1 }));
    else canvas.dispatchEvent(new WheelEvent("wheel", { ...at(cx, cy), deltaY: Math.floor(t * 2) % 2 ? 30 : -30, deltaMode: 0 }));
    if (t < seconds) requestAnimationFrame(step); else resolve(); };
    requestAnimationFrame(step); });
  if (kind === "drag") window.dispatchEvent(new MouseEvent("mouseup", { ...at(cx, cy), button: 0 }));
  const elapsed = (performance.now() - start) / 1000;
  const exact = map.stats.render ? map.stats.render.exact : map.stats.frames;
  return { fps: Math.round((map.stats.frames - f0) / elapsed * 10) / 10, exact_draws_per_second: Math.round((exact - e0) / elapsed * 10) / 10,
           events_per_second: Math.round(k / elapsed * 10) / 10 };
};
// a frame with the camera still (what a hover, a selection or each step of a lasso costs): the
// hovered point changed -> its draw event -> the frame shown (two animation frames); 2 s apart,
// so that the offscreen image the renderer redraws after 600 ms idle is not counted
window.stillFrames = async (n, count = 6) => {
  await window.mount(n, {});
  const plot = window.mounted.plot;
  await new Promise((r) => setTimeout(r, 2500));
  const times = [];
  for (let k = 0; k < count; k++) {
    const t0 = performance.now();
    await new Promise((res) => { const off = plot.subscribe("draw", () => { plot.unsubscribe(off); res(); }); plot.hover(k * 7); });
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r())));
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 2000));
  }
  window.mounted.destroy();
  times.sort((a, b) => a - b);
  return { n, stillFrameMsMedian: times[Math.floor(times.length / 2)], stillFrameMsMax: times[times.length - 1] };
};
window.counters = () => ({ frames: window.mounted.stats.frames, exact: window.mounted.stats.render ? window.mounted.stats.render.exact : window.mounted.stats.frames, t: performance.now() });
window.baseline = async (seconds) => {
  let i = 0; const start = performance.now();
  await new Promise((resolve) => { const step = () => { i++; if (performance.now() - start < seconds * 1000) requestAnimationFrame(step); else resolve(); }; requestAnimationFrame(step); });
  return { rafPerSecond: i / ((performance.now() - start) / 1000) };
};
window.trendSwitch = async (months, topics) => {
  const { createTrendChart } = await import("./explore.js");
  const chart = createTrendChart({});
  document.getElementById("host").replaceChildren(chart.el);
  const shares = new Float32Array(months * topics).map((_, i) => ((i * 7919) % 100) / 1000);
  const trends = { months: Array.from({length: months}, (_, m) => `${2000 + Math.floor(m / 12)}-${String(1 + m % 12).padStart(2, "0")}`),
                   counts: Array(months).fill(100), n_topics: topics, shares: new DataView(shares.buffer),
                   categories: [], category_counts: [], category_shares: new DataView(new ArrayBuffer(0)) };
  const list = Array.from({length: topics}, (_, k) => ({label: "topic " + k, color: PALETTE[k % 7], pattern: "solid"}));
  chart.render(trends, list, "", null);
  const times = [];
  for (let r = 0; r < 3; r++) for (let k = 0; k < topics; k++) {
    const t0 = performance.now(); chart.setHighlight(k);
    await new Promise((res) => requestAnimationFrame(() => res()));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { months, topics, switchMsMedian: times[Math.floor(times.length / 2)], switchMsMax: times[times.length - 1],
           note: "setHighlight + the next animation frame (layout and paint of the SVG)" };
};
window.ready = true;
</script></body></html>"""


# the map's renderers (js/src/map-renderer.js): the default draws into its own canvas and moves
# a cached image of the points while the camera moves; "direct" draws every point every frame
# into its own canvas; "shared" is regl-scatterplot's own renderer (a shared canvas copied
# into the map's canvas every frame)
MAP_MODES = {"direct+cache": {}, "direct": {"cache": False}, "shared": {"direct": False}}


def _drag(page: Any, n: int, options: dict[str, Any], seconds: float = 3.0) -> dict[str, Any]:
    """Pointer gestures: a pan (mouse held down, moved in a circle) and wheel zooms in and out,
    one input event per animation frame for `seconds` each (events dispatched in the page, so
    the input rate is the display's, not Playwright's round trips), through regl-scatterplot's
    own mouse and wheel handlers (hover detection included)."""
    page.evaluate("([n, o]) => window.mount(n, o)", [n, options])
    out: dict[str, Any] = {g: page.evaluate("([g, s]) => window.gesture(g, s)", [g, seconds]) for g in ("drag", "wheel")}
    out["load"] = load()
    page.evaluate("() => window.mounted.destroy()")
    return out


def bench_browser(sizes: list[int], modes: list[str] | None = None, drag: bool = True) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    static = ROOT / "abstractor_widgets" / "static"
    page_dir = CACHE / "page"
    page_dir.mkdir(parents=True, exist_ok=True)
    for name in ("explore.js", "explore.css"):
        (page_dir / name).write_bytes((static / name).read_bytes())
    (page_dir / "index.html").write_text(PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(page_dir)))
    server.RequestHandlerClass.log_message = lambda *a, **k: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out: dict[str, Any] = {"method": "headless Debian Chromium, --disable-gpu (SwiftShader software WebGL), 900x440 map, "
                           "synthetic points in 20 clusters; first paint = setData() to the first draw event; "
                           "fps = draw events (frames shown) per second while the camera moves every animation frame "
                           "for 3 s; exactDrawsPerSecond = of those, frames drawn from the points (the rest show the "
                           "cached image of the points moved to the camera); drag/wheel = a real pointer (Playwright "
                           "mouse) panning in circles / zooming in and out for 3 s each"}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            page.wait_for_function("window.ready === true")
            out["chromium"] = browser.version
            out["baseline_empty_page"] = page.evaluate("(s) => window.baseline(s)", 3)
            out["trend_switch"] = page.evaluate("([m, k]) => window.trendSwitch(m, k)", [187, 20])
            log(f"  baseline {out['baseline_empty_page']} trend switch {out['trend_switch']}")
            for n in sizes:
                out[str(n)] = {}
                for mode, options in MAP_MODES.items():
                    if modes and mode not in modes:
                        continue
                    log(f"browser {n:,} points, {mode} (load {load()})")
                    result = page.evaluate("([n, s, o]) => window.run(n, s, o)", [n, 3, options])
                    result["load"] = load()
                    out[str(n)][mode] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in result.items()}
                    log(f"  {out[str(n)][mode]}")
                if not modes or "direct+cache" in modes:
                    still = page.evaluate("(n) => window.stillFrames(n)", n)
                    still["load"] = load()
                    out[str(n)]["still_frame"] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in still.items()}
                    log(f"  still frame (hover) {out[str(n)]['still_frame']}")
            out["drag_60000"] = {}
            for mode, options in MAP_MODES.items():
                if not drag or (modes and mode not in modes):
                    continue
                out["drag_60000"][mode] = _drag(page, 60_000, options)
                log(f"drag 60,000 points, {mode}: {out['drag_60000'][mode]}")
            browser.close()
    finally:
        server.shutdown()
    return out


VOILA_PAINT_JS = """
(() => {
  window.__explore = {};
  const mark = () => {
    const root = document.querySelector('.abstractor-explore');
    if (root && window.__explore.appeared === undefined) window.__explore.appeared = performance.now();
    const frame = root && root.querySelector('.abstractor-map-frame');
    if (document.querySelector('.abstractor-root') && window.__explore.analyser === undefined) window.__explore.analyser = performance.now();
    if (frame && frame.dataset.firstPaint === 'true' && window.__explore.painted === undefined) {
      window.__explore.painted = performance.now();
      window.__explore.points = Number(frame.dataset.points);
      const s = frame.abstractorMap && frame.abstractorMap.stats;
      if (s) window.__explore.map = { setDataAt: s.startedAt, createMs: s.createMs, drawMs: s.drawMs, renderer: s.renderer };
    }
  };
  new MutationObserver(mark).observe(document, { subtree: true, childList: true, attributes: true });
})();
"""


def bench_voila_paint(artifact: Path, visits: int = 3) -> dict[str, Any]:
    """In the Voilà dashboard: from the explorer appearing on the page to the map's first paint."""
    import tempfile


    from benchmarks.dashboard_browser import voila_server

    server = voila_server(artifact, log_dir=Path(tempfile.mkdtemp()), name="voila-explore-bench")
    server.start(timeout=120)
    try:
        runs = _paint_visits(server.url, visits, "visit", set_data=True)
    finally:
        server.stop()
    return {"method": "Voilà dashboard (preheated kernel), headless Chromium; a MutationObserver records when the "
                      "explorer's root enters the page and when its map reports its first draw",
            "runs": runs, "median_appear_to_first_paint_ms": statistics.median(r["appear_to_first_paint_ms"] for r in runs),
            "load": load()}


def _paint_visits(url: str, visits: int, label: str, set_data: bool) -> list[dict[str, Any]]:
    """``visits`` fresh visits of a page with the explorer: when it appeared and when its map
    first drew (``VOILA_PAINT_JS``); ``set_data`` adds the split at the map's setData."""
    from playwright.sync_api import sync_playwright

    from benchmarks.dashboard_browser import Session, launch_browser

    runs = []
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        for _ in range(visits):
            session = Session(browser, {"width": 1280, "height": 2000})
            session.page.add_init_script(VOILA_PAINT_JS)
            session.page.goto(url, wait_until="commit", timeout=120_000)
            session.page.wait_for_function("() => window.__explore && window.__explore.painted !== undefined", timeout=120_000)
            r = session.page.evaluate("() => window.__explore")
            m = r.get("map") or {}
            run = {"appear_to_first_paint_ms": round(r["painted"] - r["appeared"], 1), "points": r["points"],
                   "page_start_to_first_paint_ms": round(r["painted"], 1),
                   "analyser_appeared_ms": round(r.get("analyser", 0), 1), "explorer_appeared_ms": round(r["appeared"], 1)}
            if set_data:
                run["appear_to_set_data_ms"] = round(m["setDataAt"] - r["appeared"], 1) if m.get("setDataAt") else None
            run["webgl_setup_ms"] = round(m.get("createMs") or 0, 1)
            if set_data:
                run["set_data_to_first_paint_ms"] = round(r["painted"] - m["setDataAt"], 1) if m.get("setDataAt") else None
            runs.append({**run, "renderer": m.get("renderer"), "load": load()})
            log(f"  {label}: {runs[-1]}")
            session.close()
        browser.close()
    return runs


def bench_web_paint(artifact: Path, visits: int = 3) -> dict[str, Any]:
    """In the web dashboard of ``abstractor serve``: from the explorer appearing to its map's first paint."""
    import tempfile


    from benchmarks.dashboard_browser import Server, free_port, server_env

    port = free_port()
    cmd = [sys.executable, "-c", "import sys; from abstractor_widgets.cli import main; sys.exit(main())",
           "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port)]
    server = Server("abstractor-serve-bench", cmd, server_env(artifact), port, Path(tempfile.mkdtemp()) / "serve.log",
                    ready_path="/api/v1/topics")
    server.start(timeout=120)
    try:
        runs = _paint_visits(server.url, visits, "web visit", set_data=False)
    finally:
        server.stop()
    return {"method": "abstractor serve's web page, headless Chromium, a new context per visit (nothing cached); the "
                      "explorer's root entering the page (after its code and data arrived) to its map's first draw",
            "runs": runs, "median_appear_to_first_paint_ms": statistics.median(r["appear_to_first_paint_ms"] for r in runs),
            "median_page_start_to_first_paint_ms": statistics.median(r["page_start_to_first_paint_ms"] for r in runs),
            "load": load()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["layout", "place", "trends", "bytes", "browser", "voila", "web"])
    parser.add_argument("--variants", nargs="*", default=["umap", "umap-20000", "tsne-20000"])
    parser.add_argument("--artifact", default=None, help="a 60k model with a map (for place/bytes); built in the cache if absent")
    parser.add_argument("--sizes", nargs="*", type=int, default=[1_000, 60_000, 1_000_000], help="browser: map sizes (points)")
    parser.add_argument("--modes", nargs="*", choices=sorted(MAP_MODES), default=None, help="browser: renderers (default all)")
    parser.add_argument("--json", type=Path, default=None, help="results file (default benchmarks/results/explore.json)")
    parser.add_argument("--no-drag", action="store_true", help="browser: skip the pointer gestures on 60k points")
    args = parser.parse_args(argv)
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results_path = args.json or RESULTS / "explore.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "load_at_start": load(), "date": time.strftime("%Y-%m-%d %H:%M")}

    from abstractor_widgets import Abstractor

    ab = Abstractor.load(ARTIFACT, warm=False)
    if "layout" in args.only:
        results["layout"] = bench_layout(ab, args.variants)
        results_path.write_text(json.dumps(results, indent=2))
    mapped_path = Path(args.artifact) if args.artifact else CACHE / "default-with-map"
    if {"place", "bytes", "voila", "web"} & set(args.only):
        if not (mapped_path / "manifest.json").exists():
            log(f"building {mapped_path} (a copy of {ARTIFACT} with its map)")
            import shutil

            shutil.copytree(ARTIFACT, mapped_path)
            Abstractor.load(mapped_path, warm=False).build_map()
        mapped = Abstractor.load(mapped_path)
        results["map_artifact"] = {"path": str(mapped_path), "map": mapped.manifest.get("map")}
        if "place" in args.only:
            results["place"] = bench_place(mapped)
            log(f"place {results['place']}")
        if "bytes" in args.only:
            results["bytes"] = bench_bytes(mapped)
            log(f"bytes {results['bytes']}")
    if "trends" in args.only:
        results["trends"] = bench_trends(ab)
        log(f"trends {results['trends']}")
    if "browser" in args.only:
        results["browser"] = bench_browser(args.sizes, args.modes, drag=not args.no_drag)
    if "voila" in args.only:
        results["voila_first_paint"] = bench_voila_paint(mapped_path)
        log(f"voila {results['voila_first_paint']}")
    if "web" in args.only:
        results["web_first_paint"] = bench_web_paint(mapped_path)
        log(f"web {results['web_first_paint']}")
    results_path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
