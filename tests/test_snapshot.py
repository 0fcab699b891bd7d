"""The Kaggle arXiv snapshot reader on generated files in the snapshot's real format.

The files come from ``benchmarks/make_snapshot.py``; the
full-size measurement is ``benchmarks/snapshot_scale.py`` (see ``docs/snapshot.md``).
"""

from __future__ import annotations

import gc
import gzip
import json
import random
import re
import tracemalloc
import warnings
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest

from benchmarks import make_snapshot

from abstractor_widgets.corpus import (
    CategoryFilter,
    Corpus,
    CorpusError,
    CorpusWarning,
    Document,
    iter_arxiv_snapshot,
)

REPO = Path(__file__).resolve().parent.parent



N_RECORDS = 3000
NEW_ID = re.compile(r"^\d{4}\.\d{4,5}$")
OLD_ID = re.compile(r"^[a-z]+(-[a-z]+)?/\d{7}$")
CREATED = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")

# Lines that mention a category in their text but do not list it: the raw-bytes
# pre-filter lets them through, the exact test must drop them.
DECOYS = [
    {
        "id": "0901.99991",
        "title": "Why this paper is not in stat.ML:\n  a note",
        "abstract": "  We explain why we did not cross-list to stat.ML or cs.LG, and\nwhat cs.LG means.\n",
        "categories": "math.CO",
        "comments": "stat.ML cs.LG cs.AI",
    },
    {
        "id": "0901.99992",
        "title": "Categories as strings",
        "abstract": "  The token \"stat.ML\" appears in this abstract, escaped quotes included.\n",
        "categories": "stat.MLX hep-th",
    },
]


def _truth_docs(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _wanted(records: list[dict], categories) -> list[str]:
    match = CategoryFilter(categories)
    return [r["id"] for r in records if match(r["categories"])]


@pytest.fixture(scope="module")
def pool():
    return make_snapshot.load_pool(limit=400)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory, pool):
    """A plain file: N_RECORDS generated records, then the decoys."""
    path = tmp_path_factory.mktemp("snapshot") / "arxiv-metadata-oai-snapshot.json"
    meta = make_snapshot.write_snapshot(
        path, N_RECORDS, seed=7, pool=pool, extra_lines=[make_snapshot.record_line(d) for d in DECOYS]
    )
    return path, meta, _truth_docs(_lines(path))


