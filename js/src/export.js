// Downloads: the kernel builds the CSV / BibTeX text (one implementation, tested in
// Python); the view turns it into a file with a Blob URL.

import { h } from "./dom.js";

const MIME = new Set(["text/csv", "application/x-bibtex"]);

export function safeFilename(name) {
  const clean = String(name || "").replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 80);
  return /\.(csv|bib)$/.test(clean) ? clean : "abstractor-export.txt";
}

/** Save `text` as a file (an <a download> click on a Blob URL). */
export function download(msg, doc = document) {
  const mime = MIME.has(msg?.mime) ? msg.mime : "text/plain";
  const blob = new Blob([String(msg?.text ?? "")], { type: `${mime};charset=utf-8` });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: safeFilename(msg?.filename), hidden: true });
  doc.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** "CSV" and "BibTeX" buttons for one list (what: "similar" | "selection"). */
export function exportButtons(what, label, send) {
  const make = (format, text) =>
    h("button", {
      type: "button",
      class: "abstractor-btn abstractor-export-btn",
      dataset: { export: `${what}-${format}` },
      "aria-label": `Export ${label} as ${text}`,
      text,
      onclick: () => send({ type: "export", what, format }),
    });
  return h("span", { class: "abstractor-export", role: "group", "aria-label": `Export ${label}` }, h("span", { class: "abstractor-muted", text: `${label}: ` }), make("csv", "CSV"), make("bibtex", "BibTeX"));
}
