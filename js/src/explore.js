// anywidget front end of abstractor_widgets.ExploreWidget: the corpus map, topics over
// time, filters and export, next to the analyser (AbstractorWidget) it follows.
//
// State comes from synced traitlets; the map's points arrive as binary buffers (DataView):
// map_points (float32 x, y interleaved), map_topics (uint8), map_mask (uint8 or empty), and
// for a sampled map (a large corpus: n_points < n_documents) map_rows (uint32 corpus row of
// each point). Messages to the kernel carry corpus rows: {type: "hover", row},
// {type: "open", row}, {type: "select"} + one uint32 buffer of rows, and on a sampled map
// {type: "select_region", polygon: [[x, y], ...]} (every paper inside, drawn or not);
// {type: "export", what, format}.
// From the kernel: {type: "hover", row, id, title, ...}, {type: "download", filename, mime, text}.

import { h, uid } from "./dom.js";
import { download, exportButtons } from "./export.js";
import { createFilters } from "./filters.js";
import { createCorpusMap } from "./map.js";
import { watchTheme } from "./theme.js";
import { createTrendChart } from "./trends.js";

export { createCorpusMap } from "./map.js";
export { createTrendChart } from "./trends.js";

/** A typed-array view of a synced bytes trait (DataView, ArrayBuffer or typed array). */
export function view(value, Type) {
  if (!value) return new Type(0);
  const buffer = value.buffer instanceof ArrayBuffer ? value.buffer : value instanceof ArrayBuffer ? value : null;
  if (!buffer) return new Type(0);
  const offset = value.byteOffset || 0;
  const length = value.byteLength ?? buffer.byteLength;
  if (offset % Type.BYTES_PER_ELEMENT) return new Type(buffer.slice(offset, offset + length));
  return new Type(buffer, offset, Math.floor(length / Type.BYTES_PER_ELEMENT));
}