# -- the generator writes the real format ----------------------------------------------
def test_lines_have_the_real_keys_order_and_layout(snapshot):
    path, meta, records = snapshot
    raw_lines = _lines(path)
    assert len(raw_lines) == N_RECORDS + len(DECOYS) == meta["records"] + meta["extra_lines"]
    for line, record in zip(raw_lines[:N_RECORDS], records):
        assert list(record) == list(make_snapshot.KEYS)
        # compact separators, UTF-8 kept: exactly what a JSON dumper writes
        assert line == json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        assert NEW_ID.match(record["id"]) or OLD_ID.match(record["id"]), record["id"]
        assert record["abstract"].startswith("  ") and record["abstract"].endswith("\n")
        assert all(len(part) <= 80 or " " not in part.strip() for part in record["abstract"].split("\n"))
        assert record["categories"] and record["categories"] == " ".join(record["categories"].split())
        versions = record["versions"]
        assert [v["version"] for v in versions] == [f"v{i}" for i in range(1, len(versions) + 1)]
        created = [datetime.strptime(v["created"], "%a, %d %b %Y %H:%M:%S %Z") for v in versions]
        for v, when in zip(versions, created):
            assert CREATED.match(v["created"]), v["created"]
            assert v["created"].startswith(when.strftime("%a"))  # the weekday is right
        assert created == sorted(created)
        assert date.fromisoformat(record["update_date"]) >= created[-1].date()
        assert all(isinstance(a, list) and len(a) == 3 for a in record["authors_parsed"])
        for key in ("submitter", "comments", "journal-ref", "doi", "report-no", "license"):
            assert record[key] is None or isinstance(record[key], str)
    ids = [r["id"] for r in records[:N_RECORDS]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert any(OLD_ID.match(i) for i in ids) and any(NEW_ID.match(i) for i in ids)
    assert sum(bool(OLD_ID.match(i)) for i in ids) == meta["old_style_ids"]
    assert any("\n  " in r["title"] for r in records)  # wrapped titles
    text = path.read_text(encoding="utf-8")
    assert "Balázs" in text or "Müller" in text or "Horváth" in text  # UTF-8, not \u escapes
    assert '"license":null' in text and '"doi":null' in text


def test_output_is_deterministic(tmp_path, pool):
    a = make_snapshot.write_snapshot(tmp_path / "a.json", 300, seed=3, pool=pool, meta=False)
    b = make_snapshot.write_snapshot(tmp_path / "b.json", 300, seed=3, pool=pool, meta=False)
    c = make_snapshot.write_snapshot(tmp_path / "c.json", 300, seed=4, pool=pool, meta=False)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()
    assert a["listed"] == b["listed"]
    assert c["records"] == 300


def test_category_mix_is_realistic():
    rng = random.Random(0)
    draws = [make_snapshot.draw_categories(rng) for _ in range(40_000)]
    share = {
        "stat.ML": sum("stat.ML" in d.split() for d in draws) / len(draws),
        "cs.LG": sum("cs.LG" in d.split() for d in draws) / len(draws),
        "cs": sum(any(c.startswith("cs.") for c in d.split()) for d in draws) / len(draws),
        "math": sum(any(c.startswith("math.") for c in d.split()) for d in draws) / len(draws),
        "physics": sum(any(c.startswith("physics.") for c in d.split()) for d in draws) / len(draws),
        "cross-listed": sum(len(d.split()) > 1 for d in draws) / len(draws),
    }
    assert 0.025 <= share["stat.ML"] <= 0.05, share
    assert 0.06 <= share["cs.LG"] <= 0.12, share
    assert share["cs"] >= 0.25 and share["math"] >= 0.15 and share["physics"] >= 0.05, share
    assert 0.3 <= share["cross-listed"] <= 0.7, share
    # old-style ids: no category that did not exist before 2007
    old = [make_snapshot.draw_categories(rng, "cs", modern=False) for _ in range(5000)]
    assert not any(c.startswith(("stat.", "eess.")) for d in old for c in d.split())
    assert make_snapshot.draw_categories(rng, "alg-geom", modern=False).startswith("alg-geom math.AG")


# -- the reader on that format -------------------------------------------------------
def test_records_parse_into_documents(snapshot):
    path, _, records = snapshot
    docs = list(iter_arxiv_snapshot(path))
    assert len(docs) == len(records)
    for doc, record in zip(docs, records):
        assert isinstance(doc, Document)
        assert doc.id == record["id"]
        assert doc.title == " ".join(record["title"].split())
        assert "\n" not in doc.title and not doc.title.startswith(" ")
        assert doc.text == " ".join(record["abstract"].split())
        assert doc.categories == record["categories"]
        created = datetime.strptime(record["versions"][0]["created"], "%a, %d %b %Y %H:%M:%S %Z")
        assert doc.published == created.strftime("%Y-%m-%d")
    assert any(d.id.startswith("math/") or "/" in d.id for d in docs)


@pytest.mark.parametrize(
    "categories",
    [["stat.ML"], ["cs.LG"], ["cs.*"], ["stat.ML", "math.*"], "cs.LG,stat.ML", ["hep-th"], ["alg-geom"]],
    ids=str,
)
def test_category_filter_keeps_exactly_the_listed_records(snapshot, categories):
    path, _, records = snapshot
    kept = [d.id for d in iter_arxiv_snapshot(path, categories=categories)]
    assert kept == _wanted(records, categories)
    match = CategoryFilter(categories)
    assert kept and all(match(d.categories) for d in iter_arxiv_snapshot(path, categories=categories))


def test_archive_filter_matches_the_ground_truth(snapshot):
    path, meta, _ = snapshot
    kept = sum(1 for _ in iter_arxiv_snapshot(path, categories=["cs.*"]))
    # the decoys list no cs.* category, so the generator's count is the answer
    assert kept == meta["archives"]["cs"]
    assert sum(1 for _ in iter_arxiv_snapshot(path, categories=["stat.ML"])) == meta["listed"]["stat.ML"]


def test_prefilter_only_preselects(snapshot):
    """A line that mentions stat.ML / cs.LG outside its categories is not kept."""
    path, _, _ = snapshot
    for categories in (["stat.ML"], ["cs.LG"], ["stat.ML", "cs.LG"], ["cs.*"]):
        kept = {d.id for d in iter_arxiv_snapshot(path, categories=categories)}
        assert not kept & {d["id"] for d in DECOYS}, categories
    # ... while an unfiltered read sees them
    ids = {d.id for d in iter_arxiv_snapshot(path)}
    assert {d["id"] for d in DECOYS} <= ids


@pytest.mark.parametrize("suffix", [".json.gz", ".json.zip"])
def test_compressed_variants_read_the_same(tmp_path, pool, suffix):
    extra = [make_snapshot.record_line(d) for d in DECOYS]
    plain = tmp_path / "arxiv-metadata-oai-snapshot.json"
    make_snapshot.write_snapshot(plain, 800, seed=5, pool=pool, extra_lines=extra, meta=False)
    packed = tmp_path / f"arxiv-metadata-oai-snapshot{suffix}"
    make_snapshot.write_snapshot(packed, 800, seed=5, pool=pool, extra_lines=extra, meta=False)
    if suffix == ".json.gz":
        assert gzip.open(packed).read() == plain.read_bytes()
    else:
        with zipfile.ZipFile(packed) as archive:
            assert archive.namelist() == ["arxiv-metadata-oai-snapshot.json"]
            assert archive.read(archive.namelist()[0]) == plain.read_bytes()
    for categories in (None, ["stat.ML"], ["cs.*"]):
        docs = list(iter_arxiv_snapshot(packed, categories=categories))
        assert docs and docs == list(iter_arxiv_snapshot(plain, categories=categories))
    corpus = Corpus.from_path(packed, categories=["cs.LG"])
    assert corpus.ids == _wanted(_truth_docs(_lines(plain)), ["cs.LG"])


# -- malformed input ----------------------------------------------------------------------
def _file_with_bad_lines(tmp_path: Path, pool, name: str = "bad.json") -> tuple[Path, list[str]]:
    good = list(make_snapshot.iter_snapshot_lines(5, seed=1, pool=pool))
    lines = [
        good[0],
        good[1],
        good[2][: len(good[2]) // 2],  # truncated, as after an interrupted download (line 3)
        good[3],
        "",  # blank lines are ignored
        '["stat.ML", "not an object"]',  # line 6
        make_snapshot.record_line({"id": "0704.9999", "title": "no abstract", "categories": "stat.ML"}),  # line 7
        good[4],
    ]
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, good


@pytest.mark.parametrize("name", ["bad.json", "bad.json.gz"])
def test_malformed_line_raises_naming_file_and_line(tmp_path, pool, name):
    path, good = _file_with_bad_lines(tmp_path, pool, name)
    docs = []
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}:3: malformed JSON line"):
        for doc in iter_arxiv_snapshot(path):
            docs.append(doc)
    assert [d.id for d in docs] == [json.loads(g)["id"] for g in good[:2]]
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}:3:"):
        Corpus.from_path(path)


