"""The HTTP service (``abstractor serve``): contracts, hostile input, limits, workers.

Most tests drive the Starlette app in-process with its TestClient (httpx); every JSON
answer is validated against the service's own OpenAPI component schemas, so the
published description cannot drift from the code. One test starts the real command
with two uvicorn workers on 127.0.0.1 and a free port, and kills it afterwards.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

with warnings.catch_warnings():  # Starlette 1.10 suggests httpx2 for its TestClient; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from abstractor_widgets import Abstractor
from abstractor_widgets import service as service_module
from abstractor_widgets.service import (
    MAX_BODY_BYTES,
    RateLimiter,
    create_app,
    openapi_schema,
    parse_rate,
    word_topics,
)
from abstractor_widgets.text import MAX_TEXT_CHARS
from abstractor_widgets.widget import topic_style
from test_abstractor import TRICKY

ROOT = Path(__file__).resolve().parent.parent
TEXT = ("We study image segmentation with convolution on pixel depth and camera video, "
        "the translation of a sentence, and the robot gripper.")
HIT_KEYS = {"id", "title", "score", "topics", "url", "categories", "published", "shared_topics", "shared_terms"}
LEGACY_COLUMNS = {"text", "title", "link", "percentage", "topics"}


def conforms(name: str, value: object) -> None:
    """``value`` matches the OpenAPI component schema ``name`` (JSON Schema 2020-12)."""
    Draft202012Validator({**openapi_schema(), "$ref": f"#/components/schemas/{name}"}).validate(value)


def is_error(response: httpx.Response, status: int) -> str:
    """The response is the JSON error of ``status``; returns its message."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    conforms("Error", body)
    assert body["error"]["status"] == status
    message = body["error"]["message"]
    assert message and len(message) < 400 and "Traceback" not in message
    return message


def covers(spans: list[dict], text: str) -> bool:
    position = 0
    for span in spans:
        if span["start"] != position or text[span["start"]: span["end"]] != span["text"]:
            return False
        position = span["end"]
    return position == len(text)


@pytest.fixture(scope="module")
def ab(synthetic_artifact) -> Abstractor:
    """One loaded model for the module (the service never writes to it)."""
    return Abstractor.load(synthetic_artifact)


@pytest.fixture(scope="module")
def client(ab):
    with TestClient(create_app(ab)) as c:
        yield c


# -- the original app's endpoints --------------------------------------------------------------------
def test_abst_subm_contract(client, ab):
    response = client.post("/abst_subm", json={"abstract": TEXT})
    assert response.status_code == 200
    body = response.json()
    conforms("Words", body)
    assert set(body) == {"words", "topics"}
    assert [w for w, _ in body["words"]] == TEXT.split()  # every word, in order
    topics = dict(body["words"])
    assert topics["the"] == -1 and topics["of"] == -1  # stopwords
    assert all(topics[w] in range(ab.n_topics) for w in ("image", "segmentation", "pixel", "robot"))
    assert topics["image"] == topics["pixel"] != topics["robot"]
    ids = [k for k, _ in body["topics"]]
    assert ids == sorted(ids) and all(isinstance(k, int) for k in ids)
    assert sum(p for _, p in body["topics"]) == pytest.approx(1.0, abs=1e-3)


def test_abst_subm_words_take_the_topic_of_their_first_topical_span(client, ab):
    text = "(Robot),  images,\tpixel/robot\n(the)  translation."
    words = client.post("/abst_subm", json={"abstract": text}).json()["words"]
    spans = ab.colorize(text)
    expected = []
    for match in re.finditer(r"\S+", text):
        inside = [s["topic"] for s in spans if s["topic"] is not None and s["start"] < match.end() and s["end"] > match.start()]
        expected.append([match.group(), inside[0] if inside else -1])
    assert words == expected
    assert words[0][1] != -1 and words[3] == ["(the)", -1]
    assert words[2] == ["pixel/robot", words[1][1]] != ["pixel/robot", words[0][1]]  # two topics: the first


def test_word_topics_assigns_a_phrase_span_to_each_word_it_overlaps():
    spans = [{"start": 0, "end": 14, "topic": 3}, {"start": 14, "end": 19, "topic": None}]
    assert word_topics("neural network rocks", spans + [{"start": 15, "end": 20, "topic": None}]) == [
        ["neural", 3], ["network", 3], ["rocks", -1]]
    assert word_topics("", []) == [] and word_topics("  \n ", [{"start": 0, "end": 4, "topic": None}]) == []