function render({ model, el }) {
  const ids = { map: uid(), trends: uid(), sample: uid() };
  const subs = [];
  const on = (event, fn) => {
    model.on(event, fn);
    subs.push([event, fn]);
  };
  const get = (key, fallback) => {
    const v = model.get(key);
    return v === undefined || v === null ? fallback : v;
  };
  const send = (msg, buffers) => model.send(msg, undefined, buffers);

  // not an .abstractor-root: selectors scoped to the analyser never match the explorer
  const root = h("div", { class: "abstractor-explore", "data-lm-suppress-shortcuts": "true" });
  const errorBox = h("div", { class: "abstractor-error abstractor-explore-error", role: "alert", hidden: true });
  const filters = createFilters({
    onApply: (value) => {
      model.set("filters", value);
      model.save_changes();
    },
  });
  const toggleTopic = (k) => {
    const next = get("highlight_topic", null) === k ? null : k;
    model.set("highlight_topic", next);
    model.save_changes();
  };
  const map = createCorpusMap({
    onHover: (row) => send({ type: "hover", row }),
    onOpen: (row) => send({ type: "open", row }),
    onSelect: (rows) => send({ type: "select" }, [rows.buffer]),
    onSelectRegion: (polygon) => send({ type: "select_region", polygon }),
    onTopic: toggleTopic,
  });
  const mapStatus = h("p", { class: "abstractor-empty abstractor-map-status", hidden: true });
  const sampleNote = h("p", { id: ids.sample, class: "abstractor-hint abstractor-map-sample", hidden: true });
  const lassoButton = h("button", { type: "button", class: "abstractor-btn", "aria-pressed": "false", text: "Lasso select" });
  let lasso = false;
  lassoButton.addEventListener("click", () => {
    lasso = !lasso;
    lassoButton.setAttribute("aria-pressed", String(lasso));
    lassoButton.textContent = lasso ? "Lasso: on (drag around papers)" : "Lasso select";
    map.setLasso(lasso);
  });
  const selectionInfo = h("span", { class: "abstractor-muted abstractor-selection-count", role: "status", "aria-live": "polite" });
  const clearButton = h("button", { type: "button", class: "abstractor-btn", text: "Clear selection", onclick: () => map.clearSelection() });
  const inViewButton = h("button", {
    type: "button",
    class: "abstractor-btn",
    text: "Select papers in view",
    title: "Select every paper shown in the map's current view (zoom in first)",
    onclick: () => map.selectInView(view(get("map_mask", null), Uint8Array)),
  });
  const zoomIn = h("button", { type: "button", class: "abstractor-icon-btn", "aria-label": "Zoom in", text: "+", onclick: () => map.zoom(1 / 1.5) });
  const zoomOut = h("button", { type: "button", class: "abstractor-icon-btn", "aria-label": "Zoom out", text: "\u2212", onclick: () => map.zoom(1.5) });
  const zoomReset = h("button", { type: "button", class: "abstractor-icon-btn", "aria-label": "Show the whole map", text: "\u2922", onclick: () => map.reset() });
  const mapSection = h(
    "section",
    { class: "abstractor-map-section", "aria-labelledby": ids.map },
    h(
      "div",
      { class: "abstractor-section-head" },
      h("h3", { id: ids.map, class: "abstractor-h", text: "Corpus map" }),
      h("div", { class: "abstractor-map-tools" }, zoomIn, zoomOut, zoomReset, lassoButton, inViewButton, clearButton),
    ),
    h("p", { class: "abstractor-hint", text: "Each dot is a paper, coloured by its main topic. Hover for its title, click to analyse it; drag to pan, scroll to zoom (or focus the map: arrows, + and -); Shift+drag, the lasso or \u201cSelect papers in view\u201d selects papers." }),
    mapStatus,
    sampleNote,
    map.el,
    h("div", { class: "abstractor-map-foot" }, selectionInfo, exportButtons("selection", "Selection", send), exportButtons("similar", "Similar papers", send)),
  );
  const trends = createTrendChart({
    onTopic: toggleTopic,
    onCategory: (c) => {
      model.set("trend_category", c);
      model.save_changes();
    },
  });
  const trendSection = h("section", { class: "abstractor-trend-section", "aria-labelledby": ids.trends }, h("h3", { id: ids.trends, class: "abstractor-h", text: "Topics over time" }), trends.el);

  root.append(
    h("div", { class: "abstractor-header" }, h("span", { class: "abstractor-title", text: "Explore the corpus" })),
    errorBox,
    filters.el,
    h("div", { class: "abstractor-explore-main" }, mapSection, trendSection),
  );
  el.replaceChildren(root);
  const stopTheme = watchTheme(root);
  // JupyterLab acts on Enter, Shift+Enter and single-letter keys in a notebook: keep the
  // keys pressed inside the explorer to the explorer (as the analyser does).
  root.addEventListener("keydown", (e) => e.stopPropagation());

  // ------------------------------------------------------------- drawing
  let mapDrawn = false;
  function drawMap() {
    const n = get("n_points", 0);
    const status = get("map_status", "");
    mapStatus.hidden = !status;
    mapStatus.textContent = status;
    map.el.hidden = !n;
    drawSampleNote();
    if (!n) return;
    const points = view(get("map_points", null), Float32Array);
    const topics = view(get("map_topics", null), Uint8Array);
    const rows = view(get("map_rows", null), Uint32Array);
    mapDrawn = false;
    map.setData(points, topics, get("topics", []), rows.length ? rows : null).then(() => {
      mapDrawn = true;
      drawMask();
      drawOverlay();
      root.dataset.mapReady = "true";
    });
  }
  function drawSampleNote() {
    const n = get("n_points", 0);
    const total = get("n_documents", 0);
    const sampled = n > 0 && total > n;
    sampleNote.hidden = !sampled;
    sampleNote.textContent = sampled
      ? `Showing ${n.toLocaleString("en")} of ${total.toLocaleString("en")} papers (a uniform sample). ` +
        "A lasso or \u201cSelect papers in view\u201d selects every paper inside, shown or not; the similar papers are ringed even when not shown."
      : "";
    if (sampled) map.frame.setAttribute("aria-describedby", ids.sample);
    else map.frame.removeAttribute("aria-describedby");
    root.dataset.sample = sampled ? `${n}/${total}` : "";
  }
  function drawMask() {
    if (mapDrawn) map.setMask(view(get("map_mask", null), Uint8Array));
  }
  function drawOverlay() {
    map.setTopics(get("topics", []), get("highlight_topic", null));
    map.setCentroids(get("centroids", []));
    map.setHere(get("here", []));
    map.setSimilar(get("similar_rows", []), get("similar_points", []));
  }
  function drawTrends() {
    trends.render(get("trends", {}), get("topics", []), get("trend_category", ""), get("highlight_topic", null));
  }
  function drawFilters() {
    filters.render(get("filters", {}), get("categories", []), get("month_range", []), get("filter_count", 0), get("n_documents", 0) || get("n_points", 0) || sumCounts());
  }
  const sumCounts = () => {
    const t = get("trends", {});
    return (t.counts || []).reduce((a, b) => a + b, 0) + (t.undated || 0);
  };
  function drawSelection() {
    const n = get("selection_count", 0);
    selectionInfo.textContent = n ? `${n.toLocaleString("en")} papers selected` : "No papers selected";
    root.dataset.selection = String(n);
    if (!n && mapDrawn) map.unmarkSelection(); // cleared (or refused) by the kernel
  }
  function drawError() {
    const e = get("error", "");
    errorBox.textContent = e;
    errorBox.hidden = !e;
  }
  function drawHighlight() {
    const k = get("highlight_topic", null);
    map.setTopics(get("topics", []), k);
    trends.setHighlight(k);
  }

  on("change:map_points", drawMap);
  on("change:n_points", drawMap);
  on("change:map_status", drawMap);
  on("change:map_mask", drawMask);
  on("change:here", () => map.setHere(get("here", [])));
  on("change:similar_rows", () => map.setSimilar(get("similar_rows", []), get("similar_points", [])));
  on("change:similar_points", () => map.setSimilar(get("similar_rows", []), get("similar_points", [])));
  on("change:n_documents", () => {
    drawSampleNote();
    drawFilters();
  });
  on("change:centroids", () => map.setCentroids(get("centroids", [])));
  on("change:topics", () => {
    drawOverlay();
    drawTrends();
  });
  on("change:highlight_topic", drawHighlight);
  on("change:trends", drawTrends);
  on("change:trend_category", drawTrends);
  on("change:filters", drawFilters);
  on("change:filter_count", drawFilters);
  on("change:selection_count", drawSelection);
  on("change:error", drawError);
  const onMsg = (msg) => {
    if (msg?.type === "hover") map.hoverInfo(msg);
    else if (msg?.type === "download") {
      root.dataset.lastDownload = `${msg.filename}:${String(msg.text || "").length}`;
      download(msg, root.ownerDocument);
    }
  };
  model.on("msg:custom", onMsg);

  drawError();
  drawFilters();
  drawTrends();
  drawSelection();
  // the frame needs its size before the WebGL canvas is created
  requestAnimationFrame(drawMap);

  return () => {
    for (const [event, fn] of subs) model.off(event, fn);
    model.off("msg:custom", onMsg);
    map.destroy();
    stopTheme();
  };
}

export default { render };
