"""A polite, fault-tolerant, resumable arXiv harvester (OAI-PMH).

:func:`harvest_arxiv` downloads the metadata of one arXiv category (or archive) with the
OAI-PMH ``ListRecords`` verb in the ``arXiv`` metadata format and writes a corpus file
(see :class:`~abstractor_widgets.corpus.Corpus`) with the fields ``id``, ``title``,
``text`` (the abstract), ``categories`` and ``published`` (the ``created`` date).

Politeness
----------
arXiv asks harvesters to send at most one request every three seconds over a single
connection and uses ``503`` replies with a ``Retry-After`` header for flow control. The
harvester waits ``delay`` seconds (default 3) between the end of one request and the
start of the next, honours ``Retry-After`` (seconds or HTTP-date) and retries timeouts,
connection errors, server errors and malformed or truncated pages with exponential
backoff, giving up with a :class:`HarvestError` after ``max_retries`` retries.

Safety
------
Responses are untrusted input. Every XML document is parsed with ``defusedxml`` and
any document type declaration is refused (OAI-PMH responses have none): no entity
expansion ("billion laughs"), no external entities. Bodies are read in chunks with a
cap on the bytes received (``max_response_bytes``, default 32 MiB) and, for gzip, on
the bytes decompressed (``max_decompressed_bytes``, default 128 MiB); a response over a
cap, or a refused document, ends the harvest with a :class:`ResponseTooLargeError` or
:class:`UnsafeXMLError` (not retried: the server would send the same). A page of arXiv's
is a few MB. The User-Agent names a contact address when one is given (``contact``,
``$ABSTRACTOR_HARVEST_CONTACT``, ``abstractor fetch arxiv --contact``), as arXiv asks of
harvesters.

Resuming
--------
Progress is committed after every page to two files next to the output:

* ``<out>.harvest-records.jsonl`` - the records kept so far (append-only, synced);
* ``<out>.harvest-state.json`` - the query, the request that comes next (normally a
  resumption token), the committed length of the records file and counters. It is
  replaced atomically (temporary file, ``fsync``, ``os.replace``) after the page's
  records have been appended and synced, so it is the commit point: a page whose records
  were appended but whose state was not written is cut off and fetched again.

Running the same harvest again continues with the request recorded in the state file,
so no page is fetched twice and none is skipped. Resumption tokens can expire; on a
``badResumptionToken`` error the harvester restarts the original query with
``from`` = (latest datestamp harvested - 1 day); arXiv lists records in datestamp
order, so the overlap is re-fetched and removed by the deduplication by id. The final
corpus is written atomically and the state files are removed after success.

Examples
--------
>>> result = harvest_arxiv(Path("stat_ml.parquet"), category="stat.ML",
...                        from_date="2024-01-01")                    # doctest: +SKIP
>>> result.n_documents                                                  # doctest: +SKIP
1234
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET  # the Element type only: parsing goes through defusedxml
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import defusedxml
import defusedxml.ElementTree

from . import __version__
from .corpus import CategoryFilter, Corpus, Document
from .fileio import atomic_write_path

logger = logging.getLogger(__name__)

#: arXiv's OAI-PMH base URL (https://info.arxiv.org/help/oa/index.html; it replaced
#: ``http://export.arxiv.org/oai2`` in 2025).
DEFAULT_BASE_URL = "https://oaipmh.arxiv.org/oai"
#: Seconds between requests required by arXiv's terms of use for its APIs.
ARXIV_MIN_DELAY = 3.0
OAI_NS = "http://www.openarchives.org/OAI/2.0/"
ARXIV_NS = "http://arxiv.org/OAI/arXiv/"
METADATA_PREFIX = "arXiv"
STATE_SUFFIX = ".harvest-state.json"
RECORDS_SUFFIX = ".harvest-records.jsonl"
USER_AGENT = f"abstractor-widgets-harvester/{__version__} (python-urllib; OAI-PMH)"
#: Environment variable: the contact address (e-mail or URL) the User-Agent names.
CONTACT_ENV_VAR = "ABSTRACTOR_HARVEST_CONTACT"
#: Bytes received per response at most (the body as sent, compressed or not).
MAX_RESPONSE_BYTES = 32 * 2**20
#: Bytes of a gzip body after decompression at most.
MAX_DECOMPRESSED_BYTES = 128 * 2**20
_CHUNK = 64 * 1024
_MAX_ERROR_BODY = 1 * 2**20  # an error page's body: enough for an OAI-PMH <error>
_INFLATE_STEP = 1 * 2**20  # bytes decompressed per step (the cap is checked after each)

_STATE_VERSION = 1
_MAX_BACKOFF = 300.0  # seconds: cap of the exponential backoff
_MAX_RETRY_AFTER = 3600.0  # seconds: longer Retry-After requests end the harvest
_O = f"{{{OAI_NS}}}"
_A = f"{{{ARXIV_NS}}}"
_WHITESPACE = re.compile(r"\s+")
_ARXIV_VERSION = re.compile(r"v\d+$")
_OAI_ID = re.compile(r"^oai:arXiv\.org:(.+)$", re.IGNORECASE)

# arXiv's OAI sets: the groups below are sets of their own; the physics archives are
# sub-sets "physics:<archive>" of the set "physics".
_GROUP_ARCHIVES = frozenset({"cs", "econ", "eess", "math", "q-bio", "q-fin", "stat"})
_PHYSICS_ARCHIVES = frozenset(
    {
        "astro-ph", "cond-mat", "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th",
        "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "quant-ph",
    }
)


# -- errors ----------------------------------------------------------------------------
class HarvestError(RuntimeError):
    """A harvest could not be completed (the progress made so far is kept for a rerun)."""


class OAIError(HarvestError):
    """The OAI-PMH server answered with an ``<error>`` (other than ``noRecordsMatch``).

    Attributes
    ----------
    code : str
        The OAI-PMH error code, e.g. ``badArgument``.
    message : str
        The server's explanation.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"OAI-PMH error {code}: {message}" if message else f"OAI-PMH error {code}")


