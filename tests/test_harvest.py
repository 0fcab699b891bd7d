"""Tests of the arXiv OAI-PMH harvester against a local, misbehaving OAI-PMH server."""

from __future__ import annotations

import argparse
import email.utils
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from abstractor_widgets import harvest as harvest_module
from abstractor_widgets.corpus import Corpus
from abstractor_widgets.harvest import (
    DEFAULT_BASE_URL,
    HarvestError,
    HarvestResult,
    OAIError,
    arxiv_set_for,
    harvest_arxiv,
    parse_retry_after,
    state_paths,
)

try:
    from oai_server import Entry, Fault, OAIServer
except ImportError:  # tests/ became a package
    from tests.oai_server import Entry, Fault, OAIServer


def make_entries() -> list[Entry]:
    """20 records in set "stat" (4 pages of 5) plus one cs-only record the server hides."""
    return [
        # page 0
        Entry(
            "2401.00001",
            "2024-01-02",
            title="Sparse  $\\ell_1$ regression\n   with many\tspaces",
            abstract="We study $\\mathcal{O}(n \\log n)$ estimators & <robust> losses.\n   Second   line.",
            categories="stat.ML",
            created="2023-12-30",
        ),
        Entry("2401.00002", "2024-01-02", title="A survey of mixed models", abstract="Mixed models.", categories="stat.ME"),
        Entry("2401.09999", "2024-01-02", title="Not in the set", abstract="cs only.", categories="cs.AI"),
        Entry("2401.00003", "2024-01-03", title="Deep nets, first version", abstract="Old abstract.", categories="cs.LG stat.ML"),
        Entry(
            "2401.00004",
            "2024-01-03",
            title="Schrödinger bridges für Müller: αβγ — 深層学習",
            abstract="Ünïcödé abstract with ∑ and “quotes”.",
            categories="stat.ML math.PR",
            authors=[("Müller", "Jürgen"), ("Ødegård", "Åse")],
        ),
        Entry("2401.00005", "2024-01-04", title="Minimax rates", abstract="Theory.", categories="math.ST stat.TH"),
        # page 1
        Entry("2401.00006", "2024-01-05", raw_id="2401.00006v2", title="Versioned id", abstract="Has a version.", categories="stat.ML"),
        Entry("math/0601001", "2024-01-06", title="An old-style identifier", abstract="Old id.", categories="math.ST stat.ML", created="2006-01-01"),
        Entry("2401.00008", "2024-01-07", title="No abstract", abstract="", categories="stat.ML"),
        Entry("2401.00009", "2024-01-08", title="Later withdrawn", abstract="Will be deleted.", categories="stat.ML"),
        Entry("2401.00010", "2024-01-09", title="Applied", abstract="Applied statistics.", categories="stat.AP"),
        # page 2: 2401.00003 again (updated), 2401.00009 deleted
        Entry(
            "2401.00003",
            "2024-01-10",
            title="Deep nets,\n revised",
            abstract="New   abstract.",
            categories="cs.LG stat.ML",
            updated="2024-01-10",
        ),
        Entry("2401.00012", "2024-01-11", title="Kernels", abstract="Kernel methods.", categories="stat.ML"),
        Entry("2401.00009", "2024-01-12", categories="stat.ML", deleted=True),
        Entry("2401.00014", "2024-01-12", title="Bandits", abstract="Bandit algorithms.", categories="stat.ML cs.LG"),
        Entry("2401.00015", "2024-01-13", title="MCMC", abstract="Sampling.", categories="stat.CO"),
        # page 3
        *[
            Entry(f"2401.000{n}", f"2024-01-{n - 2:02d}", title=f"Paper {n}", abstract=f"Abstract {n}.", categories="stat.ML")
            for n in range(16, 21)
        ],
    ]


EXPECTED_IDS = [
    "2401.00001",
    "2401.00003",
    "2401.00004",
    "2401.00006",
    "math/0601001",
    "2401.00012",
    "2401.00014",
    "2401.00016",
    "2401.00017",
    "2401.00018",
    "2401.00019",
    "2401.00020",
]
FAST = {"delay": 0.01, "timeout": 0.5, "max_retries": 3, "backoff": 0.01, "progress": False}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server():
    with OAIServer(make_entries(), page_size=5) as srv:
        yield srv


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "corpus.parquet"


