// The list of similar papers: title (click / Enter loads its abstract), score, a
// small topic-mix bar, the arXiv link, and why it matched.

import { h, keepFocus } from "./dom.js";
import { pct, safePattern, safeUrl, score, topicName } from "./format.js";
import { mixBar, topicStyle } from "./mix.js";

export function createSimilarList({ onLoad }) {
  const el = h("ol", { class: "abstractor-hits" });

  let drawn = { hits: null, topics: null };

  function render(hits, topics) {
    // Redraw only when the hits or the topics changed: a title being clicked is never
    // replaced under the pointer by an update that did not touch the list.
    if (hits === drawn.hits && topics === drawn.topics) return;
    drawn = { hits, topics };
    keepFocus(el, () => el.replaceChildren(...(Array.isArray(hits) ? hits : []).map((hit) => item(hit, topics))));
  }

  function item(hit, topics) {
    const id = typeof hit?.id === "string" ? hit.id : "";
    const title = typeof hit?.title === "string" && hit.title ? hit.title : id;
    const url = safeUrl(hit?.url);
    const meta = [id, hit?.categories, hit?.published].filter((x) => typeof x === "string" && x);
    return h(
      "li",
      { class: "abstractor-hit" },
      h(
        "div",
        { class: "abstractor-hit-head" },
        h("button", {
          type: "button",
          class: "abstractor-hit-title",
          title: "Load this paper's abstract",
          dataset: { focusKey: `hit-${id}` },
          onclick: () => onLoad(id),
          text: title,
        }),
        h("span", { class: "abstractor-score", title: "Similarity, 0 to 1: shared key terms, topics and meaning (1 = the same text)", text: score(hit?.score) }),
      ),
      h(
        "div",
        { class: "abstractor-hit-meta" },
        meta.join(" · "),
        url
          ? [" · ", h("a", { href: url, target: "_blank", rel: "noopener noreferrer", "aria-label": `${id} on arXiv (opens in a new tab)`, text: "arXiv \u2197" })]
          : null,
      ),
      mixBar(hit?.topics, topics, { className: "abstractor-mix-small", name: "Topic mix of this paper" }),
      why(hit, topics),
    );
  }

  function why(hit, topics) {
    const shared = Array.isArray(hit?.shared_topics) ? hit.shared_topics.slice(0, 3) : [];
    const terms = Array.isArray(hit?.shared_terms) ? hit.shared_terms.filter((t) => typeof t === "string") : [];
    const semantic = hit?.semantic === true;
    if (!shared.length && !terms.length && !semantic) return null;
    const parts = [];
    if (semantic) {
      parts.push(h("span", {
        class: "abstractor-semantic",
        title: "Close in meaning: the static embedding brought this paper into the list, more than shared words",
        text: "Semantically close",
      }));
    }
    if (shared.length) {
      if (parts.length) parts.push(h("br"));
      parts.push(h("span", { class: "abstractor-muted", text: "Shared topics: " }));
      shared.forEach((s, i) => {
        const k = s?.topic;
        if (!Number.isInteger(k) || k < 0 || k >= topics.length) return;
        if (i) parts.push(", ");
        parts.push(
          h(
            "span",
            { class: "abstractor-chip" },
            h("span", { class: "abstractor-swatch", dataset: { pattern: safePattern(topics[k]?.pattern) }, style: topicStyle(topics[k]), "aria-hidden": "true" }),
            topicName(topics[k], k),
          ),
          h("span", { class: "abstractor-muted", text: ` (${pct(s.query)} here, ${pct(s.document)} there)` }),
        );
      });
    }
    if (terms.length) {
      if (parts.length) parts.push(h("br"));
      parts.push(h("span", { class: "abstractor-muted", text: "Shared terms: " }), terms.join(", "));
    }
    return h("p", { class: "abstractor-why" }, parts);
  }

  return { el, render };
}
