"""Crash-safe file output: write to a temporary sibling, then rename into place.

A file is first written under a temporary name in the destination directory::

    <dir>/.<name>.tmp-<pid>-<8 hex chars><suffix>

e.g. ``.movie.h5.tmp-4711-1f2e3d4c.h5``. The leading dot hides it, the pid tells which
process wrote it, and the original suffix is kept so that libraries that look at the
suffix (np.savez, tifffile, h5py) still recognise the format. Only after the writer has
finished, the data are ``fsync``-ed and the file is moved onto the final name with
``os.replace`` (atomic on POSIX and Windows within one file system), and the directory
entry is ``fsync``-ed. A process killed at any moment therefore leaves at the final path
either the previous complete file or nothing; leftovers only exist under temporary
names, which :func:`is_temporary_path` recognises and :func:`cleanup_stale_temporaries`
removes.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = [
    "AtomicOutput",
    "atomic_output",
    "atomic_save_npy",
    "atomic_save_npz",
    "cleanup_stale_temporaries",
    "is_temporary_path",
    "temporary_path_for",
    "write_array",
]

_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})(?P<suffix>\.[^.]*)?$"
)


def temporary_path_for(path: str | os.PathLike[str]) -> Path:
    """Return a fresh temporary path next to ``path`` (the file is not created)."""
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{p.suffix}")


def is_temporary_path(path: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` is named like a temporary made by :func:`atomic_output`."""
    return _TEMP_RE.match(Path(path).name) is not None


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems (e.g. certain network mounts) refuse
        pass
    finally:
        os.close(fd)


class AtomicOutput:
    """A pending crash-safe output file.

    Create it, write the data to :attr:`temp_path`, then call :meth:`commit` (move into
    place) or :meth:`abort` (delete the temporary). :func:`atomic_output` wraps this in
    a context manager; the movie writers use the class directly.

    Parameters
    ----------
    path : path-like
        Final destination. Its directory must exist; an existing file there is replaced
        only on commit.
    fsync : bool, default True
        Flush data and directory entry to disk on commit.

    Raises
    ------
    FileNotFoundError
        If the destination directory does not exist.
    ValueError
        If ``path`` is an existing directory.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        parent = self.path.parent
        if not parent.is_dir():
            raise FileNotFoundError(f"output directory does not exist: {parent} (for {self.path})")
        if self.path.is_dir():
            raise ValueError(f"output path is a directory: {self.path}")
        self.temp_path = temporary_path_for(self.path)
        self.fsync = fsync
        self.state = "pending"
        _remove_dead_temporaries_of(self.path)

    def commit(self) -> Path:
        """Flush the temporary file and atomically move it onto :attr:`path`.

        Returns
        -------
        pathlib.Path
            The final path.

        Raises
        ------
        FileNotFoundError
            If nothing was written to :attr:`temp_path`.
        """
        if self.state != "pending":
            raise ValueError(f"output {self.path} was already {self.state}")
        if not self.temp_path.is_file():
            self.state = "aborted"
            raise FileNotFoundError(
                f"temporary output {self.temp_path} was not created; nothing to move to {self.path}"
            )
        try:
            if self.fsync:
                _fsync_file(self.temp_path)
            os.replace(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self.state = "committed"
        if self.fsync:
            _fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Delete the temporary file (if any); the final path is left untouched."""
        if self.state == "committed":
            return
        self.state = "aborted"
        self.temp_path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Context manager yielding a temporary path that replaces ``path`` on success.

    Write the complete output to the yielded path (and close it) inside the block. On a
    clean exit the file is fsync-ed and renamed onto ``path``; if the block raises, the
    temporary is deleted and the exception propagates, leaving any previous file at
    ``path`` intact.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "result.npy"
    >>> with atomic_output(path) as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(path)
    array([0, 1, 2])
    >>> sorted(p.name for p in path.parent.iterdir())  # no temporary left behind
    ['result.npy']
    """
    out = AtomicOutput(path, fsync=fsync)
    try:
        yield out.temp_path
    except OSError as exc:
        out.abort()
        raise naming_output(exc, out.path) from exc
    except BaseException:
        out.abort()
        raise
    out.commit()


def naming_output(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """``exc`` itself if it names a file, else the same error naming the output ``path``.

    numpy reports a full disk as a bare "[Errno 28] No space left on device" and h5py as a
    long driver message about the temporary; the user needs the cause and which output (so
    which folder and disk) it was, in one line.
    """
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, os.strerror(exc.errno), os.fspath(path))


class _WriteOnly:
    """A file seen only through its ``write``: numpy then writes through it in chunks."""

    def __init__(self, fh):
        self.write = fh.write


def write_array(fh, array: np.ndarray) -> None:
    """Write ``array``'s bytes (C order) to the open binary file ``fh``.

    Unlike ``ndarray.tofile``, a failed write raises the operating system's error with its
    number (a full disk is ``ENOSPC``): ``tofile`` reports only "N requested and M written",
    which neither says why nor lets the caller tell a full disk from bad input.
    """
    fh.write(memoryview(np.ascontiguousarray(array)).cast("B"))


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Save one array as ``.npy`` crash-safely (no pickling). Returns the final path."""
    arr = np.asanyarray(array)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        # Given a real file, np.save writes with ndarray.tofile, whose errors carry no errno
        # (see write_array); through a plain writer it writes 16 MiB chunks with fh.write.
        np.save(_WriteOnly(fh), arr, allow_pickle=False)
    return Path(path)


def atomic_save_npz(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    """Save named arrays as an uncompressed ``.npz`` crash-safely. Returns the final path."""
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def _remove_dead_temporaries_of(path: Path) -> None:
    # A killed writer of this very output left its temporary; the new write replaces it. Only
    # this output's temporaries are touched: other jobs may be writing next to it right now.
    for p in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        m = _TEMP_RE.match(p.name)
        if m and m.group("name") == path.name and not _pid_alive(int(m.group("pid"))):
            p.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def cleanup_stale_temporaries(
    folder: str | os.PathLike[str],
    *,
    min_age_seconds: float = 0.0,
    check_pid: bool = True,
    recursive: bool = False,
) -> list[Path]:
    """Delete temporaries left behind by writers that were killed.

    A temporary (see :func:`is_temporary_path`) is removed when it is older than
    ``min_age_seconds`` (by modification time) and, with ``check_pid``, the process
    whose id is in its name no longer runs on this machine. On shared network
    folders written from several hosts, pass ``check_pid=False`` with a generous
    ``min_age_seconds`` instead. On Windows process ids are not checked (treated as
    alive), so use ``check_pid=False`` there too.

    Parameters
    ----------
    folder : path-like
        Directory to clean. A missing directory is not an error.
    min_age_seconds : float, default 0
        Keep temporaries modified more recently than this.
    check_pid : bool, default True
        Keep temporaries whose writing process is still alive.
    recursive : bool, default False
        Also clean sub-directories.

    Returns
    -------
    list of pathlib.Path
        The deleted files.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob(".*.tmp-*") if recursive else root.glob(".*.tmp-*")
    now = time.time()
    removed = []
    for p in sorted(candidates):
        m = _TEMP_RE.match(p.name)
        if m is None or not p.is_file():
            continue
        try:
            age = now - p.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < min_age_seconds:
            continue
        if check_pid and _pid_alive(int(m.group("pid"))):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed
