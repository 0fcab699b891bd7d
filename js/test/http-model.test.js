// Unit tests of the web dashboard's transport (src/http-model.js) with a mocked fetch:
// the state the view reads, request_id / result_id, latest-wins on out-of-order
// answers, errors from the service's JSON, random and load_similar.
import assert from "node:assert/strict";
import test from "node:test";

import { HttpModel, errorMessage, initialState, plainSpans } from "../src/http-model.js";

const BASE = "http://127.0.0.1:1/api/v1/";
const CONFIG = {
  n_topics: 2,
  n_documents: 3,
  topics: [
    { id: 0, label: "Vision", color: "#E69F00", pattern: "solid", terms: [["image", 0.1]] },
    { id: 1, label: "", color: "#56B4E9", pattern: "solid", terms: [["graph", 0.1]] },
  ],
  methods: ["lexical", "hybrid", "lda"],
  default_method: "hybrid",
  max_text_chars: 100,
  n_similar: { min: 1, max: 50, default: 5 },
  editable_labels: false,
};
const DOC = { id: "2401.00001", title: "A paper", abstract: "image graph", categories: "cs.CV", published: "2024-01-01", url: "https://arxiv.org/abs/2401.00001" };

function hit(id) {
  return { id, title: `Paper ${id}`, score: 0.5, topics: [0.5, 0.5], url: `https://arxiv.org/abs/${id}`, categories: "cs.LG", published: "2024", shared_topics: [], shared_terms: [] };
}

function analysis(text, { similar = [hit("a"), hit("b")], elapsed = 1.234 } = {}) {
  const spans = text ? [{ start: 0, end: text.length, text, topic: 0, weight: 0.9 }] : [];
  return { spans, doc_topics: [1, 0], similar, reason: null, elapsed_ms: elapsed, method: "hybrid" };
}

function json(status, body) {
  return { ok: status >= 200 && status < 300, status, statusText: "", json: async () => body };
}

/** A fetch whose answers the test releases one by one, in any order. */
function mockFetch() {
  const calls = [];
  const fetch = (url, init = {}) =>
    new Promise((resolve, reject) => {
      const call = { url, init, body: init.body ? JSON.parse(init.body) : undefined, resolve, reject };
      call.path = url.slice(BASE.length);
      calls.push(call);
      init.signal?.addEventListener("abort", () => {
        call.aborted = true;
        reject(Object.assign(new Error("aborted"), { name: "AbortError" }));
      });
    });
  return { fetch, calls };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** What the widget does when the user types: set the input with request_id + 1, save. */
function type(model, text) {
  model.set("text", text);
  model.set("request_id", model.get("request_id") + 1);
  model.save_changes();
}

function recorder(model, keys) {
  const events = [];
  for (const key of keys) model.on(`change:${key}`, () => events.push(key));
  return events;
}

test("initial state mirrors the widget's traits, default ranking first, labels read-only", () => {
  const s = initialState(CONFIG);
  assert.deepEqual(s.methods, ["hybrid", "lexical", "lda"]);
  assert.equal(s.method, "");
  assert.equal(s.n_similar, 5);
  assert.equal(s.max_text_chars, 100);
  assert.equal(s.editable_labels, false);
  assert.deepEqual(s.doc_topics, [0, 0]);
  assert.equal(s.topics.length, 2);
  assert.equal(s.request_id, 0);
  assert.equal(s.result_id, 0);
  assert.deepEqual(initialState({}).methods, []);
  assert.deepEqual(plainSpans(""), []);
  assert.deepEqual(plainSpans("ab"), [{ start: 0, end: 2, text: "ab", topic: null, weight: 0 }]);
});

test("set fires change events at once; highlight alone sends nothing", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  const seen = [];
  const fn = (_e, v) => seen.push(v);
  model.on("change:highlight_topic", fn);
  model.set("highlight_topic", 1);
  model.save_changes();
  assert.deepEqual(seen, [1]);
  model.off("change:highlight_topic", fn);
  model.set("highlight_topic", 0);
  assert.deepEqual(seen, [1]);
  await tick();
  assert.equal(calls.length, 0);
});

