"""The notebooks: committed clean, and they run top to bottom on a small slice.

The executing tests (``@pytest.mark.notebooks``) run ``train.ipynb`` on 1,500 documents
(K in {3, 5}, 1-2 passes, into a temporary artifact), then ``explore.ipynb`` and, when it
exists, ``dashboard.ipynb`` on the model it saved. They use nbclient with the ``python3``
kernel of this interpreter (jupyter_client starts a kernelspec whose command is ``python``
with ``sys.executable``, i.e. this venv's Python). Select them with ``-m notebooks``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
TIMEOUT = int(os.environ.get("ABSTRACTOR_NB_TIMEOUT", "600"))  # per cell, seconds


# -- committed without outputs --------------------------------------------------------
@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts (clear them before committing)"


@pytest.mark.parametrize("name", ["train.ipynb", "explore.ipynb"])
def test_notebook_has_a_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    assert "os.environ" in tagged[0].source
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 5  # explained step by step


# -- execution ------------------------------------------------------------------------
def _check_kernel() -> None:
    """The ``python3`` kernel must run this interpreter (the venv), not some other Python."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    command = spec.argv[0]
    if command not in {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}:
        assert Path(command).resolve() == Path(sys.executable).resolve(), (
            f"the python3 kernelspec ({spec.resource_dir}) runs {command}, not {sys.executable}: "
            f"run `{sys.executable} -m ipykernel install --sys-prefix`"
        )


def execute_notebook(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Run ``path`` in its own directory with ``env`` added to the kernel's environment.

    Raises (failing the test) on the first cell that errors.
    """
    from nbclient import NotebookClient

    _check_kernel()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=TIMEOUT, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    return nb


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells for o in c.get("outputs", []) if kind in o.get("data", {})]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """1,500 documents of the shared corpus, or the synthetic corpus when it is absent."""
    import pandas as pd

    from abstractor_widgets.corpus import default_corpus_path

    path = tmp_path_factory.mktemp("nb-corpus") / "corpus.parquet"
    shared = default_corpus_path()
    if shared is not None and shared.is_file():
        pd.read_parquet(shared).iloc[:1500].to_parquet(path)
    else:
        from synthetic_data import make_synthetic_frame

        make_synthetic_frame(400).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def trained(small_corpus, tmp_path_factory) -> tuple[nbformat.NotebookNode, Path]:
    """``train.ipynb`` executed on the small corpus: ``(executed notebook, artifact dir)``."""
    out = tmp_path_factory.mktemp("nb-train") / "model"
    with pytest.MonkeyPatch.context() as mp:
        nb = execute_notebook(
            NOTEBOOKS / "train.ipynb",
            {
                "ABSTRACTOR_NB_CORPUS": str(small_corpus),
                "ABSTRACTOR_NB_LIMIT": "1500",
                "ABSTRACTOR_NB_KS": "3,5",
                "ABSTRACTOR_NB_SWEEP_DOCS": "1000",
                "ABSTRACTOR_NB_SWEEP_PASSES": "1",
                "ABSTRACTOR_NB_PASSES": "2",
                "ABSTRACTOR_NB_OUT": str(out),
            },
            mp,
        )
    return nb, out


@pytest.mark.notebooks
def test_train_notebook_runs_and_saves_a_model(trained):
    from abstractor_widgets import Abstractor

    nb, out = trained
    assert len(_outputs(nb, "image/png")) >= 2, "expected the frequency histograms and the sweep plot"
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/markdown", "")
        for c in nb.cells for o in c.get("outputs", [])
    )
    assert "Chosen K =" in text and "c_v" in text and "u_mass" in text
    ab = Abstractor.load(out)
    assert ab.n_topics in (3, 5)
    assert all(label != f"Topic {k}" for k, label in enumerate(ab.model.labels_)), "topics were not named"


@pytest.mark.notebooks
def test_explore_notebook_runs_offline(trained, monkeypatch):
    _, artifact = trained
    nb = execute_notebook(NOTEBOOKS / "explore.ipynb", {"ABSTRACTOR_ARTIFACT": str(artifact)}, monkeypatch)
    html = "".join(o["data"]["text/html"] for o in _outputs(nb, "text/html"))
    assert "abstractor-ldavis-root" in html and "var LDAvis = function" in html
    assert "cdn.jsdelivr.net" not in html and "d3js.org/d3.v5" not in html
    assert "https://arxiv.org/abs/" in html  # the top-documents tables
    import importlib.util

    if importlib.util.find_spec("abstractor_widgets.widget") is not None:
        assert _outputs(nb, "application/vnd.jupyter.widget-view+json"), "the widget was not displayed"


@pytest.mark.notebooks
def test_dashboard_notebook_runs(trained, monkeypatch):
    path = NOTEBOOKS / "dashboard.ipynb"
    if not path.is_file():
        pytest.skip("notebooks/dashboard.ipynb does not exist yet")
    _, artifact = trained
    execute_notebook(path, {"ABSTRACTOR_ARTIFACT": str(artifact)}, monkeypatch)
