// anywidget front end of abstractor_widgets.AbstractorWidget.
//
// All state lives in the model (synced traitlets): this view draws it and sends
// inputs back. Typing sets `text` (debounced) together with a bumped `request_id`;
// the kernel answers with results and `result_id`, and results answering an older
// request than the latest one sent are dropped. Actions are custom messages:
// {type: "random"}, {type: "load_similar", id}, {type: "rename_topic", topic, label}.

import { h, replace, uid } from "./dom.js";
import { methodName, safeUrl } from "./format.js";
import { createLegend } from "./legend.js";
import { mixBar, mixCaption } from "./mix.js";
import { createSimilarList } from "./similar.js";
import { RequestGate, clampN, read } from "./requests.js";
import { createTextView } from "./text-view.js";
import { watchTheme } from "./theme.js";

const DEBOUNCE_MS = 150;
const SLOW_MS = 5000;

function render({ model, el }) {
  const ids = { text: uid(), hint: uid(), doc: uid(), topics: uid(), similar: uid(), n: uid(), method: uid() };
  const subscriptions = [];
  const on = (event, fn) => {
    model.on(event, fn);
    subscriptions.push([event, fn]);
  };
  let alive = true;
  let textTimer = null;
  let nTimer = null;
  let slowTimer = null;
  let slow = false;
  let focusTextAfterLoad = false;
  let dismissedError = null;
  let heldBack = false; // a result arrived while a newer request was pending and was not drawn
  const gate = new RequestGate(model, { text: "", n_similar: 5, method: "" });

  const send = (msg) => model.send(msg);
  const get = (key, fallback) => read(model, key, fallback);
  // bounds of "Show n" and of the text come from the kernel (traits), not from this file
  const nBounds = () => [Number(get("n_similar_min", 1)), Number(get("n_similar_max", 50))];
  const toN = (value) => clampN(value, get("n_similar", 5), ...nBounds());

  // ------------------------------------------------------------- structure
  const root = h("div", { class: "abstractor-root", "data-lm-suppress-shortcuts": "true" });
  const statusText = h("span", { class: "abstractor-status-text" });
  const status = h(
    "div",
    { class: "abstractor-status", role: "status", "aria-live": "polite" },
    h("span", { class: "abstractor-spinner", "aria-hidden": "true" }),
    statusText,
  );
  const errorText = h("span", { class: "abstractor-error-text" });
  const errorBox = h(
    "div",
    { class: "abstractor-error", role: "alert", hidden: true },
    errorText,
    h("button", {
      type: "button",
      class: "abstractor-icon-btn",
      "aria-label": "Dismiss this message",
      text: "\u00D7",
      onclick: () => {
        dismissedError = get("error", "");
        errorBox.hidden = true;
      },
    }),
  );

  const textarea = h("textarea", {
    id: ids.text,
    class: "abstractor-textarea",
    rows: "6",
    maxlength: String(get("max_text_chars", 50000)),
    placeholder: "Paste or type a research abstract\u2026",
    "aria-describedby": ids.hint,
    spellcheck: "false",
  });
  textarea.value = get("text", "");
  const randomButton = h("button", {
    type: "button",
    class: "abstractor-btn abstractor-btn-primary",
    text: "Random abstract",
    onclick: () => send({ type: "random" }),
  });
  const input = h(
    "div",
    { class: "abstractor-input" },
    h("label", { class: "abstractor-label", for: ids.text, text: "Abstract" }),
    textarea,
    h(
      "div",
      { class: "abstractor-controls" },
      randomButton,
      h("span", { id: ids.hint, class: "abstractor-hint", text: "Results update as you type; Ctrl+Enter (\u2318+Enter) analyses at once." }),
    ),
  );

  const emptyBox = h("div", { class: "abstractor-empty", hidden: true });
  const sourceLine = h("p", { class: "abstractor-source", hidden: true });
  const mixSlot = h("div", { class: "abstractor-mix-slot" });
  const textView = createTextView({ root, onToggleTopic: toggleTopic });
  const legend = createLegend({
    onToggleTopic: toggleTopic,
    onRename: (topic, label) => send({ type: "rename_topic", topic, label }),
    canRename: () => get("editable_labels", true) !== false,
  });
  const similarList = createSimilarList({
    onLoad: (id) => {
      focusTextAfterLoad = true;
      send({ type: "load_similar", id });
    },
  });
  const clearHighlight = h("button", {
    type: "button",
    class: "abstractor-link-btn",
    text: "Show all",
    hidden: true,
    onclick: () => toggleTopic(null),
  });
  const nInput = h("input", {
    id: ids.n,
    class: "abstractor-n",
    type: "number",
    min: String(nBounds()[0]),
    max: String(nBounds()[1]),
    step: "1",
    inputmode: "numeric",
  });
  nInput.value = String(get("n_similar", 5));
  // Ranking of the similar papers: "" is the model's default (the first of `methods`).
  const methodSelect = h("select", { id: ids.method, class: "abstractor-method" });
  const methodLabel = h("label", { class: "abstractor-n-label", for: ids.method }, "Rank by ", methodSelect);
  const noHits = h("p", { class: "abstractor-muted abstractor-no-hits", hidden: true, text: "No similar papers found." });

  const docSection = h(
    "section",
    { class: "abstractor-doc", "aria-labelledby": ids.doc },
    h("h3", { id: ids.doc, class: "abstractor-h", text: "Topic mix" }),
    mixSlot,
    sourceLine,
    textView.el,
  );
  const topicsHint = h("p", { class: "abstractor-hint" });
  const topicsSection = h(
    "section",
    { class: "abstractor-topics", "aria-labelledby": ids.topics },
    h("div", { class: "abstractor-section-head" }, h("h3", { id: ids.topics, class: "abstractor-h", text: "Topics" }), clearHighlight),
    topicsHint,
    legend.el,
  );
  const similarSection = h(
    "section",
    { class: "abstractor-similar", "aria-labelledby": ids.similar },
    h(
      "div",
      { class: "abstractor-section-head" },
      h("h3", { id: ids.similar, class: "abstractor-h", text: "Similar papers" }),
      h("div", { class: "abstractor-similar-controls" }, methodLabel, h("label", { class: "abstractor-n-label", for: ids.n }, "Show ", nInput)),
    ),
    similarList.el,
    noHits,
  );
  root.append(
    h("div", { class: "abstractor-header" }, h("span", { class: "abstractor-title", text: "Topics of an abstract" }), status),
    errorBox,
    input,
    emptyBox,
    h("div", { class: "abstractor-main" }, docSection, topicsSection),
    similarSection,
    textView.tooltip,
  );
  el.replaceChildren(root);
  const stopTheme = watchTheme(root);

  // ------------------------------------------------------------- inputs
  // The request logic (one request in flight, the latest input queued) is requests.js's.
  const pending = () => textTimer !== null || nTimer !== null || gate.queued || gate.inFlight();

  /** Send the current text, n and ranking (whichever changed) as one request. */
  function flush() {
    clearTimeout(textTimer);
    clearTimeout(nTimer);
    textTimer = nTimer = null;
    const outcome = gate.submit({
      text: textarea.value,
      n_similar: toN(nInput.value),
      method: methodLabel.hidden ? undefined : methodSelect.value,
    });
    if (outcome === "unchanged" && heldBack) schedule(); // nothing new to send: draw the result held back
    else drawStatus();
  }

  function commitN() {
    nInput.value = String(toN(nInput.value));
    flush();
  }

  function toggleTopic(k) {
    const next = k === null || get("highlight_topic", null) === k ? null : k;
    model.set("highlight_topic", next);
    model.save_changes();
  }

  // JupyterLab handles Enter, Shift+Enter, Ctrl+Enter and single-letter shortcuts on
  // the notebook: keep every key pressed inside the widget to the widget.
  root.addEventListener("keydown", (e) => e.stopPropagation());
  // Send at once when the kernel is idle (flush() queues the latest text while a
  // request is in flight), so a keystroke renders in one round trip, not after a timer.
  textarea.addEventListener("input", () => {
    clearTimeout(textTimer);
    textTimer = null;
    flush();
  });
  // maxlength cuts a long paste silently: say so.
  textarea.addEventListener("paste", (e) => {
    const pasted = e.clipboardData ? e.clipboardData.getData("text").length : 0;
    const room = textarea.maxLength - (textarea.value.length - (textarea.selectionEnd - textarea.selectionStart));
    if (textarea.maxLength > 0 && pasted > room) {
      errorText.textContent = `Only the first ${Math.max(0, room).toLocaleString()} of ${pasted.toLocaleString()} pasted characters fit (the limit is ${textarea.maxLength.toLocaleString()}).`;
      errorBox.hidden = false;
    }
  });
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      flush();
    }
  });
  nInput.addEventListener("input", () => {
    clearTimeout(nTimer);
    nTimer = setTimeout(flush, DEBOUNCE_MS * 2);
  });
  nInput.addEventListener("change", commitN);
  methodSelect.addEventListener("change", flush);
  nInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      commitN();
    }
  });

  // ------------------------------------------------------------- drawing
  function drawMethods() {
    const methods = (Array.isArray(get("methods", [])) ? get("methods", []) : []).filter((m) => typeof m === "string");
    const options = methods.map((m, i) =>
      h("option", { value: i === 0 ? "" : m, text: methodName(m) + (i === 0 ? " (default)" : "") }),
    );
    methodSelect.replaceChildren(...options);
    methodSelect.value = methods.slice(1).includes(get("method", "")) ? get("method", "") : "";
    methodLabel.hidden = methods.length < 2;
  }

  function drawStatus() {
    const busy = Boolean(get("busy", false)) || pending();
    root.setAttribute("aria-busy", String(busy));
    root.classList.toggle("abstractor-busy", busy);
    clearTimeout(slowTimer);
    if (busy) {
      slowTimer = setTimeout(() => {
        slow = true;
        drawStatus();
      }, SLOW_MS);
    } else slow = false;
    const spans = get("spans", []);
    const words = Array.isArray(spans) ? spans.filter((s) => Number.isInteger(s?.topic)).length : 0;
    const ms = Number(get("elapsed_ms", 0));
    statusText.textContent = busy
      ? slow
        ? "Waiting for the kernel\u2026"
        : "Analysing\u2026"
      : words
        ? `${words} topical word${words === 1 ? "" : "s"} \u00B7 ${ms.toFixed(1)} ms`
        : "";
  }

  function drawError() {
    const error = get("error", "");
    if (error !== dismissedError) dismissedError = null;
    errorText.textContent = error;
    errorBox.hidden = !error || dismissedError === error;
    if (error) focusTextAfterLoad = false; // the load failed: do not move focus later
  }

  function drawResults() {
    drawStatus();
    heldBack = pending();
    if (heldBack) return; // a newer request is on its way: drop this (stale) result
    const topics = Array.isArray(get("topics", [])) ? get("topics", []) : [];
    const docTopics = Array.isArray(get("doc_topics", [])) ? get("doc_topics", []) : [];
    const highlight = get("highlight_topic", null);
    const hasResult = docTopics.some((x) => x > 0);
    const reason = get("reason", "");

    emptyBox.hidden = hasResult;
    replace(
      emptyBox,
      h("p", { class: "abstractor-empty-title", text: reason || "Nothing to show yet." }),
      get("text", "").trim()
        ? h("p", { class: "abstractor-hint", text: "Topics come from the words the model knows: try a longer abstract in English, or press \u201cRandom abstract\u201d." })
        : null,
    );
    docSection.hidden = !hasResult;
    similarSection.hidden = !hasResult;

    mixSlot.replaceChildren(mixBar(docTopics, topics, { labels: true, name: "Topic mix of the abstract" }), mixCaption(docTopics, topics));
    const source = get("source", {});
    const url = safeUrl(source?.url);
    sourceLine.hidden = !source?.id;
    sourceLine.replaceChildren(
      ...(source?.id
        ? [
            h("span", { class: "abstractor-muted", text: `arXiv ${source.id}: ` }),
            url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: String(source.title || source.id) }) : String(source.title || ""),
          ]
        : []),
    );
    textView.render(get("spans", []), topics, highlight);
    legend.render(topics, docTopics, highlight);
    topicsHint.textContent = `Click a topic to highlight its words${get("editable_labels", true) !== false ? "; \u270E (or F2) renames it" : ""}.`;
    drawHighlightControls(highlight);
    const hits = get("similar", []);
    similarList.render(hits, topics);
    noHits.hidden = Array.isArray(hits) && hits.length > 0;

    if (focusTextAfterLoad) {
      focusTextAfterLoad = false;
      textView.el.focus({ preventScroll: true });
      textView.el.scrollIntoView?.({ block: "nearest" });
    }
  }

  function drawHighlightControls(highlight) {
    clearHighlight.hidden = !Number.isInteger(highlight);
  }

  function drawHighlight() {
    const highlight = get("highlight_topic", null);
    textView.setHighlight(highlight);
    legend.setHighlight(highlight);
    drawHighlightControls(highlight);
  }

  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    // Every key of one kernel update triggers its own change event: draw once.
    queueMicrotask(() => {
      scheduled = false;
      if (alive) drawResults();
    });
  }

  // ------------------------------------------------------------- model events
  for (const key of ["spans", "doc_topics", "similar", "topics", "reason", "source", "elapsed_ms"]) {
    on(`change:${key}`, schedule);
  }
  on("change:result_id", () => {
    if (gate.due()) flush(); // send what was typed while waiting
    schedule();
  });
  on("change:highlight_topic", drawHighlight);
  on("change:editable_labels", schedule);
  on("change:busy", drawStatus);
  on("change:request_id", drawStatus);
  on("change:error", drawError);
  on("change:text", () => {
    const text = get("text", "");
    // Never overwrite what the user is still typing.
    if (textTimer === null && !gate.queued && textarea.value !== text) textarea.value = text;
  });
  on("change:n_similar", () => {
    if (nTimer === null) nInput.value = String(get("n_similar", 5));
  });
  on("change:methods", drawMethods);
  on("change:method", () => {
    if (!gate.queued) methodSelect.value = get("method", "");
  });
  for (const key of ["n_similar_min", "n_similar_max"]) {
    on(`change:${key}`, () => {
      [nInput.min, nInput.max] = nBounds().map(String);
    });
  }

  drawMethods();
  drawError();
  drawResults();

  return () => {
    alive = false;
    for (const [event, fn] of subscriptions) model.off(event, fn);
    clearTimeout(textTimer);
    clearTimeout(nTimer);
    clearTimeout(slowTimer);
    stopTheme();
  };
}

export default { render };
