"""The HTTP service behind ``abstractor serve``: a JSON API and the web dashboard.

One Starlette application over the facade (:class:`abstractor_widgets.Abstractor`),
served by uvicorn. It is stateless: every request is answered from the memory-mapped
artifact alone, so N worker processes on one machine (``--workers N``) and N machines
behind a load balancer serve the same model, and a visitor costs no process of its own.

Endpoints
---------
The original Flask app's, wire-compatible with its React client:

* ``POST /abst_subm`` ``{"abstract": str}`` -> ``{"words": [[word, topic], ...],
  "topics": [[topic_id, probability], ...]}``
* ``POST /get_similars`` ``{"abstract": str}`` -> the similar papers, column-oriented
* ``GET /get_rand_abst`` -> a random abstract (``text/plain``)

The versioned API (``/api/v1/topics``, ``/analyze``, ``/similar``, ``/random``,
``/documents/{id}``, ``/openapi.json``, ``/docs``), ``/health`` (liveness) and ``/ready``
(the model is loaded and verified), and the web dashboard's static files at ``/``.
``docs/service.md`` documents every shape with ``curl`` examples; :func:`openapi_schema`
is the machine-readable contract.

Errors are always ``{"error": {"status": int, "message": str}}``: 400 (malformed JSON,
wrong types, missing fields), 413 (a text above :data:`~abstractor_widgets.text.MAX_TEXT_CHARS`
or a body above :data:`MAX_BODY_BYTES`), 422 (valid JSON, invalid values), 404, 405, 429
(rate limit), 503 (model not loaded yet) and 500 (logged with its traceback, never sent).

Examples
--------
>>> from abstractor_widgets.service import create_app
>>> app = create_app("artifacts/default", cors_origins=["http://localhost:3000"])  # doctest: +SKIP
>>> # uvicorn.run(app)  or, for N workers:  abstractor serve artifacts/default --workers N
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import html
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .explore import (MAX_REGION_VERTICES, MAX_SELECTION, Filters, MapSample, SelectionTooLarge, filtered_analyze,
                      select_region, to_bibtex, to_csv)
from .explore_widget import NO_MAP_MESSAGE
from .text import MAX_TEXT_CHARS, TextTooLongError
from .widget import N_SIMILAR_MAX, N_SIMILAR_MIN, topic_style

if TYPE_CHECKING:
    import numpy as np

    from .abstractor import Abstractor
    from .corpus import Document

logger = logging.getLogger(__name__)

__all__ = [
    "ARTIFACT_ENV",
    "DIGEST_ENV",
    "MAX_BODY_BYTES",
    "RateLimiter",
    "app_from_env",
    "create_app",
    "openapi_schema",
    "parse_rate",
    "serve",
    "word_topics",
]

#: Environment variables read by :func:`app_from_env` (each worker process calls it).
ARTIFACT_ENV = "ABSTRACTOR_ARTIFACT"
DIGEST_ENV = "ABSTRACTOR_ARTIFACT_SHA256"  # = store.DIGEST_ENV_VAR (`abstractor info` shows the digest)
CORS_ENV = "ABSTRACTOR_CORS_ORIGINS"
RATE_ENV = "ABSTRACTOR_RATE_LIMIT"
BURST_ENV = "ABSTRACTOR_RATE_BURST"
OFFLOAD_ENV = "ABSTRACTOR_SERVE_OFFLOAD"

#: Largest request body read (bytes). A JSON string may escape one character of text in up
#: to 12 bytes (a non-BMP character as two ``\\uXXXX`` escapes), so every text within
#: ``MAX_TEXT_CHARS`` fits; anything larger is refused (413) before it is parsed.
MAX_BODY_BYTES = 12 * MAX_TEXT_CHARS + 64 * 1024
N_SIMILAR_DEFAULT = 5
#: Document ids accepted in paths and bodies: arXiv ids (``2401.00001``, ``math/0601001``)
#: and the usual ids of other corpora; at most 200 characters (the widget's limit).
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+()\-]{0,199}")
_WORD_RE = re.compile(r"\S+")
#: Papers one export may name: a lasso around all 60,000 papers of the default map fits.
MAX_EXPORT_ROWS = 100_000
#: Body limit of ``POST /api/v1/export`` (a row number is at most 8 bytes of JSON).
MAX_EXPORT_BODY_BYTES = 8 * MAX_EXPORT_ROWS + 64 * 1024
#: Body limit of ``POST /api/v1/map/select`` (a region of MAX_REGION_VERTICES points, and filters).
MAX_REGION_BODY_BYTES = 64 * MAX_REGION_VERTICES + 64 * 1024
#: Query parameters of the corpus explorer's filters (``GET /api/v1/trends``, ``/map/mask``):
#: ``categories`` (repeatable), ``date_from`` / ``date_to`` (``YYYY-MM``), ``keyword``.
FILTER_PARAMS = ("categories", "date_from", "date_to", "keyword")
EXPORT_TYPES = {"csv": ("text/csv; charset=utf-8", "csv"), "bibtex": ("application/x-bibtex; charset=utf-8", "bib")}
#: The web dashboard's files (built from js/ by the package build).
STATIC_WEB = Path(__file__).parent / "static" / "web"

#: Sent with every response. The page and its API live on one origin; nothing is loaded
#: from elsewhere, and the browser is told so (``default-src 'self'``).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
     "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
#: The web dashboard page's own policy: the same, plus ``'unsafe-eval'`` for scripts. The
#: corpus map draws with regl (regl-scatterplot's WebGL layer), which builds its draw
#: commands with ``Function``; there is no regl without it. Scripts still come only from
#: this origin (no inline script, no other host), and the page never evaluates data it
#: receives (text goes through ``textContent``).
PAGE_CSP = dict(SECURITY_HEADERS)["content-security-policy"].replace("script-src 'self'", "script-src 'self' 'unsafe-eval'")
#: Paths the rate limit applies to (queries; not health checks nor static files).
_LIMITED_PREFIXES = ("/api/", "/abst_subm", "/get_similars", "/get_rand_abst")


# -- errors -------------------------------------------------------------------------
class ApiError(Exception):
    """An error answered as ``{"error": {"status", "message"}}`` with that status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body every failure gets."""
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 (unknown path, wrong method, missing file) as JSON errors."""
    assert isinstance(exc, HTTPException)
    path = request.url.path if len(request.url.path) <= 100 else request.url.path[:100] + "..."
    if exc.status_code == 405:
        message = f"method {request.method} not allowed on {path}"
    elif exc.status_code == 404:
        message = f"not found: {path}"
    else:
        message = exc.detail if isinstance(exc.detail, str) else "error"
    return error_response(exc.status_code, message, headers=dict(exc.headers) if exc.headers else None)


