// A stand-in for anywidget's `model` of ExploreWidget that talks to `abstractor serve`'s
// HTTP API instead of a kernel comm, so the explorer's own view (explore.js) runs on the
// web dashboard with no kernel per visitor. It keeps ExploreWidget's traits locally and
// plays the kernel's part:
//   * the map: GET map (size, label positions, categories, months) and GET map/points
//     (one binary body: float32 x, y interleaved, then uint8 dominant topics, and for a
//     sampled map of a large corpus the uint32 corpus row of each point) once;
//   * filters (set + save_changes) -> GET trends?... and GET map/mask?... (one bit a
//     paper); on success `trends`, `filter_count`, `map_mask` change and the analyser
//     (HttpModel) ranks its similar papers among the kept papers; a refused filter sets
//     `error` and keeps the previous one (as the kernel's validation does);
//   * follows the analyser: its `here`, `similar_rows` and its hits' x, y (asked with each
//     analysis) are the marker and the rings; `highlight_topic` is shared both ways, `topics` copied;
//   * send({type: "hover", row}) -> GET map/rows/{row} (cached) -> a "hover" message;
//     {type: "open", row} -> the analyser loads that paper; {type: "select"} + one uint32
//     buffer of rows -> `selection_count` (the rows stay here: the selection is exported
//     by POST export, with the similar papers' ids and scores for "similar");
//     {type: "select_region", polygon} (a sampled map's lasso) -> POST map/select with the
//     filters: the rows of every paper inside, drawn or not.
// Every row here is a corpus row; map-math.js translates map points.
// Latest wins for filters (an older answer is never applied).
//
// DOM-free (fetch, atob, typed arrays): node's test runner checks it.

import { Listeners } from "./listeners.js";
import { errorMessage } from "./http-model.js";
import { pointMask } from "./map-math.js";

const WRITABLE = new Set(["highlight_topic", "trend_category", "filters"]);
const EMPTY_FILTERS = { categories: [], date_from: "", date_to: "", keyword: "" };
const HOVER_CACHE = 2000;

/** The filters as a query string (`categories` repeated; empty fields left out). */
export function filterQuery(filters) {
  const params = new URLSearchParams();
  for (const c of Array.isArray(filters?.categories) ? filters.categories : []) params.append("categories", String(c));
  for (const key of ["date_from", "date_to", "keyword"]) if (filters?.[key]) params.append(key, String(filters[key]));
  const query = params.toString();
  return query ? `?${query}` : "";
}

/** Normalised filters (the shape ExploreWidget.filters has). */
export function normalFilters(value) {
  const v = value && typeof value === "object" ? value : {};
  return {
    categories: Array.isArray(v.categories) ? v.categories.map(String) : [],
    date_from: typeof v.date_from === "string" ? v.date_from : "",
    date_to: typeof v.date_to === "string" ? v.date_to : "",
    keyword: typeof v.keyword === "string" ? v.keyword.split(/\s+/).filter(Boolean).join(" ") : "",
  };
}

/** base64 -> DataView over a fresh ArrayBuffer. */
export function base64View(text) {
  const raw = typeof text === "string" ? atob(text) : "";
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return new DataView(bytes.buffer);
}

/** The trends JSON of the service with its share arrays as DataViews (what the chart reads). */
export function decodeTrends(body) {
  if (!body || typeof body !== "object") return {};
  const { encoding, filter_count: _count, ...rest } = body;
  return { ...rest, shares: base64View(body.shares), category_shares: base64View(body.category_shares) };
}

/** One bit a paper (least significant first) -> a Uint8Array of 0 / 1 per map point (n
 * points; `rows`: each point's corpus row on a sampled map). */
export function unpackMask(bytes, n, rows = null) {
  return pointMask(bytes, n, rows);
}

/** Split the map/points body: float32 x, y (8 bytes a point), then uint8 topics, then (a
 * sampled map: 13 bytes a point) uint32 corpus rows. `n`: the points (GET map's n_points). */
export function splitPoints(buffer, n = undefined) {
  const count = Number.isInteger(n) && n >= 0 ? n : Math.floor(buffer.byteLength / 9);
  const sampled = buffer.byteLength >= 13 * count && count > 0 && buffer.byteLength !== 9 * count;
  return {
    n: count,
    points: new DataView(buffer, 0, 8 * count),
    topics: new DataView(buffer, 8 * count, count),
    rows: sampled ? new DataView(buffer, 9 * count, 4 * count) : null,
  };
}

