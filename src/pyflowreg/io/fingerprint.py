"""Exact input fingerprints for Stage 1's resume: size, modification time and a whole-file hash.

A recording's fingerprint is its name, size, ``mtime_ns`` and the SHA-256 of every byte. The
hash is computed once, in a background thread while Stage 1 reads the recording anyway
(:func:`start_hashing`); a resume check compares size and modification time first and re-hashes
only when they differ, so an unchanged recording costs one ``stat`` and a moved or copied one
(new modification times, same bytes) costs one sequential read, after which it resumes.

Any change to the content is detected: an edit that keeps size and modification time is the one
case trusted without reading, as in ``make`` and Snakemake.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

HASH_NAME = "sha256"  # hardware-accelerated on current x86 and ARM: ~2 GB/s per core
READ_BLOCK = 8 << 20  # large reads let hashlib release the GIL for the whole block


def _stat_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def hash_file(path: str | os.PathLike, *, low_priority: bool = False) -> str:
    """SHA-256 hex digest of every byte of ``path``, read sequentially in 8 MiB blocks.

    With ``low_priority`` the calling thread lowers its own scheduling priority first (Linux
    schedules threads individually), so hashing in the background yields to the correction.
    """
    if low_priority:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass  # not Linux or not allowed: hashing runs at normal priority
    digest = hashlib.new(HASH_NAME)
    buffer = bytearray(READ_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


class _Finished:
    """A hash already computed (by a resume check that found the file changed)."""

    def __init__(self, digest: str):
        self._digest = digest

    def result(self) -> str:
        return self._digest


class _BackgroundHash:
    """A whole-file hash computed in a daemon thread; ``result()`` waits for it."""

    def __init__(self, path: Path, key: tuple[str, int, int]):
        self.key = key
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(path,), name=f"hash {path.name}", daemon=True
        )
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._digest = hash_file(path, low_priority=True)
        except BaseException as exc:  # re-raised in the thread that asks for the result
            self._error = exc

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest


# Hashes started by start_hashing, keyed by (resolved path, size, mtime_ns): input_fingerprint
# picks them up, so the code that writes status.json need not carry the thread around.
_pending: dict[tuple[str, int, int], _BackgroundHash | _Finished] = {}
_pending_lock = threading.Lock()


def start_hashing(path: str | os.PathLike) -> None:
    """Start hashing ``path`` in a background thread for a later :func:`input_fingerprint`."""
    path = Path(path)
    key = _stat_key(path)
    with _pending_lock:
        if key not in _pending:
            _pending[key] = _BackgroundHash(path, key)


def input_fingerprint(path: str | os.PathLike) -> dict:
    """Name, size, ``mtime_ns`` and SHA-256 of the input, to notice any change to a recording.

    Uses the hash started by :func:`start_hashing` when the file's size and modification time
    are still those it started with, otherwise hashes now. When the file changes while it is
    being hashed, the returned ``sha256`` is ``None``, which no later check accepts.
    """
    path = Path(path)
    key = _stat_key(path)
    with _pending_lock:
        pending = _pending.pop(key, None)
    digest = pending.result() if pending is not None else hash_file(path)
    if _stat_key(path) != key:
        digest = None  # rewritten while we read it: the digest describes no version of the file
    return {"name": path.name, "size": key[1], "mtime_ns": key[2], HASH_NAME: digest}


def fingerprint_matches(recorded: dict | None, path: str | os.PathLike) -> bool:
    """True when ``path`` has the content ``recorded`` (an :func:`input_fingerprint`) describes.

    Name and size must match. Equal ``mtime_ns`` is trusted without reading the file; otherwise
    (a copied or moved session, a touched file) the whole file is hashed and compared.
    """
    if not isinstance(recorded, dict) or not recorded.get(HASH_NAME):
        return False
    path = Path(path)
    stat = path.stat()
    if recorded.get("name") != path.name or recorded.get("size") != stat.st_size:
        return False
    if recorded.get("mtime_ns") == stat.st_mtime_ns:
        return True
    key = _stat_key(path)
    digest = hash_file(path)
    if digest != recorded[HASH_NAME] and _stat_key(path) == key:
        with _pending_lock:  # the recomputation that follows need not read the file again
            _pending[key] = _Finished(digest)
    return digest == recorded[HASH_NAME]