def run(server: OAIServer, out: Path, **kwargs) -> HarvestResult:
    return harvest_arxiv(out, base_url=server.url, **{**FAST, **kwargs})


def assert_complete(out: Path) -> Corpus:
    corpus = Corpus.from_path(out)
    assert corpus.ids == EXPECTED_IDS
    return corpus


def assert_no_state(out: Path) -> None:
    state, records = state_paths(out)
    assert not state.exists()
    assert not records.exists()


# -- the happy path --------------------------------------------------------------------
def test_harvest_writes_clean_deduplicated_filtered_corpus(server: OAIServer, out: Path) -> None:
    result = run(server, out)

    assert result.path == out
    assert result.n_documents == 12
    assert (result.n_received, result.n_filtered, result.n_skipped, result.n_deleted) == (20, 4, 1, 1)
    assert result.n_duplicates == 1
    assert result.pages == 4 and result.requests == 4 and result.retries == 0
    assert not result.resumed and not result.truncated and result.restarts == 0
    assert server.pages_requested() == [0, 1, 2, 3]
    first = server.requests[0].params
    assert first == {"verb": "ListRecords", "metadataPrefix": "arXiv", "set": "stat"}
    assert server.requests[1].params == {"verb": "ListRecords", "resumptionToken": server.token(1)}

    corpus = assert_complete(out)
    docs = {d.id: d for d in corpus}
    assert docs["2401.00001"].title == "Sparse $\\ell_1$ regression with many spaces"
    assert docs["2401.00001"].text == "We study $\\mathcal{O}(n \\log n)$ estimators & <robust> losses. Second line."
    assert docs["2401.00001"].published == "2023-12-30"
    assert docs["2401.00001"].categories == "stat.ML"
    assert docs["2401.00003"].title == "Deep nets, revised"  # the later datestamp wins
    assert docs["2401.00003"].text == "New abstract."
    assert docs["2401.00003"].categories == "cs.LG stat.ML"  # primary first
    assert docs["2401.00004"].title == "Schrödinger bridges für Müller: αβγ — 深層学習"
    assert docs["2401.00004"].text == "Ünïcödé abstract with ∑ and “quotes”."
    assert docs["math/0601001"].published == "2006-01-01"
    assert "2401.00006v2" not in docs
    assert "2401.00009" not in docs  # deleted later in the list
    # only the corpus is left behind: no state, no temporary files
    assert sorted(p.name for p in out.parent.iterdir()) == ["corpus.parquet"]


def test_category_wildcard_keeps_the_archive(server: OAIServer, out: Path) -> None:
    result = run(server, out, category="stat.*")
    ids = set(Corpus.from_path(out).ids)
    assert ids == set(EXPECTED_IDS) | {"2401.00002", "2401.00005", "2401.00010", "2401.00015"}
    assert result.n_filtered == 0
    assert server.requests[0].params["set"] == "stat"


def test_max_records_stops_early(server: OAIServer, out: Path) -> None:
    result = run(server, out, max_records=3)
    assert result.truncated
    assert Corpus.from_path(out).ids == EXPECTED_IDS[:3]
    assert server.pages_requested() == [0]
    assert_no_state(out)