def _endpoint(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Answer :class:`ApiError` and the facade's text limit as JSON; log anything else as a 500."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except TextTooLongError as exc:
            return error_response(413, str(exc))
        except HTTPException:
            raise
        except Exception:
            logger.exception("%s %s failed", request.method, request.url.path)
            return error_response(500, "internal error: the request could not be answered (see the server log)")

    return wrapper


# -- request parsing ----------------------------------------------------------------
def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON object, read up to ``limit`` bytes (413 beyond, before parsing).

    Raises
    ------
    ApiError
        413 for a body above ``limit`` (announced or actual); 400 for an empty body,
        malformed JSON or anything but a JSON object.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
        if size > limit:
            raise ApiError(413, f"the request body has {size:,} bytes; the limit is {limit:,}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise ApiError(413, f"the request body is larger than {limit:,} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise ApiError(400, "the request body is empty: send a JSON object")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text" if isinstance(exc, UnicodeError) else "too deeply nested"
        raise ApiError(400, f"malformed JSON: {reason}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, not {_json_type(data)}")
    return data


def _text_field(data: dict[str, Any], key: str) -> str:
    """A required string field; its length is checked by the facade (413 above the limit)."""
    if key not in data:
        raise ApiError(400, f"missing field {key!r} (a string)")
    value = data[key]
    if not isinstance(value, str):
        raise ApiError(400, f"{key!r} must be a string, not {_json_type(value)}")
    if len(value) > MAX_TEXT_CHARS:  # before the (linear) surrogate check; the facade checks again
        raise TextTooLongError(len(value))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(422, f"{key!r} is not valid Unicode (it contains a lone surrogate escape)") from None
    return value


def _n_field(data: dict[str, Any]) -> int:
    value = data.get("n")
    if value is None:
        return N_SIMILAR_DEFAULT
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'n' must be an integer, not {_json_type(value)}")
    if not N_SIMILAR_MIN <= value <= N_SIMILAR_MAX:
        raise ApiError(422, f"'n' must be between {N_SIMILAR_MIN} and {N_SIMILAR_MAX}, not {value}")
    return value


def _method_field(data: dict[str, Any], methods: Sequence[str]) -> str | None:
    value = data.get("method")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"'method' must be a string or null, not {_json_type(value)}")
    if value not in methods:
        raise ApiError(422, f"unknown method {value[:40]!r}: this model ranks with {', '.join(methods)}")
    return value


def _check_id(value: object) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"'id' must be a string, not {_json_type(value)}")
    if not _ID_RE.fullmatch(value):
        raise ApiError(422, "invalid document id: 1-200 characters among letters, digits and . _ : / + ( ) -, "
                            "starting with a letter or digit")
    return value


def _filters(value: object) -> Filters:
    """The explorer's filters from a JSON body field (an object or null); 422 when invalid."""
    if value is None:
        return Filters()
    if not isinstance(value, dict):
        raise ApiError(400, f"'filters' must be an object or null, not {_json_type(value)}")
    try:
        return Filters.from_dict(value)
    except ValueError as exc:
        raise ApiError(422, f"invalid filter: {exc}") from None


