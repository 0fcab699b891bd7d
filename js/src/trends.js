// Topics over time: each topic's share of the papers per month, one SVG line per topic.
// The highlighted topic's line is drawn thick and on top; the others are thin and faded.
// Built with createElementNS and attributes only (never innerHTML).

import { h } from "./dom.js";
import { pct, safeColor, safePattern } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 220;
const PAD = { l: 40, r: 12, t: 10, b: 28 };
// months with fewer papers are left out: one paper's mix is not a trend
const MIN_PAPERS = 10;
const MIN_PAPERS_CATEGORY = 5;
const DASH = { solid: "", dashed: "6 3", dotted: "2 3", double: "", wavy: "8 2 2 2" };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined && v !== "") el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

/** Float32Array of a share array sent as bytes (DataView), or a nested list flattened. */
function flat(value) {
  if (value && value.buffer instanceof ArrayBuffer) {
    return new Float32Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  }
  return Float32Array.from((Array.isArray(value) ? value : []).flat(2).map(Number));
}

const cache = new WeakMap();
function arrays(trends) {
  if (!trends || typeof trends !== "object") return { shares: new Float32Array(0), cat: new Float32Array(0) };
  if (!cache.has(trends)) cache.set(trends, { shares: flat(trends.shares), cat: flat(trends.category_shares) });
  return cache.get(trends);
}

/** Series of one category (or all papers): {months, counts, share(m, k)}. */
export function seriesFor(trends, category) {
  const months = Array.isArray(trends?.months) ? trends.months : [];
  const K = Number(trends?.n_topics) || 0;
  const M = months.length;
  const c = category ? (trends?.categories || []).indexOf(category) : -1;
  const { shares, cat } = arrays(trends);
  if (category && c < 0) return { months, counts: months.map(() => 0), share: () => 0 };
  const data = c < 0 ? shares : cat;
  const base = c < 0 ? 0 : c * M * K;
  return {
    months,
    counts: c < 0 ? trends?.counts || [] : trends.category_counts[c] || [],
    share: (m, k) => Number(data[base + m * K + k]) || 0,
  };
}

/** Months worth drawing: those with papers (a corpus's early years are sparse). */
export function visibleMonths(counts, minPapers = 1) {
  const idx = [];
  counts.forEach((n, i) => {
    if (n >= minPapers) idx.push(i);
  });
  return idx;
}

