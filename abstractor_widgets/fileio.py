"""Files on disk: atomic writes, the modes the umask gives, and safe reads of an artifact's files.

Every writer of the package (the artifact store, the corpus cache, the harvester) writes
through :func:`atomic_write_path` / :func:`atomic_directory`: an interrupted run leaves
either the old file or the new one, never a torn one. Temporary files and directories are
made private while they are written (``mkstemp`` / ``mkdtemp``) and get the ordinary modes
the process's umask gives (``0o666 & ~umask`` / ``0o777 & ~umask``) when they are renamed
into place, so a service running as another user can read what was published.

:class:`ListedFiles` is how loaders open the files of an artifact: only names the
manifest lists, never with a path separator or ``..``, and arrays only through
``numpy.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "UnsafeFileError",
    "atomic_directory",
    "atomic_write_path",
    "atomic_write_text",
    "fsync_dir",
    "public_modes",
    "sha256_file",
    "ListedFiles",
    "check_file_name",
]

#: A file name an artifact may list: letters, digits, ``.``, ``_``, ``-``; not starting with a dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")


class UnsafeFileError(ValueError):
    """A file name that is not a plain name inside its directory (separator, ``..``, ...)."""


def check_file_name(name: object) -> str:
    """``name`` if it is a plain file name an artifact may contain, else :class:`UnsafeFileError`."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise UnsafeFileError(f"unsafe file name {name!r} (only plain names, no path separators or '..')")
    return name


_umask_lock = threading.Lock()


def _umask() -> int:
    with _umask_lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def public_modes(path: Path) -> None:
    """Give ``path`` (a file, or a directory and everything in it) the modes the umask gives."""
    mask = _umask()
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)
        for child in path.iterdir():
            public_modes(child)
    else:
        os.chmod(path, 0o666 & ~mask)


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was. The new
    file gets the mode the umask gives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        public_modes(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_write_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``path`` when the block succeeds.

    The old directory (if any) is moved aside, the new one renamed into place, then the
    old one deleted: at every instant either the old or the new complete directory
    exists (the artifact store recovers the old one if a crash hits between the two
    renames). The new directory and its files get the modes the umask gives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        for file in tmp.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        public_modes(tmp)
        fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}-{time.time_ns()}"
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class ListedFiles:
    """Read access to the files of one directory, limited to a list of names.

    Parameters
    ----------
    directory : path-like
    names : iterable of str, optional
        The names that may be opened (an artifact's manifest ``files``); ``None`` allows
        every safe name (for a directory the caller made itself).

    Notes
    -----
    Arrays are read with ``numpy.load(..., allow_pickle=False)``: an object array (a
    pickle inside a ``.npy``) is refused, never unpickled. JSON is parsed with the
    standard library; nothing read here is ever executed.
    """

    def __init__(self, directory: str | os.PathLike[str], names: Iterable[str] | None = None) -> None:
        self.directory = Path(directory)
        self.names = None if names is None else frozenset(names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (self.names is None or name in self.names)

    def path(self, name: str) -> Path:
        """The path of a listed file.

        Raises
        ------
        UnsafeFileError
            If ``name`` is not a plain file name.
        FileNotFoundError
            If ``name`` is not listed (or, when nothing is listed, does not exist).
        """
        check_file_name(name)
        if self.names is not None and name not in self.names:
            raise FileNotFoundError(f"{name!r} is not listed in the manifest: refusing to open it")
        return self.directory / name

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """A ``.npy`` array (no pickles), memory-mapped read-only when ``mmap``, as a plain
        ndarray view: the same shared pages without np.memmap's per-slice overhead."""
        return np.load(self.path(name), mmap_mode="r" if mmap else None, allow_pickle=False).view(np.ndarray)

    def json(self, name: str) -> Any:
        """A parsed JSON file."""
        return json.loads(self.path(name).read_text(encoding="utf-8"))

    def bytes_array(self, name: str, mmap: bool = True) -> np.ndarray:
        """A raw binary file as a uint8 array (memory-mapped when ``mmap`` and not empty)."""
        path = self.path(name)
        if mmap and path.stat().st_size:
            return np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)
        return np.fromfile(path, dtype=np.uint8)