def test_record_without_abstract_raises_with_line_number(tmp_path, pool):
    path, good = _file_with_bad_lines(tmp_path, pool)
    lines = _lines(path)
    del lines[2]  # drop the truncated line: the array is now line 5, the abstract-less record line 6
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}:5: malformed JSON line: not a JSON object"):
        list(iter_arxiv_snapshot(path))
    del lines[4]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}:5: record has no id or no abstract"):
        list(iter_arxiv_snapshot(path))


def test_errors_skip_counts_and_warns(tmp_path, pool):
    path, good = _file_with_bad_lines(tmp_path, pool)
    with pytest.warns(CorpusWarning, match=rf"{re.escape(str(path))}: skipped 3 malformed line\(s\)"):
        docs = list(iter_arxiv_snapshot(path, errors="skip"))
    assert [d.id for d in docs] == [json.loads(good[i])["id"] for i in (0, 1, 3, 4)]  # good[2] was truncated
    with pytest.raises(ValueError, match="errors must be"):
        list(iter_arxiv_snapshot(path, errors="ignore"))


def test_prefilter_skips_malformed_lines_it_never_parses(tmp_path, pool):
    """With an exact filter, a malformed line without the wanted token is not parsed at all."""
    path, good = _file_with_bad_lines(tmp_path, pool)
    lines = _lines(path)
    lines[2] = '{"id": "0704.0003", "abstract": "truncated'  # no "stat.ML" in it
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}:6: malformed JSON line"):
            list(iter_arxiv_snapshot(path, categories=["stat.ML"]))  # the array on line 6 names stat.ML


def _invalid_utf8_lines() -> bytes:
    good = make_snapshot.record_line({"id": "0704.0001", "abstract": "  fine\n", "categories": "stat.ML"})
    bad = make_snapshot.record_line({"id": "0704.0002", "abstract": "  caf\u00e9\n", "categories": "stat.ML"})
    return good.encode() + b"\n" + bad.encode("utf-8").replace("é".encode(), b"\xe9") + b"\n"


def test_invalid_utf8_raises_naming_file_and_line(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(_invalid_utf8_lines())
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}:2: malformed JSON line"):
        list(iter_arxiv_snapshot(path))
    with pytest.warns(CorpusWarning, match="skipped 1"):
        assert [d.id for d in iter_arxiv_snapshot(path, errors="skip")] == ["0704.0001"]


def test_invalid_utf8_in_compressed_file_raises_naming_file_and_line(tmp_path):
    path = tmp_path / "latin1.json.gz"
    path.write_bytes(gzip.compress(_invalid_utf8_lines()))
    with pytest.raises(CorpusError, match=rf"{re.escape(str(path))}:2: malformed JSON line"):
        list(iter_arxiv_snapshot(path))
    with pytest.warns(CorpusWarning, match="skipped 1"):
        assert [d.id for d in iter_arxiv_snapshot(path, errors="skip")] == ["0704.0001"]