def test_get_similars_contract(client, ab):
    response = client.post("/get_similars", json={"abstract": TEXT})
    assert response.status_code == 200
    body = response.json()
    conforms("Similars", body)
    assert set(body) == LEGACY_COLUMNS
    keys = [str(i) for i in range(5)]
    assert all(list(column) == keys for column in body.values())  # positions "0".."4", in order
    expected = ab.similar(TEXT, n=5)
    assert [body["link"][k] for k in keys] == [h["id"] for h in expected]
    for k, hit in zip(keys, expected):
        assert body["text"][k] == ab.document(hit["id"]).text
        assert body["title"][k] == hit["title"]
        assert 0.0 <= body["percentage"][k] <= 1.0
        assert body["topics"][k] == [[t, p] for t, p in enumerate(hit["topics"]) if p > 0]
    scores = [body["percentage"][k] for k in keys]
    assert scores == sorted(scores, reverse=True)


def test_get_similars_of_a_text_without_topical_words_is_empty_columns(client):
    body = client.post("/get_similars", json={"abstract": "the of and"}).json()
    assert body == {column: {} for column in LEGACY_COLUMNS}


def test_get_rand_abst_is_plain_text_of_a_corpus_abstract(client, ab):
    texts = {ab.document(ab.documents.field("id", i)).text for i in range(len(ab))}
    for _ in range(3):
        response = client.get("/get_rand_abst")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text in texts


# -- /api/v1 -----------------------------------------------------------------------------------------
def test_topics(client, ab):
    response = client.get("/api/v1/topics")
    body = response.json()
    conforms("Topics", body)
    assert body["n_topics"] == ab.n_topics == len(body["topics"]) and body["n_documents"] == len(ab)
    assert [t["id"] for t in body["topics"]] == list(range(ab.n_topics))
    for topic, expected in zip(body["topics"], ab.topics):
        assert (topic["color"], topic["pattern"]) == topic_style(topic["id"])
        assert topic["label"] == expected["label"] and topic["terms"] == expected["terms"]
    assert body["methods"] == list(ab.methods) and body["default_method"] == ab.default_method
    assert body["max_text_chars"] == MAX_TEXT_CHARS
    assert body["n_similar"] == {"min": 1, "max": 50, "default": 5}
    assert body["editable_labels"] is False


def test_analyze(client, ab):
    response = client.post("/api/v1/analyze", json={"text": TEXT, "n": 3})
    body = response.json()
    conforms("Analysis", body)
    assert covers(body["spans"], TEXT)
    assert len(body["doc_topics"]) == ab.n_topics and body["reason"] is None
    assert body["method"] == ab.default_method and body["elapsed_ms"] >= 0
    assert len(body["similar"]) == 3 and all(set(h) == HIT_KEYS for h in body["similar"])  # no abstract
    expected = ab.analyze(TEXT, n=3)
    assert [h["id"] for h in body["similar"]] == [h["id"] for h in expected.similar]
    assert body["spans"] == expected.spans and body["doc_topics"] == expected.doc_topics


@pytest.mark.parametrize("method", ["hybrid", "lexical", "lda"])
def test_analyze_methods(client, ab, method):
    body = client.post("/api/v1/analyze", json={"text": TEXT, "method": method}).json()
    conforms("Analysis", body)
    assert body["method"] == method and len(body["similar"]) == 5
    assert [h["id"] for h in body["similar"]] == [h["id"] for h in ab.similar(TEXT, n=5, method=method)]
    if method == "lda":
        assert all(h["shared_terms"] == [] for h in body["similar"])


@pytest.mark.parametrize("text", ["", "   \n", "the of and with", "12345 6789"])
def test_analyze_text_without_topical_words_has_a_reason(client, text):
    body = client.post("/api/v1/analyze", json={"text": text}).json()
    conforms("Analysis", body)
    assert body["similar"] == [] and body["reason"] and covers(body["spans"], text)


def test_similar_by_text_and_by_id(client, ab):
    by_text = client.post("/api/v1/similar", json={"text": TEXT, "n": 4}).json()
    conforms("Similar", by_text)
    assert [h["id"] for h in by_text["similar"]] == [h["id"] for h in ab.analyze(TEXT, n=4).similar]
    doc_id = by_text["similar"][0]["id"]
    by_id = client.post("/api/v1/similar", json={"id": doc_id, "n": 4, "method": "lda"}).json()
    conforms("Similar", by_id)
    assert [h["id"] for h in by_id["similar"]] == [h["id"] for h in ab.similar_to(doc_id, n=4, method="lda")]
    assert doc_id not in {h["id"] for h in by_id["similar"]}