def _query_filters(request: Request) -> Filters:
    """The filters of a GET request's query string (:data:`FILTER_PARAMS`); 422 when invalid."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - set(FILTER_PARAMS))
    if unknown:
        raise ApiError(422, f"unknown query parameter {unknown[0][:40]!r}: the filters are {', '.join(FILTER_PARAMS)}")
    for key in ("date_from", "date_to", "keyword"):
        if len(params.getlist(key)) > 1:
            raise ApiError(422, f"give {key!r} at most once")
    return _filters({"categories": params.getlist("categories"), "date_from": params.get("date_from", ""),
                     "date_to": params.get("date_to", ""), "keyword": params.get("keyword", "")})


def _bool_field(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{key!r} must be a boolean, not {_json_type(value)}")
    return value


# -- response shapes ----------------------------------------------------------------
def _public_hit(hit: dict[str, Any]) -> dict[str, Any]:
    """A facade hit without its abstract (the page asks for a paper when it shows it)."""
    return {k: v for k, v in hit.items() if k != "abstract"}


def _document_json(doc: Document) -> dict[str, str]:
    return {"id": doc.id, "title": doc.title, "abstract": doc.text, "categories": doc.categories,
            "published": doc.published, "url": doc.url}


def _topic_pairs(mixture: Sequence[float]) -> list[list[float]]:
    """``[[topic_id, probability], ...]`` of the non-zero topics, in topic-id order (the original's shape)."""
    return [[k, p] for k, p in enumerate(mixture) if p > 0]


def word_topics(text: str, spans: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """``[[word, topic], ...]`` for every whitespace-separated word of ``text``, in order.

    A word gets the topic of the first topical span overlapping it (the original app
    took the first of the word's tokens that had a topic), ``-1`` when it has none.

    Examples
    --------
    >>> spans = [{"start": 0, "end": 3, "topic": None}, {"start": 3, "end": 9, "topic": 2},
    ...          {"start": 9, "end": 10, "topic": None}]
    >>> word_topics("An image.", spans)
    [['An', -1], ['image.', 2]]
    """
    topical = [(s["start"], s["end"], s["topic"]) for s in spans if s.get("topic") is not None]
    out: list[list[Any]] = []
    i = 0
    for match in _WORD_RE.finditer(text):
        start, end = match.span()
        while i < len(topical) and topical[i][1] <= start:
            i += 1
        topic = topical[i][2] if i < len(topical) and topical[i][0] < end else -1
        out.append([match.group(), topic])
    return out


# -- rate limit ---------------------------------------------------------------------
def parse_rate(value: str | float) -> float:
    """Requests per second from ``"10"``, ``"10/s"``, ``"600/min"`` or ``"3600/h"``.

    Raises
    ------
    ValueError
        For anything else, or a rate that is not positive and finite.
    """
    if isinstance(value, (int, float)):
        rate = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*", value)
        if not match:
            raise ValueError(f"rate limit {value!r}: expected R, R/s, R/min or R/h (e.g. 20/s)")
        per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}[match.group(2) or "s"]
        rate = float(match.group(1)) / per
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate limit must be positive, not {value!r}")
    return rate


class RateLimiter:
    """A token bucket per client: ``rate`` tokens a second, at most ``burst`` saved up.

    Parameters
    ----------
    rate : float
        Sustained requests per second per client.
    burst : int, optional
        Requests a client may send at once after being idle (default ``2 * rate``, at least 1).
    max_clients : int
        Buckets kept; beyond it the full (idle) ones are forgotten, then the oldest.
    clock : callable
        Seconds (monotonic); tests pass a fake one.
    """

    def __init__(self, rate: float, burst: int | None = None, max_clients: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = parse_rate(rate)
        self.burst = max(1, int(burst) if burst is not None else math.ceil(2 * self.rate))
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, time)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Spend one token of ``client``'s bucket: 0.0 if allowed, else seconds until the next token."""
        now = self.clock()
        with self._lock:
            tokens, then = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                if client not in self._buckets and len(self._buckets) >= self.max_clients:
                    self._prune(now)
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [c for c, (t, then) in self._buckets.items() if t + (now - then) * self.rate >= self.burst]
        for client in full:
            del self._buckets[client]
        while len(self._buckets) >= self.max_clients:  # all busy: forget the oldest
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimitMiddleware:
    """429 (JSON, with ``Retry-After``) for a client over its :class:`RateLimiter` budget.

    The client is the connection's peer address (uvicorn puts the forwarded address there
    when ``--forwarded-allow-ips`` trusts the proxy). Only query paths are limited.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] != "OPTIONS" and scope["path"].startswith(_LIMITED_PREFIXES):
            client = scope.get("client")
            wait = self.limiter.take(client[0] if client else "unknown")
            if wait:
                response = error_response(429, f"too many requests: at most {self.limiter.rate:g} a second "
                                               f"(bursts of {self.limiter.burst}); retry in {wait:.2f} s",
                                          headers={"Retry-After": str(max(1, math.ceil(wait)))})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (errors and static files included)."""

    def __init__(self, app: ASGIApp, headers: Sequence[tuple[str, str]] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _OptionalStaticFiles(StaticFiles):
    """Static files whose directory may not exist yet (404 instead of a startup error)."""

    async def check_config(self) -> None:  # the web front end may be built after the server started
        return None


# -- the model ----------------------------------------------------------------------
def load_abstractor(path: str | os.PathLike[str], expected_digest: str | None = None) -> Abstractor:
    """Load an artifact for serving.

    With ``expected_digest`` (the workers started by :func:`serve`, whose parent hashed
    every file once) only the files' sizes and the manifest's digest are checked; without
    it every file's sha256 is (and ``$ABSTRACTOR_ARTIFACT_SHA256``, if set, is enforced).

    Raises
    ------
    abstractor_widgets.store.ArtifactError
        A missing, damaged or different artifact.
    """
    from .abstractor import Abstractor

    if expected_digest is None:
        return Abstractor.load(path)
    return Abstractor.load(path, verify=False, expected_digest=expected_digest)


class _Model:
    """The service's model: given, or loaded in the background (``/ready`` says when)."""

    def __init__(self, source: Abstractor | str | os.PathLike[str], expected_digest: str | None, offload: bool) -> None:
        self.path: Path | None = None
        self.abstractor: Abstractor | None = None
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(source)
        else:
            self.abstractor = source
        self.expected_digest = expected_digest
        self.offload = offload
        self.error: str | None = None
        self._topics: bytes | None = None
        self._explorer: _Explorer | None = None
        self._explorer_lock = threading.Lock()

    def load(self) -> None:
        """Load :attr:`path` (in a thread: the event loop keeps answering ``/health``)."""
        assert self.path is not None
        started = time.perf_counter()
        try:
            abstractor = load_abstractor(self.path, self.expected_digest)
        except Exception as exc:
            logger.exception("cannot load %s", self.path)
            self.error = f"the model could not be loaded ({type(exc).__name__}); see the server log"
            return
        self.abstractor = abstractor
        logger.info("loaded %s in %.2f s (pid %d)", self.path, time.perf_counter() - started, os.getpid())

    def get(self) -> Abstractor:
        if self.abstractor is None:
            raise ApiError(503, self.error or "the model is loading; retry in a moment",
                           headers=None if self.error else {"Retry-After": "1"})
        return self.abstractor

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``: in the event loop (CPU-bound, ~2 ms) or in the thread pool."""
        if self.offload:
            return await run_in_threadpool(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    def explorer(self) -> _Explorer:
        """The explorer's cached data (built by the first request that needs it)."""
        if self._explorer is None:
            ab = self.get()
            with self._explorer_lock:
                if self._explorer is None:
                    self._explorer = _Explorer(ab)
        return self._explorer

    def topics_body(self) -> bytes:
        if self._topics is None:
            ab = self.get()
            topics = []
            for topic in ab.topics:
                color, pattern = topic_style(topic["id"])
                topics.append({"id": topic["id"], "label": topic["label"], "color": color, "pattern": pattern,
                               "terms": topic["terms"]})
            payload = {
                "n_topics": len(topics),
                "n_documents": len(ab),
                "topics": topics,
                "methods": list(ab.methods),
                "default_method": ab.default_method,
                "max_text_chars": MAX_TEXT_CHARS,
                "n_similar": {"min": N_SIMILAR_MIN, "max": N_SIMILAR_MAX, "default": N_SIMILAR_DEFAULT},
                "editable_labels": False,
            }
            self._topics = JSONResponse(payload).body
        return self._topics


class _Explorer:
    """The corpus explorer's data for one model, computed once and cached (the model never
    changes while a process serves it): the map's points as bytes, its description, and the
    masks and trends of the last filters asked for (an LRU per process).

    The map draws every paper, or a uniform sample of a large corpus
    (:class:`~abstractor_widgets.explore.MapSample`, the same in every worker): the points'
    body then ends with each point's row, and the rest of the API (rows, masks, selections,
    each similar paper's ``row``, ``x``, ``y``) stays in corpus rows."""

    def __init__(self, ab: Abstractor) -> None:
        import numpy as np

        self.ab = ab
        facets = ab.facets
        self.categories = [[c, int(n)] for c, n in zip(facets.categories[:30], facets.category_counts[:30])]
        self.month_range = [facets.months[0], facets.months[-1]] if facets.months else []
        corpus_map = ab.corpus_map
        if corpus_map is None:
            self.sample = MapSample.choose(0, 1)
            self.coords = np.zeros((0, 2), dtype=np.float32)
            self.points = b""
            self.centroids: list[list[float] | None] = []
            self.status = NO_MAP_MESSAGE.format(path="ARTIFACT")
        else:
            from .explore_widget import ExploreWidget

            self.sample = MapSample.choose(len(ab))
            self.coords = np.asarray(corpus_map.coords_)  # every paper (memory-mapped)
            drawn = np.ascontiguousarray(self.sample.take(self.coords), dtype="<f4")
            dominant = np.asarray(self.sample.take(ab.model.doc_topics_)).argmax(axis=1).astype(np.uint8)
            # float32 x, y interleaved (8 bytes a point), then uint8 dominant topic (1 byte), then
            # for a sampled map the uint32 row of each point (4 bytes)
            self.points = drawn.tobytes() + dominant.tobytes() + self.sample.rows_bytes()
            self.centroids = ExploreWidget._centroids(drawn.astype(np.float64), dominant, ab.n_topics)
            self.status = ""
        self.version = hashlib.sha256(self.points + json.dumps(self.centroids).encode()).hexdigest()[:16]
        self.info = JSONResponse({
            "n_points": self.sample.n_points, "n_documents": len(ab), "sampled": self.sample.sampled,
            "n_topics": ab.n_topics, "status": self.status, "version": self.version, "centroids": self.centroids,
            "categories": self.categories, "month_range": self.month_range,
            "points_bytes": len(self.points),
        }).body

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one explorer per model, kept for the process
    def mask(self, filters: Filters) -> tuple[bytes, int]:
        """Bits (little-endian bit order, 1 = kept) of the papers the filters keep, and their count."""
        import numpy as np

        mask = self.ab.filter_mask(filters)  # ValueError: a keyword with no indexed word
        if mask is None:
            return b"", len(self.ab)
        return np.packbits(mask, bitorder="little").tobytes(), int(mask.sum())

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def trends(self, filters: Filters) -> bytes:
        """``TopicTrends`` of the kept papers as JSON, the share arrays as base64 float32."""
        state = self.ab.trends(filters=filters if filters.active else None, n_categories=12).to_state(binary=True)
        for key in ("shares", "category_shares"):
            state[key] = base64.b64encode(state[key]).decode("ascii")
        state["encoding"] = "float32-le-base64"
        state["filter_count"] = self.mask(filters)[1]
        return JSONResponse(state).body

    def row(self, row: int) -> dict[str, Any]:
        doc = self.ab.documents[row]
        out: dict[str, Any] = {"row": row, "id": doc.id, "title": doc.title, "published": doc.published,
                               "categories": doc.categories, "url": doc.url}
        if len(self.coords):
            import numpy as np

            out["topic"] = int(np.argmax(self.ab.model.doc_topics_[row]))
            out["x"], out["y"] = self.position(row)
        return out

    def position(self, row: int) -> tuple[float, float]:
        """A paper's place on the map (drawn or not)."""
        x, y = (round(float(v), 5) for v in self.coords[row])
        return x, y

    def select(self, polygon: Any, filters: Filters) -> Any:
        """Rows of every paper inside ``polygon`` (map coordinates) that the filters keep,
        drawn on the map or not (:func:`~abstractor_widgets.explore.select_region`): ValueError for
        an invalid polygon or filter, ``SelectionTooLarge`` above ``MAX_SELECTION`` papers."""
        if not len(self.coords):
            raise LookupError("this model has no corpus map")
        return select_region(self.coords, polygon, self.ab.filter_mask(filters))

    def here(self, text: str, doc_topics: Sequence[float], paper_id: str | None) -> list[float]:
        """Where the analysed text goes on the map: a corpus paper on its own point, else the
        map's transform of the text ([] without a map or without topical words)."""
        ab = self.ab
        if ab.corpus_map is None:
            return []
        if paper_id and paper_id in ab.documents:
            return list(self.position(ab.documents.position(paper_id)))
        if not any(p > 0 for p in doc_topics):
            return []
        import numpy as np

        from .layout import CorpusMap

        feature = CorpusMap.text_features(ab, text, np.asarray(doc_topics, dtype=np.float64))
        return [round(float(v), 5) for v in ab.corpus_map.place_one(feature)]


# -- the application ----------------------------------------------------------------
def create_app(
    artifact: Abstractor | str | os.PathLike[str],
    *,
    cors_origins: Sequence[str] = (),
    rate_limit: float | str | None = None,
    rate_burst: int | None = None,
    expected_digest: str | None = None,
    offload: bool = True,
    static_dir: str | os.PathLike[str] | None = None,
    wait_for_model: bool = False,
) -> Starlette:
    """The service's ASGI application.

    Parameters
    ----------
    artifact : Abstractor or path-like
        A loaded facade (ready at once), or an artifact directory, loaded in a background
        thread at startup (``/ready`` answers 503 until it is loaded and verified).
    cors_origins : sequence of str
        Origins allowed to call the API from a browser (``"*"`` for any); none by default.
    rate_limit : float or str, optional
        Requests per second per client IP (``"20/s"``, ``"600/min"``); off by default.
        Each worker process keeps its own buckets.
    rate_burst : int, optional
        Bucket size (default twice the rate).
    expected_digest : str, optional
        Load with sizes and this digest checked instead of every file's sha256 (the
        parent process of :func:`serve` verified them once).
    offload : bool
        Run the facade's calls in Starlette's thread pool (default) instead of directly in
        the event loop. Measured in ``benchmarks/service.py`` (2 workers, 50 clients, 60k
        model, busy 2-core machine, 4 alternated rounds over two runs): the thread pool gave
        1.6-2.7x the requests/s at equal or lower server CPU per request; numpy and gensim
        release the GIL for part of each call, so the loop keeps reading and writing sockets.
    static_dir : path-like, optional
        The web dashboard's files (default ``abstractor_widgets/static/web``).
    wait_for_model : bool
        Load the artifact before the server accepts connections (uvicorn runs the
        lifespan first) instead of in the background: a worker of :func:`serve` then never
        answers a query with "loading" while its siblings are ready. A failed load still
        leaves the process alive and ``/ready`` at 503 with the reason.

    Returns
    -------
    starlette.applications.Starlette
    """
    model = _Model(artifact, expected_digest, offload)
    static = Path(static_dir) if static_dir is not None else STATIC_WEB

    @_endpoint
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    @_endpoint
    async def ready(request: Request) -> Response:
        ab = model.get()
        return JSONResponse({"status": "ready", "n_topics": ab.n_topics, "n_documents": len(ab), "pid": os.getpid()})

    # -- the original app's endpoints -------------------------------------------
    @_endpoint
    async def abst_subm(request: Request) -> Response:
        ab = model.get()
        text = _text_field(await read_json(request), "abstract")
        analysis = await model.call(ab.analyze, text, n=0)
        return JSONResponse({"words": word_topics(text, analysis.spans), "topics": _topic_pairs(analysis.doc_topics)})

    @_endpoint
    async def get_similars(request: Request) -> Response:
        ab = model.get()
        data = await read_json(request)
        text = _text_field(data, "abstract")
        n = _n_field(data)
        hits = (await model.call(ab.analyze, text, n=n)).similar
        columns: dict[str, dict[str, Any]] = {"text": {}, "title": {}, "link": {}, "percentage": {}, "topics": {}}
        for i, hit in enumerate(hits):
            key = str(i)
            columns["text"][key] = hit["abstract"]
            columns["title"][key] = hit["title"]
            columns["link"][key] = hit["id"]
            columns["percentage"][key] = min(1.0, max(0.0, hit["score"]))
            columns["topics"][key] = _topic_pairs(hit["topics"])
        return JSONResponse(columns)

    @_endpoint
    async def get_rand_abst(request: Request) -> Response:
        return PlainTextResponse(model.get().random_document().text)

    # -- /api/v1 ----------------------------------------------------------------
    @_endpoint
    async def topics(request: Request) -> Response:
        return Response(model.topics_body(), media_type="application/json")

    @_endpoint
    async def analyze(request: Request) -> Response:
        ab = model.get()
        data = await read_json(request)
        text = _text_field(data, "text")
        n = _n_field(data)
        method = _method_field(data, ab.methods)
        filters = _filters(data.get("filters"))
        on_map = _bool_field(data, "map")
        paper_id = _check_id(data["paper_id"]) if data.get("paper_id") is not None else None

        def run() -> dict[str, Any]:  # one call (one thread-pool hop): analysis, filters, placement
            if filters.active:
                # ranked among the papers the filters keep (the explorer's similar papers)
                try:
                    mask = ab.filter_mask(filters)
                except ValueError as exc:
                    raise ApiError(422, f"filter not applied: {exc}") from None
                result = filtered_analyze(ab, text, n, method, mask)
            else:
                result = ab.analyze(text, n=n, method=method)
            body = {
                "spans": result.spans,
                "doc_topics": result.doc_topics,
                "similar": [_public_hit(h) for h in result.similar],
                "reason": result.reason,
                "elapsed_ms": round(result.elapsed_ms, 3),
                "method": method or ab.default_method,
            }
            if on_map:
                explorer = model.explorer()
                body["here"] = explorer.here(text, result.doc_topics, paper_id)
                for hit in body["similar"]:
                    hit["row"] = ab.documents.position(hit["id"])
                    if len(explorer.coords):  # where its ring goes, drawn on the map or not
                        hit["x"], hit["y"] = explorer.position(hit["row"])
            return body

        return JSONResponse(await model.call(run))

    @_endpoint
    async def similar(request: Request) -> Response:
        ab = model.get()
        data = await read_json(request)
        has_text, has_id = data.get("text") is not None, data.get("id") is not None
        if has_text == has_id:
            raise ApiError(400, "give exactly one of 'text' (a string) and 'id' (a document id)")
        n = _n_field(data)
        method = _method_field(data, ab.methods)
        if has_id:
            doc_id = _check_id(data["id"])
            try:
                hits = await model.call(ab.similar_to, doc_id, n=n, method=method)
            except KeyError:
                raise ApiError(404, f"unknown document id {doc_id!r}") from None
        else:
            text = _text_field(data, "text")
            hits = (await model.call(ab.analyze, text, n=n, method=method)).similar
        return JSONResponse({"similar": [_public_hit(h) for h in hits]})

    @_endpoint
    async def random(request: Request) -> Response:
        return JSONResponse(_document_json(model.get().random_document()))

    @_endpoint
    async def document(request: Request) -> Response:
        ab = model.get()
        doc_id = _check_id(request.path_params["doc_id"])
        try:
            doc = ab.document(doc_id)
        except KeyError:
            raise ApiError(404, f"unknown document id {doc_id!r}") from None
        return JSONResponse(_document_json(doc))

    # -- the corpus explorer ----------------------------------------------------
    @_endpoint
    async def map_info(request: Request) -> Response:
        explorer = await model.call(model.explorer)
        return Response(explorer.info, media_type="application/json")

    @_endpoint
    async def map_points(request: Request) -> Response:
        explorer = await model.call(model.explorer)
        if not explorer.points:
            raise ApiError(404, "this model has no corpus map (add one with `abstractor map ARTIFACT`)")
        etag = f'"{explorer.version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Map-Points": str(explorer.sample.n_points)}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(explorer.points, media_type="application/octet-stream", headers=headers)

    @_endpoint
    async def map_mask(request: Request) -> Response:
        filters = _query_filters(request)
        explorer = await model.call(model.explorer)
        try:
            bits, count = await model.call(explorer.mask, filters)
        except ValueError as exc:
            raise ApiError(422, f"filter not applied: {exc}") from None
        return Response(bits, media_type="application/octet-stream",
                        headers={"X-Filter-Count": str(count), "X-Map-Points": str(len(model.get()))})

    @_endpoint
    async def map_select(request: Request) -> Response:
        data = await read_json(request, limit=MAX_REGION_BODY_BYTES)
        unknown = sorted(set(data) - {"polygon", "filters"})
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0][:40]!r}: send 'polygon' and optionally 'filters'")
        filters = _filters(data.get("filters"))
        explorer = await model.call(model.explorer)
        try:
            rows = await model.call(explorer.select, data.get("polygon"), filters)
        except LookupError as exc:
            raise ApiError(404, str(exc)) from None
        except SelectionTooLarge as exc:
            raise ApiError(413, str(exc)[:1].upper() + str(exc)[1:]) from None
        except ValueError as exc:
            raise ApiError(422, f"selection not made: {exc}") from None
        return Response(rows.astype("<u4").tobytes(), media_type="application/octet-stream",
                        headers={"X-Selection-Count": str(len(rows))})

    @_endpoint
    async def trends(request: Request) -> Response:
        filters = _query_filters(request)
        explorer = await model.call(model.explorer)
        try:
            body = await model.call(explorer.trends, filters)
        except ValueError as exc:
            raise ApiError(422, f"filter not applied: {exc}") from None
        return Response(body, media_type="application/json")

    @_endpoint
    async def map_row(request: Request) -> Response:
        ab = model.get()
        raw = request.path_params["row"]
        if not re.fullmatch(r"[0-9]{1,10}", raw):
            raise ApiError(422, "a map row is a paper's row number (0, 1, 2, ...)")
        row = int(raw)
        if row >= len(ab):
            raise ApiError(404, f"no paper at row {row}: the corpus has {len(ab):,}")
        explorer = await model.call(model.explorer)
        return JSONResponse(explorer.row(row), headers={"Cache-Control": "private, max-age=3600"})

    @_endpoint
    async def export(request: Request) -> Response:
        ab = model.get()
        data = await read_json(request, limit=MAX_EXPORT_BODY_BYTES)
        fmt, what = data.get("format"), data.get("what")
        if fmt not in EXPORT_TYPES:
            raise ApiError(422, "'format' must be 'csv' or 'bibtex'")
        if what == "selection":
            rows = data.get("rows")
            if not isinstance(rows, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows):
                raise ApiError(400, "'rows' must be an array of row numbers")
            if len(rows) > MAX_EXPORT_ROWS:
                raise ApiError(413, f"at most {MAX_EXPORT_ROWS:,} papers in one export, not {len(rows):,}")
            if any(not 0 <= r < len(ab) for r in rows):
                raise ApiError(422, f"rows must be in [0, {len(ab)})")
            records = [_document_json(ab.documents[r]) for r in sorted(set(rows))]
        elif what == "similar":
            papers = data.get("papers")
            if not isinstance(papers, list) or len(papers) > N_SIMILAR_MAX + 1 or not all(isinstance(p, dict) for p in papers):
                raise ApiError(400, f"'papers' must be an array of at most {N_SIMILAR_MAX + 1} objects {{id, score}}")
            records = []
            for paper in papers:
                doc_id = _check_id(paper.get("id"))
                score = paper.get("score")
                if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)):
                    raise ApiError(400, "a paper's 'score' must be a number")
                if doc_id not in ab.documents:
                    raise ApiError(404, f"unknown document id {doc_id!r}")
                records.append({**_document_json(ab.documents[ab.documents.position(doc_id)]), "score": score})
        else:
            raise ApiError(422, "'what' must be 'selection' (with 'rows') or 'similar' (with 'papers')")
        mime, ext = EXPORT_TYPES[fmt]
        text = await model.call(to_csv if fmt == "csv" else to_bibtex, records)
        return Response(text, media_type=mime,
                        headers={"Content-Disposition": f'attachment; filename="abstractor-{what}.{ext}"',
                                 "X-Export-Count": str(len(records))})

    @_endpoint
    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_schema())

    @_endpoint
    async def docs(request: Request) -> Response:
        return HTMLResponse(_docs_page(openapi_schema()))

    # -- the web dashboard ------------------------------------------------------
    @_endpoint
    async def index(request: Request) -> Response:
        page = static / "index.html"
        if page.is_file():
            return FileResponse(page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_CSP})
        return HTMLResponse(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>abstractor: not built</title>"
            "<h1>The web dashboard is not built</h1><p>This server answers the JSON API "
            "(<a href=\"/api/v1/docs\">/api/v1/docs</a>), but its web page was not built: run "
            "<code>npm --prefix js ci &amp;&amp; npm --prefix js run build</code> (or <code>pip install .</code>) "
            "and restart.</p></html>", status_code=503)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/abst_subm", abst_subm, methods=["POST"]),
        Route("/get_similars", get_similars, methods=["POST"]),
        Route("/get_rand_abst", get_rand_abst, methods=["GET"]),
        Route("/api/v1/topics", topics, methods=["GET"]),
        Route("/api/v1/analyze", analyze, methods=["POST"]),
        Route("/api/v1/similar", similar, methods=["POST"]),
        Route("/api/v1/random", random, methods=["GET"]),
        Route("/api/v1/documents/{doc_id:path}", document, methods=["GET"]),
        Route("/api/v1/map", map_info, methods=["GET"]),
        Route("/api/v1/map/points", map_points, methods=["GET"]),
        Route("/api/v1/map/mask", map_mask, methods=["GET"]),
        Route("/api/v1/map/rows/{row}", map_row, methods=["GET"]),
        Route("/api/v1/map/select", map_select, methods=["POST"]),
        Route("/api/v1/trends", trends, methods=["GET"]),
        Route("/api/v1/export", export, methods=["POST"]),
        Route("/api/v1/openapi.json", openapi, methods=["GET"]),
        Route("/api/v1/docs", docs, methods=["GET"]),
        Route("/", index, methods=["GET"]),
    ]

    middleware = [Middleware(SecurityHeadersMiddleware)]
    origins = [o for o in cors_origins if o]
    if origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                                     allow_headers=["Content-Type"], max_age=600))
    limiter = RateLimiter(rate_limit, rate_burst) if rate_limit is not None else None
    if limiter is not None:
        middleware.append(Middleware(RateLimitMiddleware, limiter=limiter))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _pin_blas()
        task = None
        if model.abstractor is None and wait_for_model:
            await asyncio.to_thread(model.load)
        elif model.abstractor is None:
            task = asyncio.create_task(asyncio.to_thread(model.load))
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_exception})
    # Files of the web dashboard (``/web.js``, ``/web.css``, ``/static/...``) for every GET
    # no route matches. As the router's default (not a catch-all mount) so that a wrong
    # method on an API path still answers 405, not the static files' 404.
    app.router.default = _OptionalStaticFiles(directory=static, check_dir=False)
    app.state.model = model
    app.state.limiter = limiter
    return app


