// Unit tests of the web explorer's transport (src/http-explore-model.js) with a mocked fetch.
import assert from "node:assert/strict";
import test from "node:test";

import { HttpExploreModel, decodeTrends, filterQuery, normalFilters, splitPoints, unpackMask } from "../src/http-explore-model.js";

const BASE = "http://127.0.0.1:1/api/v1/";

function fakeAnalyser() {
  const state = { here: [], similar_rows: [], topics: [{ label: "a" }, { label: "b" }], highlight_topic: null, similar: [{ id: "p1", score: 0.5 }] };
  const listeners = new Map();
  return {
    sent: [],
    filters: [],
    get: (k) => state[k],
    set(k, v) {
      state[k] = v;
      for (const fn of listeners.get(`change:${k}`) || []) fn();
    },
    on: (e, fn) => listeners.set(e, new Set([...(listeners.get(e) || []), fn])),
    off: (e, fn) => listeners.get(e)?.delete(fn),
    send(msg) {
      this.sent.push(msg);
    },
    setFilters(f) {
      this.filters.push(f);
    },
  };
}

function response(status, body, headers = {}) {
  const bytes = body instanceof ArrayBuffer ? body : null;
  return {
    ok: status >= 200 && status < 300,
    status,
    statusText: "",
    headers: { get: (k) => headers[k.toLowerCase()] ?? null },
    json: async () => body,
    text: async () => String(body),
    arrayBuffer: async () => bytes,
  };
}

const b64 = (floats) => Buffer.from(new Float32Array(floats).buffer).toString("base64");
const TRENDS = { months: ["2024-01", "2024-02"], counts: [3, 4], n_topics: 2, shares: b64([0.5, 0.5, 0.25, 0.75]), categories: ["cs.LG"], category_counts: [[1, 2]], category_shares: b64([1, 0, 0, 1]), undated: 0, encoding: "float32-le-base64", filter_count: 7 };

function points(n) {
  const buf = new ArrayBuffer(9 * n);
  const xy = new Float32Array(buf, 0, 2 * n);
  const t = new Uint8Array(buf, 8 * n, n);
  for (let i = 0; i < n; i += 1) {
    xy[2 * i] = i / n;
    xy[2 * i + 1] = -i / n;
    t[i] = i % 2;
  }
  return buf;
}

test("helpers: query strings, bit masks, the points body, base64 trends", () => {
  assert.equal(filterQuery({ categories: ["cs.LG", "cs.CL"], date_from: "2024-01", date_to: "", keyword: "graph net" }), "?categories=cs.LG&categories=cs.CL&date_from=2024-01&keyword=graph+net");
  assert.equal(filterQuery({}), "");
  assert.deepEqual(normalFilters({ keyword: "  a   b " }), { categories: [], date_from: "", date_to: "", keyword: "a b" });
  assert.deepEqual([...unpackMask(new Uint8Array([0b00000101, 0b1]).buffer, 9)], [1, 0, 1, 0, 0, 0, 0, 0, 1]);
  const { n, points: p, topics } = splitPoints(points(4));
  assert.equal(n, 4);
  assert.equal(p.byteLength, 32);
  assert.equal(topics.getUint8(3), 1);
  assert.equal(p.getFloat32(8, true), 0.25);
  const t = decodeTrends(TRENDS);
  assert.equal(t.shares.getFloat32(12, true), 0.75);
  assert.equal(t.category_shares.byteLength, 16);
  assert.equal(t.encoding, undefined);
});

