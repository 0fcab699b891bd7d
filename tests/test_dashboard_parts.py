"""The Voilà dashboard's parts that need no browser: the notebook, the config, the model
loading of each kernel and the layout (the Chromium tests are in tests/browser/test_dashboard.py)."""

from __future__ import annotations

import json


def test_notebook_is_a_title_and_one_short_cell_without_outputs():
    import nbformat

    from benchmarks.dashboard_browser import NOTEBOOK

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code"]
    assert nb.cells[0].source.startswith("# ")
    code = nb.cells[1]
    assert code.outputs == [] and code.execution_count is None
    assert "dashboard()" in code.source and len(code.source.splitlines()) <= 5
    assert nb.metadata.kernelspec.name == "python3"


def test_voila_config_preheats_and_is_valid_json():
    from benchmarks.dashboard_browser import VOILA_CONFIG_DIR

    config = json.loads((VOILA_CONFIG_DIR / "voila.json").read_text())
    assert config["VoilaConfiguration"]["preheat_kernel"] is True
    assert config["VoilaConfiguration"]["default_pool_size"] >= 1
    assert "disable_check_xsrf" not in json.dumps(config)  # tests/test_voila_hardening.py: the rest


def test_artifact_path_follows_the_environment(monkeypatch, tmp_path):
    from abstractor_widgets import dashboard as dash

    monkeypatch.setenv(dash.ARTIFACT_ENV_VAR, str(tmp_path / "mine"))
    assert dash.artifact_path() == (tmp_path / "mine").resolve()
    monkeypatch.delenv(dash.ARTIFACT_ENV_VAR)
    assert dash.artifact_path() == dash.REPO_ROOT / "artifacts" / "default"


def test_load_or_train_trains_once_then_loads_once_per_kernel(monkeypatch, tmp_path, synthetic_frame, capsys):
    from abstractor_widgets import dashboard as dash

    corpus = tmp_path / "corpus.parquet"
    synthetic_frame.to_parquet(corpus)
    monkeypatch.setenv("ABSTRACTOR_CORPUS", str(corpus))  # the "default corpus" of this test
    monkeypatch.setattr(dash, "_cache", {})
    target = tmp_path / "artifacts" / "default"
    first = dash.load_or_train(target, n_topics=4, progress=False)
    assert (target / "manifest.json").is_file()
    assert "training 4 topics" in capsys.readouterr().out
    assert first.n_topics == 4 and len(first) == len(synthetic_frame)
    assert dash.load_or_train(str(target)) is first  # cached: no second load
    monkeypatch.setattr(dash, "_cache", {})
    again = dash.load_or_train(target)  # a new kernel: loads (memory-mapped), no training
    assert again is not first and "training" not in capsys.readouterr().out


def test_dashboard_layout_and_escaped_header(synthetic_abstractor):
    import ipywidgets

    from abstractor_widgets import AbstractorWidget
    from abstractor_widgets.dashboard import Dashboard, dashboard, header_html

    synthetic_abstractor.manifest["corpus"]["name"] = "<img src=x onerror=alert(1)>"
    board = dashboard(synthetic_abstractor, title="A <b>title</b>", n_similar=3)
    assert isinstance(board, Dashboard) and isinstance(board, ipywidgets.VBox)
    assert isinstance(board.header, ipywidgets.HTML) and isinstance(board.widget, AbstractorWidget)
    assert list(board.children) == [board.header, board.widget]
    assert board.widget.text == "" and board.widget.n_similar == 3
    html = board.header.value
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "A &lt;b&gt;title&lt;/b&gt;" in html
    assert f"<b>{len(synthetic_abstractor):,}</b> papers" in html and "<b>4</b> LDA topics" in html
    assert header_html(synthetic_abstractor).count("<li>") == 3
    assert "similar papers by shared words + topics" in html  # the model has a lexical index
    synthetic_abstractor.lexical = None
    assert "similar papers by topics (hellinger)" in header_html(synthetic_abstractor)