def _pin_blas() -> None:
    """One BLAS thread for the whole process: each query is tiny, threads only wait for a core."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except Exception:  # pragma: no cover - threadpoolctl is a dependency; never fatal
        logger.warning("could not limit BLAS to one thread", exc_info=True)


def app_from_env() -> Starlette:
    """The application of one worker, configured by environment variables.

    uvicorn's ``--workers`` needs an import string; ``abstractor serve`` points it at
    ``abstractor_widgets.service:app_from_env`` (a factory) after setting
    ``ABSTRACTOR_ARTIFACT`` (path), ``ABSTRACTOR_ARTIFACT_SHA256`` (verified digest),
    ``ABSTRACTOR_CORS_ORIGINS`` (comma-separated), ``ABSTRACTOR_RATE_LIMIT`` /
    ``ABSTRACTOR_RATE_BURST`` and ``ABSTRACTOR_SERVE_OFFLOAD`` (``0`` = call the facade in
    the event loop; default: the thread pool).
    """
    path = os.environ.get(ARTIFACT_ENV)
    if not path:
        raise RuntimeError(f"{ARTIFACT_ENV} is not set: the artifact directory to serve")
    rate = os.environ.get(RATE_ENV) or None
    burst = os.environ.get(BURST_ENV) or None
    return create_app(
        path,
        cors_origins=[o.strip() for o in os.environ.get(CORS_ENV, "").split(",") if o.strip()],
        rate_limit=rate,
        rate_burst=int(burst) if burst else None,
        expected_digest=os.environ.get(DIGEST_ENV) or None,
        offload=os.environ.get(OFFLOAD_ENV, "1") != "0",
        wait_for_model=True,
    )


def serve(
    artifact: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    cors_origins: Sequence[str] = (),
    rate_limit: str | float | None = None,
    rate_burst: int | None = None,
    access_log: bool = False,
    offload: bool | None = None,
) -> None:
    """Verify ``artifact`` once, then serve it with uvicorn in ``workers`` processes.

    Every file's sha256 is checked here, once; the workers (each memory-maps the same
    files: the page cache holds one copy) check sizes and the digest only. A digest pinned
    in ``ABSTRACTOR_ARTIFACT_SHA256`` must match the artifact.

    Raises
    ------
    abstractor_widgets.store.ArtifactError
        A missing or damaged artifact, or one that is not the pinned one.
    ValueError
        An invalid rate limit.
    """
    import uvicorn

    from .store import artifact_digest, verify_artifacts

    path = Path(artifact).resolve()
    started = time.perf_counter()
    manifest = verify_artifacts(path)  # every file's size and sha256, and $ABSTRACTOR_ARTIFACT_SHA256 if pinned
    digest = artifact_digest(manifest)
    if rate_limit is not None:
        parse_rate(rate_limit)  # fail here, not in every worker
    logger.info("verified %s in %.2f s (digest %s)", path, time.perf_counter() - started, digest[:12])
    os.environ.update({ARTIFACT_ENV: str(path), DIGEST_ENV: digest,
                       CORS_ENV: ",".join(cors_origins), RATE_ENV: "" if rate_limit is None else str(rate_limit),
                       BURST_ENV: "" if rate_burst is None else str(int(rate_burst))})
    if offload is not None:  # else as $ABSTRACTOR_SERVE_OFFLOAD says (default: the thread pool)
        os.environ[OFFLOAD_ENV] = "1" if offload else "0"
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # a query's products are tiny: threads only wait for a core
    uvicorn.run("abstractor_widgets.service:app_from_env", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, server_header=False, log_level="info" if access_log else "warning")


# -- OpenAPI ------------------------------------------------------------------------
def _error_responses(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed JSON, wrong types or missing fields", 404: "Unknown document",
            413: f"Text above {MAX_TEXT_CHARS:,} characters or body above {MAX_BODY_BYTES:,} bytes "
                 f"(an export: above {MAX_EXPORT_ROWS:,} papers; a map selection: above {MAX_SELECTION:,})",
            422: "Valid JSON with invalid values (n out of range, unknown method, invalid id or filter)",
            429: "Rate limited (see Retry-After)", 503: "The model is not loaded yet"}
    return {str(s): {"description": text[s], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for s in statuses}


def _json(ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _pairs(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "array", "prefixItems": [first, second], "minItems": 2, "maxItems": 2}}


@functools.lru_cache(maxsize=1)
def openapi_schema() -> dict[str, Any]:
    """The service's OpenAPI 3.1 description (served at ``/api/v1/openapi.json``).

    Its component schemas are JSON Schema 2020-12: the tests validate real responses
    against them, so the description cannot drift from the code.
    """
    string, integer, number = {"type": "string"}, {"type": "integer"}, {"type": "number"}
    nullable_string = {"type": ["string", "null"]}
    method = {"type": ["string", "null"], "description": "Ranking: 'hybrid', 'lexical' or 'lda' (GET /api/v1/topics lists this model's); null = the default."}
    n = {"type": "integer", "minimum": N_SIMILAR_MIN, "maximum": N_SIMILAR_MAX, "default": N_SIMILAR_DEFAULT}
    text = {"type": "string", "maxLength": MAX_TEXT_CHARS}
    doc_id = {"type": "string", "pattern": "^" + _ID_RE.pattern + "$"}
    FILTERS = [{"name": "categories", "in": "query", "required": False, "schema": {"type": "array", "items": string}, "explode": True},
                 {"name": "date_from", "in": "query", "required": False, "schema": string},
                 {"name": "date_to", "in": "query", "required": False, "schema": string},
                 {"name": "keyword", "in": "query", "required": False, "schema": string}]  # noqa: N806

    def obj(properties: dict[str, Any], required: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
        return {"type": "object", "properties": properties,
                "required": list(properties if required is None else required), "additionalProperties": False, **extra}

    schemas = {
        "Error": obj({"error": obj({"status": integer, "message": string})}),
        "Span": obj({"start": integer, "end": integer, "text": string, "topic": {"type": ["integer", "null"]},
                     "weight": {"type": "number", "minimum": 0, "maximum": 1}},
                    description="A stretch of the text; the spans cover it exactly. topic is null for non-topical stretches."),
        "SharedTopic": obj({"topic": integer, "query": number, "document": number}),
        "Hit": obj({"id": string, "title": string, "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "topics": {"type": "array", "items": number}, "url": string, "categories": string,
                    "published": string,
                    "shared_topics": {"type": "array", "items": {"$ref": "#/components/schemas/SharedTopic"}},
                    "shared_terms": {"type": "array", "items": string},
                    "row": {"type": "integer", "minimum": 0, "description": "Its row in the corpus (analyze with map: true)."},
                    "x": {"type": "number", "description": "Its place on the corpus map, drawn or not (analyze with map: true, a model with a map)."},
                    "y": number,
                    "semantic": {"type": "boolean", "description": "Models with static embeddings only: true when the "
                                 "embedding brought this paper into the list (close in meaning more than in shared words)."}},
                   required=["id", "title", "score", "topics", "url", "categories", "published", "shared_topics", "shared_terms"],
                   description="A similar paper (without its abstract: GET /api/v1/documents/{id})."),
        "Filters": {"type": ["object", "null"], "additionalProperties": False,
                    "description": "The corpus explorer's filters: papers in any of the categories, published in "
                                   "the months from date_from to date_to (inclusive), whose title or abstract has "
                                   "every indexed word of keyword.",
                    "properties": {"categories": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 40}},
                                   "date_from": {"type": "string", "pattern": "^([0-9]{4}-[0-9]{2}(-[0-9]{2})?)?$"},
                                   "date_to": {"type": "string", "pattern": "^([0-9]{4}-[0-9]{2}(-[0-9]{2})?)?$"},
                                   "keyword": {"type": "string", "maxLength": 200}}},
        "MapInfo": obj({
            "n_points": {"type": "integer", "description": "Points drawn: every paper, or a uniform sample of a large corpus."},
            "n_documents": integer,
            "sampled": {"type": "boolean", "description": "Whether the points are a sample (then each point's row ends the points' body)."},
            "n_topics": integer,
            "status": {"type": "string", "description": "Why there is no map ('' when there is one)."},
            "version": {"type": "string", "description": "Changes with the map's points (their ETag)."},
            "centroids": {"type": "array", "items": {"anyOf": [{"type": "array", "items": number, "minItems": 2, "maxItems": 2}, {"type": "null"}]},
                          "description": "Per topic, where its label goes (the median of its papers), or null."},
            "categories": _pairs(string, integer), "month_range": {"type": "array", "items": string, "maxItems": 2},
            "points_bytes": integer},
            description="The corpus map: GET /api/v1/map/points has the points (9 bytes a point, 13 when sampled)."),
        "SelectRequest": {"type": "object", "additionalProperties": False, "required": ["polygon"],
                          "properties": {"polygon": {"type": "array", "minItems": 3, "maxItems": MAX_REGION_VERTICES,
                                                     "items": {"type": "array", "items": number, "minItems": 2, "maxItems": 2},
                                                     "description": "The region's vertices in map coordinates"},
                                         "filters": {"$ref": "#/components/schemas/Filters"}}},
        "Trends": obj({
            "months": {"type": "array", "items": string}, "counts": {"type": "array", "items": integer},
            "n_topics": integer,
            "shares": {"type": "string", "contentEncoding": "base64",
                       "description": "float32 little-endian, months x topics: each topic's mean share of the month's papers"},
            "categories": {"type": "array", "items": string},
            "category_counts": {"type": "array", "items": {"type": "array", "items": integer}},
            "category_shares": {"type": "string", "contentEncoding": "base64",
                                "description": "float32 little-endian, categories x months x topics"},
            "undated": integer, "encoding": {"const": "float32-le-base64"}, "filter_count": integer},
            description="Topics over time of the papers the filters keep."),
        "MapRow": obj({"row": integer, "id": string, "title": string, "published": string, "categories": string,
                       "url": string, "topic": integer, "x": number, "y": number},
                      required=["row", "id", "title", "published", "categories", "url"],
                      description="A point of the map: its paper, dominant topic and position."),
        "ExportRequest": {"type": "object", "additionalProperties": False, "required": ["what", "format"],
                          "properties": {"what": {"enum": ["selection", "similar"]}, "format": {"enum": ["csv", "bibtex"]},
                                         "rows": {"type": "array", "maxItems": MAX_EXPORT_ROWS, "items": {"type": "integer", "minimum": 0},
                                                  "description": "what = selection: map rows"},
                                         "papers": {"type": "array", "maxItems": N_SIMILAR_MAX + 1,
                                                    "items": {"type": "object", "properties": {"id": doc_id, "score": {"type": ["number", "null"]}},
                                                              "required": ["id"]},
                                                    "description": "what = similar: the listed papers and their scores"}}},
        "Document": obj({"id": string, "title": string, "abstract": string, "categories": string,
                         "published": string, "url": string}),
        "Topic": obj({"id": integer, "label": string, "color": {"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$"},
                      "pattern": {"enum": ["solid", "dashed", "dotted", "double", "wavy"]},
                      "terms": _pairs(string, number)}),
        "Topics": obj({
            "n_topics": integer, "n_documents": integer,
            "topics": {"type": "array", "items": {"$ref": "#/components/schemas/Topic"}},
            "methods": {"type": "array", "items": string}, "default_method": string,
            "max_text_chars": integer,
            "n_similar": obj({"min": integer, "max": integer, "default": integer}),
            "editable_labels": {"type": "boolean"}}),
        "AnalyzeRequest": {"type": "object", "properties": {
            "text": text, "n": n, "method": method, "filters": {"$ref": "#/components/schemas/Filters"},
            "map": {"type": "boolean", "default": False, "description": "Also where the text goes on the corpus map (here) and each hit's row."},
            "paper_id": {**doc_id, "description": "The corpus paper being analysed: with map, the marker goes on its own point."}},
            "required": ["text"]},
        "Analysis": obj({
            "spans": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}},
            "doc_topics": {"type": "array", "items": number},
            "similar": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
            "reason": nullable_string, "elapsed_ms": number, "method": string,
            "here": {"type": "array", "items": number, "maxItems": 2,
                     "description": "With map: [x, y] of the text on the corpus map, [] without a map or topical words."}},
            required=["spans", "doc_topics", "similar", "reason", "elapsed_ms", "method"]),
        "SimilarRequest": {"type": "object", "properties": {"text": text, "id": doc_id, "n": n, "method": method},
                           "description": "Exactly one of text and id."},
        "Similar": obj({"similar": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}),
        "Health": obj({"status": {"const": "ok"}, "pid": integer}),
        "Ready": obj({"status": {"const": "ready"}, "n_topics": integer, "n_documents": integer, "pid": integer}),
        "AbstractRequest": {"type": "object", "properties": {"abstract": text}, "required": ["abstract"]},
        "SimilarsRequest": {"type": "object", "properties": {"abstract": text, "n": n}, "required": ["abstract"]},
        "Words": obj({"words": _pairs(string, integer), "topics": _pairs(integer, number)},
                     description="Every whitespace-separated word with its topic (-1: none); the text's topic mix."),
        "Similars": obj({
            "text": {"type": "object", "additionalProperties": string},
            "title": {"type": "object", "additionalProperties": string},
            "link": {"type": "object", "additionalProperties": string},
            "percentage": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}},
            "topics": {"type": "object", "additionalProperties": _pairs(integer, number)}},
            description="Column-oriented: each column maps the hit's position ('0', '1', ...) to its value; link is the arXiv id."),
    }
    paths = {
        "/health": {"get": {"summary": "Liveness: 200 while the process runs", "tags": ["operations"],
                            "responses": {"200": _json("Health")}}},
        "/ready": {"get": {"summary": "Readiness: 200 once the model is loaded and verified, 503 before",
                           "tags": ["operations"], "responses": {"200": _json("Ready"), **_error_responses(503)}}},
        "/abst_subm": {"post": {"summary": "The original app: words with their topic, and the topic mix",
                                "tags": ["original"], "requestBody": _body("AbstractRequest"),
                                "responses": {"200": _json("Words"), **_error_responses(400, 413, 422, 429, 503)}}},
        "/get_similars": {"post": {"summary": "The original app: similar papers, column-oriented",
                                   "tags": ["original"], "requestBody": _body("SimilarsRequest"),
                                   "responses": {"200": _json("Similars"), **_error_responses(400, 413, 422, 429, 503)}}},
        "/get_rand_abst": {"get": {"summary": "The original app: a random abstract as plain text", "tags": ["original"],
                                   "responses": {"200": {"description": "The abstract",
                                                         "content": {"text/plain": {"schema": string}}},
                                                 **_error_responses(429, 503)}}},
        "/api/v1/topics": {"get": {"summary": "The model: topics (label, colour, top terms), methods, limits",
                                   "tags": ["v1"], "responses": {"200": _json("Topics"), **_error_responses(429, 503)}}},
        "/api/v1/analyze": {"post": {"summary": "Colour a text by topic, its topic mix and the n most similar papers",
                                     "tags": ["v1"], "requestBody": _body("AnalyzeRequest"),
                                     "responses": {"200": _json("Analysis"), **_error_responses(400, 413, 422, 429, 503)}}},
        "/api/v1/similar": {"post": {"summary": "The n papers most similar to a text or to an indexed paper",
                                     "tags": ["v1"], "requestBody": _body("SimilarRequest"),
                                     "responses": {"200": _json("Similar"), **_error_responses(400, 404, 413, 422, 429, 503)}}},
        "/api/v1/random": {"get": {"summary": "A paper drawn at random", "tags": ["v1"],
                                   "responses": {"200": _json("Document"), **_error_responses(429, 503)}}},
        "/api/v1/documents/{id}": {"get": {
            "summary": "One paper by id", "tags": ["v1"],
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": doc_id}],
            "responses": {"200": _json("Document"), **_error_responses(404, 422, 429, 503)}}},
        "/api/v1/map": {"get": {"summary": "The corpus map: size, topic label positions, categories, months",
                                "tags": ["explore"], "responses": {"200": _json("MapInfo"), **_error_responses(429, 503)}}},
        "/api/v1/map/points": {"get": {
            "summary": "The map's points: float32 x, y interleaved (8 bytes a point), then each one's uint8 dominant topic; "
                       "for a sampled map (GET /api/v1/map: sampled) then each one's uint32 row in the corpus",
            "tags": ["explore"],
            "responses": {"200": {"description": "9 bytes a point, 13 when sampled (X-Map-Points: their number); ETag, 304 when unchanged",
                                  "content": {"application/octet-stream": {}}},
                          **_error_responses(404, 429, 503)}}},
        "/api/v1/map/mask": {"get": {
            "summary": "The papers the filters keep: one bit a paper (bit i of byte i // 8, least significant first); "
                       "empty without a filter", "tags": ["explore"], "parameters": FILTERS,
            "responses": {"200": {"description": "The bits (X-Filter-Count: papers kept)", "content": {"application/octet-stream": {}}},
                          **_error_responses(422, 429, 503)}}},
        "/api/v1/map/rows/{row}": {"get": {
            "summary": "The paper at a map row (hover)", "tags": ["explore"],
            "parameters": [{"name": "row", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": _json("MapRow"), **_error_responses(404, 422, 429, 503)}}},
        "/api/v1/map/select": {"post": {
            "summary": "Every paper inside a region of the map (a lasso), drawn or not, that the filters keep",
            "tags": ["explore"], "requestBody": _body("SelectRequest"),
            "responses": {"200": {"description": f"Their rows, uint32 little-endian, increasing (X-Selection-Count: their number; at most {MAX_SELECTION:,})",
                                  "content": {"application/octet-stream": {}}},
                          **_error_responses(400, 404, 413, 422, 429, 503)}}},
        "/api/v1/trends": {"get": {"summary": "Each topic's share of the papers per month, overall and per category",
                                   "tags": ["explore"], "parameters": FILTERS,
                                   "responses": {"200": _json("Trends"), **_error_responses(422, 429, 503)}}},
        "/api/v1/export": {"post": {
            "summary": "A selection (map rows) or the similar papers as CSV or BibTeX", "tags": ["explore"],
            "requestBody": _body("ExportRequest"),
            "responses": {"200": {"description": "The file (Content-Disposition: attachment)",
                                  "content": {"text/csv": {"schema": string}, "application/x-bibtex": {"schema": string}}},
                          **_error_responses(400, 404, 413, 422, 429, 503)}}},
        "/api/v1/openapi.json": {"get": {"summary": "This description", "tags": ["v1"],
                                         "responses": {"200": {"description": "OpenAPI 3.1",
                                                               "content": {"application/json": {}}}}}},
        "/api/v1/docs": {"get": {"summary": "This description as a page", "tags": ["v1"],
                                 "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "abstractor-widgets", "version": __version__,
                 "description": "LDA topics and similar papers for research abstracts. Errors are "
                                "{\"error\": {\"status\", \"message\"}}."},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _docs_page(schema: dict[str, Any]) -> str:
    """A plain page listing the endpoints (no script, no style: nothing to load from elsewhere)."""
    esc = html.escape
    parts = [f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{esc(schema['info']['title'])} API</title>",
             f"<h1>{esc(schema['info']['title'])} API {esc(schema['info']['version'])}</h1>",
             f"<p>{esc(schema['info']['description'])} Machine-readable: <a href=\"/api/v1/openapi.json\">openapi.json</a>.</p>"]
    for path, operations in schema["paths"].items():
        for verb, op in operations.items():
            parts.append(f"<h2><code>{esc(verb.upper())} {esc(path)}</code></h2><p>{esc(op['summary'])}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in body:
                name = body["$ref"].rsplit("/", 1)[-1]
                fields = schema["components"]["schemas"][name].get("properties", {})
                parts.append("<p>Body: <code>" + esc(json.dumps({k: v.get("type", "…") for k, v in fields.items()})) + "</code></p>")
            parts.append("<ul>" + "".join(f"<li>{esc(code)}: {esc(r['description'])}</li>"
                                          for code, r in op["responses"].items()) + "</ul>")
    parts.append("</html>")
    return "".join(parts)