/** The rows of the similar papers that have one, and where each goes on the map ([x, y] or null). */
export function similarPoints(hits) {
  return (Array.isArray(hits) ? hits : []).filter((hit) => Number.isInteger(hit?.row)).map((hit) => (Number.isFinite(hit.x) && Number.isFinite(hit.y) ? [hit.x, hit.y] : null));
}

export class HttpExploreModel {
  /**
   * @param {object} options
   * @param {object} options.analyser  the page's HttpModel (the analyser's model)
   * @param {object} options.info  GET map
   * @param {ArrayBuffer|null} options.points  GET map/points (null without a map)
   * @param {object} options.trends  GET trends (decoded by decodeTrends)
   * @param {string} options.base  URL of the API ending in "/"
   * @param {Function} [options.fetch]
   */
  constructor({ analyser, info = {}, points = null, trends = {}, filterCount = 0, base = "api/v1/", fetch = globalThis.fetch?.bind(globalThis) }) {
    if (typeof fetch !== "function") throw new TypeError("HttpExploreModel needs a fetch implementation");
    this._fetch = fetch;
    this._base = base.endsWith("/") ? base : `${base}/`;
    this._analyser = analyser;
    this._version = typeof info.version === "string" ? info.version : "";
    const map = points ? splitPoints(points, Number.isInteger(info.n_points) ? info.n_points : undefined) : { n: 0, points: null, topics: null, rows: null };
    this._n = map.n;
    this._rows = map.rows ? new Uint32Array(map.rows.buffer.slice(map.rows.byteOffset, map.rows.byteOffset + map.rows.byteLength)) : null;
    this._total = Number.isInteger(info.n_documents) && info.n_documents >= map.n ? info.n_documents : map.n;
    this._listeners = new Listeners();
    this._dirty = new Set();
    this._generation = 0;
    this._controller = null;
    this._hover = new Map();
    this._selected = new Uint32Array(0);
    this._selectGeneration = 0;
    this._state = {
      map_points: map.points,
      map_topics: map.topics,
      map_rows: this._rows ? new DataView(this._rows.buffer) : null,
      map_mask: null,
      n_points: map.n,
      n_documents: this._total,
      map_status: typeof info.status === "string" ? info.status : "",
      centroids: Array.isArray(info.centroids) ? info.centroids : [],
      here: analyser?.get("here") || [],
      similar_rows: analyser?.get("similar_rows") || [],
      similar_points: similarPoints(analyser?.get("similar")),
      selection_count: 0,
      topics: analyser?.get("topics") || [],
      highlight_topic: analyser?.get("highlight_topic") ?? null,
      trends,
      trend_category: "",
      filters: { ...EMPTY_FILTERS },
      filter_count: Number.isInteger(filterCount) ? filterCount : 0,
      categories: Array.isArray(info.categories) ? info.categories : [],
      month_range: Array.isArray(info.month_range) ? info.month_range : [],
      error: "",
    };
    this._accepted = { ...EMPTY_FILTERS };
    this._follow = [
      ["change:here", () => this._update({ here: analyser.get("here") || [] })],
      ["change:similar_rows", () => this._followSimilar()],
      ["change:similar", () => this._followSimilar()],
      ["change:topics", () => this._update({ topics: analyser.get("topics") || [] })],
      ["change:highlight_topic", () => this._update({ highlight_topic: analyser.get("highlight_topic") ?? null })],
    ];
    for (const [event, fn] of this._follow) analyser?.on(event, fn);
  }

  /** Fetch the map, its points and the trends, then build the model. */
  static async load({ analyser, base = "api/v1/", fetch = globalThis.fetch?.bind(globalThis) }) {
    const root = base.endsWith("/") ? base : `${base}/`;
    const get = async (path, kind) => {
      const response = await fetch(root + path, { headers: { Accept: kind === "json" ? "application/json" : "application/octet-stream" } });
      if (!response.ok) throw new Error(await errorMessage(response));
      return kind === "json" ? response.json() : response.arrayBuffer();
    };
    const [info, trends] = await Promise.all([get("map", "json"), get("trends", "json")]);
    const points = info.n_points > 0 ? await get(`map/points?v=${encodeURIComponent(info.version || "")}`, "bytes") : null;
    return new HttpExploreModel({ analyser, info, points, trends: decodeTrends(trends), filterCount: trends.filter_count, base: root, fetch });
  }

