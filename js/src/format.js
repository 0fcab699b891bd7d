// Pure helpers: formatting and sanitising values that come from the model.
// Everything here is DOM-free so `npm test` can check it with node:test.

const HEX = /^#[0-9a-f]{6}$/i;
const PATTERNS = new Set(["solid", "dashed", "dotted", "double", "wavy"]);

/** A colour from the model, or a neutral grey when it is not a plain #rrggbb. */
export function safeColor(color) {
  return typeof color === "string" && HEX.test(color) ? color : "#888888";
}

/** "r g b" channels of a #rrggbb colour, for `rgb(var(--x) / alpha)` in CSS. */
export function rgbChannels(color) {
  const hex = safeColor(color);
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(" ");
}

/** An underline style from the model, or "solid". */
export function safePattern(pattern) {
  return PATTERNS.has(pattern) ? pattern : "solid";
}

/** Only http(s) links are rendered; anything else (javascript:, data:) becomes "". */
export function safeUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : "";
}

/** 0.3456 -> "35%"; small non-zero shares -> "<1%". */
export function pct(x) {
  const v = Number.isFinite(x) ? x : 0;
  if (v > 0 && v < 0.005) return "<1%";
  return `${Math.round(v * 100)}%`;
}

/** Similarity score with two decimals. */
export function score(x) {
  return Number.isFinite(x) ? x.toFixed(2) : "–";
}

/** Display name of a topic: its label, or "Topic k" when the label is empty. */
export function topicName(topic, k) {
  const label = topic && typeof topic.label === "string" ? topic.label.trim() : "";
  return label || `Topic ${k}`;
}

/**
 * Topic shares worth drawing, largest first: [{k, share}] with share >= min.
 * Ignores non-numbers, so a malformed state draws an empty bar instead of throwing.
 */
export function topShares(weights, min = 0.005) {
  if (!Array.isArray(weights)) return [];
  return weights
    .map((share, k) => ({ k, share: Number.isFinite(share) ? share : 0 }))
    .filter((d) => d.share >= min)
    .sort((a, b) => b.share - a.share || a.k - b.k);
}

/** "A 40%, B 30%" (the accessible name of a topic-mix bar). */
export function describeMix(shares, topics, limit = 6) {
  if (!shares.length) return "no topical words";
  const parts = shares.slice(0, limit).map((d) => `${topicName(topics[d.k], d.k)} ${pct(d.share)}`);
  if (shares.length > limit) parts.push(`${shares.length - limit} more`);
  return parts.join(", ");
}

const METHOD_NAMES = { hybrid: "words + topics", lexical: "shared words", lda: "topics only" };

/** What a ranking method is called in the view ("hybrid" -> "words + topics"); unknown names as given. */
export function methodName(method) {
  return Object.hasOwn(METHOD_NAMES, method) ? METHOD_NAMES[method] : String(method);
}
