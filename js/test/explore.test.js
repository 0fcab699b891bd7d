// Unit tests of the explorer's DOM-free helpers (`npm test`).
import assert from "node:assert/strict";
import test from "node:test";

import { filtersFrom } from "../src/filters.js";
import { safeFilename } from "../src/export.js";
import { cachePlacement, columns, pointMask, pointOf, project, rgba, rowOf, rowsOf, topicColors, unproject, viewPolygon } from "../src/map-math.js";
import { seriesFor, visibleMonths } from "../src/trends.js";

test("rgba and topic colours: the highlighted topic opaque, the others faded; bad colours grey", () => {
  assert.deepEqual(rgba("#FF0000", 0.5), [1, 0, 0, 0.5]);
  assert.deepEqual(rgba("url(x)"), [136 / 255, 136 / 255, 136 / 255, 1]);
  const colors = topicColors([{ color: "#E69F00" }, { color: "#56B4E9" }], 1);
  assert.equal(colors[1][3], 0.85);
  assert.ok(colors[0][3] < 0.2);
  assert.ok(topicColors([{ color: "#E69F00" }], null).every((c) => c[3] === 0.85));
});

test("project follows the camera: identity view maps [-1, 1] onto the canvas", () => {
  const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  assert.deepEqual(project(identity, 200, 100, 0, 0), [100, 50]);
  assert.deepEqual(project(identity, 100, 100, 1, 1), [100, 0]);
  assert.deepEqual(project(identity, 100, 100, -1, -1), [0, 100]);
  const zoomed = [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0.5, 0, 0, 1]; // scale 2, shifted right
  assert.deepEqual(project(zoomed, 100, 100, 0.25, 0), [100, 50]);
});

test("columns splits interleaved x, y and keeps the topic per point", () => {
  const { x, y, z } = columns(new Float32Array([0.5, -0.5, 0.25, 0.75]), new Uint8Array([3, 7]));
  assert.deepEqual([...x], [0.5, 0.25]);
  assert.deepEqual([...y], [-0.5, 0.75]);
  assert.deepEqual([...z], [3, 7]);
  assert.equal(columns(new Float32Array(6), new Uint8Array(2)).x.length, 2);
});

test("trend series from float32 buffers, per category", () => {
  const shares = new Float32Array([0.1, 0.9, 0.4, 0.6]); // 2 months x 2 topics
  const cat = new Float32Array([0.5, 0.5, 0.2, 0.8]); // 1 category
  const trends = {
    months: ["2025-01", "2025-02"], counts: [10, 3], n_topics: 2,
    shares: new DataView(shares.buffer), categories: ["cs.CL"], category_counts: [[4, 0]],
    category_shares: new DataView(cat.buffer),
  };
  const all = seriesFor(trends, "");
  assert.ok(Math.abs(all.share(1, 0) - 0.4) < 1e-6);
  assert.deepEqual(all.counts, [10, 3]);
  const cl = seriesFor(trends, "cs.CL");
  assert.ok(Math.abs(cl.share(1, 1) - 0.8) < 1e-6);
  assert.deepEqual(cl.counts, [4, 0]);
  assert.equal(seriesFor(trends, "nope").share(0, 0), 0);
  assert.ok(Math.abs(seriesFor({ ...trends, shares: [[0.1, 0.9], [0.4, 0.6]] }, "").share(0, 1) - 0.9) < 1e-6);
  assert.deepEqual(visibleMonths([10, 3, 0, 12], 5), [0, 3]);
});

test("filters from the form, and safe download names", () => {
  assert.deepEqual(filtersFrom({ category: "cs.CL", from: "2025-01", to: "", keyword: "  graph  " }),
    { categories: ["cs.CL"], date_from: "2025-01", date_to: "", keyword: "graph" });
  assert.deepEqual(filtersFrom({}).categories, []);
  assert.equal(safeFilename("abstractor-similar.csv"), "abstractor-similar.csv");
  assert.equal(safeFilename("../../etc/passwd"), "abstractor-export.txt");
  assert.equal(safeFilename("a b<script>.bib"), "a-b-script-.bib");
});

