"""Loading corpora: frames, files, the Kaggle snapshot format, cleaning and errors.

Large-scale snapshot streaming is covered by ``test_snapshot.py``; here each source is
read once on a handful of documents.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

from abstractor_widgets.corpus import (
    CORPUS_ENV_VAR,
    FIELDS,
    Corpus,
    CorpusError,
    CorpusWarning,
    Document,
    default_corpus_path,
    load_corpus,
)

ROWS = [
    {"id": "2401.00001", "title": "Graph  networks", "abstract": "We study graph neural networks.",
     "categories": "cs.LG stat.ML", "update_date": "2024-01-02"},
    {"id": "2401.00002v3", "title": "Robots", "abstract": "Robot grasping with tactile sensing.",
     "categories": "cs.RO", "update_date": "2024-01-03"},
    {"id": "2401.00003", "title": "Proteins", "abstract": "Protein folding from sequence.",
     "categories": "q-bio.BM", "update_date": "2024-01-04"},
]


def frame(rows=ROWS) -> pd.DataFrame:
    return pd.DataFrame(rows)


# -- from a DataFrame -------------------------------------------------------------------
def test_from_frame_maps_aliases_and_cleans_fields():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corpus = Corpus.from_frame(frame())
    assert len(corpus) == 3
    first = corpus[0]
    assert isinstance(first, Document)
    assert first == Document("2401.00001", "Graph networks", "We study graph neural networks.", "cs.LG stat.ML", "2024-01-02")
    assert corpus[1].id == "2401.00002"  # version suffix stripped
    assert corpus.ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert corpus.texts[2] == "Protein folding from sequence."
    assert list(corpus.frame.columns) == list(FIELDS)
    assert corpus.dropped == {}
    assert first.primary_category == "cs.LG"
    assert first.url == "https://arxiv.org/abs/2401.00001"


@pytest.mark.parametrize("text_column", ["abstract", "summary", "text", "Abstract"])
def test_text_column_aliases(text_column):
    corpus = Corpus.from_frame(pd.DataFrame({"ID": ["a1"], text_column: ["Some words here."]}))
    assert corpus[0].text == "Some words here."
    assert corpus[0].title == "" and corpus[0].categories == "" and corpus[0].published == ""


def test_missing_values_become_empty_strings():
    corpus = Corpus.from_frame(pd.DataFrame({"id": ["1", "2"], "abstract": ["one text", "two text"],
                                             "title": [None, float("nan")], "published": [None, "2020-01-01"]}))
    assert [d.title for d in corpus] == ["", ""]
    assert [d.published for d in corpus] == ["", "2020-01-01"]


def test_from_frame_without_a_text_column_names_the_problem():
    with pytest.raises(CorpusError, match=r"my-frame: no 'text' column .*abstract.*found id, title"):
        Corpus.from_frame(pd.DataFrame({"id": ["1"], "title": ["t"]}), name="my-frame")
    with pytest.raises(CorpusError, match=r"no 'id' column"):
        Corpus.from_frame(pd.DataFrame({"abstract": ["text"]}))
    with pytest.raises(TypeError, match="DataFrame"):
        Corpus.from_frame([{"id": "1", "abstract": "x"}])  # type: ignore[arg-type]


def test_duplicates_and_empty_abstracts_are_dropped_with_a_counted_warning():
    rows = ROWS + [
        {"id": "2401.00001", "abstract": "A duplicate id keeps its first row."},
        {"id": "2401.00001v2", "abstract": "A duplicate once the version is stripped."},
        {"id": "2401.00009", "abstract": "   \n "},
        {"id": "2401.00010", "abstract": None},
        {"id": "", "abstract": "No id at all."},
    ]
    with pytest.warns(CorpusWarning, match=r"dropped 3 empty, 2 duplicate ids document\(s\)"):
        corpus = Corpus.from_frame(frame(rows), name="dirty")
    assert corpus.dropped == {"empty": 3, "duplicate_ids": 2}
    assert corpus.ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert corpus[0].text == "We study graph neural networks."


def test_nothing_left_after_cleaning_is_an_error():
    with pytest.warns(CorpusWarning), pytest.raises(CorpusError, match="no documents with an id and a non-empty text"):
        Corpus.from_frame(pd.DataFrame({"id": ["1"], "abstract": [" "]}))


def test_from_documents_and_sequence_protocol():
    docs = [Document("a", "A", "first text"), {"id": "b", "title": "B", "text": "second text"}]
    corpus = Corpus.from_documents(docs)
    assert [d.id for d in corpus] == ["a", "b"]
    assert corpus[-1].text == "second text"
    assert [d.id for d in corpus[1:]] == ["b"]
    assert corpus.head(1).ids == ["a"]
    assert sorted(corpus.sample(2, seed=1).ids) == ["a", "b"]
    with pytest.raises(CorpusError, match="no documents"):
        Corpus.from_documents([])


def test_content_hash_depends_on_ids_and_texts_only():
    a = Corpus.from_frame(frame())
    b = Corpus.from_frame(frame().assign(title="other titles"))
    c = Corpus.from_frame(frame().assign(abstract=lambda f: f["abstract"] + " More."))
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", a.content_hash())


def test_filter_categories_exact_and_archive():
    corpus = Corpus.from_frame(frame())
    assert corpus.filter_categories(["stat.ML"]).ids == ["2401.00001"]
    assert corpus.filter_categories(["cs.*"]).ids == ["2401.00001", "2401.00002"]
    assert corpus.filter_categories(["q-bio.BM", "cs.RO"]).ids == ["2401.00002", "2401.00003"]
    assert len(corpus.filter_categories([])) == 3


# -- files -------------------------------------------------------------------------------
def test_parquet_file(tmp_path):
    path = tmp_path / "c.parquet"
    frame().to_parquet(path)
    corpus = Corpus.from_path(path)
    assert corpus.ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert corpus[0].published == "2024-01-02"
    assert corpus.name == str(path)


@pytest.mark.parametrize("name", ["c.csv", "c.csv.gz"])
def test_csv_file_plain_and_gzipped(tmp_path, name):
    path = tmp_path / name
    frame().to_csv(path, index=False)
    corpus = Corpus.from_path(path)
    assert corpus.ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert corpus[0].title == "Graph networks"
    assert corpus[2].categories == "q-bio.BM"


def test_csv_keeps_ids_that_look_like_numbers(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,abstract\n0704.0010,first text\n1234,second text\n", encoding="utf-8")
    assert Corpus.from_path(path).ids == ["0704.0010", "1234"]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    payload = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(payload)
    else:
        path.write_text(payload, encoding="utf-8")


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz"])
def test_jsonl_file_plain_and_gzipped(tmp_path, name):
    path = tmp_path / name
    _write_jsonl(path, ROWS)
    corpus = Corpus.from_path(path)
    assert corpus.ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert corpus[0].title == "Graph networks"
    assert corpus[0].published == "2024-01-02"


def kaggle_record(doc_id: str, categories: str, abstract: str, created: str = "Mon, 2 Apr 2007 19:18:42 GMT") -> dict:
    """One line in the layout of the Kaggle arXiv metadata snapshot."""
    return {
        "id": doc_id, "submitter": "A. Author", "authors": "A. Author, B. Author",
        "title": f"Title of\n  {doc_id}", "comments": "10 pages", "journal-ref": None, "doi": None,
        "report-no": None, "categories": categories, "license": None, "abstract": f"  {abstract}\n",
        "versions": [{"version": "v1", "created": created}, {"version": "v2", "created": "Tue, 3 Apr 2007 10:00:00 GMT"}],
        "update_date": "2008-11-13", "authors_parsed": [["Author", "A.", ""]],
    }


@pytest.fixture()
def kaggle_file(tmp_path) -> Path:
    path = tmp_path / "arxiv-metadata-oai-snapshot.json.gz"
    _write_jsonl(path, [
        kaggle_record("0704.0001", "hep-ph", "Quarks and\n gluons."),
        kaggle_record("0704.0002", "cs.LG stat.ML", "Learning with kernels."),
        kaggle_record("0704.0003", "math.CO cs.DM", "Counting graphs."),
        kaggle_record("0704.0004", "stat.ME", "A stat.ML and cs.LG mention only."),
        kaggle_record("0704.0005v2", "cs.CV", "Images and pixels."),
    ])
    return path


def test_kaggle_snapshot_with_archive_filter(kaggle_file):
    corpus = Corpus.from_path(kaggle_file, categories=["cs.*"])
    assert corpus.ids == ["0704.0002", "0704.0003", "0704.0005"]
    doc = corpus[0]
    assert doc.title == "Title of 0704.0002"
    assert doc.text == "Learning with kernels."
    assert doc.categories == "cs.LG stat.ML"
    assert doc.published == "2007-04-02"  # from the first version, not update_date


def test_kaggle_snapshot_with_exact_filter_and_limit(kaggle_file):
    assert Corpus.from_path(kaggle_file, categories=["stat.ML"]).ids == ["0704.0002"]
    assert Corpus.from_path(kaggle_file, categories=["cs.*", "hep-ph"], limit=2).ids == ["0704.0001", "0704.0002"]
    assert len(Corpus.from_path(kaggle_file)) == 5
    with pytest.raises(CorpusError, match=r"no documents in categories \['astro-ph'\]"):
        Corpus.from_path(kaggle_file, categories=["astro-ph"])


def test_category_filter_on_tabular_files(tmp_path):
    path = tmp_path / "c.parquet"
    frame().to_parquet(path)
    assert Corpus.from_path(path, categories=["cs.*"]).ids == ["2401.00001", "2401.00002"]
    assert Corpus.from_path(path, limit=1).ids == ["2401.00001"]


def test_jsonl_duplicates_and_blank_abstracts_are_dropped_with_a_warning(tmp_path):
    """A record whose abstract is present but blank is an empty abstract, not a malformed line."""
    path = tmp_path / "dirty.jsonl"
    _write_jsonl(path, ROWS + [
        {"id": "2401.00001", "abstract": "Duplicate."},
        {"id": "2401.00007", "abstract": "   "},
    ])
    with pytest.warns(CorpusWarning, match="dropped"):
        corpus = Corpus.from_path(path)
    assert corpus.ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert corpus.dropped == {"empty": 1, "duplicate_ids": 1}


def test_csv_duplicates_are_counted_after_loading_from_a_file(tmp_path):
    path = tmp_path / "dups.csv"
    pd.DataFrame(ROWS + [ROWS[0], {"id": "x", "abstract": ""}]).to_csv(path, index=False)
    with pytest.warns(CorpusWarning, match=re.escape(str(path))):
        corpus = Corpus.from_path(path)
    assert corpus.dropped == {"empty": 1, "duplicate_ids": 1}
    assert len(corpus) == 3


# -- errors --------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.parquet"
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}: no such file"):
        Corpus.from_path(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(tmp_path))}: is a directory"):
        Corpus.from_path(tmp_path)


@pytest.mark.parametrize("name", ["corpus.txt", "corpus.xlsx", "corpus"])
def test_unknown_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text("id,abstract\n1,text\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}: unknown corpus format"):
        Corpus.from_path(path)


@pytest.mark.parametrize("name, payload", [
    ("broken.parquet", b"PAR1 this is not parquet at all"),
    ("broken.csv.gz", b"not gzip data"),
    ("broken.jsonl", b'{"id": "1", "abstract": "truncated'),
])
def test_unreadable_file_names_the_file(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}:"):
        Corpus.from_path(path)


def test_unreadable_parquet_says_it_cannot_read_it(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"garbage")
    with pytest.raises(CorpusError, match=r"cannot read parquet file"):
        Corpus.from_path(path)


def test_missing_columns_in_a_file(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("id,title\n1,A title\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}: no 'text' column"):
        Corpus.from_path(path)
    jsonl = tmp_path / "cols.jsonl"
    _write_jsonl(jsonl, [{"id": "1", "title": "no text field"}])
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(jsonl))}:1: record has no id or no abstract"):
        Corpus.from_path(jsonl)


def test_corpus_constructor_requires_the_five_columns():
    with pytest.raises(CorpusError, match=r"x: missing column\(s\) \['categories', 'published'\]"):
        Corpus(pd.DataFrame({"id": ["1"], "title": [""], "text": ["t"]}), name="x")


# -- default corpus and writing -------------------------------------------------------------------
def test_default_corpus_from_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "env.parquet"
    frame().to_parquet(path)
    monkeypatch.setenv(CORPUS_ENV_VAR, str(path))
    assert CORPUS_ENV_VAR == "ABSTRACTOR_CORPUS"
    assert default_corpus_path() == path
    assert load_corpus().ids == ["2401.00001", "2401.00002", "2401.00003"]
    assert load_corpus(categories=["q-bio.*"]).ids == ["2401.00003"]


def test_default_corpus_environment_variable_pointing_nowhere(tmp_path, monkeypatch):
    missing = tmp_path / "missing.parquet"
    monkeypatch.setenv(CORPUS_ENV_VAR, str(missing))
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus()


def test_to_parquet_round_trip(tmp_path):
    corpus = Corpus.from_frame(frame(), name="rt")
    out = corpus.to_parquet(tmp_path / "sub" / "rt.parquet")
    assert out == tmp_path / "sub" / "rt.parquet"
    assert sorted(p.name for p in out.parent.iterdir()) == ["rt.parquet"]  # no temporary file left
    back = Corpus.from_path(out)
    pd.testing.assert_frame_equal(back.frame, corpus.frame)
    assert list(back) == list(corpus)
    assert back.content_hash() == corpus.content_hash()
