// The corpus map: every paper a WebGL point (regl-scatterplot), coloured by its dominant
// topic with the widget's palette; topic labels at centroids, a "you are here" marker,
// rings around the similar papers, hover tooltip, click to open, lasso / box selection.
// Coordinates arrive as a Float32Array (x, y interleaved, in [-1, 1]); topics as a Uint8Array.
//
// A large corpus is drawn as a sample of its papers: `rows` (a Uint32Array) holds each
// point's corpus row, and everything this map reports is in corpus rows (hover, open,
// select; map-math.js translates). On a sampled map a lasso or "select in view" reports
// the region instead (onSelectRegion, map coordinates), so that whoever holds every
// paper's position selects all the papers inside it, drawn or not; the rings of the
// similar papers are placed from their coordinates, drawn or not.

import createScatterplot from "regl-scatterplot";
import { h } from "./dom.js";
import { createDirectRenderer } from "./map-renderer.js";
import { safeColor } from "./format.js";
import { columns, pointOf, project, rowOf, rowsOf, topicColors, viewPolygon } from "./map-math.js";

export { columns, project, rgba, topicColors } from "./map-math.js";

export function createCorpusMap({ onHover, onOpen, onSelect, onSelectRegion, onTopic, label = "Corpus map", performanceMode = false, pointSize = 3, direct = true, cache = true, cacheMinPoints = 10000, antialias = false, settleMs = 120 }) {
  const canvas = h("canvas", { class: "abstractor-map-canvas", "aria-hidden": "true" });
  const overlay = h("div", { class: "abstractor-map-overlay" });
  const here = h("div", { class: "abstractor-map-here", role: "img", "aria-label": "You are here: the analysed abstract", hidden: true }, h("span", { text: "you are here" }));
  const tip = h("div", { class: "abstractor-map-tip", role: "tooltip", hidden: true });
  const frame = h(
    "div",
    { class: "abstractor-map-frame", tabindex: "0", role: "application", "aria-label": `${label}. Arrow keys pan, + and - zoom, 0 resets.` },
    canvas,
    overlay,
    here,
    tip,
  );
  const el = h("div", { class: "abstractor-map" }, frame);

  let plot = null;
  let renderer = null;
  let n = 0;
  let topics = [];
  let highlight = null;
  let centroids = [];
  let herePoint = null;
  let similar = [];
  let similarAt = [];
  let rows = null; // corpus row of each point (a sampled map), or null: point i is row i
  let lassoing = false;
  let lasso = false;
  let hovered = -1;
  let ringEls = [];
  let labelEls = [];
  let firstPaint = null;
  let xs = new Float32Array(0);
  let ys = new Float32Array(0);
  const stats = { points: 0, firstPaintMs: null, frames: 0, renderer: "" };

  function ensurePlot() {
    if (plot) return plot;
    const { width, height } = frame.getBoundingClientRect();
    // our own renderer on the map's canvas (no copy per frame; map-renderer.js), else
    // regl-scatterplot's shared one
    // while the camera moves, a map of at least cacheMinPoints shows a cached image of its
    // points moved to the camera, and draws them again when it rests (map-renderer.js); fewer
    // points are cheaper to draw than the image
    const getView = cache ? () => (n >= cacheMinPoints ? plot?.get("cameraView") : null) : null;
    renderer = direct ? createDirectRenderer(canvas, { antialias, settleMs, getView }) : null;
    plot = createScatterplot({
      canvas,
      ...(renderer ? { renderer } : {}),
      width: Math.max(1, Math.round(width)),
      height: Math.max(1, Math.round(height)),
      pointSize,
      performanceMode,
      pointSizeSelected: 2,
      pointOutlineWidth: 1,
      opacityBy: null,
      backgroundColor: [0, 0, 0, 0],
      lassoColor: [0.2, 0.5, 1, 1],
      lassoMinDelay: 0,
      lassoMinDist: 2,
      deselectOnDblClick: false,
      deselectOnEscape: true,
      spatialIndexUseWorker: false,
      actionKeyMap: { lasso: "shift" },
    });
    stats.renderer = renderer ? (cache ? "direct+cache" : "direct") : "shared";
    stats.render = renderer?.stats || null;
    frame.dataset.renderer = stats.renderer;
    plot.subscribe("pointOver", (i) => {
      hovered = i;
      showTip(i);
      onHover?.(rowOf(i, rows));
    });
    plot.subscribe("pointOut", () => {
      hovered = -1;
      tip.hidden = true;
    });
    // (events arrive in order: lassoStart, then the lasso's select or deselect, then lassoEnd)
    plot.subscribe("lassoStart", () => {
      lassoing = true;
    });
    plot.subscribe("select", ({ points }) => {
      if (lassoing && rows) return; // a sampled map: the region follows (lassoEnd)
      if (lasso || lassoing || points.length > 1) onSelect?.(rowsOf(points, rows));
      else if (points.length === 1) {
        onOpen?.(rowOf(points[0], rows));
        plot.deselect({ preventEvent: true });
      }
    });
    plot.subscribe("deselect", () => {
      if (!(lassoing && rows)) onSelect?.(new Uint32Array(0));
    });
    plot.subscribe("lassoEnd", ({ coordinates }) => {
      const drawn = lassoing;
      lassoing = false;
      if (drawn && rows && Array.isArray(coordinates) && coordinates.length >= 3) onSelectRegion?.(coordinates.map(([x, y]) => [x, y]));
    });
    plot.subscribe("view", placeOverlay);
    plot.subscribe("draw", () => {
      stats.frames += 1;
      if (firstPaint === null && n) {
        firstPaint = performance.now();
        stats.firstPaintMs = firstPaint - stats.startedAt;
        frame.dataset.firstPaint = "true";
      }
    });
    return plot;
  }

  function showTip(i, info) {
    const t = Number.isInteger(info?.topic) ? topics[info.topic] : null;
    const parts = info
      ? [
          h("strong", { text: String(info.title || info.id || "") }),
          h("span", { class: "abstractor-map-tip-meta", text: [info.published, info.categories].filter(Boolean).join(" \u00B7 ") }),
          t ? h("span", { class: "abstractor-map-tip-meta", text: `topic ${info.topic}: ${t.label || ""}` }) : null,
          h("span", { class: "abstractor-map-tip-hint", text: "click to analyse this paper" }),
        ]
      : [h("span", { class: "abstractor-map-tip-meta", text: "\u2026" })];
    tip.replaceChildren(...parts.filter(Boolean));
    tip.dataset.row = String(rowOf(i, rows));
    tip.hidden = false;
    if (!plot || !n) return;
    const [x, y] = i >= 0 && i < n ? project(plot.get("cameraView"), frame.clientWidth, frame.clientHeight, xs[i], ys[i]) : [0, 0];
    const w = frame.clientWidth;
    tip.style.left = `${Math.max(4, Math.min(x + 10, w - tip.offsetWidth - 4))}px`;
    tip.style.top = `${Math.max(4, y + 10)}px`;
  }

  /** The kernel's answer to a hover: show it if the pointer is still there. */
  function hoverInfo(info) {
    if (info && hovered >= 0 && info.row === rowOf(hovered, rows)) showTip(hovered, info);
  }

  function colors() {
    plot?.set({ pointColor: topicColors(topics.length ? topics : [{}], highlight) });
  }

  /** The points (x, y interleaved), their topics, and for a sampled map each point's corpus row. */
  function setData(points, pointTopics, topicList, pointRows = null) {
    stats.startedAt = performance.now();
    topics = topicList;
    n = Math.min(points.length >> 1, pointTopics.length);
    rows = pointRows && pointRows.length ? pointRows.subarray(0, n) : null;
    lassoing = false;
    stats.points = n;
    frame.dataset.points = String(n);
    frame.dataset.sampled = rows ? "true" : "";
    const p = ensurePlot();
    stats.renderer = renderer ? (cache && n >= cacheMinPoints ? "direct+cache" : "direct") : "shared";
    frame.dataset.renderer = stats.renderer;
    stats.createMs = performance.now() - stats.startedAt;
    colors();
    firstPaint = null;
    const data = columns(points, pointTopics);
    xs = data.x;
    ys = data.y;
    const drawStart = performance.now();
    return p.draw(data, { zDataType: "categorical" }).then(() => {
      stats.drawMs = performance.now() - drawStart;
      p.set({ colorBy: "valueA" });
      placeOverlay();
    });
  }

  function setTopics(topicList, hl) {
    topics = topicList;
    highlight = Number.isInteger(hl) ? hl : null;
    colors();
    drawLabels();
  }

  function setMask(mask) {
    if (!plot || !n) return;
    if (!mask || !mask.length) {
      plot.unfilter({ preventEvent: true });
      frame.dataset.filtered = "";
      return;
    }
    const keep = [];
    for (let i = 0; i < n; i += 1) if (mask[i]) keep.push(i);
    frame.dataset.filtered = String(keep.length);
    plot.filter(keep, { preventEvent: true });
  }

  function setCentroids(list) {
    centroids = Array.isArray(list) ? list : [];
    drawLabels();
  }

  function drawLabels() {
    labelEls = centroids.map((c, k) => {
      if (!Array.isArray(c) || !topics[k]) return null;
      return h("button", {
        type: "button",
        class: `abstractor-map-label${highlight === k ? " abstractor-on" : ""}`,
        dataset: { topic: String(k) },
        "aria-pressed": String(highlight === k),
        title: `Highlight topic ${k}`,
        style: { "--abstractor-c": safeColor(topics[k]?.color) },
        onclick: () => onTopic?.(k),
        text: String(topics[k]?.label || `Topic ${k}`),
      });
    });
    placeOverlay();
  }

  function setHere(point) {
    herePoint = Array.isArray(point) && point.length === 2 ? point : null;
    here.hidden = !herePoint;
    frame.dataset.here = herePoint ? herePoint.join(",") : "";
    placeOverlay();
  }

  /** Ring the similar papers: their corpus rows and, drawn on the map or not, their [x, y]. */
  function setSimilar(similarRows, points = []) {
    similar = [];
    similarAt = [];
    (Array.isArray(similarRows) ? similarRows : []).forEach((r, i) => {
      // a drawn paper's ring on its point; a paper that is not drawn at its coordinates
      const p = Number.isInteger(r) ? pointOf(r, rows, n) : -1;
      const at = Array.isArray(points) ? points[i] : null;
      const xy = p >= 0 ? [xs[p], ys[p]] : Array.isArray(at) && at.length === 2 && at.every(Number.isFinite) ? at : null;
      if (xy && Number.isInteger(r) && r >= 0) {
        similar.push(r);
        similarAt.push(xy);
      }
    });
    ringEls = similar.map((r, i) => h("span", { class: "abstractor-map-ring", dataset: { row: String(r) }, title: `similar paper ${i + 1}` }));
    placeOverlay();
  }

  function placeOverlay() {
    if (!plot || !n) {
      overlay.replaceChildren();
      return;
    }
    const view = plot.get("cameraView");
    const w = frame.clientWidth;
    const hgt = frame.clientHeight;
    const at = (node, x, y) => {
      const [sx, sy] = project(view, w, hgt, x, y);
      const inside = sx >= -20 && sx <= w + 20 && sy >= -20 && sy <= hgt + 20;
      node.hidden = !inside;
      node.style.transform = `translate(${sx.toFixed(1)}px, ${sy.toFixed(1)}px)`;
    };
    const nodes = [];
    const placed = [];
    labelEls.forEach((node, k) => {
      if (!node) return;
      let [sx, sy] = project(view, w, hgt, centroids[k][0], centroids[k][1]);
      // labels never cover each other: move one down (then up) until it is clear
      const lw = node._w || 120;
      const lh = node._h || 18;
      const hits = (y) => placed.some((r) => Math.abs(r.x - sx) < (r.w + lw) / 2 + 2 && Math.abs(r.y - y) < (r.h + lh) / 2 + 1);
      for (let step = 1; hits(sy) && step < 12; step += 1) sy += (step % 2 ? step : -step) * (lh + 2); // +1, -1, +2, -2 ... rows
      placed.push({ x: sx, y: sy, w: lw, h: lh });
      node.hidden = sx < -20 || sx > w + 20 || sy < -20 || sy > hgt + 20;
      node.style.transform = `translate(${sx.toFixed(1)}px, ${sy.toFixed(1)}px)`;
      nodes.push(node);
    });
    similar.forEach((_row, i) => {
      const node = ringEls[i];
      at(node, similarAt[i][0], similarAt[i][1]);
      nodes.push(node);
    });
    overlay.replaceChildren(...nodes);
    let measured = false;
    for (const node of labelEls) {
      if (node && node._w === undefined && node.isConnected && node.offsetWidth) {
        node._w = node.offsetWidth;
        node._h = node.offsetHeight;
        measured = true;
      }
    }
    if (measured) {
      placeOverlay(); // again, with the labels' real sizes
      return;
    }
    if (herePoint) at(here, herePoint[0], herePoint[1]);
  }

  function setLasso(on) {
    lasso = Boolean(on);
    plot?.set({ mouseMode: lasso ? "lasso" : "panZoom" });
    frame.classList.toggle("abstractor-lasso", lasso);
  }

  /** Select the (unfiltered) papers now in view: a selection without a pointer. On a
   * sampled map, the points in view are selected on the map and the view's region is
   * reported (every paper in it is selected, drawn or not). */
  function selectInView(mask) {
    if (!plot || !n) return;
    // from the camera as it is now (regl-scatterplot's pointsInView is only updated when a
    // frame is drawn: right after a zoom key it can still be the previous view's)
    const view = plot.get("cameraView");
    const w = frame.clientWidth;
    const hgt = frame.clientHeight;
    const points = [];
    for (let i = 0; i < n; i += 1) {
      if (mask && mask.length && !mask[i]) continue;
      const [sx, sy] = project(view, w, hgt, xs[i], ys[i]);
      if (sx >= 0 && sx <= w && sy >= 0 && sy <= hgt) points.push(i);
    }
    plot.select(points, { preventEvent: true });
    if (rows) onSelectRegion?.(viewPolygon(view, w, hgt));
    else onSelect?.(Uint32Array.from(points));
  }

  function clearSelection() {
    if (!plot) return;
    if (rows) {
      // the selection may hold papers that are not drawn: always say it is cleared
      plot.deselect({ preventEvent: true });
      onSelect?.(new Uint32Array(0));
    } else plot.deselect();
  }

  /** Unmark the selected points without reporting it (the selection was cleared elsewhere). */
  function unmarkSelection() {
    plot?.deselect({ preventEvent: true });
  }

  function zoom(factor) {
    if (!plot) return;
    const d = plot.get("cameraDistance");
    plot.set({ cameraDistance: Math.min(20, Math.max(0.02, d * factor)) });
  }

  function pan(dx, dy) {
    if (!plot) return;
    const [x, y] = plot.get("cameraTarget");
    const d = plot.get("cameraDistance");
    plot.set({ cameraTarget: [x + dx * d * 0.1, y + dy * d * 0.1] });
  }

  function reset() {
    plot?.set({ cameraTarget: [0, 0], cameraDistance: 1 });
  }

  frame.addEventListener("keydown", (e) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (e.key in moves) pan(...moves[e.key]);
    else if (e.key === "+" || e.key === "=") zoom(1 / 1.25);
    else if (e.key === "-") zoom(1.25);
    else if (e.key === "0") reset();
    else if (e.key === "Escape" && rows) clearSelection();
    else return;
    e.preventDefault();
  });

  // For tests and benchmarks (a property of the element, not a global): where point i is
  // on screen, and the counters.
  frame.abstractorMap = {
    stats,
    get plot() {
      return plot;
    },
    screenPosition: (i) => (plot && i >= 0 && i < n ? project(plot.get("cameraView"), frame.clientWidth, frame.clientHeight, xs[i], ys[i]) : null),
    /** Where map coordinates (x, y) are on screen. */
    project: (x, y) => (plot ? project(plot.get("cameraView"), frame.clientWidth, frame.clientHeight, x, y) : null),
    /** The corpus row of point i, and the point of a corpus row (-1: not drawn). */
    rowOf: (i) => rowOf(i, rows),
    pointOf: (row) => pointOf(row, rows, n),
  };

  const resize = new ResizeObserver(() => {
    if (!plot) return;
    const { width, height } = frame.getBoundingClientRect();
    if (width > 0 && height > 0) plot.set({ width: Math.round(width), height: Math.round(height) });
    placeOverlay();
  });
  resize.observe(frame);

  return {
    el,
    frame,
    stats,
    setData,
    setTopics,
    setMask,
    setCentroids,
    setHere,
    setSimilar,
    setLasso,
    clearSelection,
    unmarkSelection,
    selectInView,
    hoverInfo,
    zoom,
    pan,
    reset,
    get plot() {
      return plot;
    },
    destroy() {
      resize.disconnect();
      plot?.destroy();
      renderer?.destroy();
      plot = null;
      renderer = null;
    },
  };
}
