"""Exact resume: any edit of the input recomputes Stage 1, a moved or copied session resumes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pyflowreg.io.fingerprint import (
    fingerprint_matches,
    hash_file,
    input_fingerprint,
    start_hashing,
)
from pyflowreg.motion_correction import OFOptions, compensate_recording, is_complete
from pyflowreg.synthetic import SyntheticRecording

FAST = {"quality_setting": "fast", "n_workers": 2}
# 256 x 256 float32 frames: 256 KiB each, 64 frames = 16 MiB, more than the three 4 MiB blocks
# (start, middle, end) that a sampling fingerprint would read instead of the whole file.
HEIGHT = WIDTH = 256
N_FRAMES = 64
EDITED_FRAME = 20  # bytes 5-5.25 MiB: between the first and the middle sampled block


def _write_npy(path: Path) -> Path:
    rec = SyntheticRecording(HEIGHT, WIDTH, N_FRAMES, rigid_amplitude=3.0, nonrigid_amplitude=1.0,
                             seed=5)
    np.save(path, rec.observed_all()[..., 0].astype(np.float32))
    return path


def _edit_one_pixel(path: Path, frame: int) -> int:
    """Brighten one pixel of ``frame`` in place (same size); returns its byte offset."""
    movie = np.load(path, mmap_mode="r+")
    movie[frame, HEIGHT // 2, WIDTH // 2] += 0.5
    offset = movie.offset + (frame * HEIGHT * WIDTH + HEIGHT // 2 * WIDTH + WIDTH // 2) * 4
    movie.flush()
    del movie
    return offset


def _three_block_ranges(size: int, block: int = 4 << 20) -> list[tuple[int, int]]:
    starts = {0, max(0, size // 2 - block // 2), max(0, size - block)}
    return [(s, s + block) for s in sorted(starts)]


def _compensated(folder: Path) -> np.ndarray:
    with h5py.File(folder / "compensated.hdf5", "r") as f:
        return f["ch1"][:]


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    """A 16 MiB recording and its complete Stage 1 folder (computed once for the module)."""
    root = tmp_path_factory.mktemp("large")
    movie = _write_npy(root / "large.npy")
    out = compensate_recording(FAST, input_file=movie, output_path=root / "out")
    return movie, out


@pytest.fixture
def large(large_run, tmp_path):
    """A private copy (contents and modification times preserved) of the module's run."""
    movie, out = large_run
    shutil.copy2(movie, tmp_path / movie.name)
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / movie.name, tmp_path / "out"


def test_status_records_size_mtime_and_whole_file_hash(large):
    movie, out = large
    recorded = json.loads((out / "status.json").read_text())["input"]
    stat = movie.stat()
    assert movie.stat().st_size > 12 << 20
    assert recorded == {
        "name": "large.npy", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(movie.read_bytes()).hexdigest(),
    }


def test_edit_outside_three_sampled_blocks_recomputes(large):
    movie, out = large
    offset = _edit_one_pixel(movie, EDITED_FRAME)
    size = movie.stat().st_size
    assert not any(a <= offset < b for a, b in _three_block_ranges(size)), \
        "the edit must lie where a three-block sampling fingerprint would not look"
    options = OFOptions.from_dict(FAST)
    assert not is_complete(out, movie, options)
    before = _compensated(out)
    messages = []
    compensate_recording(FAST, input_file=movie, output_path=out, log=messages.append)
    assert not any("skipping" in m for m in messages)
    after = _compensated(out)
    assert not np.array_equal(after[EDITED_FRAME], before[EDITED_FRAME])
    fresh = compensate_recording(FAST, input_file=movie, output_path=out.parent / "fresh")
    np.testing.assert_array_equal(after, _compensated(fresh))
    assert is_complete(out, movie, options)


def test_copied_session_with_new_mtimes_rehashes_and_resumes(large, tmp_path):
    movie, out = large
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(movie, moved / movie.name)  # new modification time, same bytes
    shutil.copytree(out, moved / "out")
    os.utime(moved / movie.name, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert (moved / movie.name).stat().st_mtime_ns != movie.stat().st_mtime_ns
    before = (moved / "out" / "compensated.hdf5").stat().st_mtime_ns
    messages = []
    compensate_recording(FAST, input_file=moved / movie.name, output_path=moved / "out",
                         log=messages.append)
    assert any("skipping" in m for m in messages)
    assert (moved / "out" / "compensated.hdf5").stat().st_mtime_ns == before
    # The new modification time is recorded, so the next check is a stat again.
    recorded = json.loads((moved / "out" / "status.json").read_text())["input"]
    assert recorded["mtime_ns"] == (moved / movie.name).stat().st_mtime_ns


def test_fingerprint_check_reads_nothing_when_size_and_mtime_match(large, monkeypatch):
    movie, out = large
    recorded = json.loads((out / "status.json").read_text())["input"]
    calls = []
    monkeypatch.setattr("pyflowreg.io.fingerprint.hash_file", lambda *a, **k: calls.append(a))
    assert fingerprint_matches(recorded, movie)
    assert calls == []


@pytest.mark.parametrize("change", ["size", "name", "hash", "missing hash"])
def test_fingerprint_mismatch(tmp_path, change):
    path = tmp_path / "movie.bin"
    path.write_bytes(os.urandom(1 << 16))
    recorded = input_fingerprint(path)
    assert fingerprint_matches(recorded, path)
    if change == "size":
        with open(path, "ab") as f:
            f.write(b"\0")
    elif change == "name":
        path = path.rename(tmp_path / "other.bin")
    elif change == "hash":
        data = bytearray(path.read_bytes())
        data[12345] ^= 1
        path.write_bytes(bytes(data))
        os.utime(path, ns=(time.time_ns(), recorded["mtime_ns"] + 1))
    else:
        recorded = {**recorded, "sha256": None}
    assert not fingerprint_matches(recorded, path)


def test_background_hash_is_used_and_equals_a_direct_hash(tmp_path):
    path = tmp_path / "movie.bin"
    path.write_bytes(os.urandom(3 << 20))
    start_hashing(path)
    assert input_fingerprint(path)["sha256"] == hash_file(path) \
        == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_rewritten_during_hashing_gets_no_trusted_hash(tmp_path, monkeypatch):
    path = tmp_path / "movie.bin"
    path.write_bytes(os.urandom(1 << 20))
    real_hash = hash_file

    def hash_then_rewrite(target, **kwargs):
        digest = real_hash(target, **kwargs)
        Path(target).write_bytes(os.urandom(1 << 20))  # an export overwriting the recording
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
        return digest

    monkeypatch.setattr("pyflowreg.io.fingerprint.hash_file", hash_then_rewrite)
    fingerprint = input_fingerprint(path)
    assert fingerprint["sha256"] is None
    assert not fingerprint_matches(fingerprint, path)