test("typing analyses the text: one POST, result_id answers request_id, busy while waiting", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  type(model, "image of a graph");
  assert.equal(model.get("busy"), true);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].path, "analyze");
  assert.equal(calls[0].init.method, "POST");
  assert.deepEqual(calls[0].body, { text: "image of a graph", n: 5, method: null });
  assert.equal(model.get("result_id"), 0);
  const events = recorder(model, ["spans", "similar", "result_id", "busy"]);
  calls[0].resolve(json(200, analysis("image of a graph")));
  await tick();
  assert.equal(model.get("result_id"), 1);
  assert.equal(model.get("busy"), false);
  assert.equal(model.get("spans")[0].text, "image of a graph");
  assert.deepEqual(model.get("doc_topics"), [1, 0]);
  assert.equal(model.get("similar").length, 2);
  assert.equal(model.get("reason"), "");
  assert.equal(model.get("elapsed_ms"), 1.23);
  assert.equal(model.get("error"), "");
  // every key of one answer is applied before the first change event fires
  assert.deepEqual(events, ["spans", "similar", "result_id", "busy"]);
});

test("n_similar and method are sent, clamped, and '' means the model's default", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  model.set("n_similar", 500);
  model.set("method", "lda");
  model.set("request_id", 1);
  model.save_changes();
  assert.equal(model.get("n_similar"), 50);
  assert.deepEqual(calls[0].body, { text: "", n: 50, method: "lda" });
  calls[0].resolve(json(200, analysis("")));
  await tick();
  model.set("method", "");
  model.set("request_id", 2);
  model.save_changes();
  assert.equal(calls[1].body.method, null);
});

test("latest wins: an older answer arriving last never overwrites the newer result", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  type(model, "first");
  type(model, "second");
  assert.equal(calls.length, 2);
  assert.equal(calls[0].aborted, true, "the older request is aborted");
  calls[1].resolve(json(200, analysis("second")));
  await tick();
  assert.equal(model.get("spans")[0].text, "second");
  assert.equal(model.get("result_id"), 2);
  calls[0].resolve(json(200, analysis("first"))); // too late (a server that ignores the abort)
  await tick();
  assert.equal(model.get("spans")[0].text, "second");
  assert.equal(model.get("result_id"), 2);
});

test("latest wins with a fetch that ignores aborts: out-of-order answers", async () => {
  const calls = [];
  const fetch = (url, init) => new Promise((resolve) => calls.push({ body: JSON.parse(init.body), resolve }));
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  type(model, "one");
  type(model, "two");
  type(model, "three");
  calls[2].resolve(json(200, analysis("three")));
  calls[0].resolve(json(200, analysis("one")));
  await tick();
  calls[1].resolve(json(200, analysis("two")));
  await tick();
  assert.equal(model.get("spans")[0].text, "three");
  assert.equal(model.get("result_id"), 3);
  assert.equal(model.get("busy"), false);
});

test("a refused input (413) shows the service's message and restores the last accepted text", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  type(model, "image");
  calls[0].resolve(json(200, analysis("image")));
  await tick();
  type(model, "x".repeat(500));
  calls[1].resolve(json(413, { error: { status: 413, message: "The text has 500 characters; the limit is 100." } }));
  await tick();
  assert.equal(model.get("error"), "The text has 500 characters; the limit is 100.");
  assert.equal(model.get("text"), "image");
  assert.equal(model.get("spans")[0].text, "image");
  assert.equal(model.get("result_id"), 2, "the view is not left waiting");
  assert.equal(model.get("busy"), false);
  type(model, "image again");
  calls[2].resolve(json(200, analysis("image again")));
  await tick();
  assert.equal(model.get("error"), "", "a success clears the error");
});

