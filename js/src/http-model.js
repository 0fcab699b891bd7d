// A stand-in for anywidget's `model` that talks to `abstractor serve`'s JSON API
// instead of a kernel comm, so the widget's own view (widget.js) runs on a plain web
// page with no kernel per visitor.
//
// It keeps the widget's state locally (the same keys as AbstractorWidget's traitlets)
// and plays the kernel's part:
//   * save_changes() after `text`, `n_similar` or `method` changed -> POST analyze;
//     the answer sets spans, doc_topics, similar, reason, elapsed_ms, error, busy and
//     `result_id` = the `request_id` the view sent with the input;
//   * send({type: "random"}) -> GET random, send({type: "load_similar", id}) -> GET
//     documents/{id}: `source`, `text` and `busy` change together, then the analysis
//     follows (the loaded paper is dropped from its own similar papers);
//   * send({type: "rename_topic"}) -> refused: labels are read-only on the web.
// With `explore` (the corpus explorer is on the page, http-explore-model.js), every analysis
// also asks where the text goes on the map: `here` ([x, y] or []) and `similar_rows` (the map
// rows of the similar papers) join the state; setFilters() ranks the similar papers among
// the papers the explorer's filters keep (and analyses again), as the kernel's
// set_row_filter does.
// Latest wins: every input or action starts a new generation (and aborts the request
// of the previous one); an answer of an older generation is never applied, so an
// out-of-order response cannot overwrite a newer result.
//
// DOM-free (fetch, AbortController and timers only): node's test runner checks it.

import { Listeners } from "./listeners.js";

const INPUTS = ["text", "n_similar", "method"];
const MAX_ID_CHARS = 200;
const EMPTY_REASON = "The text is empty: paste or type an abstract.";

/** The error message of a failed API call: the service's JSON `{error: {message}}`, or a generic one. */
export async function errorMessage(response) {
  let message = "";
  try {
    const body = await response.json();
    message = typeof body?.error?.message === "string" ? body.error.message : "";
  } catch {
    // not JSON (a proxy's error page, a truncated body): fall through
  }
  return message || `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`;
}

/** One non-topical span covering `text` (none for ""), as the kernel draws a failed analysis. */
export function plainSpans(text) {
  return text ? [{ start: 0, end: text.length, text, topic: null, weight: 0 }] : [];
}

/** The view's initial state from `GET /api/v1/topics`. */
export function initialState(config = {}) {
  const topics = Array.isArray(config.topics) ? config.topics : [];
  const nSimilar = config.n_similar && typeof config.n_similar === "object" ? config.n_similar : {};
  const methods = Array.isArray(config.methods) ? config.methods.filter((m) => typeof m === "string") : [];
  // the view lists the default ranking first
  const first = typeof config.default_method === "string" && methods.includes(config.default_method) ? config.default_method : methods[0];
  return {
    text: "",
    n_similar: Number.isInteger(nSimilar.default) ? nSimilar.default : 5,
    method: "",
    highlight_topic: null,
    request_id: 0,
    spans: [],
    doc_topics: topics.map(() => 0),
    similar: [],
    topics,
    reason: EMPTY_REASON,
    source: {},
    result_id: 0,
    elapsed_ms: 0,
    busy: false,
    error: "",
    max_text_chars: Number.isInteger(config.max_text_chars) ? config.max_text_chars : 50000,
    n_similar_min: Number.isInteger(nSimilar.min) ? nSimilar.min : 1,
    n_similar_max: Number.isInteger(nSimilar.max) ? nSimilar.max : 50,
    methods: first ? [first, ...methods.filter((m) => m !== first)] : [],
    editable_labels: false,
    here: [],
    similar_rows: [],
  };
}

export class HttpModel {
  /**
   * @param {object} options
   * @param {object} options.config  the JSON of `GET /api/v1/topics`
   * @param {string} options.base    URL of the API ending in "/" (e.g. "http://host/api/v1/")
   * @param {Function} [options.fetch]  fetch implementation (tests pass a mock)
   * @param {number} [options.debounceMs]  wait this long after the last input before
   *   analysing (0: at once; the view already sends the latest input only, one at a time)
   */
  constructor({ config, base = "api/v1/", fetch = globalThis.fetch?.bind(globalThis), debounceMs = 0, explore = false } = {}) {
    if (typeof fetch !== "function") throw new TypeError("HttpModel needs a fetch implementation");
    this._fetch = fetch;
    this._base = base.endsWith("/") ? base : `${base}/`;
    this._debounceMs = debounceMs;
    this._state = initialState(config);
    this._nRange = {
      min: Number.isInteger(config?.n_similar?.min) ? config.n_similar.min : 1,
      max: Number.isInteger(config?.n_similar?.max) ? config.n_similar.max : 50,
    };
    this._listeners = new Listeners();
    this._dirty = new Set();
    this._generation = 0;
    this._controller = null;
    this._timer = null;
    this._sourceText = null; // text of the loaded paper (`source` is cleared when it is edited)
    this._accepted = { text: "", n_similar: this._state.n_similar, method: "" }; // last inputs the server took
    this._explore = Boolean(explore);
    this._filters = null; // the explorer's filters (validated by the server), or null
  }

