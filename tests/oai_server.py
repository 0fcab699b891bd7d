"""A tiny local OAI-PMH server in arXiv's format, with injectable faults (test helper).

The server lists :class:`Entry` objects in the given order (sorted by datestamp, as
arXiv does), ``page_size`` per ``ListRecords`` response, with resumption tokens. It
supports ``set`` (from the entries' categories), ``from`` and ``until``, answers
``noRecordsMatch`` / ``badArgument`` / ``badResumptionToken`` like a real server, logs
every request with its arrival time, and can misbehave on purpose:

>>> server = OAIServer(entries, page_size=5)                 # doctest: +SKIP
>>> server.add_fault(1, Fault("503", retry_after="1"))       # page 1 answers 503 once
>>> server.outage(from_page=2)                               # pages >= 2 fail until recover()
>>> server.add_fault(0, Fault("gzip_bomb"))                  # hostile bodies, see Fault

Pages are numbered from 0 by their offset in the list they belong to (a list restarted
with ``from`` after a bad token starts again at page 0).
"""

from __future__ import annotations

import gzip as gzip_module
import socket
import struct
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

_PHYSICS = {
    "astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th",
    "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "quant-ph",
}
KNOWN_SETS = {"cs", "econ", "eess", "math", "physics", "q-bio", "q-fin", "stat"} | {f"physics:{a}" for a in _PHYSICS}


def sets_of(categories: str) -> list[str]:
    """OAI setSpecs of a record with these categories (groups, and physics sub-sets)."""
    out: list[str] = []
    for category in categories.split():
        archive = category.split(".", 1)[0]
        specs = ["physics", f"physics:{archive}"] if archive in _PHYSICS else [archive]
        out.extend(s for s in specs if s not in out)
    return out


@dataclass
class Entry:
    """One record of the listing."""

    id: str
    datestamp: str
    title: str = ""
    abstract: str = ""
    categories: str = "stat.ML"
    created: str = "2024-01-01"
    updated: str | None = None
    authors: list[tuple[str, str]] = field(default_factory=lambda: [("Doe", "Jane")])
    deleted: bool = False
    raw_id: str | None = None  # the <id> element when it differs from ``id`` (e.g. with a version)

    def xml(self) -> str:
        sets = "".join(f"<setSpec>{escape(s)}</setSpec>" for s in sets_of(self.categories))
        status = ' status="deleted"' if self.deleted else ""
        header = (
            f"<header{status}><identifier>oai:arXiv.org:{escape(self.id)}</identifier>"
            f"<datestamp>{self.datestamp}</datestamp>{sets}</header>"
        )
        if self.deleted:
            return f"<record>{header}</record>"
        authors = "".join(
            f"<author><keyname>{escape(k)}</keyname><forenames>{escape(f)}</forenames></author>" for k, f in self.authors
        )
        updated = f"<updated>{self.updated}</updated>" if self.updated else ""
        abstract = f"<abstract>{escape(self.abstract)}</abstract>" if self.abstract else ""
        return (
            f"<record>{header}<metadata>"
            '<arXiv xmlns="http://arxiv.org/OAI/arXiv/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://arxiv.org/OAI/arXiv/ http://arxiv.org/OAI/arXiv.xsd">'
            f"<id>{escape(self.raw_id or self.id)}</id><created>{self.created}</created>{updated}"
            f"<authors>{authors}</authors><title>{escape(self.title)}</title>"
            f"<categories>{escape(self.categories)}</categories>"
            "<license>http://creativecommons.org/licenses/by/4.0/</license>"
            f"{abstract}</arXiv></metadata></record>"
        )


@dataclass
class Fault:
    """A misbehaviour for one request.

    kind:
        ``"503"`` / ``"500"`` (status, optional ``retry_after`` header), ``"reset"`` (half the
        body then a TCP reset), ``"truncated"`` (200 with half the XML), ``"html"`` (200 with
        an HTML page), ``"slow"`` (sleep ``seconds`` before answering), ``"bad_token"``
        (``badResumptionToken``), ``"oai_error"`` (``code``/``message``). Hostile
        bodies: ``"gzip_bomb"`` (about 200 KB of gzip that inflates to ``size`` bytes of
        zeros, 200 MiB by default), ``"huge"`` (``size`` bytes of XML whitespace, sent
        without ``Content-Length``), ``"entity_bomb"`` (a "billion laughs" document),
        ``"xxe"`` (an external entity naming ``/etc/passwd``).
    times:
        How many requests it affects.
    """

    kind: str
    retry_after: str | None = None
    seconds: float = 1.0
    times: int = 1
    code: str = "badArgument"
    message: str = "injected error"
    size: int = 200 * 2**20