class ResponseTooLargeError(HarvestError):
    """A response body (as received, or decompressed) exceeded its size cap."""


class UnsafeXMLError(HarvestError):
    """A response with a document type declaration, entities or external references."""


class _BadResumptionToken(OAIError):
    """The resumption token expired or is unknown to the server."""


class _MalformedPage(ValueError):
    """A response that is not a usable OAI-PMH document (retried like a network error)."""


# -- results ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HarvestResult:
    """What :func:`harvest_arxiv` did.

    Counters cover the whole harvest, including earlier interrupted runs; ``requests``,
    ``retries`` and ``elapsed`` cover this run only.

    Attributes
    ----------
    path : pathlib.Path or None
        The corpus written, or ``None`` when no record matched (nothing is written).
    n_documents : int
        Documents in the corpus.
    n_received : int
        Records received from the server (the OAI set is coarser than the category).
    n_filtered : int
        Records dropped because they are not in the wanted category.
    n_duplicates : int
        Records received more than once (an older copy was replaced by a newer one).
    n_deleted : int
        Deleted-record notices received.
    n_skipped : int
        Records without an abstract or without arXiv metadata.
    pages : int
        Pages (``ListRecords`` responses) harvested.
    requests : int
        HTTP requests sent in this run (retries included).
    retries : int
        Requests repeated in this run after a transient failure.
    restarts : int
        Restarts of the query after an expired resumption token.
    resumed : bool
        Whether this run continued an interrupted harvest.
    truncated : bool
        Whether the harvest stopped early at ``max_records``.
    elapsed : float
        Seconds this run took.
    """

    path: Path | None
    n_documents: int
    n_received: int
    n_filtered: int
    n_duplicates: int
    n_deleted: int
    n_skipped: int
    pages: int
    requests: int
    retries: int
    restarts: int
    resumed: bool
    truncated: bool
    elapsed: float

    def summary(self) -> str:
        """A one-line human summary."""
        where = f"wrote {self.n_documents} documents to {self.path}" if self.path else "no matching records; nothing written"
        details = (
            f"{self.pages} pages, {self.n_received} records received, {self.n_filtered} other categories, "
            f"{self.n_duplicates} duplicates, {self.n_deleted} deleted, {self.n_skipped} skipped; "
            f"{self.requests} requests ({self.retries} retries) in {self.elapsed:.1f} s"
        )
        extra = []
        if self.resumed:
            extra.append("resumed")
        if self.restarts:
            extra.append(f"{self.restarts} restart(s) after expired resumption tokens")
        if self.truncated:
            extra.append("stopped at --max")
        return f"{where} ({details}{'; ' + ', '.join(extra) if extra else ''})"