  /** Rank the similar papers among those `filters` keep (null: all), and analyse again. */
  setFilters(filters) {
    const active = filters && typeof filters === "object" && (filters.categories?.length || filters.date_from || filters.date_to || filters.keyword);
    const next = active ? filters : null;
    if (JSON.stringify(next) === JSON.stringify(this._filters)) return;
    this._filters = next;
    if (String(this._state.text ?? "") === "") return;
    this._update({ busy: true });
    this._analyze(this._begin());
  }

  // ------------------------------------------------------------- anywidget's model interface
  get(key) {
    return this._state[key];
  }

  /** Set one key (or an object of keys); change events fire at once, as in Backbone. */
  set(key, value) {
    const changes = typeof key === "object" && key !== null ? key : { [key]: value };
    for (const name of Object.keys(changes)) this._dirty.add(name);
    this._update(changes);
  }

  save_changes() {
    const dirty = this._dirty;
    this._dirty = new Set();
    if (INPUTS.some((k) => dirty.has(k))) this._inputChanged();
  }

  on(event, fn) {
    this._listeners.on(event, fn);
  }

  off(event, fn) {
    this._listeners.off(event, fn);
  }

  send(content) {
    const kind = content && typeof content === "object" ? content.type : undefined;
    if (kind === "random") this._loadDocument("random");
    else if (kind === "load_similar") {
      const id = content.id;
      if (typeof id !== "string" || !id || id.length > MAX_ID_CHARS) {
        this._update({ error: "A paper id must be a short, non-empty string." });
        return;
      }
      this._loadDocument(`documents/${encodeURIComponent(id)}`);
    } else if (kind === "rename_topic") {
      this._update({ error: "Topic labels are read-only in this dashboard." });
    } else {
      this._update({ error: "Ignored a message of unknown type." });
    }
  }

  /** Stop timers and abort the request in flight (the page is going away). */
  close() {
    this._generation += 1;
    clearTimeout(this._timer);
    this._timer = null;
    this._controller?.abort();
    this._controller = null;
  }

  // ------------------------------------------------------------- internals
  /** Apply several keys, then fire `change:key` for each one that changed, then `change`. */
  _update(changes) {
    const changed = [];
    for (const [key, value] of Object.entries(changes)) {
      if (!Object.is(this._state[key], value)) {
        this._state[key] = value;
        changed.push(key);
      }
    }
    for (const key of changed) this._emit(`change:${key}`, this._state[key]);
    if (changed.length) this._emit("change");
  }

  _emit(name, value) {
    this._listeners.emit(name, { name, value }, value);
  }

  /** A new generation: older answers are ignored from now on, the older request aborted. */
  _begin() {
    this._generation += 1;
    clearTimeout(this._timer);
    this._timer = null;
    this._controller?.abort();
    this._controller = typeof AbortController === "function" ? new AbortController() : null;
    return { generation: this._generation, signal: this._controller?.signal };
  }

  /** The current value of `key` when `value` equals it (as JSON), else `value`. */
  _same(key, value) {
    const current = this._state[key];
    return current === value || JSON.stringify(current) === JSON.stringify(value) ? current : value;
  }

  _current(token) {
    return token.generation === this._generation;
  }

  _inputChanged() {
    const n = Math.round(Number(this._state.n_similar));
    const clamped = Number.isFinite(n) ? Math.min(this._nRange.max, Math.max(this._nRange.min, n)) : this._accepted.n_similar;
    const changes = {};
    if (clamped !== this._state.n_similar) changes.n_similar = clamped;
    if (this._state.source?.id && this._state.text !== this._sourceText) {
      changes.source = {}; // the loaded paper's text was edited
      this._sourceText = null;
    }
    changes.busy = true;
    this._update(changes);
    const token = this._begin();
    const go = () => this._analyze(token);
    if (this._debounceMs > 0) this._timer = setTimeout(go, this._debounceMs);
    else go();
  }