  // ------------------------------------------------------------- anywidget's model interface
  get(key) {
    return this._state[key];
  }

  set(key, value) {
    const changes = typeof key === "object" && key !== null ? key : { [key]: value };
    for (const name of Object.keys(changes)) this._dirty.add(name);
    this._update(changes);
  }

  save_changes() {
    const dirty = [...this._dirty];
    this._dirty = new Set();
    const refused = dirty.filter((k) => !WRITABLE.has(k));
    if (refused.length) this._update({ error: `The view may not set '${refused[0]}'.` });
    if (dirty.includes("highlight_topic")) {
      const k = this._state.highlight_topic;
      const n = (this._state.topics || []).length;
      if (k !== null && !(Number.isInteger(k) && k >= 0 && k < n)) this._update({ highlight_topic: this._analyser?.get("highlight_topic") ?? null });
      else if (this._analyser && this._analyser.get("highlight_topic") !== k) this._analyser.set("highlight_topic", k);
    }
    if (dirty.includes("trend_category")) {
      const c = this._state.trend_category;
      if (c && !(this._state.trends?.categories || []).includes(c)) this._update({ trend_category: "", error: "Unknown category." });
    }
    if (dirty.includes("filters")) this._applyFilters(normalFilters(this._state.filters));
  }

  on(event, fn) {
    this._listeners.on(event, fn);
  }

  off(event, fn) {
    this._listeners.off(event, fn);
  }

  send(content, _callbacks, buffers) {
    const kind = content && typeof content === "object" ? content.type : undefined;
    if (kind === "hover") this._hoverRow(content.row);
    else if (kind === "open") this._open(content.row);
    else if (kind === "select") this._select(buffers);
    else if (kind === "select_region") this._selectRegion(content.polygon);
    else if (kind === "export") this._export(content.what, content.format);
    else this._update({ error: "Ignored a message of unknown type." });
  }

  /** The selected map rows (what a lasso or "Select papers in view" chose). */
  get selectedRows() {
    return this._selected.slice();
  }

  close() {
    this._generation += 1;
    this._controller?.abort();
    for (const [event, fn] of this._follow) this._analyser?.off(event, fn);
  }

  // ------------------------------------------------------------- internals
  _update(changes) {
    const changed = [];
    for (const [key, value] of Object.entries(changes)) {
      if (!Object.is(this._state[key], value)) {
        this._state[key] = value;
        changed.push(key);
      }
    }
    for (const key of changed) this._emit(`change:${key}`, { name: key, value: this._state[key] }, this._state[key]);
    if (changed.length) this._emit("change");
  }

  _followSimilar() {
    this._update({ similar_rows: this._analyser.get("similar_rows") || [], similar_points: similarPoints(this._analyser.get("similar")) });
  }

  _emit(name, ...args) {
    this._listeners.emit(name, ...args);
  }

  _message(msg) {
    this._emit("msg:custom", msg, []);
  }

  _validRow(row) {
    return Number.isInteger(row) && row >= 0 && row < this._total;
  }

  async _get(path, kind = "json", signal = undefined) {
    const response = await this._fetch(this._base + path, { signal, headers: { Accept: kind === "json" ? "application/json" : "application/octet-stream" } });
    if (!response.ok) throw new Error(await errorMessage(response));
    if (kind === "json") return response.json();
    return { body: await response.arrayBuffer(), headers: response.headers };
  }

  async _rowInfo(row) {
    if (!this._hover.has(row)) {
      if (this._hover.size >= HOVER_CACHE) this._hover.delete(this._hover.keys().next().value);
      const pending = this._get(`map/rows/${row}?v=${encodeURIComponent(this._version)}`);
      this._hover.set(row, pending);
      pending.catch(() => this._hover.delete(row));
    }
    return this._hover.get(row);
  }

  async _hoverRow(row) {
    if (!this._validRow(row)) {
      this._update({ error: "A map point must be a row number of the corpus." });
      return;
    }
    try {
      const info = await this._rowInfo(row);
      this._message({ type: "hover", ...info, row });
    } catch {
      // a hover that cannot be answered (rate limit, network) shows nothing more
    }
  }

  async _open(row) {
    if (!this._validRow(row)) {
      this._update({ error: "A map point must be a row number of the corpus." });
      return;
    }
    try {
      const info = await this._rowInfo(row);
      this._analyser?.send({ type: "load_similar", id: info.id });
    } catch (err) {
      this._update({ error: `Could not load the paper: ${err?.message || err}` });
    }
  }