test("server failures, non-JSON errors and network errors become `error`", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  type(model, "abc");
  calls[0].resolve({ ok: false, status: 502, statusText: "Bad Gateway", json: async () => { throw new SyntaxError("not json"); } });
  await tick();
  assert.equal(model.get("error"), "The server answered 502 Bad Gateway.");
  assert.deepEqual(model.get("spans"), plainSpans("abc"), "the text is shown uncoloured");
  assert.deepEqual(model.get("similar"), []);
  assert.equal(model.get("result_id"), 1);
  type(model, "abcd");
  calls[1].reject(new TypeError("Failed to fetch"));
  await tick();
  assert.match(model.get("error"), /Cannot reach the server \(Failed to fetch\)/);
  assert.equal(model.get("busy"), false);
  type(model, "abcde");
  calls[2].resolve(json(429, { error: { status: 429, message: "Too many requests: try again in a second." } }));
  await tick();
  assert.equal(model.get("error"), "Too many requests: try again in a second.");
  assert.equal(model.get("text"), "abcde", "a transient failure keeps what was typed");
  assert.equal(await errorMessage(json(500, { error: { message: 42 } })), "The server answered 500.");
});

test("random: GET random, then source + text + busy together, then the analysis without the paper itself", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  const batches = [];
  let batch = [];
  for (const key of ["source", "text", "busy", "spans", "result_id"]) model.on(`change:${key}`, () => batch.push(key));
  model.on("change", () => {
    batches.push(batch);
    batch = [];
  });
  model.send({ type: "random" });
  assert.equal(model.get("busy"), true);
  assert.equal(calls[0].path, "random");
  assert.equal(calls[0].init.method, undefined);
  calls[0].resolve(json(200, DOC));
  await tick();
  assert.deepEqual(batches.at(-1), ["source", "text"]); // busy was already true
  assert.equal(model.get("text"), "image graph");
  assert.deepEqual(model.get("source"), { id: DOC.id, title: DOC.title, url: DOC.url, categories: DOC.categories, published: DOC.published });
  assert.equal(calls[1].path, "analyze");
  assert.deepEqual(calls[1].body, { text: "image graph", n: 6, method: null }, "one more hit: the paper itself is dropped");
  calls[1].resolve(json(200, analysis("image graph", { similar: [hit(DOC.id), hit("c"), hit("d")] })));
  await tick();
  assert.deepEqual(model.get("similar").map((h) => h.id), ["c", "d"]);
  assert.equal(model.get("busy"), false);
  assert.equal(model.get("result_id"), 0, "actions answer the current request_id");
  // editing the loaded text clears its source
  type(model, "image graph and more");
  assert.deepEqual(model.get("source"), {});
  assert.deepEqual(calls[2].body, { text: "image graph and more", n: 5, method: null });
});

test("load_similar: GET documents/{id} (encoded), unknown ids and bad ids set `error`", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  model.send({ type: "load_similar", id: "hep-th/9901001" });
  assert.equal(calls[0].path, "documents/hep-th%2F9901001");
  calls[0].resolve(json(404, { error: { status: 404, message: "Unknown paper id 'hep-th/9901001'." } }));
  await tick();
  assert.equal(model.get("error"), "Unknown paper id 'hep-th/9901001'.");
  assert.equal(model.get("busy"), false);
  assert.equal(model.get("text"), "", "a failed load changes nothing else");
  for (const id of ["", 42, null, "x".repeat(201)]) {
    model.set("error", "");
    model.send({ type: "load_similar", id });
    assert.equal(model.get("error"), "A paper id must be a short, non-empty string.");
  }
  assert.equal(calls.length, 1, "bad ids never reach the server");
  model.send({ type: "load_similar", id: DOC.id });
  calls[1].resolve(json(200, DOC));
  await tick();
  assert.equal(model.get("source").id, DOC.id);
  assert.equal(calls[2].path, "analyze");
});

test("typing during a load wins over the load; a load during typing wins over the typing", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  model.send({ type: "random" });
  type(model, "typed");
  calls[0].resolve(json(200, DOC)); // aborted: ignored
  calls[1].resolve(json(200, analysis("typed")));
  await tick();
  assert.equal(model.get("text"), "typed");
  assert.deepEqual(model.get("source"), {});
  assert.equal(model.get("spans")[0].text, "typed");

  type(model, "typed more");
  model.send({ type: "load_similar", id: DOC.id });
  calls[2].resolve(json(200, analysis("typed more")));
  await tick();
  assert.equal(model.get("spans")[0].text, "typed", "the typing's answer came after the load began");
  calls[3].resolve(json(200, DOC));
  await tick();
  calls[4].resolve(json(200, analysis(DOC.abstract)));
  await tick();
  assert.equal(model.get("text"), DOC.abstract);
  assert.equal(model.get("spans")[0].text, DOC.abstract);
  assert.equal(model.get("result_id"), model.get("request_id"), "the view is not left waiting");
});

