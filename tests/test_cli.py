"""The ``abstractor`` command: train, info, query, and its error handling."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from abstractor_widgets.cli import main

QUERY = "We cut the tissue and grasp it with an actuator; translation and navigation follow."


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_frame) -> tuple[Path, Path, str, str]:
    """``abstractor train`` on a small parquet written from the synthetic frame: (corpus, artifact, stdout, stderr)."""
    base = tmp_path_factory.mktemp("cli")
    corpus = base / "small.parquet"
    synthetic_frame.iloc[:120].to_parquet(corpus, index=False)
    out = base / "model"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["train", "--corpus", str(corpus), "--topics", "4", "--out", str(out), "--passes", "2", "--no-coherence"])
    assert status == 0, stderr.getvalue()
    return corpus, out, stdout.getvalue(), stderr.getvalue()


def error_lines(err: str, prefix: str = "abstractor: error:") -> list[str]:
    return [line for line in err.splitlines() if line.startswith(prefix)]


def assert_clean_error(status: int, err: str, *fragments: str, prefix: str = "abstractor: error:") -> str:
    assert status == 2
    assert "Traceback" not in err
    lines = error_lines(err, prefix)
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def run(argv: list[str]) -> int:
    """``main(argv)``, turning argparse's ``SystemExit`` into the exit status."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


# -- train / info / query ------------------------------------------------------------------
def test_train_writes_an_artifact_and_reports_it(trained):
    corpus, out, stdout, stderr = trained
    assert (out / "manifest.json").is_file()
    assert "trained 4 topics on 120 documents" in stdout and str(out) in stdout
    assert "coherence" not in stdout
    assert len([line for line in stdout.splitlines() if line.startswith("   ")]) == 4  # one line per topic
    assert f"corpus: 120 documents from {corpus}" in stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["n_topics"] == 4 and manifest["params"]["passes"] == 2 and manifest["corpus"]["size"] == 120


def test_info(trained, capsys):
    _, out, _, _ = trained
    assert main(["info", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"{out}: 4 topics, 120 documents, metric hellinger" in stdout
    assert "gensim" in stdout and "Topic 0" in stdout


def test_info_json(trained, capsys):
    _, out, _, _ = trained
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_topics"] == 4 and info["n_documents"] == 120
    assert info["format"] == "abstractor-artifacts" and info["format_version"] == 2
    assert re.fullmatch(r"[0-9a-f]{64}", info["digest"])
    assert info["labels"] == [f"Topic {k}" for k in range(4)]
    assert "files" not in info


def test_query_text(trained, capsys):
    _, out, _, _ = trained
    assert main(["query", str(out), QUERY]) == 0
    stdout = capsys.readouterr().out
    lines = stdout.splitlines()
    assert lines[0].startswith("topics: ")
    assert lines[1].startswith("words:  ") and "[" in lines[1]
    assert lines[2] == "similar:"
    hits, terms = lines[3::2], lines[4::2]
    assert len(hits) == 5 and all("https://arxiv.org/abs/" in line for line in hits)
    assert len(terms) == 5 and all(line.strip().startswith("shared terms: ") for line in terms)


@pytest.mark.parametrize("method", ["lda", "lexical", "hybrid"])
def test_query_method(trained, capsys, method):
    _, out, _, _ = trained
    assert main(["query", str(out), QUERY, "--json", "--method", method]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["similar"]) == 5
    assert all(bool(h["shared_terms"]) == (method != "lda") for h in result["similar"])


def test_query_unknown_method_is_a_usage_error(trained, capsys):
    _, out, _, _ = trained
    with pytest.raises(SystemExit) as exc:
        main(["query", str(out), QUERY, "--method", "tfidf"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_query_json(trained, capsys):
    _, out, _, _ = trained
    assert main(["query", str(out), QUERY, "--json", "-n", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"spans", "doc_topics", "similar", "reason"}
    assert "".join(s["text"] for s in result["spans"]) == QUERY
    assert len(result["doc_topics"]) == 4 and result["reason"] is None
    assert len(result["similar"]) == 3
    assert all(h["url"] == f"https://arxiv.org/abs/{h['id']}" for h in result["similar"])


def test_query_reads_stdin(trained, capsys, monkeypatch):
    _, out, _, _ = trained
    text = "Ünïcode tissue <b>and</b>\nnavigation on two lines\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["query", str(out), "-", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "".join(s["text"] for s in result["spans"]) == text


def test_query_without_topical_words_prints_the_reason(trained, capsys):
    _, out, _, _ = trained
    assert main(["query", str(out), "the of and"]) == 0
    assert "No topical words" in capsys.readouterr().out


# -- errors ------------------------------------------------------------------------------------
def test_missing_corpus_file(tmp_path, capsys):
    missing = tmp_path / "missing.parquet"
    status = run(["train", "--corpus", str(missing), "--topics", "4", "--out", str(tmp_path / "m")])
    captured = capsys.readouterr()
    assert_clean_error(status, captured.err, str(missing), "no such file")
    assert not (tmp_path / "m").exists()


def test_corpus_of_unknown_format(tmp_path, capsys):
    bad = tmp_path / "corpus.txt"
    bad.write_text("hello", encoding="utf-8")
    status = run(["train", "--corpus", str(bad), "--out", str(tmp_path / "m")])
    assert_clean_error(status, capsys.readouterr().err, "unknown corpus format")


def test_corrupt_artifact(trained, tmp_path, capsys):
    _, out, _, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "manifest.json").write_text("{not json", encoding="utf-8")
    for command in (["info", str(broken)], ["query", str(broken), QUERY]):
        status = run(command)
        assert_clean_error(status, capsys.readouterr().err, str(broken), "unreadable manifest")


def test_tampered_artifact_file(trained, tmp_path, capsys):
    _, out, _, _ = trained
    broken = tmp_path / "tampered"
    shutil.copytree(out, broken)
    data = bytearray((broken / "vectors.npy").read_bytes())
    data[-1] ^= 0xFF
    (broken / "vectors.npy").write_bytes(bytes(data))
    status = run(["query", str(broken), QUERY])
    assert_clean_error(status, capsys.readouterr().err, "vectors.npy", "checksum mismatch")


def test_missing_artifact_directory(tmp_path, capsys):
    status = run(["info", str(tmp_path / "nowhere")])
    assert_clean_error(status, capsys.readouterr().err, "no such model directory")


def test_unknown_subcommand(capsys):
    status = run(["frobnicate"])
    captured = capsys.readouterr()
    assert_clean_error(status, captured.err, "frobnicate")
    assert captured.out == ""


@pytest.mark.parametrize("argv, prefix, fragment", [
    (["query", "x", "text", "-n", "0"], "abstractor query: error:", "must be at least 1"),
    (["train", "--topics", "4"], "abstractor train: error:", "--out"),
    ([], "abstractor: error:", "command"),
])
def test_bad_arguments(argv, prefix, fragment, capsys):
    """argparse's own errors: usage, then one error line naming the (sub)command."""
    status = run(argv)
    assert_clean_error(status, capsys.readouterr().err, fragment, prefix=prefix)


def test_version(capsys):
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("abstractor ")
