import assert from "node:assert/strict";
import { test } from "node:test";

import { RequestGate, clampN, read } from "../src/requests.js";

/** A model like anywidget's: get/set/save_changes, recording what was sent. */
function fakeModel(state = {}) {
  const sent = [];
  let dirty = {};
  return {
    state,
    sent,
    get: (k) => state[k],
    set: (k, v) => {
      state[k] = v;
      dirty[k] = v;
    },
    save_changes: () => {
      sent.push(dirty);
      dirty = {};
    },
  };
}

test("an idle gate sends changed inputs with a new request id, once", () => {
  const model = fakeModel({ text: "", n_similar: 5, request_id: 0, result_id: 0 });
  const gate = new RequestGate(model);
  assert.equal(gate.submit({ text: "graphs", n_similar: 5 }), "sent");
  assert.deepEqual(model.sent, [{ text: "graphs", request_id: 1 }]);
  assert.equal(gate.inFlight(), true);
});

test("unchanged inputs send nothing", () => {
  const model = fakeModel({ text: "a", n_similar: 5, request_id: 3, result_id: 3 });
  const gate = new RequestGate(model);
  assert.equal(gate.submit({ text: "a", n_similar: 5, method: undefined }), "unchanged");
  assert.deepEqual(model.sent, []);
});

test("input while a request is in flight is queued, then due when the answer comes", () => {
  const model = fakeModel({ text: "a", request_id: 1, result_id: 0 });
  const gate = new RequestGate(model);
  assert.equal(gate.submit({ text: "ab" }), "queued");
  assert.equal(gate.submit({ text: "abc" }), "queued"); // only the latest value will go
  assert.equal(gate.due(), false);
  assert.deepEqual(model.sent, []);
  model.state.result_id = 1; // the kernel answered request 1
  assert.equal(gate.due(), true);
  assert.equal(gate.submit({ text: "abc" }), "sent");
  assert.deepEqual(model.sent, [{ text: "abc", request_id: 2 }]);
  assert.equal(gate.due(), false);
});

test("an answer to an older request keeps the gate in flight", () => {
  const model = fakeModel({ request_id: 5, result_id: 3 });
  const gate = new RequestGate(model);
  assert.equal(gate.inFlight(), true);
  model.state.result_id = 4;
  assert.equal(gate.inFlight(), true);
  model.state.result_id = 5;
  assert.equal(gate.inFlight(), false);
});

test("read falls back for missing values only", () => {
  const model = fakeModel({ zero: 0, empty: "", nothing: null });
  assert.equal(read(model, "zero", 7), 0);
  assert.equal(read(model, "empty", "x"), "");
  assert.equal(read(model, "nothing", 7), 7);
  assert.equal(read(model, "absent", 7), 7);
});

test("clampN keeps n within the bounds the kernel sends", () => {
  assert.equal(clampN("7", 5, 1, 50), 7);
  assert.equal(clampN("0", 5, 1, 50), 1);
  assert.equal(clampN("500", 5, 1, 50), 50);
  assert.equal(clampN("500", 5, 1, 20), 20);
  assert.equal(clampN("abc", 5, 1, 50), 5);
  assert.equal(clampN("  ", 9, 1, 50), 9);
  assert.equal(clampN("4.6", 5, 1, 50), 5);
});

test("an input the model has no value for compares with its default", () => {
  const model = fakeModel({ request_id: 0, result_id: 0 });
  const gate = new RequestGate(model, { text: "" });
  assert.equal(gate.submit({ text: "" }), "unchanged");
  assert.equal(gate.submit({ text: "x" }), "sent");
});
