"""The Voilà dashboard as package data, and ``abstractor dashboard`` that serves it.

Everything the dashboard needs ships inside the wheel, next to this module:

* ``dashboard.ipynb`` — the notebook Voilà runs (a title and :func:`abstractor_widgets.
  dashboard.dashboard`); the repository links it as ``notebooks/dashboard.ipynb``;
* ``voila.json`` — the Voilà configuration: XSRF checks on, kernel preheating (a pool of
  one), :class:`~abstractor_widgets.voila.server.CappedKernelManager` (a cap on
  concurrent kernels with a "busy, try again" page), idle kernels culled even while a
  tab stays open, no tracebacks for visitors;
* ``share/voila/templates/abstractor/`` — a Jupyter data directory (``JUPYTER_PATH``)
  with the ``abstractor`` template: Voilà's ``lab`` template without CDN stylesheets, and
  short error and "busy" pages.

:func:`serve` (``abstractor dashboard ARTIFACT``) verifies every checksum of the artifact
once, then starts Voilà with that configuration; its kernels load the artifact with the
manifest's digest pinned and the sizes checked, without re-hashing it
(``$ABSTRACTOR_ARTIFACT_VERIFIED``).

Examples
--------
::

    abstractor dashboard artifacts/default --port 8866
    abstractor dashboard artifacts/default --max-kernels 40 --host 0.0.0.0
    abstractor dashboard artifacts/default --voila --theme=dark   # the rest: Voilà's own options
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = [
    "PACKAGE_DIR", "NOTEBOOK", "CONFIG_DIR", "SHARE_DIR", "TEMPLATE",
    "voila_argv", "dashboard_environment", "verify_once", "serve",
]  # fmt: skip

#: This directory: the dashboard's package data.
PACKAGE_DIR = Path(__file__).resolve().parent
#: The notebook Voilà serves.
NOTEBOOK = PACKAGE_DIR / "dashboard.ipynb"
#: Holds ``voila.json`` (``--Voila.config_file_paths``).
CONFIG_DIR = PACKAGE_DIR
#: A Jupyter data directory holding ``voila/templates/abstractor`` (``JUPYTER_PATH``).
SHARE_DIR = PACKAGE_DIR / "share"
#: The Voilà template of the dashboard.
TEMPLATE = "abstractor"
DEFAULT_PORT = 8866
DEFAULT_HOST = "127.0.0.1"


def voila_argv(
    *,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    extra: Sequence[str] = (),
    notebook: str | os.PathLike[str] = NOTEBOOK,
) -> list[str]:
    """Voilà's command-line arguments for the dashboard (without the program name).

    The packaged notebook, configuration and template; no browser; exactly ``port`` (a
    public server must not drift to another port); ``extra`` last (it wins).
    """
    return [
        str(notebook),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--Voila.port={int(port)}",
        "--Voila.port_retries=0",
        f"--Voila.config_file_paths={CONFIG_DIR}",
        f"--template={TEMPLATE}",
        *extra,
    ]


def dashboard_environment(
    artifact: str | os.PathLike[str],
    *,
    digest: str | None = None,
    max_kernels: int | None = None,
    edit_labels: bool = False,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of the Voilà server, inherited by its kernels.

    Parameters
    ----------
    artifact : path-like
        The artifact directory (made absolute: the kernels run in another directory).
    digest : str, optional
        The manifest digest the server verified (``$ABSTRACTOR_ARTIFACT_VERIFIED``).
    max_kernels : int, optional
        ``$ABSTRACTOR_MAX_KERNELS`` (kept from ``base`` when ``None``).
    edit_labels : bool
        ``$ABSTRACTOR_EDIT_LABELS`` = ``1`` (else ``0``: read-only labels).
    base : mapping, optional
        The environment to start from (default ``os.environ``).
    """
    from ..dashboard import ARTIFACT_ENV_VAR, EDIT_LABELS_ENV_VAR, VERIFIED_ENV_VAR
    from .server import MAX_KERNELS_ENV_VAR

    env = dict(os.environ if base is None else base)
    env[ARTIFACT_ENV_VAR] = str(Path(artifact).expanduser().resolve())
    if digest:
        env[VERIFIED_ENV_VAR] = digest
    else:
        env.pop(VERIFIED_ENV_VAR, None)
    if max_kernels is not None:
        env[MAX_KERNELS_ENV_VAR] = str(int(max_kernels))
    env[EDIT_LABELS_ENV_VAR] = "1" if edit_labels else "0"
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(SHARE_DIR), env.get("JUPYTER_PATH", "")) if p)
    env.pop("ANYWIDGET_HMR", None)  # never watch files on a server
    return env


def verify_once(artifact: str | os.PathLike[str]) -> str:
    """Verify every file of ``artifact`` (sha256) and return its manifest digest.

    A digest pinned in ``$ABSTRACTOR_ARTIFACT_SHA256`` must match.

    Raises
    ------
    abstractor_widgets.store.ArtifactError
        For a missing, incomplete, modified or incompatible artifact, or a digest mismatch.
    """
    from ..store import artifact_digest, verify_artifacts

    manifest = verify_artifacts(artifact)
    return artifact_digest(manifest)


def serve(
    artifact: str | os.PathLike[str],
    *,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    max_kernels: int | None = None,
    edit_labels: bool = False,
    voila_args: Sequence[str] = (),
) -> int:
    """Verify ``artifact`` once, then serve the dashboard with Voilà (blocks until stopped).

    Parameters
    ----------
    artifact : path-like
        A trained artifact directory.
    port, host : int, str
        Where to listen (default ``127.0.0.1:8866``; ``--host 0.0.0.0`` to publish).
    max_kernels : int, optional
        Concurrent kernels at most (default ``$ABSTRACTOR_MAX_KERNELS`` or 20); one more
        visitor gets a "busy, try again" page (HTTP 503).
    edit_labels : bool
        Let visitors rename topics (saved into the artifact for everybody); default off.
    voila_args : sequence of str
        More Voilà options (``--theme=dark``, ``--MappingKernelManager.cull_idle_timeout=300``).

    Returns
    -------
    int
        The exit status (0 after a normal stop).

    Raises
    ------
    abstractor_widgets.store.ArtifactError
        When the artifact does not verify.
    ValueError
        For invalid arguments, or when Voilà is not installed.
    """
    if max_kernels is not None and max_kernels < 1:
        raise ValueError(f"--max-kernels must be at least 1, not {max_kernels}")
    try:
        from voila.app import Voila
    except ImportError as exc:
        raise ValueError(
            f"the dashboard needs Voilà ({exc}); install it with: pip install 'abstractor-widgets[notebooks]'"
        ) from None
    path = Path(artifact).expanduser().resolve()
    print(f"verifying {path} (every file's sha256, once) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    digest = verify_once(path)
    print(f"verified in {time.perf_counter() - start:.1f} s; manifest digest {digest}", file=sys.stderr, flush=True)
    env = dashboard_environment(path, digest=digest, max_kernels=max_kernels, edit_labels=edit_labels)
    for key in set(os.environ) - set(env):
        del os.environ[key]
    os.environ.update(env)  # Voilà's kernels inherit it, the preheated ones included
    print(f"serving {NOTEBOOK} at http://{host}:{port}/ (Ctrl+C to stop)", file=sys.stderr, flush=True)
    Voila.launch_instance(voila_argv(port=port, host=host, extra=voila_args))
    return 0