test("rename_topic and unknown messages are refused without a request", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  model.send({ type: "rename_topic", topic: 0, label: "X" });
  assert.equal(model.get("error"), "Topic labels are read-only in this dashboard.");
  model.send({ type: "execute", code: "1" });
  assert.equal(model.get("error"), "Ignored a message of unknown type.");
  model.send("random");
  assert.equal(model.get("error"), "Ignored a message of unknown type.");
  await tick();
  assert.equal(calls.length, 0);
});

test("debounce: with debounceMs only the last of quick inputs is sent", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch, debounceMs: 20 });
  type(model, "a");
  type(model, "ab");
  type(model, "abc");
  assert.equal(calls.length, 0);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(calls.length, 1);
  assert.equal(calls[0].body.text, "abc");
  calls[0].resolve(json(200, analysis("abc")));
  await tick();
  assert.equal(model.get("result_id"), 3);
  model.close();
});

test("a listener that throws does not stop the others", () => {
  const { fetch } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  const seen = [];
  const original = console.error;
  console.error = () => {};
  try {
    model.on("change:highlight_topic", () => {
      throw new Error("boom");
    });
    model.on("change:highlight_topic", () => seen.push("second"));
    model.set("highlight_topic", 1);
  } finally {
    console.error = original;
  }
  assert.deepEqual(seen, ["second"]);
});

test("an answer with the same hits keeps the list's identity (the view skips redrawing it)", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  type(model, "image");
  calls[0].resolve(json(200, analysis("image")));
  await tick();
  const hits = model.get("similar");
  const events = recorder(model, ["similar", "spans"]);
  type(model, "image!");
  calls[1].resolve(json(200, analysis("image!")));
  await tick();
  assert.equal(model.get("similar"), hits);
  assert.deepEqual(events, ["spans"]);
  type(model, "graph");
  calls[2].resolve(json(200, analysis("graph", { similar: [hit("z")] })));
  await tick();
  assert.deepEqual(model.get("similar").map((h) => h.id), ["z"]);
});

test("a loaded paper at the largest n asks for no more than the service allows", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch });
  model.set("n_similar", 50);
  model.send({ type: "load_similar", id: DOC.id });
  await tick();
  calls[0].resolve(json(200, DOC));
  await tick();
  const analyze = calls.find((c) => c.path === "analyze");
  assert.ok(analyze, "the loaded paper is analysed");
  assert.equal(analyze.body.n, 50); // one more than shown would be 51: the service refuses it (422)
});

test("with the explorer: each analysis asks for the map (here, rows); filters rank among the kept papers", async () => {
  const { fetch, calls } = mockFetch();
  const model = new HttpModel({ config: CONFIG, base: BASE, fetch, explore: true });
  type(model, "image of a graph");
  assert.deepEqual(calls[0].body, { text: "image of a graph", n: 5, method: null, map: true });
  calls[0].resolve(json(200, { ...analysis("image of a graph", { similar: [{ ...hit("a"), row: 4 }, { ...hit("b"), row: 9 }] }), here: [0.25, -0.5] }));
  await tick();
  await tick();
  assert.deepEqual(model.get("here"), [0.25, -0.5]);
  assert.deepEqual(model.get("similar_rows"), [4, 9]);
  model.setFilters({ categories: ["cs.LG"], date_from: "", date_to: "", keyword: "" });
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1].body.filters.categories, ["cs.LG"]);
  model.setFilters({ categories: ["cs.LG"], date_from: "", date_to: "", keyword: "" }); // unchanged: no request
  assert.equal(calls.length, 2);
  calls[1].resolve(json(500, { error: { status: 500, message: "boom" } }));
  await tick();
  await tick();
  assert.deepEqual(model.get("here"), []);
  assert.deepEqual(model.get("similar_rows"), []);
  model.setFilters(null);
  assert.equal(calls.length, 3);
  assert.equal(calls[2].body.filters, undefined);
});
