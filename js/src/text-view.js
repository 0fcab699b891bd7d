// The abstract, rendered exactly as typed from `spans`: topical words are coloured
// by topic, reachable with the keyboard (one tab stop, arrow keys move between
// words) and explained by a tooltip on hover or focus.

import { h, uid } from "./dom.js";
import { pct, topicName } from "./format.js";
import { topicStyle } from "./mix.js";

export function createTextView({ root, onToggleTopic }) {
  const tooltip = h("div", { class: "abstractor-tooltip", role: "tooltip", id: uid("abstractor-tip"), hidden: true });
  const el = h("div", {
    class: "abstractor-text",
    role: "group",
    tabindex: "-1",
    "aria-label": "Abstract coloured by topic. Arrow keys move between topical words; Enter highlights a word's topic.",
  });
  let words = [];
  let current = 0;
  let topics = [];

  function describe(word) {
    const k = Number(word.dataset.topic);
    return {
      title: topicName(topics[k], k),
      detail: `topic ${k} · weight ${pct(Number(word.dataset.weight))}`,
    };
  }

  function showTooltip(word) {
    const { title, detail } = describe(word);
    tooltip.replaceChildren(h("strong", { text: title }), h("span", { class: "abstractor-tooltip-detail", text: detail }));
    tooltip.hidden = false;
    const box = root.getBoundingClientRect();
    const rect = word.getBoundingClientRect();
    const width = tooltip.offsetWidth;
    const left = Math.max(4, Math.min(rect.left - box.left, box.width - width - 4));
    tooltip.style.left = `${left}px`;
    tooltip.style.top = `${rect.bottom - box.top + 6}px`;
    word.setAttribute("aria-describedby", tooltip.id);
  }

  function hideTooltip() {
    tooltip.hidden = true;
    for (const w of el.querySelectorAll("[aria-describedby]")) w.removeAttribute("aria-describedby");
  }

  function focusWord(i) {
    if (!words.length) return;
    const next = Math.max(0, Math.min(words.length - 1, i));
    words[current]?.setAttribute("tabindex", "-1");
    current = next;
    words[current].setAttribute("tabindex", "0");
    words[current].focus();
  }

  const wordOf = (target) => (target instanceof Element ? target.closest(".abstractor-word[data-i]") : null);

  el.addEventListener("mouseover", (e) => {
    const word = wordOf(e.target);
    if (word) showTooltip(word);
  });
  el.addEventListener("mouseout", (e) => {
    if (wordOf(e.target) && !wordOf(e.relatedTarget)) hideTooltip();
  });
  el.addEventListener("focusin", (e) => {
    const word = wordOf(e.target);
    if (!word) return;
    words[current]?.setAttribute("tabindex", "-1");
    current = Number(word.dataset.i);
    word.setAttribute("tabindex", "0");
    showTooltip(word);
  });
  el.addEventListener("focusout", hideTooltip);
  el.addEventListener("click", (e) => {
    const word = wordOf(e.target);
    if (word) onToggleTopic(Number(word.dataset.topic));
  });
  el.addEventListener("keydown", (e) => {
    const word = wordOf(e.target);
    if (!word) return;
    const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
    if (e.key in moves) focusWord(current + moves[e.key]);
    else if (e.key === "Home") focusWord(0);
    else if (e.key === "End") focusWord(words.length - 1);
    else if (e.key === "Enter" || e.key === " ") onToggleTopic(Number(word.dataset.topic));
    else if (e.key === "Escape") hideTooltip();
    else return;
    e.preventDefault();
  });

  /** Draw `spans` (each span's text as a text node; never parsed as HTML). */
  let drawnSpans = null;

  function render(spans, topicList, highlight) {
    if (spans === drawnSpans && topicList === topics) {
      setHighlight(highlight);
      return;
    }
    drawnSpans = spans;
    topics = topicList;
    hideTooltip();
    const active = el.ownerDocument.activeElement;
    const hadFocus = el.contains(active);
    const onWord = hadFocus && wordOf(active) !== null;
    const frag = document.createDocumentFragment();
    words = [];
    for (const span of Array.isArray(spans) ? spans : []) {
      const text = typeof span?.text === "string" ? span.text : "";
      const k = span?.topic;
      if (!Number.isInteger(k) || k < 0 || k >= topics.length) {
        frag.append(document.createTextNode(text));
        continue;
      }
      const weight = Number.isFinite(span.weight) ? span.weight : 0;
      const word = h("span", {
        class: "abstractor-word",
        role: "button",
        tabindex: "-1",
        dataset: { i: String(words.length), topic: String(k), weight: String(weight) },
        style: topicStyle(topics[k]),
        "aria-label": `${text}: ${topicName(topics[k], k)}, weight ${pct(weight)}`,
      });
      word.textContent = text;
      words.push(word);
      frag.append(word);
    }
    el.replaceChildren(frag);
    current = Math.min(current, Math.max(0, words.length - 1));
    if (words.length) words[current].setAttribute("tabindex", "0");
    el.classList.toggle("abstractor-has-words", words.length > 0);
    setHighlight(highlight);
    // Keep keyboard users where they were: same word index, else the text itself.
    if (hadFocus) (onWord && words.length ? words[current] : el).focus({ preventScroll: true });
  }

  function setHighlight(k) {
    const on = Number.isInteger(k);
    if (on) el.dataset.highlight = String(k);
    else delete el.dataset.highlight;
    for (const w of words) w.classList.toggle("abstractor-on", on && Number(w.dataset.topic) === k);
  }

  return { el, tooltip, render, setHighlight, hideTooltip };
}