test("cachePlacement: where the cached image of the points lands as the camera moves", () => {
  const view = (s, tx, ty) => [s, 0, 0, 0, 0, s, 0, 0, 0, 0, 1, 0, tx, ty, 0, 1];
  const close = (a, b) => a.every((v, i) => Math.abs(v - b[i]) < 1e-9);
  // same view: the image (2 views wide) spans clip -2..2, covers, no magnification
  let p = cachePlacement(view(1, 0, 0), view(1, 0, 0), 2, 2);
  assert.ok(close(p.corners[0], [-2, -2]) && close(p.corners[1], [2, -2]) && close(p.corners[2], [-2, 2]));
  assert.equal(p.covers, true);
  assert.equal(p.zoom, 1);
  // panned right by half a view (0.5 in clip x = 0.5 * aspect in view units): still covered
  p = cachePlacement(view(1, 0, 0), view(1, 1, 0), 2, 2);
  assert.ok(close(p.corners[0], [-1.5, -2]));
  assert.equal(p.covers, true);
  // panned past the image's edge: not covered
  assert.equal(cachePlacement(view(1, 0, 0), view(1, 2.5, 0), 2, 2).covers, false);
  // zoomed in 2x: image twice the size, covered; 3x is more than maxZoomIn (2.5)
  p = cachePlacement(view(1, 0, 0), view(2, 0, 0), 2, 2);
  assert.ok(close(p.corners[0], [-4, -4]));
  assert.equal(p.zoom, 2);
  assert.equal(p.covers, true);
  assert.equal(cachePlacement(view(1, 0, 0), view(3, 0, 0), 2, 2).covers, false);
  // zoomed out 2x: the image exactly fills the view; further out it does not
  assert.equal(cachePlacement(view(1, 0, 0), view(0.5, 0, 0), 2, 2).covers, true);
  assert.equal(cachePlacement(view(1, 0, 0), view(0.4, 0, 0), 2, 2).covers, false);
});

test("unproject inverts project; the view's polygon is the canvas's corners", () => {
  const view = [1.7, 0.2, 0, 0, -0.1, 1.3, 0, 0, 0, 0, 1, 0, 0.3, -0.2, 0, 1];
  const [sx, sy] = project(view, 900, 440, 0.25, -0.6);
  const [x, y] = unproject(view, 900, 440, sx, sy);
  assert.ok(Math.abs(x - 0.25) < 1e-9 && Math.abs(y + 0.6) < 1e-9);
  const identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  assert.deepEqual(viewPolygon(identity, 100, 100), [[-1, -1], [1, -1], [1, 1], [-1, 1]]);
});

test("map points and corpus rows: identity without rows, the sample's rows with them", () => {
  const rows = Uint32Array.from([3, 8, 20, 21]);
  assert.equal(rowOf(2, null), 2);
  assert.equal(rowOf(2, rows), 20);
  assert.deepEqual([...rowsOf([0, 3], rows)], [3, 21]);
  assert.deepEqual([...rowsOf([0, 3], new Uint32Array(0))], [0, 3]);
  assert.deepEqual([3, 8, 20, 21, 4, 0, 99].map((r) => pointOf(r, rows, 4)), [0, 1, 2, 3, -1, -1, -1]);
  assert.deepEqual([0, 3, 4, -1].map((r) => pointOf(r, null, 4)), [0, 3, -1, -1]);
  // one bit a paper (rows 8 and 21 set) -> one byte a point
  const bits = new Uint8Array(3);
  bits[1] = 1 | (1 << 0);
  bits[2] = 1 << 5;
  assert.deepEqual([...pointMask(bits, 4, rows)], [0, 1, 0, 1]);
  assert.deepEqual([...pointMask(new Uint8Array([0b101]), 3, null)], [1, 0, 1]);
});