def test_similar_needs_exactly_one_of_text_and_id(client):
    is_error(client.post("/api/v1/similar", json={"n": 3}), 400)
    is_error(client.post("/api/v1/similar", json={"text": TEXT, "id": "2401.00001"}), 400)
    is_error(client.post("/api/v1/similar", json={"id": "9999.99999"}), 404)
    is_error(client.post("/api/v1/similar", json={"id": 2401}), 400)
    is_error(client.post("/api/v1/similar", json={"id": "<script>"}), 422)


def test_random_and_document(client, ab):
    doc = client.get("/api/v1/random").json()
    conforms("Document", doc)
    again = client.get(f"/api/v1/documents/{doc['id']}").json()
    assert again == doc
    expected = ab.document(doc["id"])
    assert (doc["title"], doc["abstract"], doc["categories"], doc["published"]) == (
        expected.title, expected.text, expected.categories, expected.published)
    assert doc["url"] == f"https://arxiv.org/abs/{doc['id']}"


@pytest.mark.parametrize("doc_id, status", [
    ("9999.99999", 404),
    ("math/0601001", 404),  # old-style arXiv ids have a slash: valid, just unknown here
    ("..%2F..%2Fetc%2Fpasswd", 422),
    ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", 422),
    ("a%00b", 422),
    ("x" * 201, 422),
    ("caf%C3%A9", 422),
    ("-rf", 422),
])
def test_document_ids_are_validated_then_looked_up(client, doc_id, status):
    message = is_error(client.get(f"/api/v1/documents/{doc_id}"), status)
    assert "<script>" not in message or status == 404


# -- hostile and malformed input ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_texts_come_back_verbatim(client, name):
    text = TRICKY[name]
    response = client.post("/api/v1/analyze", json={"text": text})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    conforms("Analysis", body)
    assert covers(body["spans"], text)
    words = client.post("/abst_subm", json={"abstract": text}).json()["words"]
    assert [w for w, _ in words] == text.split()