# -- small helpers ---------------------------------------------------------------------
def arxiv_set_for(category: str) -> str:
    """The arXiv OAI set that contains a category.

    Parameters
    ----------
    category : str
        An arXiv category (``"stat.ML"``, ``"hep-th"``) or archive wildcard (``"cs.*"``).

    Returns
    -------
    str
        ``"stat"`` for ``stat.ML``, ``"cs"`` for ``cs.*``, ``"physics:hep-th"`` for
        ``hep-th``, ``"physics:cond-mat"`` for ``cond-mat.stat-mech``.

    Raises
    ------
    ValueError
        For an unknown archive (pass ``set_spec`` explicitly then).
    """
    archive = category.strip().split(".", 1)[0].rstrip("*")
    if archive in _GROUP_ARCHIVES:
        return archive
    if archive in _PHYSICS_ARCHIVES:
        return f"physics:{archive}"
    raise ValueError(
        f"cannot derive the OAI set of category {category!r}: unknown archive {archive!r}; "
        "pass set_spec (--set) explicitly"
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header.

    Parameters
    ----------
    value : str or None
        The header: delay-seconds (``"120"``) or an HTTP-date
        (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
    now : datetime, optional
        The current time (UTC) for the HTTP-date form; defaults to now.

    Returns
    -------
    float or None
        Seconds (``>= 0``), or ``None`` if the header is missing or unreadable.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _collapse(text: str | None) -> str:
    return _WHITESPACE.sub(" ", text or "").strip()


def _check_date(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None
    if len(value) != 10:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {value!r}")
    return value


_CONTACT_OK = re.compile(r"^[\x21-\x7e]{3,200}$")  # printable ASCII, no spaces: one header token


def user_agent(contact: str | None = None) -> str:
    """The harvester's User-Agent, naming ``contact`` (or ``$ABSTRACTOR_HARVEST_CONTACT``).

    Parameters
    ----------
    contact : str, optional
        An e-mail address (sent as ``mailto:ADDRESS``) or an ``http(s)`` URL.

    Returns
    -------
    str
        e.g. ``abstractor-widgets-harvester/0.1.0 (python-urllib; OAI-PMH; mailto:me@example.org)``.

    Raises
    ------
    ValueError
        For a contact that is not one printable token (spaces, control characters,
        parentheses or line breaks would let it forge other headers or fields).
    """
    if contact is None:
        contact = os.environ.get(CONTACT_ENV_VAR, "")
    contact = contact.strip()
    if not contact:
        return USER_AGENT
    if not _CONTACT_OK.match(contact) or any(c in contact for c in "()\\;,"):
        raise ValueError(f"contact must be an e-mail address or a URL without spaces, got {contact!r}")
    if "@" in contact and "://" not in contact and not contact.startswith("mailto:"):
        contact = f"mailto:{contact}"
    return f"{USER_AGENT[:-1]}; {contact})"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_write_path(path) as tmp:
        tmp.write_bytes(data)


def _write_corpus(corpus: Corpus, out: Path) -> None:
    """Write the corpus atomically (temporary file, fsync, rename)."""
    corpus.to_parquet(out)


def state_paths(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The state file and the partial records file of a harvest into ``out``."""
    out = Path(out)
    return out.with_name(out.name + STATE_SUFFIX), out.with_name(out.name + RECORDS_SUFFIX)


# -- HTTP with politeness and retries --------------------------------------------------
class _Throttle:
    """At most one request every ``delay`` seconds, measured from the end of the previous one."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._not_before = 0.0

    def wait(self) -> None:
        pause = self._not_before - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def done(self) -> None:
        """A request just finished: the next one waits at least ``delay``."""
        self._not_before = max(self._not_before, time.monotonic() + self.delay)

    def defer(self, seconds: float) -> None:
        """The next request waits at least ``seconds`` from now."""
        self._not_before = max(self._not_before, time.monotonic() + seconds)


_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # timeouts, connection refused/reset, URLError
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    EOFError,  # truncated gzip stream
    zlib.error,  # a corrupt gzip stream
)


def _is_permanent(exc: BaseException) -> bool:
    """Network errors that retrying cannot fix (a certificate the client rejects)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ssl.SSLCertVerificationError)


class _Client:
    """Sends OAI-PMH requests: throttled, retried, parsed."""

    def __init__(
        self,
        base_url: str,
        *,
        delay: float,
        timeout: float,
        max_retries: int,
        backoff: float,
        user_agent: str = USER_AGENT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
    ) -> None:
        self.base_url = base_url
        self.user_agent = user_agent
        self.max_response_bytes = max_response_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.throttle = _Throttle(delay)
        self.requests = 0
        self.retries = 0

    def _get(self, url: str) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, headers = response.status, response.headers
                body = read_capped(response, self.max_response_bytes, url)
        except urllib.error.HTTPError as exc:
            status, headers = exc.code, exc.headers
            try:
                body = read_capped(exc, min(self.max_response_bytes, _MAX_ERROR_BODY), url)
            except (OSError, http.client.HTTPException, ResponseTooLargeError):
                body = b""
            finally:
                exc.close()
        if headers is not None and headers.get("Content-Encoding", "").lower() == "gzip":
            body = gunzip_capped(body, self.max_decompressed_bytes, url)
        return status, headers, body

    def list_records(self, params: dict[str, str], what: str) -> _Page:
        """One ``ListRecords`` page, retrying transient failures.

        Raises
        ------
        OAIError
            For an OAI-PMH error other than ``noRecordsMatch`` (not retried).
        HarvestError
            After ``max_retries`` failed retries, or on a permanent HTTP error.
        """
        url = f"{self.base_url}?{urllib.parse.urlencode({'verb': 'ListRecords', **params})}"
        attempt = 0
        while True:
            self.throttle.wait()
            self.requests += 1
            logger.debug("GET %s", url)
            page: _Page | None = None
            retry_after: float | None = None
            try:
                status, headers, body = self._get(url)
            except _TRANSIENT_ERRORS as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if _is_permanent(exc):
                    raise HarvestError(f"{what}: {problem}") from exc
            else:
                page, problem, retry_after = self._judge(status, headers, body, url)
            finally:
                self.throttle.done()
            if page is not None:
                return page
            attempt += 1
            if attempt > self.max_retries:
                raise HarvestError(f"giving up on {what} after {self.max_retries} retries: {problem}")
            if retry_after is not None:
                if retry_after > _MAX_RETRY_AFTER:
                    raise HarvestError(f"{what}: the server asks to retry after {retry_after:.0f} s ({problem})")
                wait = retry_after
            else:
                wait = min(_MAX_BACKOFF, self.backoff * 2 ** (attempt - 1))
            self.retries += 1
            logger.warning("%s: %s; retry %d/%d in %.2f s", what, problem, attempt, self.max_retries, wait)
            self.throttle.defer(wait)

    @staticmethod
    def _judge(status: int, headers: Any, body: bytes, url: str) -> tuple[_Page | None, str, float | None]:
        """``(page, problem, retry_after)`` of a response; ``page`` is ``None`` if it must be retried.

        Raises :class:`OAIError` / :class:`HarvestError` for permanent failures.
        """
        if status == 200:
            try:
                return _parse_list_records(_parse_xml(body)), "", None
            except _MalformedPage as exc:
                return None, f"malformed page ({exc})", None
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(headers.get("Retry-After") if headers is not None else None)
            return None, f"HTTP {status}", retry_after
        # other statuses are permanent, but may carry an OAI-PMH error document
        with contextlib.suppress(_MalformedPage):
            _parse_list_records(_parse_xml(body))  # raises OAIError for an <error> response
        raise HarvestError(f"HTTP {status} from {url}")


def read_capped(response: Any, limit: int, url: str = "") -> bytes:
    """Read a response body in chunks, refusing more than ``limit`` bytes.

    A ``Content-Length`` above the limit is refused before reading; without one the body
    is read until the limit is passed, never further.

    Raises
    ------
    ResponseTooLargeError
        Naming the limit.
    """
    length = response.headers.get("Content-Length") if getattr(response, "headers", None) is not None else None
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise ResponseTooLargeError(
            f"{url}: the response is {int(length):,} bytes, over the limit of {limit:,} (max_response_bytes)"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ResponseTooLargeError(f"{url}: the response is over the limit of {limit:,} bytes (max_response_bytes)")
        chunks.append(chunk)


def gunzip_capped(data: bytes, limit: int, url: str = "") -> bytes:
    """Decompress a gzip body (all its members), refusing more than ``limit`` bytes of output.

    Raises
    ------
    ResponseTooLargeError
        When the output would exceed ``limit`` (a "gzip bomb"); decompression stops there.
    EOFError
        For a truncated stream (retried like a network error).
    zlib.error
        For a corrupt stream.
    """
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member
        pending = data
        while pending:
            chunk = inflater.decompress(pending, min(_INFLATE_STEP, limit + 1 - size))
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(
                    f"{url}: the gzip body decompresses to over {limit:,} bytes (max_decompressed_bytes)"
                )
            out.append(chunk)
            if inflater.eof:
                break
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
        if not inflater.eof:
            raise EOFError("truncated gzip stream")
        data = inflater.unused_data
    return b"".join(out)


def _parse_xml(body: bytes) -> ET.Element:
    """Parse an untrusted response: ``defusedxml``, no DTD, no entities, no external references."""
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise UnsafeXMLError(
            f"refused a response with a document type declaration or entities ({type(exc).__name__}); "
            "OAI-PMH responses have none"
        ) from None
    except ET.ParseError as exc:
        raise _MalformedPage(f"invalid XML: {exc}") from None
    if root.tag != f"{_O}OAI-PMH":
        raise _MalformedPage(f"not an OAI-PMH response (root element {root.tag!r})")
    return root


# -- parsing ---------------------------------------------------------------------------
@dataclass
class _Page:
    records: list[dict[str, Any]] = field(default_factory=list)
    token: str | None = None
    cursor: int | None = None
    complete_list_size: int | None = None
    no_records: bool = False


def _int_attr(element: ET.Element, name: str) -> int | None:
    value = element.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_list_records(root: ET.Element) -> _Page:
    """Parse a ``ListRecords`` response (raises :class:`OAIError` for ``<error>``)."""
    errors = root.findall(f"{_O}error")
    if errors:
        codes = [(e.get("code") or "unknown", _collapse(e.text)) for e in errors]
        if any(code == "noRecordsMatch" for code, _ in codes):
            return _Page(no_records=True)
        code, message = codes[0]
        if code == "badResumptionToken":
            raise _BadResumptionToken(code, message)
        raise OAIError(code, "; ".join(m for _, m in codes if m))
    listing = root.find(f"{_O}ListRecords")
    if listing is None:
        raise _MalformedPage("no <ListRecords> and no <error> element")
    page = _Page()
    for record in listing.findall(f"{_O}record"):
        page.records.append(_parse_record(record))
    token = listing.find(f"{_O}resumptionToken")
    if token is not None:
        page.token = (token.text or "").strip() or None
        page.cursor = _int_attr(token, "cursor")
        page.complete_list_size = _int_attr(token, "completeListSize")
    return page


def _parse_record(record: ET.Element) -> dict[str, Any]:
    """A record as a dict: ``id``, ``datestamp`` and either ``deleted`` or the fields."""
    header = record.find(f"{_O}header")
    if header is None:
        raise _MalformedPage("record without <header>")
    identifier = (header.findtext(f"{_O}identifier") or "").strip()
    match = _OAI_ID.match(identifier)
    header_id = match.group(1) if match else identifier
    datestamp = (header.findtext(f"{_O}datestamp") or "").strip()
    if header.get("status") == "deleted":
        return {"id": _ARXIV_VERSION.sub("", header_id), "datestamp": datestamp, "deleted": True}
    meta = record.find(f"{_O}metadata/{_A}arXiv")
    if meta is None:
        return {"id": _ARXIV_VERSION.sub("", header_id), "datestamp": datestamp, "invalid": True}
    doc_id = _collapse(meta.findtext(f"{_A}id")) or header_id
    return {
        "id": _ARXIV_VERSION.sub("", doc_id),
        "datestamp": datestamp,
        "title": _collapse(meta.findtext(f"{_A}title")),
        "text": _collapse(meta.findtext(f"{_A}abstract")),
        "categories": _collapse(meta.findtext(f"{_A}categories")),
        "published": _collapse(meta.findtext(f"{_A}created"))[:10],
    }


# -- state -----------------------------------------------------------------------------
class _State:
    """The state file (the commit point) and the append-only records file."""

    def __init__(self, path: Path, records_path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.records_path = records_path
        self.data = data

    def commit(self) -> None:
        self.data["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _atomic_write_bytes(self.path, json.dumps(self.data, indent=1, ensure_ascii=False).encode("utf-8"))

    def append(self, lines: list[dict[str, Any]]) -> int:
        """Append records durably; return the new length of the records file."""
        payload = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
        with open(self.records_path, "ab") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
            return fh.tell()

    def read_records(self) -> Iterator[dict[str, Any]]:
        if not self.records_path.exists():
            return
        with open(self.records_path, "rb") as fh:
            data = fh.read(self.data["records_bytes"])
        for number, line in enumerate(data.splitlines(), start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise HarvestError(f"{self.records_path}:{number}: corrupt record ({exc})") from None

    def remove(self) -> None:
        for path in (self.path, self.records_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _open_state(out: Path, query: dict[str, Any], restart: bool) -> tuple[_State, bool]:
    """Load the state of an interrupted harvest of ``query`` or start a new one."""
    state_path, records_path = state_paths(out)
    if state_path.exists() and not restart:
        try:
            data = json.loads(state_path.read_text(encoding="utf-8"))
            if data.get("version") != _STATE_VERSION:
                raise ValueError(f"unsupported state version {data.get('version')!r}")
            committed = int(data["records_bytes"])
            data["next"]  # noqa: B018  (must exist)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HarvestError(
                f"{state_path}: unreadable harvest state ({exc}); delete it (or pass --restart) to start over"
            ) from None
        if data.get("query") != query:
            raise HarvestError(
                f"{state_path} belongs to another harvest ({data.get('query')}); rerun that command to "
                "finish it, or pass --restart (restart=True) to discard it"
            )
        size = records_path.stat().st_size if records_path.exists() else 0
        if size < committed:
            raise HarvestError(
                f"{records_path} is shorter ({size} bytes) than recorded in {state_path} ({committed} bytes): "
                "records were lost; pass --restart (restart=True) to start over"
            )
        if size > committed:  # a page appended after the last commit: fetch it again
            logger.info("discarding %d uncommitted bytes of %s", size - committed, records_path)
            with open(records_path, "rb+") as fh:
                fh.truncate(committed)
                fh.flush()
                os.fsync(fh.fileno())
        return _State(state_path, records_path, data), True
    if restart:
        logger.info("discarding any earlier harvest state for %s", out)
    initial = {
        "metadataPrefix": query["metadataPrefix"],
        **{key: query[name] for key, name in (("set", "set"), ("from", "from"), ("until", "until")) if query[name]},
    }
    data = {
        "version": _STATE_VERSION,
        "query": query,
        "next": initial,
        "records_bytes": 0,
        "pages": 0,
        "received": 0,
        "filtered": 0,
        "deleted": 0,
        "skipped": 0,
        "latest_datestamp": None,
        "complete_list_size": None,
        "restarts": 0,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    state = _State(state_path, records_path, data)
    _atomic_write_bytes(records_path, b"")
    state.commit()
    return state, False


def _merge(records: Iterator[dict[str, Any]]) -> tuple[list[Document], int]:
    """Deduplicate by id (the later datestamp wins, then the later record); drop deleted ones.

    Returns the documents in order of first appearance and the number of duplicates.
    """
    best: dict[str, tuple[str, dict[str, Any]]] = {}
    order: dict[str, int] = {}
    duplicates = 0
    for record in records:
        doc_id = record["id"]
        if doc_id in best:
            duplicates += not record.get("deleted")
            if record["datestamp"] < best[doc_id][0]:
                continue
        else:
            order[doc_id] = len(order)
        best[doc_id] = (record["datestamp"], record)
    documents = [
        Document(
            id=rec["id"],
            title=rec["title"],
            text=rec["text"],
            categories=rec["categories"],
            published=rec["published"],
        )
        for doc_id in sorted(best, key=order.__getitem__)
        if not (rec := best[doc_id][1]).get("deleted")
    ]
    return documents, duplicates


# -- the harvester ---------------------------------------------------------------------
def harvest_arxiv(
    out: str | os.PathLike[str],
    *,
    category: str | None = "stat.ML",
    set_spec: str | None = None,
    from_date: str | None = None,
    until: str | None = None,
    max_records: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    delay: float = ARXIV_MIN_DELAY,
    timeout: float = 30.0,
    max_retries: int = 5,
    backoff: float | None = None,
    progress: bool = True,
    restart: bool = False,
    on_page: Callable[[int, int], None] | None = None,
    contact: str | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> HarvestResult:
    """Harvest arXiv metadata over OAI-PMH into a corpus file, resumably.

    Parameters
    ----------
    out : path-like
        The corpus to write (``.parquet``). The state files of an unfinished harvest
        live next to it (``<out>.harvest-state.json``, ``<out>.harvest-records.jsonl``).
    category : str or None
        Keep records listing this category (``"stat.ML"``); ``"cs.*"`` keeps an archive;
        several categories may be separated by spaces or commas. ``None`` keeps all
        records of the set.
    set_spec : str, optional
        The OAI set to request. Derived from ``category`` by default (``stat.ML`` ->
        ``stat``, ``hep-th`` -> ``physics:hep-th``, see :func:`arxiv_set_for`). With
        neither a set nor a category the whole of arXiv is harvested.
    from_date, until : str, optional
        ``YYYY-MM-DD`` bounds on the OAI datestamp (the last modification of a record's
        metadata, *not* the submission date).
    max_records : int, optional
        Stop once this many documents have been collected (the corpus keeps the first
        ``max_records``).
    base_url : str
        The OAI-PMH endpoint.
    delay : float
        Minimum seconds between the end of a request and the start of the next (arXiv
        requires 3).
    timeout : float
        Seconds to wait for the server to connect or send data.
    max_retries : int
        Retries per request after transient failures (timeouts, connection errors, HTTP
        429/5xx, malformed pages), and restarts after consecutive expired resumption
        tokens, before giving up.
    backoff : float, optional
        First retry wait in seconds (doubling per retry, capped at 5 minutes); defaults
        to ``delay``. A ``Retry-After`` header replaces it.
    progress : bool
        Show a tqdm progress bar (total from ``completeListSize`` when the server sends it).
    restart : bool
        Discard the state of an earlier unfinished harvest into ``out`` instead of
        resuming it.
    on_page : callable, optional
        Called as ``on_page(pages, n_documents)`` after each page has been committed.
    contact : str, optional
        An e-mail address or URL named in the User-Agent, so that the archive can reach
        whoever runs the harvest (arXiv asks for one); default
        ``$ABSTRACTOR_HARVEST_CONTACT``.
    max_response_bytes : int
        Bytes received per response at most (default 32 MiB).
    max_decompressed_bytes : int
        Bytes of a gzip body after decompression at most (default 128 MiB).

    Returns
    -------
    HarvestResult

    Raises
    ------
    ValueError
        For invalid arguments.
    OAIError
        If the server rejects the request (e.g. ``badArgument`` for an unknown set).
    HarvestError
        If a request still fails after ``max_retries`` retries, or the state files are
        inconsistent or belong to another harvest. The progress made is kept: rerun the
        same call to resume. Its subclasses :class:`ResponseTooLargeError` (a body over
        a cap) and :class:`UnsafeXMLError` (a DTD or entities) are raised at once.
    """
    started = time.monotonic()
    plan = _plan(out, category=category, set_spec=set_spec, from_date=from_date, until=until, max_records=max_records,
                 base_url=base_url, delay=delay, timeout=timeout, max_retries=max_retries, contact=contact,
                 max_response_bytes=max_response_bytes, max_decompressed_bytes=max_decompressed_bytes)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    state, resumed = _open_state(plan.out, plan.query, restart)
    data = state.data
    kept_ids: set[str] = set()
    for record in state.read_records():
        if record.get("deleted"):
            kept_ids.discard(record["id"])
        else:
            kept_ids.add(record["id"])
    if resumed:
        logger.info("resuming harvest into %s after %d pages (%d documents so far)", plan.out, data["pages"], len(kept_ids))
    client = _Client(
        base_url, delay=delay, timeout=timeout, max_retries=max_retries, backoff=delay if backoff is None else backoff,
        user_agent=plan.agent, max_response_bytes=max_response_bytes, max_decompressed_bytes=max_decompressed_bytes,
    )
    from tqdm.auto import tqdm

    bar = tqdm(total=data["complete_list_size"], initial=data["received"], unit="rec",
               desc=f"arXiv {plan.set_spec or 'all'}", disable=not progress)
    bar.set_postfix(kept=len(kept_ids))
    truncated = False
    restarts = _Restarts()
    try:
        while data["next"] is not None:
            if max_records is not None and len(kept_ids) >= max_records:
                truncated = True
                break
            page, what = _fetch_page(client, state, plan, restarts)
            if page is None:  # the list was restarted after an expired resumption token
                continue
            _write_batch(state, page, plan.match, kept_ids, what)
            if bar.total is None and data["complete_list_size"] is not None:
                bar.total = data["complete_list_size"]
            bar.update(len(page.records))
            bar.set_postfix(kept=len(kept_ids))
            if on_page is not None:
                on_page(data["pages"], len(kept_ids))
    except OAIError as exc:
        if data["pages"] == 0 and not isinstance(exc, _BadResumptionToken):
            state.remove()  # the query itself is wrong: nothing to resume
        raise
    except HarvestError as exc:  # the same class (ResponseTooLargeError, UnsafeXMLError ...), with the way out
        raise type(exc)(f"{exc}. Progress is saved in {state.path}; rerun the same command to resume.") from exc
    except KeyboardInterrupt:
        logger.warning(
            "interrupted after %d pages; progress is saved in %s, rerun the same command to resume",
            data["pages"], state.path,
        )
        raise
    finally:
        bar.close()
    return _finish(state, plan, client, resumed=resumed, truncated=truncated, elapsed=time.monotonic() - started)


@dataclass
class _Plan:
    """A validated harvest: where to write, what to ask for, what to keep."""

    out: Path
    set_spec: str | None
    from_date: str | None
    until: str | None
    max_records: int | None
    match: CategoryFilter
    query: dict[str, Any]
    agent: str


def _plan(out: str | os.PathLike[str], *, category: str | None, set_spec: str | None, from_date: str | None,
          until: str | None, max_records: int | None, base_url: str, delay: float, timeout: float, max_retries: int,
          contact: str | None, max_response_bytes: int, max_decompressed_bytes: int) -> _Plan:
    """Step 1: check the arguments, derive the OAI set from the categories, name the query."""
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if max_records is not None and max_records < 1:
        raise ValueError(f"max_records must be >= 1, got {max_records}")
    if urllib.parse.urlsplit(base_url).scheme not in {"http", "https"}:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    if max_response_bytes < 1 or max_decompressed_bytes < 1:
        raise ValueError("max_response_bytes and max_decompressed_bytes must be positive")
    agent = user_agent(contact)
    arxiv = "arxiv.org" in urllib.parse.urlsplit(base_url).netloc
    if agent == USER_AGENT and arxiv:
        logger.warning("no contact address in the User-Agent: arXiv asks harvesters for one "
                       "(contact=..., --contact or $%s)", CONTACT_ENV_VAR)  # fmt: skip
    from_date = _check_date(from_date, "from_date")
    until = _check_date(until, "until")
    if from_date and until and from_date > until:
        raise ValueError(f"from_date {from_date} is after until {until}")
    match = CategoryFilter(category)
    if set_spec is None and not match.accept_all:
        sets = {arxiv_set_for(c) for c in [*match.exact, *(p + "*" for p in match.prefixes)]}
        if len(sets) > 1:
            raise ValueError(
                f"categories {category!r} are in several OAI sets ({', '.join(sorted(sets))}); "
                "pass set_spec explicitly or harvest them separately"
            )
        set_spec = sets.pop()
    if set_spec is None:
        logger.warning("no set and no category: harvesting all of arXiv")
    if delay < ARXIV_MIN_DELAY and arxiv:
        logger.warning("delay %.2f s is below arXiv's rule of one request every %.0f s", delay, ARXIV_MIN_DELAY)
    query = {
        "base_url": base_url,
        "metadataPrefix": METADATA_PREFIX,
        "set": set_spec,
        "category": str(match) if not match.accept_all else None,
        "from": from_date,
        "until": until,
    }
    return _Plan(Path(out), set_spec, from_date, until, max_records, match, query, agent)


@dataclass
class _Restarts:
    """Restarts of the list after expired resumption tokens, to tell progress from a loop."""

    in_a_row: int = 0
    last_from: str | None = "-"  # not a date: the first restart is never "stalled"


def _fetch_page(client: _Client, state: _State, plan: _Plan, restarts: _Restarts) -> tuple[_Page | None, str]:
    """Step 2: request the next page; ``(None, what)`` when an expired resumption token made
    the list restart (from the day before the latest datestamp seen), already committed."""
    data = state.data
    request = data["next"]
    token = request.get("resumptionToken")
    what = f"page {data['pages'] + 1}" + (f" (resumptionToken {token})" if token else "")
    try:
        return client.list_records(request, what), what
    except _BadResumptionToken as exc:
        if token is None:
            raise
        restart_from = plan.from_date
        if data["latest_datestamp"]:
            day = date.fromisoformat(data["latest_datestamp"][:10]) - timedelta(days=1)
            restart_from = max(filter(None, [plan.from_date, day.isoformat()]))
        # restarting is progress only if the list moved on since the last restart
        stalled = restarts.in_a_row if restart_from == restarts.last_from else 0
        restarts.in_a_row = stalled + 1
        restarts.last_from = restart_from
        if restarts.in_a_row > client.max_retries:
            raise HarvestError(
                f"giving up after {client.max_retries} restarts from {restart_from or 'the beginning'} without "
                f"progress: the server keeps rejecting resumption tokens ({exc})"
            ) from None
        logger.warning(
            "%s: %s; restarting the list from %s (duplicates are removed by id)",
            what, exc, restart_from or "the beginning",
        )
        restarted = {"metadataPrefix": METADATA_PREFIX}
        if plan.set_spec:
            restarted["set"] = plan.set_spec
        if restart_from:
            restarted["from"] = restart_from
        if plan.until:
            restarted["until"] = plan.until
        data["next"] = restarted
        data["restarts"] += 1
        state.commit()
        return None, what


def _write_batch(state: _State, page: _Page, match: CategoryFilter, kept_ids: set[str], what: str) -> None:
    """Step 3: sort a page's records (kept, deleted, filtered out, skipped) and commit them:
    the records first (synced), then the state that points past them."""
    data = state.data
    token = data["next"].get("resumptionToken")
    lines: list[dict[str, Any]] = []
    for record in page.records:
        data["received"] += 1
        if record["datestamp"] and (data["latest_datestamp"] or "") < record["datestamp"]:
            data["latest_datestamp"] = record["datestamp"]
        if record.get("deleted"):
            data["deleted"] += 1
            if record["id"] in kept_ids:
                lines.append(record)
                kept_ids.discard(record["id"])
        elif record.get("invalid"):
            data["skipped"] += 1
            logger.warning("record %s has no arXiv metadata; skipped", record["id"])
        elif not match(record["categories"]):
            data["filtered"] += 1
        elif not record["text"] or not record["id"]:
            data["skipped"] += 1
            logger.warning("record %s has no abstract; skipped", record["id"] or "<no id>")
        else:
            lines.append(record)
            kept_ids.add(record["id"])
    if page.token is not None and page.token == token:
        raise HarvestError(f"{what}: the server returned the same resumption token again")
    if lines:
        data["records_bytes"] = state.append(lines)
    data["pages"] += 1
    data["next"] = {"resumptionToken": page.token} if page.token else None
    if page.complete_list_size is not None and not data["restarts"]:
        data["complete_list_size"] = page.complete_list_size
    state.commit()
    logger.info(
        "%s: %d records, %d documents so far%s",
        what, len(page.records), len(kept_ids), "" if page.token else " (end of list)",
    )


def _finish(state: _State, plan: _Plan, client: _Client, *, resumed: bool, truncated: bool, elapsed: float) -> HarvestResult:
    """Step 4: merge the records (duplicates and deletions resolved), write the corpus, drop the state."""
    data = state.data
    documents, duplicates = _merge(state.read_records())
    if plan.max_records is not None and len(documents) > plan.max_records:
        documents = documents[: plan.max_records]
        truncated = True
    path: Path | None = None
    if documents:
        name = f"arXiv OAI-PMH set={plan.set_spec or '*'} category={plan.query['category'] or '*'}"
        _write_corpus(Corpus.from_documents(documents, name=name), plan.out)
        path = plan.out
    else:
        logger.warning("no records matched; %s was not written", plan.out)
    state.remove()
    result = HarvestResult(
        path=path,
        n_documents=len(documents),
        n_received=data["received"],
        n_filtered=data["filtered"],
        n_duplicates=duplicates,
        n_deleted=data["deleted"],
        n_skipped=data["skipped"],
        pages=data["pages"],
        requests=client.requests,
        retries=client.retries,
        restarts=data["restarts"],
        resumed=resumed,
        truncated=truncated,
        elapsed=elapsed,
    )
    logger.info("%s", result.summary())
    return result