  _select(buffers) {
    const buffer = Array.isArray(buffers) && buffers.length === 1 ? buffers[0] : null;
    const bytes = buffer instanceof ArrayBuffer ? buffer : buffer?.buffer instanceof ArrayBuffer ? buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) : null;
    if (!bytes || bytes.byteLength % 4) {
      this._update({ error: "A selection comes as one buffer of uint32 rows." });
      return;
    }
    const rows = new Uint32Array(bytes);
    if (rows.some((r) => r >= this._total)) {
      this._update({ error: `Rows must be in [0, ${this._total}).` });
      return;
    }
    this._selectGeneration += 1;
    this._selected = Uint32Array.from(new Set(rows)).sort();
    this._update({ selection_count: this._selected.length });
  }

  /** Every paper inside a region of the map (a sampled map's lasso), from the server. */
  async _selectRegion(polygon) {
    this._selectGeneration += 1;
    const generation = this._selectGeneration;
    const f = this._accepted;
    const active = f.categories.length || f.date_from || f.date_to || f.keyword;
    let response;
    try {
      response = await this._fetch(`${this._base}map/select`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/octet-stream" },
        body: JSON.stringify({ polygon, filters: active ? f : null }),
      });
    } catch (err) {
      if (generation === this._selectGeneration) this._update({ error: `Cannot reach the server (${err?.message || err}).` });
      return;
    }
    if (generation !== this._selectGeneration) return; // a later selection wins
    if (!response.ok) {
      const message = await errorMessage(response);
      if (generation !== this._selectGeneration) return;
      this._selected = new Uint32Array(0);
      this._update({ selection_count: 0, error: `Selection not made: ${message}` });
      return;
    }
    const body = await response.arrayBuffer();
    if (generation !== this._selectGeneration) return;
    this._selected = new Uint32Array(body.slice(0, body.byteLength - (body.byteLength % 4)));
    this._update({ selection_count: this._selected.length, error: "" });
  }

  async _export(what, format) {
    if (!["similar", "selection"].includes(what) || !["csv", "bibtex"].includes(format)) {
      this._update({ error: "Export what ('similar' or 'selection') as 'csv' or 'bibtex'?" });
      return;
    }
    const request = { what, format };
    if (what === "selection") request.rows = Array.from(this._selected);
    else request.papers = (this._analyser?.get("similar") || []).map((hit) => ({ id: hit.id, score: Number.isFinite(hit.score) ? hit.score : null }));
    let response;
    try {
      response = await this._fetch(`${this._base}export`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    } catch (err) {
      this._update({ error: `Cannot reach the server (${err?.message || err}).` });
      return;
    }
    if (!response.ok) {
      this._update({ error: await errorMessage(response) });
      return;
    }
    const text = await response.text();
    const count = Number(response.headers?.get?.("x-export-count")) || 0;
    this._message({ type: "download", filename: `abstractor-${what}.${format === "csv" ? "csv" : "bib"}`, mime: format === "csv" ? "text/csv" : "application/x-bibtex", text, count });
  }

  async _applyFilters(filters) {
    this._generation += 1;
    const generation = this._generation;
    this._controller?.abort();
    this._controller = typeof AbortController === "function" ? new AbortController() : null;
    const signal = this._controller?.signal;
    const query = filterQuery(filters);
    try {
      const [trends, mask] = await Promise.all([this._get(`trends${query}`, "json", signal), this._get(`map/mask${query}`, "bytes", signal)]);
      if (generation !== this._generation) return;
      const count = Number(mask.headers?.get?.("x-filter-count"));
      const bits = mask.body.byteLength ? unpackMask(mask.body, this._n, this._rows) : null;
      const decoded = decodeTrends(trends);
      this._accepted = filters;
      const changes = {
        filters,
        trends: decoded,
        filter_count: Number.isFinite(count) ? count : trends.filter_count,
        map_mask: bits ? new DataView(bits.buffer) : null,
        error: "",
      };
      if (this._state.trend_category && !(decoded.categories || []).includes(this._state.trend_category)) changes.trend_category = "";
      this._update(changes);
      this._analyser?.setFilters?.(filters.categories.length || filters.date_from || filters.date_to || filters.keyword ? filters : null);
    } catch (err) {
      if (generation !== this._generation || err?.name === "AbortError") return;
      this._update({ filters: { ...this._accepted }, error: `Filter not applied: ${err?.message || err}` });
    }
  }
}