export function createTrendChart({ onTopic, onCategory }) {
  const select = h("select", { class: "abstractor-trend-category", "aria-label": "Papers of the trend chart" });
  const plot = svg("svg", { class: "abstractor-trend-svg", viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "none" });
  const caption = h("p", { class: "abstractor-hint abstractor-trend-caption" });
  const chips = h("div", { class: "abstractor-trend-topics", role: "group", "aria-label": "Highlight a topic's trend" });
  const el = h(
    "div",
    { class: "abstractor-trends" },
    h("div", { class: "abstractor-section-head" }, h("label", { class: "abstractor-n-label" }, "Papers: ", select)),
    plot,
    caption,
    chips,
  );
  select.addEventListener("change", () => onCategory?.(select.value));
  let state = { trends: null, topics: [], category: "", highlight: null };

  function render(trends, topics, category, highlight) {
    const optionsChanged = trends !== state.trends;
    state = { trends, topics, category, highlight };
    if (optionsChanged) {
      const cats = Array.isArray(trends?.categories) ? trends.categories : [];
      select.replaceChildren(
        h("option", { value: "", text: "all papers" }),
        ...cats.map((c) => h("option", { value: c, text: c })),
      );
    }
    select.value = category || "";
    draw();
  }

  function draw() {
    const { trends, topics, category, highlight } = state;
    const s = seriesFor(trends, category);
    // and months far sparser than the busiest (2%) would only add noise
    const busiest = Math.max(0, ...s.counts.map(Number).filter(Number.isFinite));
    const minPapers = Math.max(category ? MIN_PAPERS_CATEGORY : MIN_PAPERS, Math.ceil(0.02 * busiest));
    const idx = visibleMonths(s.counts, minPapers);
    plot.replaceChildren();
    if (idx.length < 1) {
      caption.textContent = "No dated papers to chart.";
      plot.setAttribute("aria-label", "Topics over time: no data");
      chips.replaceChildren();
      return;
    }
    const K = topics.length;
    let ymax = 0;
    for (const i of idx) for (let k = 0; k < K; k += 1) ymax = Math.max(ymax, s.share(i, k));
    ymax = Math.max(0.05, Math.ceil(ymax * 20) / 20);
    const x = (j) => PAD.l + (idx.length === 1 ? (W - PAD.l - PAD.r) / 2 : (j * (W - PAD.l - PAD.r)) / (idx.length - 1));
    const y = (v) => H - PAD.b - (v / ymax) * (H - PAD.t - PAD.b);
    const axis = svg("g", { class: "abstractor-trend-axis" });
    for (const v of [0, ymax / 2, ymax]) {
      axis.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v) }));
      axis.append(svg("text", { x: PAD.l - 4, y: y(v) + 3, "text-anchor": "end" }, document.createTextNode(pct(v))));
    }
    const step = Math.max(1, Math.ceil(idx.length / 8));
    idx.forEach((i, j) => {
      const last = idx.length - 1;
      if ((j % step && j !== last) || (j !== last && last - j < step / 2)) return;
      const anchor = j === last && j ? "end" : j === 0 ? "start" : "middle";
      axis.append(svg("text", { x: x(j), y: H - 8, "text-anchor": anchor }, document.createTextNode(s.months[i])));
    });
    plot.append(axis);
    const on = Number.isInteger(highlight);
    const lines = [];
    for (let k = 0; k < K; k += 1) {
      const pts = idx.map((i, j) => `${x(j).toFixed(1)},${y(s.share(i, k)).toFixed(1)}`).join(" ");
      const line = svg("polyline", {
        points: pts,
        class: `abstractor-trend-line${on && k === highlight ? " abstractor-on" : ""}${on && k !== highlight ? " abstractor-off" : ""}`,
        stroke: safeColor(topics[k]?.color),
        "stroke-dasharray": DASH[safePattern(topics[k]?.pattern)],
        "data-topic": String(k),
      });
      line.append(svg("title", {}, document.createTextNode(`${topics[k]?.label || `Topic ${k}`}`)));
      line.addEventListener("click", () => onTopic?.(k));
      lines.push(line);
    }
    if (on && lines[highlight]) lines.push(lines.splice(highlight, 1)[0]); // drawn last: on top
    plot.append(...lines);
    const total = idx.reduce((a, i) => a + (s.counts[i] || 0), 0);
    const last = idx[idx.length - 1];
    const first = idx[0];
    const name = (k) => topics[k]?.label || `Topic ${k}`;
    const summary = on
      ? `${name(highlight)}: ${pct(s.share(first, highlight))} of papers in ${s.months[first]}, ${pct(s.share(last, highlight))} in ${s.months[last]}`
      : `Share of each topic per month (months with at least ${minPapers} papers), ${total.toLocaleString("en")} papers`;
    plot.setAttribute("aria-label", `Topics over time${category ? ` in ${category}` : ""}. ${summary}.`);
    caption.textContent = `${summary}${category ? ` (${category})` : ""}. Click a line or a topic to highlight it.`;
    plot.dataset.highlight = on ? String(highlight) : "";
    chips.replaceChildren(
      ...topics.map((t, k) =>
        h(
          "button",
          {
            type: "button",
            class: `abstractor-trend-chip${highlight === k ? " abstractor-on" : ""}`,
            "aria-pressed": String(highlight === k),
            dataset: { topic: String(k) },
            style: { "--abstractor-c": safeColor(t?.color) },
            onclick: () => onTopic?.(k),
          },
          h("span", { class: "abstractor-trend-swatch", "aria-hidden": "true" }),
          `${k} ${name(k)}`,
        ),
      ),
    );
  }

  function setHighlight(highlight) {
    if (state.highlight === highlight) return;
    state = { ...state, highlight };
    draw();
  }

  return { el, render, setHighlight };
}