# -- corpora -------------------------------------------------------------------------
def test_corpus_from_arxiv_snapshot(snapshot):
    path, _, records = snapshot
    corpus = Corpus.from_arxiv_snapshot(path, categories=["stat.ML"], progress=False)
    assert corpus.ids == _wanted(records, ["stat.ML"])
    assert all("stat.ML" in c.split() for c in corpus.frame["categories"])
    assert all(re.match(r"^\d{4}-\d\d-\d\d$", p) for p in corpus.frame["published"])
    limited = Corpus.from_path(path, categories="cs.*", limit=10)
    assert limited.ids == _wanted(records, ["cs.*"])[:10]
    with pytest.raises(CorpusError, match="no documents in categories"):
        Corpus.from_path(path, categories=["nonexistent.XX"])


# -- the reader's raw pre-filter and date fast path (once prototyped in benchmarks/snapshot_scale.py) --
@pytest.mark.parametrize(
    "line, expected",
    [
        (b'{"id":"1","categories":"cs.LG stat.ML","abstract":"x"}', "cs.LG stat.ML"),
        (b'{"id":"1", "categories": "cs.LG", "abstract":"x"}', None),  # other spacing: parse
        (b'{"id":"1","categories":null,"abstract":"x"}', None),
        (b'{"id":"1","abstract":"say \\"categories\\":\\"cs.LG\\"","categories":"math.CO"}', "math.CO"),
        (b'{"id":"1","categories":"a","categories":"b"}', None),  # duplicate key: parse
        (b'{"id":"1","categories":"cs.LG\\u0020x"}', None),  # an escape: parse
        (b'{"id":"1","tags":"cs.LG"}', None),
    ],
)
def test_raw_categories_slice(line, expected):
    from abstractor_widgets.corpus import _raw_categories

    assert _raw_categories(line) == expected
    if expected is not None:
        assert json.loads(line)["categories"] == expected


def test_date_fast_path_matches_strptime():
    from abstractor_widgets.corpus import _published

    rng = random.Random(1)
    for _ in range(2000):
        day = date.fromordinal(rng.randrange(726000, 740000))
        created = f"{day.strftime('%a')}, {day.day} {day.strftime('%b')} {day.year} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} GMT"
        record = {"versions": [{"version": "v1", "created": created}]}
        assert _published(record) == datetime.strptime(created, "%a, %d %b %Y %H:%M:%S %Z").strftime("%Y-%m-%d") == day.isoformat()
    for created in ("Mon, 31 Feb 2007 10:00:00 GMT", "Mon, 2 Apr 2007 25:00:00 GMT", "2007-04-02", "", None):
        record = {"versions": [{"created": created}], "update_date": "2008-11-13"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", _published(record))


# -- memory --------------------------------------------------------------------------
def test_streaming_memory_is_bounded(tmp_path, snapshot):
    """Streaming a 60k-record file (~100 MB) holds one line at a time, whatever the file size.

    The file is the module's generated records repeated with fresh ids (generating 60k
    records would take most of this file's time budget); the full-size measurement is
    ``benchmarks/snapshot_scale.py``.
    """
    import psutil

    _, _, records = snapshot
    lines = _lines(snapshot[0])[:N_RECORDS]
    copies = 20
    path = tmp_path / "arxiv-metadata-oai-snapshot.json"
    with open(path, "w", encoding="utf-8") as out:
        for copy in range(copies):
            out.write("".join(
                f'{{"id":"{copy + 1:04d}.{k:05d}"' + line[line.index(',"submitter":'):] + "\n"
                for k, line in enumerate(lines)
            ))
    size = path.stat().st_size
    assert size > 80e6
    wanted = "cs.RO"  # about 1 % of the records
    expected = copies * len(_wanted(records[:N_RECORDS], [wanted]))
    assert 0.004 * copies * N_RECORDS < expected < 0.02 * copies * N_RECORDS

    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    tracemalloc.start()
    try:
        kept = sum(1 for _ in iter_arxiv_snapshot(path, categories=[wanted]))
        _, streaming_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    corpus = Corpus.from_arxiv_snapshot(path, categories=[wanted], progress=False)
    rss_growth = process.memory_info().rss - rss_before
    assert kept == len(corpus) == expected
    # streaming: a few lines' worth (a line is ~2 kB), not the file
    assert streaming_peak < 1e6, f"streaming peak {streaming_peak / 1e6:.2f} MB for a {size / 1e6:.0f} MB file"
    # a corpus holds what it keeps (about 1 % of the file), far below the file
    assert rss_growth < 100e6, f"RSS grew by {rss_growth / 1e6:.0f} MB reading a {size / 1e6:.0f} MB file"
