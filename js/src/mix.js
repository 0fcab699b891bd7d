// Stacked topic-mix bars (the document's and each similar paper's).

import { h } from "./dom.js";
import { describeMix, pct, rgbChannels, safeColor, safePattern, topShares, topicName } from "./format.js";

/** CSS custom properties that paint topic `k` (colour, rgb channels, pattern). */
export function topicStyle(topic) {
  return {
    "--abstractor-c": safeColor(topic?.color),
    "--abstractor-c-rgb": rgbChannels(topic?.color),
    "--abstractor-pat": safePattern(topic?.pattern),
  };
}

/**
 * A horizontal stacked bar of topic shares.
 * `labels`: print percentages inside segments wide enough to hold them.
 */
export function mixBar(weights, topics, { labels = false, className = "", name = "Topic mix" } = {}) {
  const shares = topShares(weights);
  const bar = h("div", {
    class: `abstractor-mix ${className}`.trim(),
    role: "img",
    "aria-label": `${name}: ${describeMix(shares, topics)}`,
  });
  const total = shares.reduce((s, d) => s + d.share, 0) || 1;
  for (const { k, share } of shares) {
    const width = (share / total) * 100;
    const seg = h(
      "span",
      {
        class: "abstractor-mix-seg",
        dataset: { topic: String(k), pattern: safePattern(topics[k]?.pattern) },
        style: { ...topicStyle(topics[k]), width: `${width}%` },
        title: `${topicName(topics[k], k)}: ${pct(share)}`,
      },
      labels && width >= 9 ? h("span", { class: "abstractor-mix-pct", text: pct(share) }) : null,
    );
    bar.append(seg);
  }
  if (!shares.length) bar.classList.add("abstractor-mix-empty");
  return bar;
}

/** The largest shares as a readable list under the bar: "■ Label 34%". */
export function mixCaption(weights, topics, limit = 4) {
  const shares = topShares(weights, 0.01).slice(0, limit);
  return h(
    "ul",
    { class: "abstractor-mix-caption" },
    shares.map(({ k, share }) =>
      h(
        "li",
        { dataset: { topic: String(k) } },
        h("span", { class: "abstractor-swatch", dataset: { pattern: safePattern(topics[k]?.pattern) }, style: topicStyle(topics[k]), "aria-hidden": "true" }),
        h("span", { class: "abstractor-mix-name", text: topicName(topics[k], k) }),
        h("span", { class: "abstractor-muted abstractor-mix-share", text: pct(share) }),
      ),
    ),
  );
}
