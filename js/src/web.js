// Entry of the kernel-free web dashboard served by `abstractor serve` at "/".
//
// The page fetches the model's topics and settings (GET api/v1/topics), builds an
// HttpModel (the HTTP stand-in for anywidget's model) and renders the widget's own
// view into #app; then the corpus explorer's own view (explore.js, loaded as a separate
// chunk) into #explore over an HttpExploreModel. Nothing here parses HTML: messages go
// through textContent.

import { HttpModel } from "./http-model.js";
import widget from "./widget.js";

const API = new URL("api/v1/", document.baseURI).href;

function showProblem(app, message) {
  const box = document.createElement("p");
  box.className = "abstractor-page-problem";
  box.setAttribute("role", "alert");
  box.textContent = message;
  app.replaceChildren(box);
}

const LOADING_RETRIES = 60; // the service answers 503 while it loads the model: retry for ~a minute

async function loadConfig(app) {
  let response;
  for (let attempt = 0; ; attempt += 1) {
    response = await fetch(`${API}topics`, { headers: { Accept: "application/json" } });
    if (response.status !== 503 || attempt >= LOADING_RETRIES) break;
    const note = app.querySelector(".abstractor-page-loading");
    if (note) note.textContent = "The server is loading the model\u2026";
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  if (!response.ok) {
    let message = "";
    try {
      message = (await response.json())?.error?.message || "";
    } catch {
      // not JSON
    }
    throw new Error(message || `the server answered ${response.status}`);
  }
  return response.json();
}

async function main() {
  const app = document.getElementById("app");
  if (!app) return;
  let config;
  try {
    config = await loadConfig(app);
  } catch (err) {
    showProblem(app, `Could not load the model: ${err?.message || err}. Reload the page to try again.`);
    return;
  }
  const model = new HttpModel({ config, base: API, explore: Boolean(document.getElementById("explore")) });
  const corpus = document.getElementById("corpus-size");
  if (corpus && Number.isInteger(config.n_documents) && Number.isInteger(config.n_topics)) {
    corpus.textContent = `${config.n_topics} topics over ${config.n_documents.toLocaleString("en")} papers.`;
  }
  const cleanup = widget.render({ model, el: app });
  // For tests and measurements: the view is ready for input.
  document.documentElement.dataset.abstractorReady = "true";
  performance.mark?.("abstractor-interactive");
  let stopExplorer = null;
  window.addEventListener("pagehide", () => {
    model.close();
    if (typeof cleanup === "function") cleanup();
    stopExplorer?.();
  });
  // The corpus explorer (map, trends, filters, export) under the analyser: its code and
  // data load after the analyser is ready for input.
  const host = document.getElementById("explore");
  if (host) {
    startExplorer(host, model)
      .then((stop) => {
        stopExplorer = stop;
      })
      .catch((err) => showProblem(host, `The corpus explorer could not load: ${err?.message || err}. Reload the page to try again.`));
  }
}

async function startExplorer(host, analyser) {
  const [{ default: explore }, { HttpExploreModel }] = await Promise.all([import("./explore.js"), import("./http-explore-model.js")]);
  const model = await HttpExploreModel.load({ analyser, base: API });
  const cleanup = explore.render({ model, el: host });
  document.documentElement.dataset.exploreReady = "true";
  return () => {
    model.close();
    if (typeof cleanup === "function") cleanup();
  };
}

main();
