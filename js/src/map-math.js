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
