// The topic legend: colour key, share in this abstract, top terms. Clicking a topic
// highlights its words; its label is editable inline (✎ or F2; Enter saves, Esc cancels).

import { h, keepFocus } from "./dom.js";
import { pct, topicName } from "./format.js";
import { topicStyle } from "./mix.js";

export const MAX_LABEL_CHARS = 80;
const MIN_SHARE = 0.01;

export function createLegend({ onToggleTopic, onRename, canRename = () => true }) {
  const el = h("ul", { class: "abstractor-legend" });
  let last = { topics: [], docTopics: [], highlight: null };
  let editing = false;

  function render(topics, docTopics, highlight, { force = false } = {}) {
    const sameTopics = topics === last.topics && el.children.length === topics.length;
    last = { topics, docTopics, highlight };
    if (editing) return; // redrawn when the edit ends
    if (sameTopics && !force) {
      // Only the shares changed (every keystroke): update in place, so a button the
      // user is pressing is never replaced under the pointer.
      for (const li of el.children) updateShare(li, Number(li.dataset.topic));
      setHighlight(highlight);
      return;
    }
    keepFocus(el, () => el.replaceChildren(...topics.map((topic, k) => row(topic, k))));
  }

  function shareOf(k) {
    const raw = Number.isFinite(last.docTopics[k]) ? last.docTopics[k] : 0;
    return raw >= MIN_SHARE ? raw : 0; // LDA gives every topic a sliver: hide the noise
  }

  function updateShare(li, k) {
    const share = shareOf(k);
    li.classList.toggle("abstractor-absent", share === 0);
    const cell = li.querySelector(".abstractor-topic-share");
    if (cell) cell.textContent = share > 0 ? pct(share) : "";
  }

  function row(topic, k) {
    const name = topicName(topic, k);
    const share = shareOf(k);
    const pressed = last.highlight === k;
    const terms = Array.isArray(topic?.terms) ? topic.terms.map((t) => (Array.isArray(t) ? String(t[0]) : String(t))) : [];
    const toggle = h(
      "button",
      {
        type: "button",
        class: "abstractor-topic-toggle",
        "aria-pressed": String(pressed),
        title: pressed ? "Show all topics" : "Highlight this topic's words",
        dataset: { focusKey: `topic-${k}` },
        onclick: () => onToggleTopic(k),
        onkeydown: (e) => {
          if (e.key !== "F2" || !canRename()) return;
          e.preventDefault();
          startEdit(k, toggle, name);
        },
      },
      h("span", { class: "abstractor-word abstractor-sample", style: topicStyle(topic), "aria-hidden": "true", text: "Aa" }),
      h("span", { class: "abstractor-topic-id", text: String(k) }),
      h("span", { class: "abstractor-topic-label", text: name }),
      h("span", { class: "abstractor-topic-share", text: share > 0 ? pct(share) : "" }),
    );
    const rename = h("button", {
      type: "button",
      class: "abstractor-icon-btn",
      "aria-label": `Rename topic ${k} (${name})`,
      title: "Rename topic",
      dataset: { focusKey: `rename-${k}` },
      onclick: () => startEdit(k, toggle, name),
      text: "\u270E",
    });
    return h(
      "li",
      { class: `abstractor-topic${share > 0 ? "" : " abstractor-absent"}${pressed ? " abstractor-on" : ""}`, dataset: { topic: String(k) } },
      h("div", { class: "abstractor-topic-row" }, toggle, canRename() ? rename : null),
      terms.length ? h("div", { class: "abstractor-topic-terms", text: terms.slice(0, 6).join(" · ") }) : null,
    );
  }

  function startEdit(k, toggle, current) {
    if (editing) return;
    editing = true;
    const input = h("input", {
      type: "text",
      class: "abstractor-rename",
      maxlength: String(MAX_LABEL_CHARS),
      "aria-label": `New label for topic ${k}. Enter saves, Escape cancels.`,
      spellcheck: "false",
    });
    input.value = current;
    toggle.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      editing = false;
      const value = input.value.trim();
      if (save && value && value !== current) onRename(k, value);
      render(last.topics, last.docTopics, last.highlight, { force: true });
      el.querySelector(`[data-focus-key="rename-${k}"]`)?.focus({ preventScroll: true });
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      else if (e.key === "Escape") finish(false);
      else return;
      e.preventDefault();
    });
    input.addEventListener("blur", () => finish(true));
  }

  /** Update which topic is pressed without rebuilding (keeps focus and hover). */
  function setHighlight(highlight) {
    last = { ...last, highlight };
    for (const li of el.children) {
      const on = Number(li.dataset.topic) === highlight;
      li.classList.toggle("abstractor-on", on);
      const toggle = li.querySelector(".abstractor-topic-toggle");
      toggle?.setAttribute("aria-pressed", String(on));
      toggle?.setAttribute("title", on ? "Show all topics" : "Highlight this topic's words");
    }
  }

  return { el, render, setHighlight };
}
