"""Exact input fingerprints for Stage 1's resume: size, modification time and a whole-file hash.

A recording's fingerprint is its name, size, ``mtime_ns`` and the SHA-256 of every byte. The
hash is computed once, in a background thread while Stage 1 reads the recording anyway
(:func:`start_hashing`); a resume check compares size and modification time first and re-hashes
only when they differ, so an unchanged recording costs one ``stat`` and a moved or copied one
(new modification times, same bytes) costs one sequential read, after which it resumes.

A recording of several files (a :class:`~pyflowreg.io.recording.MovieSource`) or a directory
store (``.zarr``) records the same per member file, so adding, removing or editing one file
reruns that recording. Any change to the content is detected: an edit that keeps size and
modification time is the one case trusted without reading, as in ``make`` and Snakemake.
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
    """Whole-file hashes of several files, computed one after the other in a daemon thread."""

    def __init__(self, members: list[tuple[Path, tuple[str, int, int]]]):
        self._digests: dict[tuple[str, int, int], str] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(members,), name=f"hash {members[0][0].name}", daemon=True
        )
        self._thread.start()

    def _run(self, members) -> None:
        try:
            for path, key in members:
                self._digests[key] = hash_file(path, low_priority=True)
        except BaseException as exc:  # re-raised in the thread that asks for a result
            self._error = exc

    def result(self, key: tuple[str, int, int]) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digests[key]


class _Pending:
    """One file's hash inside a :class:`_BackgroundHash` (or one already computed)."""

    def __init__(self, group: _BackgroundHash | None, key, digest: str | None = None):
        self._group, self._key, self._digest = group, key, digest

    def result(self) -> str:
        return self._digest if self._group is None else self._group.result(self._key)


# Hashes started by start_hashing, keyed by (resolved path, size, mtime_ns): input_fingerprint
# picks them up, so the code that writes status.json need not carry the thread around.
_pending: dict[tuple[str, int, int], _Pending] = {}
_pending_lock = threading.Lock()


def _members(recording) -> tuple[list[tuple[str, Path]], bool]:
    """:func:`member_files`, and whether the recording is one plain file (whose fingerprint
    keeps the one-file form)."""
    from .recording import source_files

    sources = [Path(f) for f in source_files(recording)]
    if len(sources) == 1 and not sources[0].is_dir():
        return [(sources[0].name, sources[0])], True
    files: list[Path] = []
    for f in sources:
        files.extend(sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f])
    base = Path(os.path.commonpath([str(f.parent) for f in files]))
    return [(str(f.relative_to(base)), f) for f in files], False


def member_files(recording) -> list[tuple[str, Path]]:
    """(name, path) of every file a recording's content lives in.

    A plain file is itself; a directory store (``.zarr``) is every file under it; a
    :class:`~pyflowreg.io.recording.MovieSource` is every file of every block. Names are
    relative to the files' common folder, so a session folder that moves keeps its names.
    """
    return _members(recording)[0]


def start_hashing(recording) -> None:
    """Start hashing a recording's files in a background thread for a later
    :func:`input_fingerprint`."""
    members = []
    with _pending_lock:
        for _, path in member_files(recording):
            key = _stat_key(path)
            if key not in _pending:
                members.append((path, key))
        if members:
            group = _BackgroundHash(members)
            for _, key in members:
                _pending[key] = _Pending(group, key)


def _file_fingerprint(name: str, path: Path) -> dict:
    key = _stat_key(path)
    with _pending_lock:
        pending = _pending.pop(key, None)
    digest = pending.result() if pending is not None else hash_file(path)
    if _stat_key(path) != key:
        digest = None  # rewritten while we read it: the digest describes no version of the file
    return {"name": name, "size": key[1], "mtime_ns": key[2], HASH_NAME: digest}


def input_fingerprint(recording) -> dict:
    """Name, size, ``mtime_ns`` and SHA-256 of the input, to notice any change to a recording.

    ``recording`` is a file, a directory store or a
    :class:`~pyflowreg.io.recording.MovieSource`; for anything but a plain file the result
    lists every member file (``files``), so adding, removing or editing one is noticed.
    Uses the hashes started by :func:`start_hashing` when a file's size and modification time
    are still those it started with, otherwise hashes now. When a file changes while it is
    being hashed, its ``sha256`` is ``None``, which no later check accepts.
    """
    members, plain = _members(recording)
    if plain:
        return _file_fingerprint(*members[0])
    from .recording import MovieSource

    name = recording.stem if isinstance(recording, MovieSource) else Path(recording).name
    return {"name": name,
            "files": [_file_fingerprint(name, path) for name, path in members]}


def _file_matches(recorded: dict, name: str, path: Path) -> bool:
    if not isinstance(recorded, dict) or not recorded.get(HASH_NAME):
        return False
    stat = path.stat()
    if recorded.get("name") != name or recorded.get("size") != stat.st_size:
        return False
    if recorded.get("mtime_ns") == stat.st_mtime_ns:
        return True
    key = _stat_key(path)
    digest = hash_file(path)
    if digest != recorded[HASH_NAME] and _stat_key(path) == key:
        with _pending_lock:  # the recomputation that follows need not read the file again
            _pending[key] = _Pending(None, key, digest)
    return digest == recorded[HASH_NAME]


def fingerprint_matches(recorded: dict | None, recording) -> bool:
    """True when ``recording`` has the content ``recorded`` (an :func:`input_fingerprint`)
    describes.

    Names and sizes must match (and, for several files, their number). Equal ``mtime_ns`` is
    trusted without reading a file; otherwise (a copied or moved session, a touched file) the
    file is hashed and compared.
    """
    if not isinstance(recorded, dict):
        return False
    try:
        members, plain = _members(recording)
    except OSError:
        return False
    if plain:
        return "files" not in recorded and _file_matches(recorded, *members[0])
    files = recorded.get("files")
    if not isinstance(files, list) or len(files) != len(members):
        return False
    return all(_file_matches(entry, name, path)
               for entry, (name, path) in zip(files, members, strict=True))


def refreshed_fingerprint(recorded: dict, recording) -> dict | None:
    """``recorded`` with the files' current modification times, or None if none changed.

    For a session matched by content after a move or copy: recording the new times makes the
    next check a ``stat`` again instead of another full read.
    """
    members = member_files(recording)
    entries = [recorded] if "files" not in recorded else recorded["files"]
    changed = False
    updated = [dict(e) for e in entries]
    for entry, (_, path) in zip(updated, members, strict=True):
        mtime_ns = path.stat().st_mtime_ns
        if entry.get("mtime_ns") != mtime_ns:
            entry["mtime_ns"], changed = mtime_ns, True
    if not changed:
        return None
    return updated[0] if "files" not in recorded else dict(recorded, files=updated)
