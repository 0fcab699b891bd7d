// DOM-free helpers of the corpus map (tested with node:test): colours, projection, columns.

import { safeColor } from "./format.js";

const DIM_ALPHA = 0.12;

/** Hex colour + alpha -> [r, g, b, a] in 0..1 (regl-scatterplot's rgba quadruple). */
export function rgba(hex, alpha = 1) {
  const c = safeColor(hex);
  return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16) / 255).concat([alpha]);
}

/** Point colours by topic: the highlighted topic (if any) opaque, the others dimmed. */
export function topicColors(topics, highlight, alpha = 0.85) {
  const on = Number.isInteger(highlight);
  return topics.map((t, k) => rgba(t?.color, on && k !== highlight ? DIM_ALPHA : alpha));
}

/** Data coordinates -> screen pixels, from the camera's view matrix (column-major 4x4). */
export function project(view, width, height, x, y) {
  const px = (view[0] * x + view[4] * y + view[12]) / (width / height);
  const py = view[1] * x + view[5] * y + view[13];
  return [(width * (px + 1)) / 2, height * (0.5 - py / 2)];
}

/** Screen pixels -> data coordinates: the inverse of `project` at the same view. */
export function unproject(view, width, height, sx, sy) {
  const px = ((2 * sx) / width - 1) * (width / height) - view[12];
  const py = 1 - (2 * sy) / height - view[13];
  const det = view[0] * view[5] - view[4] * view[1] || 1e-12;
  return [(view[5] * px - view[4] * py) / det, (view[0] * py - view[1] * px) / det];
}

/** The region in view: the canvas's corners in data coordinates (a polygon, counter-clockwise on screen). */
export function viewPolygon(view, width, height) {
  return [[0, height], [width, height], [width, 0], [0, 0]].map(([sx, sy]) => unproject(view, width, height, sx, sy));
}

// Map points and corpus rows. A map of a large corpus draws a sample of its papers: `rows`
// (a Uint32Array) then holds the corpus row of each point; an empty or missing `rows` means
// every paper is drawn and point i is row i. These are the only translations between the two.

/** The corpus row of map point `point`. */
export function rowOf(point, rows) {
  return rows && rows.length ? rows[point] : point;
}

/** The corpus rows of map points (a Uint32Array). */
export function rowsOf(points, rows) {
  const out = Uint32Array.from(points);
  if (rows && rows.length) for (let i = 0; i < out.length; i += 1) out[i] = rows[out[i]];
  return out;
}

/** The map point of corpus row `row`, or -1 when it is not drawn (rows increase: binary search). */
export function pointOf(row, rows, n) {
  if (!rows || !rows.length) return Number.isInteger(row) && row >= 0 && row < n ? row : -1;
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid] < row) lo = mid + 1;
    else hi = mid;
  }
  return lo < rows.length && rows[lo] === row ? lo : -1;
}

/** A per-paper bit mask (bit r of byte r >> 3, least significant first) -> 0 / 1 per map point. */
export function pointMask(bits, n, rows) {
  const bytes = bits instanceof Uint8Array ? bits : new Uint8Array(bits);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) {
    const r = rowOf(i, rows);
    out[i] = (bytes[r >> 3] >> (r & 7)) & 1;
  }
  return out;
}

/** Split interleaved x, y into the column arrays regl-scatterplot draws. */
export function columns(points, topics) {
  const n = Math.min(points.length >> 1, topics.length);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  const z = new Float32Array(n);
  for (let i = 0; i < n; i += 1) {
    x[i] = points[2 * i];
    y[i] = points[2 * i + 1];
    z[i] = topics[i];
  }
  return { x, y, z };
}

/** 2-D affine part of a column-major 4x4 view matrix: [a, b, c, d, e, f] (x' = a x + c y + e, y' = b x + d y + f). */
function affine(m) {
  return [m[0], m[1], m[4], m[5], m[12], m[13]];
}

function invert([a, b, c, d, e, f]) {
  const det = a * d - b * c || 1e-12;
  return [d / det, -b / det, -c / det, a / det, (c * f - d * e) / det, (b * e - a * f) / det];
}

function apply([a, b, c, d, e, f], x, y) {
  return [a * x + c * y + e, b * x + d * y + f];
}

/**
 * Where the cached image (drawn at view `v0` covering `margin` x the view) lands at view `v1`:
 * the clip-space positions of its corners (-1,-1), (1,-1), (-1,1), and whether the image covers
 * the whole view at v1 with at most `maxZoomIn` magnification. `aspect` = width / height.
 * Pure (tested with node:test).
 */
export function cachePlacement(v0, v1, aspect, margin, maxZoomIn = 2.5) {
  const inv0 = invert(affine(v0));
  const a1 = affine(v1);
  // cache clip (cx, cy) -> data -> current clip: P V1 V0^-1 P^-1 (margin * c), P = diag(1/aspect, 1)
  const toClip1 = (cx, cy) => {
    const [qx, qy] = apply(inv0, margin * cx * aspect, margin * cy);
    const [X, Y] = apply(a1, qx, qy);
    return [X / aspect, Y];
  };
  const corners = [toClip1(-1, -1), toClip1(1, -1), toClip1(-1, 1)];
  // the view's corners in the cache's clip space
  const inv1 = invert(a1);
  const a0 = affine(v0);
  let covers = true;
  for (const [sx, sy] of [[-1, -1], [1, -1], [-1, 1], [1, 1]]) {
    const [qx, qy] = apply(inv1, sx * aspect, sy);
    const [X, Y] = apply(a0, qx, qy);
    const cx = X / aspect / margin;
    const cy = Y / margin;
    if (Math.abs(cx) > 1.0001 || Math.abs(cy) > 1.0001) covers = false;
  }
  const zoom = Math.sqrt(Math.abs((a1[0] * a1[3] - a1[1] * a1[2]) / (a0[0] * a0[3] - a0[1] * a0[2]) || 0));
  return { corners, covers: covers && zoom <= maxZoomIn, zoom };
}