test("load: the map, its points (one binary request) and the trends", async () => {
  const calls = [];
  const fetch = async (url) => {
    calls.push(url.replace(BASE, ""));
    if (url.endsWith("/map")) return response(200, { n_points: 4, version: "v1", status: "", centroids: [[0, 0], null], categories: [["cs.LG", 3]], month_range: ["2024-01", "2024-02"] });
    if (url.endsWith("/trends")) return response(200, TRENDS);
    return response(200, points(4));
  };
  const analyser = fakeAnalyser();
  const m = await HttpExploreModel.load({ analyser, base: BASE, fetch });
  assert.deepEqual(calls.sort(), ["map", "map/points?v=v1", "trends"]);
  assert.equal(m.get("n_points"), 4);
  assert.equal(m.get("filter_count"), 7);
  assert.equal(m.get("map_topics").getUint8(1), 1);
  assert.deepEqual(m.get("categories"), [["cs.LG", 3]]);
  // follows the analyser; highlight goes both ways
  analyser.set("here", [0.1, 0.2]);
  assert.deepEqual(m.get("here"), [0.1, 0.2]);
  m.set("highlight_topic", 1);
  m.save_changes();
  assert.equal(analyser.get("highlight_topic"), 1);
  m.set("highlight_topic", 9);
  m.save_changes();
  assert.equal(m.get("highlight_topic"), 1);
  m.close();
});

function model(fetch, analyser = fakeAnalyser()) {
  return new HttpExploreModel({ analyser, info: { version: "v1", categories: [], month_range: [] }, points: points(4), trends: decodeTrends(TRENDS), filterCount: 4, base: BASE, fetch });
}

test("hover and open ask for the row once; select keeps the rows; export posts them", async () => {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push([url.replace(BASE, ""), init.method || "GET", init.body]);
    if (url.includes("map/rows/2")) return response(200, { row: 2, id: "2401.00002", title: "T", published: "2024-01-02", categories: "cs.LG" });
    if (url.endsWith("export")) return response(200, "id,title\r\n", { "x-export-count": "2" });
    return response(404, { error: { message: "nope" } });
  };
  const analyser = fakeAnalyser();
  const m = model(fetch, analyser);
  const messages = [];
  m.on("msg:custom", (msg) => messages.push(msg));
  m.send({ type: "hover", row: 2 });
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(messages[0].type, "hover");
  assert.equal(messages[0].title, "T");
  m.send({ type: "open", row: 2 });
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(analyser.sent, [{ type: "load_similar", id: "2401.00002" }]);
  assert.equal(calls.filter((c) => c[0].startsWith("map/rows/")).length, 1);
  m.send({ type: "hover", row: 99 });
  assert.match(m.get("error"), /row number/);
  m.send({ type: "select" }, undefined, [Uint32Array.from([3, 1, 3]).buffer]);
  assert.equal(m.get("selection_count"), 2);
  m.send({ type: "export", what: "selection", format: "csv" });
  await new Promise((r) => setTimeout(r, 0));
  const posted = calls.find((c) => c[0] === "export");
  assert.deepEqual(JSON.parse(posted[2]), { what: "selection", format: "csv", rows: [1, 3] });
  const download = messages.find((msg) => msg.type === "download");
  assert.equal(download.filename, "abstractor-selection.csv");
  assert.equal(download.text, "id,title\r\n");
  m.send({ type: "export", what: "similar", format: "bibtex" });
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(JSON.parse(calls.at(-1)[2]).papers, [{ id: "p1", score: 0.5 }]);
});

test("filters: trends and mask applied together, the analyser ranks among the kept; a refused filter keeps the last", async () => {
  const fetch = async (url) => {
    if (url.includes("keyword=zzz")) return response(422, { error: { status: 422, message: "no word of 'zzz' is in the index" } });
    if (url.includes("map/mask")) return response(200, new Uint8Array([0b1010]).buffer, { "x-filter-count": "2" });
    return response(200, { ...TRENDS, filter_count: 2 });
  };
  const analyser = fakeAnalyser();
  const m = model(fetch, analyser);
  m.set("filters", { categories: ["cs.LG"], date_from: "", date_to: "", keyword: "" });
  m.save_changes();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(m.get("filter_count"), 2);
  assert.deepEqual([...new Uint8Array(m.get("map_mask").buffer)], [0, 1, 0, 1]);
  assert.deepEqual(analyser.filters.at(-1).categories, ["cs.LG"]);
  m.set("filters", { categories: [], date_from: "", date_to: "", keyword: "zzz" });
  m.save_changes();
  await new Promise((r) => setTimeout(r, 0));
  assert.match(m.get("error"), /Filter not applied: no word/);
  assert.deepEqual(m.get("filters").categories, ["cs.LG"]);
  assert.equal(analyser.filters.length, 1);
});