@dataclass
class LoggedRequest:
    time: float  # time.monotonic() on arrival
    params: dict[str, str]
    page: int | None
    status: int
    fault: str | None
    user_agent: str = ""


def _envelope(inner: str, params: dict[str, str], base: str) -> str:
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in params.items())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
        f"<responseDate>{now}</responseDate>\n<request{attrs}>{escape(base)}</request>\n{inner}\n</OAI-PMH>\n"
    )


_BOMBS: dict[int, bytes] = {}


def gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes, compressed in chunks (cached per size)."""
    if size not in _BOMBS:
        deflater = zlib.compressobj(4, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(2**20)
        parts = [deflater.compress(block[: min(len(block), size - done)]) for done in range(0, size, len(block))]
        parts.append(deflater.flush())
        _BOMBS[size] = b"".join(parts)
    return _BOMBS[size]


#: Nine levels of ten: 10**9 "lol"s (3 GB) if a parser expanded them.
ENTITY_BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE OAI-PMH [\n<!ENTITY lol0 "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + ']>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>&lol9;</responseDate></OAI-PMH>\n'
).encode()
#: An external entity: a parser that resolved it would put the file into the document.
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE OAI-PMH [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords><record><header>'
    "<identifier>oai:arXiv.org:&xxe;</identifier><datestamp>2024-01-01</datestamp></header></record>"
    "</ListRecords></OAI-PMH>\n"
).encode()


def _error(code: str, message: str) -> str:
    return f"<error code={quoteattr(code)}>{escape(message)}</error>"


class OAIServer:
    """A threaded OAI-PMH server on 127.0.0.1 (random port); use as a context manager.

    Parameters
    ----------
    entries : list of Entry
        The records, in list order.
    page_size : int
        Records per page.
    list_size : bool
        Whether resumption tokens carry ``cursor`` and ``completeListSize`` (arXiv's
        current server sends only ``expirationDate``).
    gzip : bool
        Compress responses for clients that accept ``gzip``.
    """

    def __init__(self, entries: list[Entry], page_size: int = 5, list_size: bool = True, gzip: bool = False) -> None:
        self.entries = list(entries)
        self.page_size = page_size
        self.list_size = list_size
        self.gzip = gzip
        self.requests: list[LoggedRequest] = []
        self._faults: dict[int, list[Fault]] = {}
        self._outage_from: int | None = None
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/oai"

    def add_fault(self, page: int, fault: Fault) -> None:
        """Misbehave on the next ``fault.times`` requests for ``page``."""
        with self._lock:
            self._faults.setdefault(page, []).append(fault)

    def outage(self, from_page: int = 0) -> None:
        """Every request for a page ``>= from_page`` fails with HTTP 500 until :meth:`recover`."""
        self._outage_from = from_page

    def recover(self) -> None:
        self._outage_from = None

    def token(self, page: int, set_spec: str | None = "stat", from_: str | None = None, until: str | None = None) -> str:
        """The resumption token that asks for ``page`` of a query."""
        return urllib.parse.urlencode(
            {"set": set_spec or "", "from": from_ or "", "until": until or "", "skip": page * self.page_size}
        )

    def pages_requested(self) -> list[int | None]:
        return [r.page for r in self.requests]

    def start(self) -> OAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that time out leave broken pipes behind

        self._httpd = Quiet(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ----------------------------------------------------------------------
    def _take_fault(self, page: int | None) -> Fault | None:
        if page is None:
            return None
        with self._lock:
            queue = self._faults.get(page) or []
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return Fault(**{**fault.__dict__})

    def _listing(self, params: dict[str, str]) -> tuple[str, list[Entry] | None, int, dict[str, str]]:
        """Resolve a request to (error code or '', entries, skip, query)."""
        if "resumptionToken" in params:
            if set(params) != {"verb", "resumptionToken"}:
                return "badArgument", None, 0, {}
            query = dict(urllib.parse.parse_qsl(params["resumptionToken"], keep_blank_values=True))
            if not query.get("skip", "").isdigit():
                return "badResumptionToken", None, 0, {}
            skip = int(query.pop("skip"))
        else:
            if params.get("metadataPrefix") != "arXiv":
                return "cannotDisseminateFormat", None, 0, {}
            query = {k: params.get(k, "") for k in ("set", "from", "until")}
            skip = 0
        if query.get("set") and query["set"] not in KNOWN_SETS:
            return "badArgument", None, 0, {}
        selected = [
            e
            for e in self.entries
            if (not query.get("set") or query["set"] in sets_of(e.categories))
            and (not query.get("from") or e.datestamp >= query["from"])
            and (not query.get("until") or e.datestamp <= query["until"])
        ]
        return "", selected, skip, query

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(handler.path).query, keep_blank_values=True))
        code, selected, skip, query = self._listing(params)
        page = skip // self.page_size if selected is not None else None
        fault = self._take_fault(page)
        if fault is None and self._outage_from is not None and page is not None and page >= self._outage_from:
            fault = Fault("500")
        status = 200
        if fault is not None and fault.kind in {"503", "500"}:
            status = int(fault.kind)
        agent = handler.headers.get("User-Agent", "")
        self.requests.append(LoggedRequest(arrived, params, page, status, fault.kind if fault else None, agent))

        base = f"http://{handler.server.server_address[0]}:{handler.server.server_address[1]}/oai"
        if fault is not None and fault.kind == "bad_token":
            code = "badResumptionToken"
        if fault is not None and fault.kind == "oai_error":
            body = _envelope(_error(fault.code, fault.message), params, base)
        elif code:
            body = _envelope(_error(code, f"{code} for {params}"), {}, base)
        elif not selected:
            body = _envelope(_error("noRecordsMatch", "no records match"), params, base)
        else:
            chunk = selected[skip : skip + self.page_size]
            rest = skip + self.page_size < len(selected)
            attrs = ""
            if self.list_size:
                attrs = f' cursor="{skip}" completeListSize="{len(selected)}"'
            if rest:
                next_token = urllib.parse.urlencode({**query, "skip": skip + self.page_size})
                token = f'<resumptionToken{attrs} expirationDate="2099-01-01T00:00:00Z">{escape(next_token)}</resumptionToken>'
            else:
                token = f"<resumptionToken{attrs}/>" if skip else ""
            records = "\n".join(e.xml() for e in chunk)
            body = _envelope(f"<ListRecords>\n{records}\n{token}\n</ListRecords>", params, base)
        data = body.encode("utf-8")
        extra_headers: dict[str, str] = {}
        if self.gzip and "gzip" in handler.headers.get("Accept-Encoding", ""):
            data = gzip_module.compress(data)
            extra_headers["Content-Encoding"] = "gzip"

        try:
            if fault is None or fault.kind in {"bad_token", "oai_error"}:
                self._send(handler, 200, data, headers=extra_headers)
            elif fault.kind in {"503", "500"}:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._send(handler, status, b"<html><body>busy</body></html>", "text/html", headers)
            elif fault.kind == "truncated":
                self._send(handler, 200, data[: len(data) // 2], headers=extra_headers)
            elif fault.kind == "gzip_bomb":
                self._send(handler, 200, gzip_bomb(fault.size), headers={"Content-Encoding": "gzip"})
            elif fault.kind == "entity_bomb":
                self._send(handler, 200, ENTITY_BOMB)
            elif fault.kind == "xxe":
                self._send(handler, 200, XXE)
            elif fault.kind == "huge":  # HTTP/1.0 without Content-Length: the body ends at close
                handler.send_response(200)
                handler.send_header("Content-Type", "text/xml; charset=utf-8")
                handler.end_headers()
                block = b" " * 2**20
                for done in range(0, fault.size, len(block)):
                    handler.wfile.write(block[: min(len(block), fault.size - done)])
                handler.close_connection = True
            elif fault.kind == "html":
                self._send(handler, 200, b"<html><body><h1>Maintenance</h1></body></html>", "text/html")
            elif fault.kind == "slow":
                time.sleep(fault.seconds)
                self._send(handler, 200, data, headers=extra_headers)
            elif fault.kind == "reset":
                handler.send_response(200)
                handler.send_header("Content-Type", "text/xml; charset=utf-8")
                handler.send_header("Content-Length", str(len(data)))
                for key, value in extra_headers.items():
                    handler.send_header(key, value)
                handler.end_headers()
                handler.wfile.write(data[: len(data) // 2])
                handler.wfile.flush()
                sock = handler.connection
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()  # RST
                handler.close_connection = True
            else:  # pragma: no cover - a typo in a test
                raise ValueError(f"unknown fault {fault.kind!r}")
        except OSError:
            pass  # the client gave up (timeout) or the socket was reset on purpose

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        content_type: str = "text/xml; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