def test_markup_is_never_escaped_nor_served_as_html(client):
    text = TRICKY["hostile_script"]
    response = client.post("/api/v1/analyze", json={"text": text})
    assert "<script>alert(1)</script>" in response.text  # JSON, not HTML: the page puts it in text nodes
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_text_over_the_limit_is_413(client):
    is_error(client.post("/api/v1/analyze", json={"text": "a" * (MAX_TEXT_CHARS + 1)}), 413)
    is_error(client.post("/abst_subm", json={"abstract": "tissue " * (MAX_TEXT_CHARS // 7 + 1)}), 413)
    is_error(client.post("/api/v1/similar", json={"text": "x" * (MAX_TEXT_CHARS + 1)}), 413)


def test_text_at_the_limit_is_answered(client):
    text = ("tissue protein " * (MAX_TEXT_CHARS // 15 + 1))[:MAX_TEXT_CHARS]
    body = client.post("/api/v1/analyze", json={"text": text, "n": 1}).json()
    assert covers(body["spans"], text) and len(body["similar"]) == 1


def test_a_body_over_the_limit_is_refused_before_parsing(client):
    junk = b"{" * (MAX_BODY_BYTES + 1)  # not JSON: 413 proves it was never parsed
    is_error(client.post("/api/v1/analyze", content=junk, headers={"content-type": "application/json"}), 413)
    is_error(client.post("/api/v1/analyze", content=b"{}", headers={"content-length": str(10**12)}), 413)

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    is_error(client.post("/api/v1/analyze", content=chunks()), 413)


def test_a_text_escaped_to_the_largest_body_still_fits(client):
    text = "\U0001F9EC" * (MAX_TEXT_CHARS // 2)  # 12 bytes each as \ud83e\uddec escapes
    body = json.dumps({"text": text}, ensure_ascii=True).encode()
    assert len(body) <= MAX_BODY_BYTES
    response = client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200 and covers(response.json()["spans"], text)


@pytest.mark.parametrize("body, status", [
    (b"", 400),
    (b"{not json", 400),
    (b"\xff\xfe\x00garbage", 400),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'["text"]', 400),
    (b'"text"', 400),
    (b"null", 400),
    (b"{}", 400),
    (b'{"text": null}', 400),
    (b'{"text": 42}', 400),
    (b'{"text": ["a"]}', 400),
    (b'{"text": {"$gt": ""}}', 400),
    (b'{"text": "tissue", "n": "5"}', 400),
    (b'{"text": "tissue", "n": true}', 400),
    (b'{"text": "tissue", "n": 2.5}', 400),
    (b'{"text": "tissue", "n": NaN}', 400),
    (b'{"text": "tissue", "n": 0}', 422),
    (b'{"text": "tissue", "n": -3}', 422),
    (b'{"text": "tissue", "n": 51}', 422),
    (b'{"text": "tissue", "n": 100000000000000000000}', 422),
    (b'{"text": "tissue", "method": 5}', 400),
    (b'{"text": "tissue", "method": "bm25; DROP TABLE"}', 422),
    (b'{"text": "tissue \\ud800 lone"}', 422),
])
def test_malformed_requests_get_400_or_422(client, body, status):
    response = client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    is_error(response, status)


@pytest.mark.parametrize("path, body", [("/abst_subm", {"abstract": 3}), ("/abst_subm", {"text": "x"}),
                                        ("/get_similars", {"abstract": None}), ("/get_similars", [])])
def test_original_endpoints_refuse_wrong_shapes_with_400(client, path, body):
    is_error(client.post(path, json=body), 400)


def test_unknown_paths_and_methods(client):
    assert "/nope" in is_error(client.get("/nope"), 404)
    assert len(is_error(client.get("/" + "x" * 5000), 404)) < 200  # the path is not echoed whole
    is_error(client.get("/api/v2/analyze"), 404)
    response = client.get("/api/v1/analyze")
    is_error(response, 405)
    assert "POST" in response.headers["allow"]
    is_error(client.post("/api/v1/topics", json={}), 405)
    is_error(client.delete("/abst_subm"), 405)
    is_error(client.put("/web.js"), 405)


def test_an_internal_error_is_a_short_500_and_logged(ab, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ab, "analyze", broken)
    with TestClient(create_app(ab)) as c, caplog.at_level(logging.ERROR, logger="abstractor_widgets.service"):
        response = c.post("/api/v1/analyze", json={"text": TEXT})
    message = is_error(response, 500)
    assert "secret" not in message and "RuntimeError" not in response.text
    assert "secret internal detail" in caplog.text  # the traceback went to the log


# -- rate limit, CORS, headers -----------------------------------------------------------------------
def test_rate_limit_answers_429_per_client(ab):
    with TestClient(create_app(ab, rate_limit="2/s", rate_burst=3)) as c:
        codes = [c.get("/api/v1/random").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        response = c.post("/api/v1/analyze", json={"text": TEXT})
        is_error(response, 429)
        assert int(response.headers["retry-after"]) >= 1
        assert c.get("/health").status_code == 200  # probes are never limited
    with TestClient(create_app(ab)) as c:  # off by default
        assert {c.get("/api/v1/random").status_code for _ in range(30)} == {200}


def test_rate_limiter_refills_and_keeps_clients_apart():
    now = [0.0]
    limiter = RateLimiter(2, burst=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0


def test_rate_limiter_memory_is_bounded():
    now = [0.0]
    limiter = RateLimiter(1, burst=1, max_clients=100, clock=lambda: now[0])
    for i in range(1000):
        now[0] += 0.001
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) <= 100


@pytest.mark.parametrize("value, rate", [("10", 10.0), ("20/s", 20.0), ("600/min", 10.0), ("3600/h", 1.0), (0.5, 0.5)])
def test_parse_rate(value, rate):
    assert parse_rate(value) == pytest.approx(rate)


@pytest.mark.parametrize("value", ["", "fast", "10/day", "-1/s", "0", "1e400", "nan"])
def test_parse_rate_refuses_nonsense(value):
    with pytest.raises(ValueError):
        parse_rate(value)


def test_cors_is_off_by_default(client):
    origin = {"Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/api/v1/topics", headers=origin).headers
    preflight = client.options("/api/v1/analyze", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_when_configured(ab):
    with TestClient(create_app(ab, cors_origins=["http://localhost:3000"])) as c:
        good = {"Origin": "http://localhost:3000"}
        response = c.post("/abst_subm", json={"abstract": TEXT}, headers=good)
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
        preflight = c.options("/get_similars", headers={**good, "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
        other = c.get("/api/v1/topics", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_security_headers_on_every_response(ab, tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>x</title>")
    with TestClient(create_app(ab, rate_limit="1/s", rate_burst=1, static_dir=tmp_path)) as c:
        responses = [c.get("/"), c.get("/health"), c.get("/nope.js"), c.post("/api/v1/analyze", content=b"x"),
                     c.get("/api/v1/random"), c.get("/api/v1/random")]
    assert [r.status_code for r in responses] == [200, 200, 404, 400, 429, 429]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "server" not in response.headers or "uvicorn" not in response.headers["server"]


# -- health, readiness, the web page, OpenAPI --------------------------------------------------------
def test_ready_is_503_until_the_model_is_loaded(synthetic_artifact, monkeypatch):
    release = threading.Event()
    real = service_module.load_abstractor

    def slow(path, expected_digest=None):
        release.wait(30)
        return real(path, expected_digest)

    monkeypatch.setattr(service_module, "load_abstractor", slow)
    with TestClient(create_app(synthetic_artifact)) as c:
        assert c.get("/health").json()["status"] == "ok"
        is_error(c.get("/ready"), 503)
        is_error(c.post("/api/v1/analyze", json={"text": TEXT}), 503)
        release.set()
        for _ in range(300):
            if c.get("/ready").status_code == 200:
                break
            time.sleep(0.05)
        body = c.get("/ready").json()
        conforms("Ready", body)
        assert body["n_documents"] == 240
        assert c.post("/api/v1/analyze", json={"text": TEXT}).status_code == 200


def test_wait_for_model_loads_before_the_first_request(synthetic_artifact, tmp_path):
    with TestClient(create_app(synthetic_artifact, wait_for_model=True)) as c:  # as each `serve` worker
        assert c.get("/ready").status_code == 200  # no polling: loaded during startup
    with TestClient(create_app(tmp_path / "missing", wait_for_model=True)) as c:
        assert "could not be loaded" in is_error(c.get("/ready"), 503)
        assert c.get("/health").status_code == 200


def test_a_broken_artifact_is_never_ready_but_alive(tmp_path):
    with TestClient(create_app(tmp_path / "missing")) as c:
        for _ in range(300):
            response = c.get("/ready")
            if "loading" not in response.text:
                break
            time.sleep(0.05)
        assert "could not be loaded" in is_error(response, 503)
        assert c.get("/health").status_code == 200
        is_error(c.get("/api/v1/topics"), 503)


def test_the_web_page_and_its_files(ab, tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><script type=module src=web.js></script>")
    (tmp_path / "web.js").write_text("export {};")
    with TestClient(create_app(ab, static_dir=tmp_path)) as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "web.js" in page.text
        # the page's policy: scripts from this origin only, no inline script; 'unsafe-eval'
        # for regl (the corpus map's WebGL layer builds its draw commands with Function)
        csp = page.headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-eval';" in csp and "unsafe-inline" not in csp and "default-src 'self'" in csp
        assert "unsafe-eval" not in c.get("/health").headers["content-security-policy"]
        script = c.get("/web.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        is_error(c.get("/web.css"), 404)
    with TestClient(create_app(ab, static_dir=tmp_path / "missing")) as c:
        page = c.get("/")
        assert page.status_code == 503 and "not built" in page.text
        is_error(c.get("/web.js"), 404)


def test_the_built_web_dashboard_is_served(client):
    if not (service_module.STATIC_WEB / "index.html").is_file():
        pytest.skip("the web dashboard is not built (npm --prefix js run build)")
    page = client.get("/")
    assert page.status_code == 200 and 'src="web.js"' in page.text
    for name in re.findall(r'(?:src|href)="([^":]+)"', page.text):
        assert client.get("/" + name).status_code == 200, name
    assert 'href="explore.css"' in page.text and 'id="explore"' in page.text
    # the explorer's code is a chunk web.js imports when the analyser is ready
    chunks = re.findall(r'"\./(chunks/explore-[A-Z0-9]+\.js)"', client.get("/web.js").text)
    assert chunks and client.get("/" + chunks[0]).status_code == 200


def test_openapi_describes_exactly_the_routes(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.1") and schema == json.loads(json.dumps(openapi_schema()))
    described = {(path.replace("{id}", "{doc_id:path}"), verb.upper()) for path, ops in schema["paths"].items() for verb in ops}
    routes = {(route.path, verb) for route in client.app.routes for verb in route.methods if verb != "HEAD"}
    assert described == routes - {("/", "GET")}
    Draft202012Validator.check_schema({"$defs": schema["components"]["schemas"]})
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path in schema["paths"]:
        assert path in page.text
    assert "<script" not in page.text and "http" not in page.text.replace("/api/v1/openapi.json", "")


# -- the corpus explorer (map, trends, filters, hover, export) ---------------------------------------
@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A small model with a corpus map (UMAP, reproducible), months and two categories."""
    from test_explore import _frame

    out = tmp_path_factory.mktemp("service-map") / "model"
    Abstractor.train(_frame(), 4, out=out, passes=20, progress=False, random_state=1, no_above=0.9,
                     layout={"random_state": 0})
    return Abstractor.load(out)


@pytest.fixture(scope="module")
def mclient(mapped):
    with TestClient(create_app(mapped)) as c:
        yield c


def _points(body: bytes):
    import numpy as np

    n = len(body) // 9
    assert len(body) == 9 * n
    return np.frombuffer(body[: 8 * n], dtype="<f4").reshape(n, 2), np.frombuffer(body[8 * n:], dtype=np.uint8)


def test_map_points_are_binary_float32_and_uint8_with_an_etag(mclient, mapped):
    import numpy as np

    info = mclient.get("/api/v1/map").json()
    conforms("MapInfo", info)
    assert info["n_points"] == len(mapped) and info["status"] == "" and info["points_bytes"] == 9 * len(mapped)
    assert len(info["centroids"]) == mapped.n_topics and info["month_range"] == ["2024-01", "2024-06"]
    assert [c for c, _ in info["categories"]][:1] and all(n > 0 for _, n in info["categories"])
    r = mclient.get("/api/v1/map/points")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert int(r.headers["x-map-points"]) == len(mapped) and r.headers["etag"] == f'"{info["version"]}"'
    coords, topics = _points(r.content)
    assert np.array_equal(coords, np.asarray(mapped.corpus_map.coords_, dtype=np.float32))
    assert np.array_equal(topics, np.asarray(mapped.model.doc_topics_).argmax(axis=1))
    again = mclient.get("/api/v1/map/points", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_a_model_without_a_map_says_so(client, ab):
    info = client.get("/api/v1/map").json()
    conforms("MapInfo", info)
    assert info["n_points"] == 0 and "abstractor map" in info["status"] and info["centroids"] == []
    is_error(client.get("/api/v1/map/points"), 404)
    trends = client.get("/api/v1/trends").json()  # trends and filters work without a map
    conforms("Trends", trends)
    assert trends["filter_count"] == len(ab)


def test_trends_are_the_models_trends_with_binary_shares(mclient, mapped):
    import base64

    import numpy as np

    body = mclient.get("/api/v1/trends").json()
    conforms("Trends", body)
    expected = mapped.trends()
    assert body["months"] == expected.months and body["counts"] == expected.counts.tolist()
    shares = np.frombuffer(base64.b64decode(body["shares"]), dtype="<f4").reshape(len(body["months"]), body["n_topics"])
    assert np.allclose(shares, expected.shares)
    assert body["filter_count"] == len(mapped)
    filtered = mclient.get("/api/v1/trends", params={"categories": ["cs.LG"], "date_from": "2024-02"}).json()
    conforms("Trends", filtered)
    mask = mapped.filter_mask({"categories": ["cs.LG"], "date_from": "2024-02"})
    assert filtered["filter_count"] == int(mask.sum()) < len(mapped)
    assert filtered["counts"] == mapped.trends(filters={"categories": ["cs.LG"], "date_from": "2024-02"}).counts.tolist()


def test_filter_mask_is_one_bit_a_paper(mclient, mapped):
    import numpy as np

    r = mclient.get("/api/v1/map/mask", params={"categories": "cs.LG", "keyword": "image"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    bits = np.unpackbits(np.frombuffer(r.content, dtype=np.uint8), bitorder="little")[: len(mapped)].astype(bool)
    expected = mapped.filter_mask({"categories": ["cs.LG"], "keyword": "image"})
    assert np.array_equal(bits, expected) and int(r.headers["x-filter-count"]) == int(expected.sum())
    everything = mclient.get("/api/v1/map/mask")
    assert everything.content == b"" and int(everything.headers["x-filter-count"]) == len(mapped)


@pytest.mark.parametrize("query, status", [
    ({"date_from": "June"}, 422),
    ({"keyword": "zzzzqqq"}, 422),          # no indexed word
    ({"keyword": "x" * 201}, 422),
    ({"categories": ["x" * 41]}, 422),
    ({"sort": "asc"}, 422),                  # unknown parameter
    ({"date_to": ["2024-01", "2024-02"]}, 422),
])
def test_bad_filters_are_422(mclient, query, status):
    for path in ("/api/v1/trends", "/api/v1/map/mask"):
        is_error(mclient.get(path, params=query), status)


def test_map_row_is_the_paper_under_the_pointer(mclient, mapped):
    body = mclient.get("/api/v1/map/rows/7").json()
    conforms("MapRow", body)
    doc = mapped.documents[7]
    assert (body["id"], body["title"], body["published"], body["categories"]) == (doc.id, doc.title, doc.published, doc.categories)
    assert body["topic"] == int(mapped.model.doc_topics_[7].argmax())
    assert abs(body["x"] - float(mapped.corpus_map.coords_[7][0])) < 1e-4
    is_error(mclient.get(f"/api/v1/map/rows/{len(mapped)}"), 404)
    for bad in ("-1", "1.5", "x", "9" * 11):
        is_error(mclient.get(f"/api/v1/map/rows/{bad}"), 422)


def test_analyze_on_the_map_with_filters(mclient, mapped):
    from test_explore import VISION_TEXT

    plain = mclient.post("/api/v1/analyze", json={"text": VISION_TEXT, "n": 5}).json()
    assert "here" not in plain and all("row" not in h for h in plain["similar"])
    body = mclient.post("/api/v1/analyze", json={"text": VISION_TEXT, "n": 5, "map": True}).json()
    conforms("Analysis", body)
    assert body["here"] == pytest.approx(list(mapped.place(VISION_TEXT)), abs=1e-4)
    assert [h["row"] for h in body["similar"]] == [mapped.documents.position(h["id"]) for h in body["similar"]]
    # a loaded paper sits on its own point
    doc = mapped.documents[3]
    own = mclient.post("/api/v1/analyze", json={"text": doc.text, "map": True, "paper_id": doc.id}).json()
    assert own["here"] == pytest.approx([float(v) for v in mapped.corpus_map.coords_[3]], abs=1e-4)
    # filters: ranked among the kept papers only, a full list
    filters = {"categories": ["cs.LG"], "date_from": "2024-03"}
    kept = mapped.filter_mask(filters)
    filtered = mclient.post("/api/v1/analyze", json={"text": VISION_TEXT, "n": 5, "map": True, "filters": filters}).json()
    conforms("Analysis", filtered)
    assert len(filtered["similar"]) == min(5, int(kept.sum()))
    assert all(kept[h["row"]] for h in filtered["similar"])
    expected = mapped.similar_filtered(VISION_TEXT, n=5, filters=filters)
    assert [h["id"] for h in filtered["similar"]] == [h["id"] for h in expected]
    # no topical words: nowhere on the map
    assert mclient.post("/api/v1/analyze", json={"text": "the of and", "map": True}).json()["here"] == []
    for bad, status in [({"filters": "cs.LG"}, 400), ({"filters": {"date_from": "soon"}}, 422),
                        ({"filters": {"keyword": "zzzzqqq"}}, 422), ({"filters": {"colour": "red"}}, 422),
                        ({"map": "yes"}, 400), ({"paper_id": "<b>"}, 422)]:
        is_error(mclient.post("/api/v1/analyze", json={"text": VISION_TEXT, **bad}), status)


def test_export_a_selection_and_the_similar_papers(mclient, mapped):
    rows = [5, 1, 3, 3]
    r = mclient.post("/api/v1/export", json={"what": "selection", "format": "csv", "rows": rows})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="abstractor-selection.csv"'
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [t["id"] for t in table] == [mapped.documents[i].id for i in (1, 3, 5)]
    assert table[0]["title"] == " ".join(mapped.documents[1].title.split())
    bib = mclient.post("/api/v1/export", json={"what": "selection", "format": "bibtex", "rows": [1]})
    assert bib.headers["content-type"].startswith("application/x-bibtex")
    assert bib.text.startswith(f"@misc{{arxiv:{mapped.documents[1].id},") and "archivePrefix = {arXiv}" in bib.text
    hits = mclient.post("/api/v1/analyze", json={"text": TEXT, "n": 3}).json()["similar"]
    similar = mclient.post("/api/v1/export", json={"what": "similar", "format": "csv",
                                                  "papers": [{"id": h["id"], "score": h["score"]} for h in hits]})
    table = list(csv.DictReader(io.StringIO(similar.text)))
    assert [t["id"] for t in table] == [h["id"] for h in hits]
    assert [float(t["score"]) for t in table] == pytest.approx([h["score"] for h in hits])
    assert similar.headers["content-disposition"].endswith('abstractor-similar.csv"')


@pytest.mark.parametrize("body, status", [
    ({"what": "selection", "format": "xlsx", "rows": [1]}, 422),
    ({"what": "everything", "format": "csv"}, 422),
    ({"what": "selection", "format": "csv", "rows": "1,2"}, 400),
    ({"what": "selection", "format": "csv", "rows": [True]}, 400),
    ({"what": "selection", "format": "csv", "rows": [-1]}, 422),
    ({"what": "selection", "format": "csv", "rows": [10**9]}, 422),
    ({"what": "selection", "format": "csv", "rows": list(range(100_001))}, 413),
    ({"what": "similar", "format": "csv", "papers": [{"id": "9999.99999"}]}, 404),
    ({"what": "similar", "format": "csv", "papers": [{"id": "<script>"}]}, 422),
    ({"what": "similar", "format": "csv", "papers": [{"id": "x"}] * 60}, 400),
    ({"what": "similar", "format": "csv", "papers": [{"score": 1}]}, 400),
])
def test_export_refuses_bad_requests(mclient, body, status):
    is_error(mclient.post("/api/v1/export", json=body), status)


def test_export_body_is_bounded(mclient):
    huge = b'{"what": "selection", "format": "csv", "rows": [' + b"1," * 500_000 + b"1]}"
    is_error(mclient.post("/api/v1/export", content=huge, headers={"Content-Type": "application/json"}), 413)


# -- concurrency -------------------------------------------------------------------------------------
@pytest.mark.parametrize("offload", [False, True], ids=["event-loop", "thread-pool"])
def test_concurrent_requests_get_their_own_answers(ab, offload):
    texts = [TRICKY[name] for name in sorted(TRICKY)] + [TEXT, "robot gripper torque", "protein enzyme genome"]
    expected = {text: ab.analyze(text, n=3) for text in texts}
    with TestClient(create_app(ab, offload=offload)) as c:
        def ask(i: int) -> tuple[str, dict]:
            text = texts[i % len(texts)]
            return text, c.post("/api/v1/analyze", json={"text": text, "n": 3}).json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(120)))
    for text, body in answers:
        assert body["spans"] == expected[text].spans
        assert [h["id"] for h in body["similar"]] == [h["id"] for h in expected[text].similar]


# -- the command: `abstractor serve --workers 2` -----------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_with_two_workers(synthetic_artifact):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(service_module.DIGEST_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "abstractor_widgets.cli", "serve", str(synthetic_artifact), "--port", str(port),
         "--workers", "2", "--cors-origin", "http://localhost:3000"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 180
        while len(pids) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            def ready(_: int) -> int | None:
                try:  # a new connection each time: the kernel hands it to either worker
                    response = httpx.get(f"{base}/ready", timeout=5)
                except httpx.HTTPError:
                    return None
                return response.json()["pid"] if response.status_code == 200 else None
            with ThreadPoolExecutor(4) as pool:
                pids |= {pid for pid in pool.map(ready, range(8)) if pid}
            time.sleep(0.2)
        assert len(pids) == 2 and proc.pid not in pids, pids  # two workers, both ready, not the parent
        with httpx.Client(base_url=base, timeout=30) as http:
            body = http.post("/api/v1/analyze", json={"text": TEXT}).json()
            conforms("Analysis", body)
            assert http.post("/abst_subm", json={"abstract": TEXT}, headers={"Origin": "http://localhost:3000"}
                             ).headers["access-control-allow-origin"] == "http://localhost:3000"
            is_error(http.post("/api/v1/analyze", json={"text": "x" * (MAX_TEXT_CHARS + 1)}), 413)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()


def test_serve_refuses_an_artifact_that_is_not_the_pinned_one(synthetic_artifact, monkeypatch, capsys):
    from abstractor_widgets.cli import main

    monkeypatch.setenv(service_module.DIGEST_ENV, "0" * 64)
    assert main(["serve", str(synthetic_artifact), "--port", str(free_port())]) == 2
    assert "digest" in capsys.readouterr().err


def test_serve_refuses_a_bad_rate_limit(synthetic_artifact, monkeypatch, capsys):
    from abstractor_widgets.cli import main

    monkeypatch.delenv(service_module.DIGEST_ENV, raising=False)
    assert main(["serve", str(synthetic_artifact), "--rate-limit", "fast"]) == 2
    assert "rate limit" in capsys.readouterr().err