/** A sampled map's points body: 13 bytes a point (x, y, topic, then the corpus row). */
function sampledPoints(rows) {
  const n = rows.length;
  const buf = new ArrayBuffer(13 * n);
  new Uint8Array(buf, 0, 9 * n).set(new Uint8Array(points(n)));
  new DataView(buf).setUint32(0, 0, true);
  const view = new DataView(buf, 9 * n, 4 * n);
  rows.forEach((r, i) => view.setUint32(4 * i, r, true));
  return buf;
}

test("a sampled map: corpus rows with the points, masks per point, rings from coordinates, regions to the server", async () => {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push([url.replace(BASE, ""), init.method || "GET", init.body]);
    if (url.includes("map/mask")) return response(200, new Uint8Array([0b00000000, 0b10000000, 0b0, 0b0, 0b1]).buffer, { "x-filter-count": "2" });
    if (url.endsWith("map/select")) {
      const { polygon } = JSON.parse(init.body);
      if (polygon.length > 4) return response(413, { error: { status: 413, message: "the region holds 3,000,000 papers; at most 2,000,000 can be selected at once" } });
      return response(200, Uint32Array.from([2, 5, 15, 32]).buffer, { "x-selection-count": "4" });
    }
    if (url.includes("map/rows/32")) return response(200, { row: 32, id: "p32", title: "Not drawn" });
    return response(200, { ...TRENDS, filter_count: 2 });
  };
  const analyser = fakeAnalyser();
  const rows = [2, 15, 32, 33];
  const body = sampledPoints(rows);
  const split = splitPoints(body, 4);
  assert.deepEqual([0, 1, 2, 3].map((i) => split.rows.getUint32(4 * i, true)), rows);
  assert.equal(splitPoints(points(4), 4).rows, null);
  const m = new HttpExploreModel({ analyser, info: { version: "v1", n_points: 4, n_documents: 40, categories: [], month_range: [] }, points: body, trends: decodeTrends(TRENDS), filterCount: 40, base: BASE, fetch });
  assert.equal(m.get("n_points"), 4);
  assert.equal(m.get("n_documents"), 40);
  assert.deepEqual([...new Uint32Array(m.get("map_rows").buffer)], rows);
  // a mask of one bit a paper, turned into one byte a point through the rows (bits 15 and 32 set)
  m.set("filters", { categories: ["cs.LG"], date_from: "", date_to: "", keyword: "" });
  m.save_changes();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual([...new Uint8Array(m.get("map_mask").buffer)], [0, 1, 1, 0]);
  // hover a paper that is not among the first n rows: rows are corpus rows
  const messages = [];
  m.on("msg:custom", (msg) => messages.push(msg));
  m.send({ type: "hover", row: 32 });
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(messages.at(-1).title, "Not drawn");
  // the rings: each listed paper's row and coordinates, drawn or not
  analyser.set("similar", [{ id: "a", row: 7, x: 0.5, y: -0.25 }, { id: "b" }, { id: "c", row: 15, x: 0.1, y: 0.2 }]);
  analyser.set("similar_rows", [7, 15]);
  assert.deepEqual(m.get("similar_points"), [[0.5, -0.25], [0.1, 0.2]]);
  // a region: the server selects every paper inside with the filters in force
  m.send({ type: "select_region", polygon: [[0, 0], [1, 0], [1, 1]] });
  await new Promise((r) => setTimeout(r, 0));
  const posted = calls.find((c) => c[0] === "map/select");
  assert.deepEqual(JSON.parse(posted[2]), { polygon: [[0, 0], [1, 0], [1, 1]], filters: { categories: ["cs.LG"], date_from: "", date_to: "", keyword: "" } });
  assert.equal(m.get("selection_count"), 4);
  assert.deepEqual([...m.selectedRows], [2, 5, 15, 32]);
  m.send({ type: "select" }, undefined, [Uint32Array.from([39]).buffer]); // a corpus row beyond the points
  assert.equal(m.get("selection_count"), 1);
  m.send({ type: "select_region", polygon: [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0.5]] });
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(m.get("selection_count"), 0);
  assert.match(m.get("error"), /Selection not made: the region holds 3,000,000 papers/);
});
