// A tiny, safe DOM builder. Text always goes through text nodes / textContent and
// attributes through setAttribute: nothing here ever parses HTML.

/**
 * h("button", { class: "abstractor-btn", onclick: fn, "aria-label": "…" }, "Text", child)
 * Props: `class`, `text` (textContent), `dataset`, `style` (custom properties
 * allowed), `on<event>` listeners, everything else as an attribute (true -> "",
 * false/null/undefined -> omitted).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") {
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, String(v));
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append nodes or strings (as text nodes), skipping null/false; arrays are flattened. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * Rebuild part of the view without losing keyboard focus: the focused element's
 * `data-focus-key` is remembered and the element with the same key refocused.
 */
export function keepFocus(container, rebuild) {
  const active = container.ownerDocument.activeElement;
  const key = active && container.contains(active) ? active.dataset.focusKey : undefined;
  rebuild();
  if (key === undefined) return;
  const next = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
  if (next) next.focus({ preventScroll: true });
}

let counter = 0;
/** A document-unique id prefix for one view (label/aria wiring). */
export function uid(prefix = "abstractor") {
  counter += 1;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 7)}`;
}