def test_tokens_without_list_size_and_progress_bar(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # arXiv's current server sends only expirationDate on its tokens
    with OAIServer(make_entries(), page_size=5, list_size=False) as srv:
        result = run(srv, out, progress=True)
    assert result.n_documents == 12
    assert "rec" in capsys.readouterr().err
    assert_complete(out)


def test_gzip_responses_and_truncated_gzip(out: Path) -> None:
    with OAIServer(make_entries(), page_size=5, gzip=True) as srv:
        srv.add_fault(2, Fault("truncated"))  # half a gzip stream
        result = run(srv, out)
        assert srv.pages_requested() == [0, 1, 2, 2, 3]
    assert result.retries == 1
    assert_complete(out)


def test_from_until_are_sent(server: OAIServer, out: Path) -> None:
    run(server, out, from_date="2024-01-01", until="2024-01-31")
    assert server.requests[0].params == {
        "verb": "ListRecords",
        "metadataPrefix": "arXiv",
        "set": "stat",
        "from": "2024-01-01",
        "until": "2024-01-31",
    }
    assert_complete(out)


# -- politeness ------------------------------------------------------------------------
def test_minimum_interval_between_requests(server: OAIServer, out: Path) -> None:
    run(server, out, delay=0.2)
    times = [r.time for r in server.requests]
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.2, gaps


def test_503_retry_after_seconds_is_honoured(server: OAIServer, out: Path) -> None:
    server.add_fault(1, Fault("503", retry_after="1"))
    result = run(server, out)
    assert [r.status for r in server.requests] == [200, 503, 200, 200, 200]
    waited = server.requests[2].time - server.requests[1].time
    assert waited >= 1.0, waited
    assert result.retries == 1
    assert_complete(out)


def test_503_retry_after_http_date_is_honoured(server: OAIServer, out: Path) -> None:
    server.add_fault(0, Fault("503", retry_after=email.utils.formatdate(time.time() + 3, usegmt=True)))
    run(server, out)
    waited = server.requests[1].time - server.requests[0].time
    assert waited >= 1.5, waited  # the date has one-second resolution
    assert_complete(out)


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None


def test_500_without_retry_after_backs_off(server: OAIServer, out: Path) -> None:
    server.add_fault(2, Fault("500", times=2))
    result = run(server, out, backoff=0.1)
    assert server.pages_requested() == [0, 1, 2, 2, 2, 3]
    times = [r.time for r in server.requests]
    assert times[3] - times[2] >= 0.1 and times[4] - times[3] >= 0.2  # exponential
    assert result.retries == 2
    assert_complete(out)


# -- faults ----------------------------------------------------------------------------
def test_connection_reset_mid_response_is_retried(server: OAIServer, out: Path) -> None:
    server.add_fault(2, Fault("reset"))
    result = run(server, out)
    assert server.pages_requested() == [0, 1, 2, 2, 3]
    assert result.retries == 1
    assert_complete(out)


def test_truncated_xml_is_retried(server: OAIServer, out: Path) -> None:
    server.add_fault(1, Fault("truncated"))
    result = run(server, out)
    assert server.pages_requested() == [0, 1, 1, 2, 3]
    assert result.retries == 1
    assert_complete(out)


def test_non_oai_page_is_retried(server: OAIServer, out: Path) -> None:
    server.add_fault(0, Fault("html"))
    result = run(server, out)
    assert server.pages_requested() == [0, 0, 1, 2, 3]
    assert result.retries == 1
    assert_complete(out)


def test_slow_page_times_out_then_succeeds(server: OAIServer, out: Path) -> None:
    server.add_fault(3, Fault("slow", seconds=2.0))
    started = time.monotonic()
    result = run(server, out, timeout=0.3)
    assert server.pages_requested() == [0, 1, 2, 3, 3]
    assert result.retries == 1
    assert time.monotonic() - started < 1.8  # did not wait for the slow answer
    assert_complete(out)


def test_permanent_failure_raises_clear_error_and_keeps_state(server: OAIServer, out: Path) -> None:
    server.outage(from_page=0)
    with pytest.raises(HarvestError, match=r"giving up on page 1 after 2 retries: HTTP 500.*rerun"):
        run(server, out, max_retries=2)
    assert len(server.requests) == 3
    assert not out.exists()
    state, _ = state_paths(out)
    assert state.exists()


def test_oai_error_is_raised_without_retries(server: OAIServer, out: Path) -> None:
    with pytest.raises(OAIError) as info:
        run(server, out, set_spec="bogus")
    assert info.value.code == "badArgument"
    assert len(server.requests) == 1
    assert not out.exists()
    assert_no_state(out)  # nothing to resume: the query itself is wrong


def test_no_records_match_is_an_empty_result(server: OAIServer, out: Path) -> None:
    result = run(server, out, from_date="2030-01-01")
    assert result.n_documents == 0 and result.path is None
    assert "nothing written" in result.summary()
    assert not out.exists()
    assert_no_state(out)


# -- resuming --------------------------------------------------------------------------
def test_resume_after_outage_does_not_refetch_pages(server: OAIServer, out: Path) -> None:
    server.outage(from_page=2)
    with pytest.raises(HarvestError, match="giving up on page 3"):
        run(server, out, max_retries=1)
    assert server.pages_requested() == [0, 1, 2, 2]
    assert not out.exists()
    state_path, records_path = state_paths(out)
    state = json.loads(state_path.read_text())
    assert state["next"] == {"resumptionToken": server.token(2)}
    assert state["pages"] == 2
    saved = [json.loads(line)["id"] for line in records_path.read_text().splitlines()]
    assert saved == ["2401.00001", "2401.00003", "2401.00004", "2401.00006", "math/0601001", "2401.00009"]

    server.recover()
    server.requests.clear()
    result = run(server, out)
    assert server.pages_requested() == [2, 3]
    assert server.requests[0].params == {"verb": "ListRecords", "resumptionToken": server.token(2)}
    assert result.resumed and result.pages == 4
    assert (result.n_received, result.n_duplicates, result.n_documents) == (20, 1, 12)
    assert_complete(out)
    assert_no_state(out)


def test_resume_after_keyboard_interrupt(server: OAIServer, out: Path) -> None:
    def interrupt(pages: int, n_documents: int) -> None:
        if pages == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(server, out, on_page=interrupt)
    assert server.pages_requested() == [0, 1]
    assert not out.exists()

    server.requests.clear()
    result = run(server, out)
    assert server.pages_requested() == [2, 3]
    assert result.resumed and result.n_duplicates == 1
    assert_complete(out)


def test_crash_between_records_and_state_commit(
    server: OAIServer, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_commit = harvest_module._State.commit
    calls = []

    def failing_commit(self) -> None:
        calls.append(1)
        if len(calls) == 3:  # 1: start, 2: page 1, 3: page 2 (its records are already appended)
            raise OSError("disk full")
        real_commit(self)

    monkeypatch.setattr(harvest_module._State, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        run(server, out)
    monkeypatch.setattr(harvest_module._State, "commit", real_commit)

    server.requests.clear()
    result = run(server, out)
    assert server.pages_requested() == [1, 2, 3]  # page 2 was not committed: fetched again
    assert result.n_duplicates == 1  # its appended-but-uncommitted records were discarded
    assert result.n_received == 20
    assert_complete(out)


def test_state_of_another_harvest_is_not_mixed_in(server: OAIServer, out: Path) -> None:
    server.outage(from_page=1)
    with pytest.raises(HarvestError):
        run(server, out, max_retries=0)
    server.recover()
    with pytest.raises(HarvestError, match="another harvest.*--restart"):
        run(server, out, category="stat.ME")
    server.requests.clear()
    result = run(server, out, category="stat.ME", restart=True)
    assert not result.resumed
    assert server.pages_requested() == [0, 1, 2, 3]
    assert Corpus.from_path(out).ids == ["2401.00002"]


def test_bad_resumption_token_restarts_from_latest_datestamp(server: OAIServer, out: Path) -> None:
    server.add_fault(2, Fault("bad_token"))
    result = run(server, out)
    assert result.restarts == 1
    restart = server.requests[3].params
    # pages 1-2 reached datestamp 2024-01-09: restart the original query from the day before
    assert restart == {"verb": "ListRecords", "metadataPrefix": "arXiv", "set": "stat", "from": "2024-01-08"}
    assert result.n_duplicates > 1  # the overlap was fetched again ...
    assert_complete(out)  # ... and removed


def test_every_token_rejected_still_completes(server: OAIServer, out: Path) -> None:
    # each restart gets one page further (by datestamp) before its token is rejected
    server.add_fault(1, Fault("bad_token", times=100))
    result = run(server, out, max_retries=2)
    assert result.restarts >= 3
    assert_complete(out)


def test_bad_resumption_token_without_progress_gives_up(out: Path) -> None:
    same_day = [Entry(e.id, "2024-01-02", e.title, e.abstract, e.categories, deleted=e.deleted) for e in make_entries()]
    with OAIServer(same_day, page_size=5) as srv:
        srv.add_fault(1, Fault("bad_token", times=100))
        with pytest.raises(HarvestError, match="restarts from 2024-01-01 without progress"):
            run(srv, out, max_retries=2)
        # page 0, bad token, 2 restarts (max_retries) that each end with a bad token again
        assert srv.pages_requested() == [0, 1, 0, 1, 0, 1]
    assert not out.exists()


def test_failed_final_write_leaves_no_corpus_and_resumes_without_requests(
    server: OAIServer, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(corpus: Corpus, path: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(harvest_module, "_write_corpus", disk_full)
    with pytest.raises(OSError, match="disk full"):
        run(server, out)
    assert not out.exists()
    state_path, _ = state_paths(out)
    assert json.loads(state_path.read_text())["next"] is None  # the list is complete
    monkeypatch.undo()

    server.requests.clear()
    result = run(server, out)
    assert server.requests == [] and result.requests == 0
    assert_complete(out)
    assert_no_state(out)


def test_merge_later_datestamp_wins_and_keeps_first_position() -> None:
    def rec(doc_id: str, datestamp: str, title: str = "t", **extra) -> dict:
        return {"id": doc_id, "datestamp": datestamp, "title": title, "text": "x", "categories": "", "published": "", **extra}

    docs, duplicates = harvest_module._merge(
        iter(
            [
                rec("a", "2024-01-05", "new"),
                rec("b", "2024-01-01"),
                rec("a", "2024-01-02", "old"),  # older copy seen later: ignored
                rec("c", "2024-01-01"),
                rec("c", "2024-01-03", deleted=True),
                rec("b", "2024-01-01", "same day, later"),
            ]
        )
    )
    assert [(d.id, d.title) for d in docs] == [("a", "new"), ("b", "same day, later")]
    assert duplicates == 2


# -- arguments -------------------------------------------------------------------------
def test_arxiv_set_for() -> None:
    assert arxiv_set_for("stat.ML") == "stat"
    assert arxiv_set_for("cs.LG") == "cs"
    assert arxiv_set_for("cs.*") == "cs"
    assert arxiv_set_for("q-bio.NC") == "q-bio"
    assert arxiv_set_for("eess.SP") == "eess"
    assert arxiv_set_for("hep-th") == "physics:hep-th"
    assert arxiv_set_for("cond-mat.stat-mech") == "physics:cond-mat"
    assert arxiv_set_for("physics.comp-ph") == "physics:physics"
    with pytest.raises(ValueError, match="set_spec"):
        arxiv_set_for("bogus.XX")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"from_date": "2024/01/01"}, "YYYY-MM-DD"),
        ({"from_date": "2024-02-01", "until": "2024-01-01"}, "after"),
        ({"delay": -1}, "delay"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_records": 0}, "max_records"),
        ({"category": "stat.ML cs.LG"}, "several OAI sets"),
        ({"base_url": "ftp://example.org/oai"}, "http"),
    ],
)
def test_invalid_arguments(out: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        harvest_arxiv(out, **{"base_url": "http://127.0.0.1:9/oai", **FAST, **kwargs})
    assert_no_state(out)


def test_default_endpoint_is_arxivs_current_one() -> None:
    assert DEFAULT_BASE_URL == "https://oaipmh.arxiv.org/oai"


# -- command line ----------------------------------------------------------------------
def make_parser() -> argparse.ArgumentParser:
    from abstractor_widgets.cli import build_parser

    return build_parser()


def cli(server: OAIServer, out: Path, *extra: str) -> int:
    argv = [
        "fetch", "arxiv", "--category", "stat.ML", "--out", str(out), "--base-url", server.url,
        "--delay", "0.01", "--timeout", "0.5", "--retries", "1", "--backoff", "0.01", "--no-progress", *extra,
    ]
    args = make_parser().parse_args(argv)
    return args.func(args)


def test_cli_fetch_arxiv(server: OAIServer, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(server, out, "--from", "2024-01-01", "--max", "100") == 0
    printed = capsys.readouterr().out
    assert f"wrote 12 documents to {out}" in printed
    assert server.requests[0].params["from"] == "2024-01-01"
    assert_complete(out)


def test_cli_error_is_one_line_and_nonzero(server: OAIServer, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server.outage()
    assert cli(server, out) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: giving up on page 1 after 1 retries")
    assert "\n" not in err


def test_cli_bad_date(server: OAIServer, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(server, out, "--from", "January") == 1
    assert "error: from_date must be a date YYYY-MM-DD" in capsys.readouterr().err


def test_cli_requires_out() -> None:
    with pytest.raises(SystemExit):
        make_parser().parse_args(["fetch", "arxiv"])


# -- hostile servers (issue 12, item 6) ------------------------------------------------
def _fails_fast(server: OAIServer, out: Path, error: type[Exception], match: str, **kwargs) -> HarvestError:
    start = time.monotonic()
    with pytest.raises(error, match=match) as raised:
        run(server, out, **kwargs)
    assert time.monotonic() - start < 10.0
    assert len(server.requests) == 1  # not retried: the server would send the same again
    return raised.value


def test_gzip_bomb_ends_with_a_clear_error(out: Path) -> None:
    """About 200 KB of gzip that inflates to 200 MiB: refused at the decompressed cap."""
    import tracemalloc

    from oai_server import gzip_bomb

    bomb = gzip_bomb(200 * 2**20)
    assert len(bomb) < 300_000
    with OAIServer(make_entries(), page_size=5, gzip=True) as srv:
        srv.add_fault(0, Fault("gzip_bomb", size=200 * 2**20))
        tracemalloc.start()
        try:
            error = _fails_fast(srv, out, harvest_module.ResponseTooLargeError, "max_decompressed_bytes")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "decompresses to over 134,217,728 bytes" in str(error)
    assert peak < harvest_module.MAX_DECOMPRESSED_BYTES + 32 * 2**20  # never the whole 200 MiB in memory
    assert not out.exists()


def test_decompressed_cap_is_configurable(out: Path) -> None:
    with OAIServer(make_entries(), page_size=5, gzip=True) as srv:
        srv.add_fault(0, Fault("gzip_bomb", size=4 * 2**20))
        _fails_fast(srv, out, harvest_module.ResponseTooLargeError, "over 1,048,576 bytes",
                    max_decompressed_bytes=2**20)  # fmt: skip
    with OAIServer(make_entries(), page_size=5, gzip=True) as srv:  # a normal gzip page passes a small cap
        run(srv, out, max_decompressed_bytes=64 * 1024, restart=True)  # another server: a new harvest
    assert_complete(out)


def test_raw_response_cap_stops_reading_a_huge_body(server: OAIServer, out: Path) -> None:
    """A body with no Content-Length, streamed past the cap: reading stops at the cap."""
    server.add_fault(0, Fault("huge", size=64 * 2**20))
    error = _fails_fast(server, out, harvest_module.ResponseTooLargeError, "max_response_bytes",
                        max_response_bytes=2**20)  # fmt: skip
    assert "1,048,576" in str(error)


def test_xml_entity_bomb_ends_with_a_clear_error(server: OAIServer, out: Path) -> None:
    server.add_fault(0, Fault("entity_bomb"))
    error = _fails_fast(server, out, harvest_module.UnsafeXMLError, "document type declaration")
    assert "lol" not in str(error)


def test_external_entity_is_refused_and_never_read(server: OAIServer, out: Path) -> None:
    server.add_fault(0, Fault("xxe"))
    error = _fails_fast(server, out, harvest_module.UnsafeXMLError, "document type declaration")
    assert "root:" not in str(error)
    assert not out.exists()


def test_every_parse_goes_through_defusedxml() -> None:
    import inspect

    source = inspect.getsource(harvest_module)
    assert "defusedxml.ElementTree.fromstring(" in source
    for unsafe in ("ET.fromstring(", "ET.parse(", "ET.XML(", "ET.iterparse(", "minidom", "expat", "sax.parse"):
        assert unsafe not in source, unsafe


def test_user_agent_carries_the_contact(server: OAIServer, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(harvest_module.CONTACT_ENV_VAR, raising=False)
    run(server, out, contact="curator@example.org")
    agents = {r.user_agent for r in server.requests}
    assert agents == {harvest_module.user_agent("curator@example.org")}
    (agent,) = agents
    assert agent.startswith("abstractor-widgets-harvester/") and "mailto:curator@example.org" in agent


def test_user_agent_contact_from_the_environment_and_the_cli(
    server: OAIServer, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(harvest_module.CONTACT_ENV_VAR, "https://example.org/contact")
    run(server, out)
    assert all("https://example.org/contact" in r.user_agent for r in server.requests)
    server.requests.clear()
    out.unlink()
    assert cli(server, out, "--contact", "ops@example.net") == 0
    assert server.requests and all("mailto:ops@example.net" in r.user_agent for r in server.requests)
    monkeypatch.delenv(harvest_module.CONTACT_ENV_VAR)
    assert harvest_module.user_agent() == harvest_module.USER_AGENT


@pytest.mark.parametrize("contact", ["me@example.org\r\nX-Evil: 1", "two words@x.org", "(x)@y.org", "ab"])
def test_user_agent_refuses_a_contact_that_is_not_one_token(contact: str) -> None:
    with pytest.raises(ValueError, match="contact"):
        harvest_module.user_agent(contact)