  async _request(path, token, init = {}) {
    let response;
    try {
      response = await this._fetch(this._base + path, { ...init, signal: token.signal, headers: { Accept: "application/json", ...(init.headers || {}) } });
    } catch (err) {
      if (!this._current(token)) return { stale: true };
      return { ok: false, status: 0, message: `Cannot reach the server (${err?.message || err}).` };
    }
    if (!this._current(token)) return { stale: true };
    if (!response.ok) {
      const message = await errorMessage(response);
      return this._current(token) ? { ok: false, status: response.status, message } : { stale: true };
    }
    try {
      const body = await response.json();
      return this._current(token) ? { ok: true, body } : { stale: true };
    } catch {
      return this._current(token) ? { ok: false, status: response.status, message: "The server sent a malformed answer." } : { stale: true };
    }
  }

  async _analyze(token) {
    this._timer = null;
    const requestId = this._state.request_id; // the request this answer will answer
    const text = String(this._state.text ?? "");
    const n = this._state.n_similar;
    const method = this._state.method || null;
    const exclude = this._state.source?.id || null;
    // the loaded paper would be its own best match: ask for one more, drop it
    const request = { text, n: exclude ? Math.min(n + 1, this._nRange.max) : n, method };
    if (this._filters) request.filters = this._filters;
    if (this._explore) {
      request.map = true;
      if (exclude) request.paper_id = exclude;
    }
    const body = JSON.stringify(request);
    const answer = await this._request("analyze", token, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    if (answer.stale) return;
    this._controller = null;
    if (answer.ok) {
      const r = answer.body || {};
      const hits = Array.isArray(r.similar) ? r.similar.filter((hit) => hit?.id !== exclude).slice(0, n) : [];
      this._accepted = { text, n_similar: n, method: this._state.method };
      this._update({
        spans: Array.isArray(r.spans) ? r.spans : plainSpans(text),
        // an unchanged list keeps its identity: the view then leaves that part of the page alone
        doc_topics: this._same("doc_topics", Array.isArray(r.doc_topics) ? r.doc_topics : []),
        similar: this._same("similar", hits),
        reason: typeof r.reason === "string" ? r.reason : "",
        elapsed_ms: Number.isFinite(r.elapsed_ms) ? Math.round(r.elapsed_ms * 100) / 100 : 0,
        error: "",
        result_id: requestId,
        busy: false,
        ...(this._explore
          ? {
              here: this._same("here", Array.isArray(r.here) && r.here.length === 2 && r.here.every(Number.isFinite) ? r.here : []),
              similar_rows: this._same("similar_rows", hits.map((hit) => hit?.row).filter(Number.isInteger)),
            }
          : {}),
      });
    } else if ([400, 413, 422].includes(answer.status)) {
      // The input was refused (too long, bad method...): like the kernel, keep the last
      // accepted inputs and their result, and say why.
      const restore = {};
      for (const key of INPUTS) if (this._state[key] !== this._accepted[key]) restore[key] = this._accepted[key];
      this._update({ ...restore, error: answer.message, result_id: requestId, busy: false });
    } else {
      // The server failed or refused to serve now (429, 5xx, network): show the text
      // uncoloured with the reason; the next edit tries again.
      this._update({ spans: plainSpans(text), doc_topics: [], similar: [], reason: "", error: answer.message, result_id: requestId, busy: false, here: [], similar_rows: [] });
    }
  }

  async _loadDocument(path) {
    const token = this._begin();
    this._update({ busy: true });
    const answer = await this._request(path, token);
    if (answer.stale) return;
    if (!answer.ok) {
      this._controller = null;
      this._update({ error: answer.message, busy: false, result_id: this._state.request_id });
      return;
    }
    const doc = answer.body || {};
    const text = typeof doc.abstract === "string" ? doc.abstract : "";
    if (typeof doc.id !== "string" || !doc.id) {
      this._update({ error: "The server sent a paper without an id.", busy: false, result_id: this._state.request_id });
      return;
    }
    if (text.length > this._state.max_text_chars) {
      this._update({ error: "This paper is too long to show.", busy: false, result_id: this._state.request_id });
      return;
    }
    // The paper's source, its text and `busy` reach the view together (never the new
    // title over the old text); the analysis follows.
    this._sourceText = text;
    this._update({
      source: { id: doc.id, title: doc.title ?? "", url: doc.url ?? "", categories: doc.categories ?? "", published: doc.published ?? "" },
      text,
      busy: true,
    });
    await this._analyze(token);
  }
}

/** A model for widget.js's render({model, el}) over the API at `base`, configured by `config`. */
export function createHttpModel(options) {
  return new HttpModel(options);
}
