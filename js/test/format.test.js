// Unit tests of the DOM-free helpers (`npm test`, node >= 18).
import assert from "node:assert/strict";
import test from "node:test";

import { describeMix, methodName, pct, rgbChannels, safeColor, safePattern, safeUrl, score, topShares, topicName } from "../src/format.js";

test("safeUrl keeps http(s) only", () => {
  assert.equal(safeUrl("https://arxiv.org/abs/2401.00001"), "https://arxiv.org/abs/2401.00001");
  assert.equal(safeUrl("http://example.org"), "http://example.org");
  assert.equal(safeUrl("javascript:alert(1)"), "");
  assert.equal(safeUrl(" JAVASCRIPT:alert(1)"), "");
  assert.equal(safeUrl("data:text/html,<script>"), "");
  assert.equal(safeUrl(null), "");
  assert.equal(safeUrl(42), "");
});

test("colours and patterns from the model are sanitised", () => {
  assert.equal(safeColor("#E69F00"), "#E69F00");
  assert.equal(safeColor("red; background: url(x)"), "#888888");
  assert.equal(rgbChannels("#E69F00"), "230 159 0");
  assert.equal(rgbChannels("nope"), "136 136 136");
  assert.equal(safePattern("wavy"), "wavy");
  assert.equal(safePattern("solid;color:red"), "solid");
});

test("percentages and scores", () => {
  assert.equal(pct(0.3456), "35%");
  assert.equal(pct(0), "0%");
  assert.equal(pct(0.001), "<1%");
  assert.equal(pct(Number.NaN), "0%");
  assert.equal(pct(undefined), "0%");
  assert.equal(score(0.98765), "0.99");
  assert.equal(score(null), "–");
});

test("topShares sorts, filters and survives junk", () => {
  assert.deepEqual(topShares([0.1, 0.6, 0.001, 0.299]), [
    { k: 1, share: 0.6 },
    { k: 3, share: 0.299 },
    { k: 0, share: 0.1 },
  ]);
  assert.deepEqual(topShares(null), []);
  assert.deepEqual(topShares(["a", 0.5]), [{ k: 1, share: 0.5 }]);
});

test("describeMix names topics by label", () => {
  const topics = [{ label: "Vision" }, { label: "" }];
  assert.equal(describeMix(topShares([0.7, 0.3]), topics), "Vision 70%, Topic 1 30%");
  assert.equal(describeMix([], topics), "no topical words");
  assert.equal(topicName(undefined, 4), "Topic 4");
});

test("ranking methods get readable names", () => {
  assert.equal(methodName("hybrid"), "words + topics");
  assert.equal(methodName("lexical"), "shared words");
  assert.equal(methodName("lda"), "topics only");
  assert.equal(methodName("other"), "other");
  assert.equal(methodName("__proto__"), "__proto__");
});
