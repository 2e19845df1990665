"""Crash safety: atomic_output, writer abort/commit, SIGKILL mid-write, stale temporaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pyflowreg
from pyflowreg.io import (
    AtomicOutput,
    atomic_output,
    atomic_save_npy,
    atomic_save_npz,
    cleanup_stale_temporaries,
    completed_frame_count,
    is_temporary_path,
    open_movie,
    open_movie_writer,
    read_hdf5_frame_count,
)


class Boom(RuntimeError):
    pass


def test_atomic_output_commits_on_success(tmp_path):
    target = tmp_path / "result.npy"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.suffix == ".npy"
        assert tmp.name.startswith(".result.npy.tmp-")
        assert is_temporary_path(tmp) and not is_temporary_path(target)
        np.save(tmp, np.arange(3))
        assert not target.exists()
    assert list(tmp_path.iterdir()) == [target]
    np.testing.assert_array_equal(np.load(target), np.arange(3))


def test_atomic_output_exception_leaves_no_file(tmp_path):
    target = tmp_path / "result.bin"
    with pytest.raises(Boom), atomic_output(target) as tmp:
        tmp.write_bytes(b"half of the data")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_exception_keeps_old_file(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old complete content")
    with pytest.raises(Boom), atomic_output(target) as tmp:
        tmp.write_bytes(b"new partial")
        raise Boom
    assert target.read_bytes() == b"old complete content"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:  # a successful write replaces it
        tmp.write_bytes(b"new complete")
    assert target.read_bytes() == b"new complete"


def test_atomic_output_requires_written_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="was not created"), atomic_output(tmp_path / "x"):
        pass
    out = AtomicOutput(tmp_path / "y.txt")
    out.temp_path.write_text("y")
    assert out.commit() == tmp_path / "y.txt"
    with pytest.raises(ValueError, match="already committed"):
        out.commit()


def test_atomic_save_helpers(tmp_path):
    arr = np.arange(12.0).reshape(3, 4)
    atomic_save_npy(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), arr)
    atomic_save_npy(tmp_path / "b.dat", arr)  # no ".npy" appended to odd suffixes
    np.testing.assert_array_equal(np.load(tmp_path / "b.dat"), arr)
    atomic_save_npz(tmp_path / "c.npz", flow=arr, shift=np.array([1, 2]))
    with np.load(tmp_path / "c.npz") as z:
        assert sorted(z.files) == ["flow", "shift"]
        np.testing.assert_array_equal(z["flow"], arr)
    with pytest.raises(ValueError, match="pickle"):
        atomic_save_npy(tmp_path / "o.npy", np.array([None], dtype=object))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.dat", "c.npz"]


@pytest.mark.parametrize("suffix", [".h5", ".tif", ".npy"])
def test_writer_exception_keeps_old_movie(tmp_path, suffix):
    target = tmp_path / f"movie{suffix}"
    old = np.full((3, 8, 8, 1), 7, np.uint16)
    with open_movie_writer(target, (8, 8), 1, "uint16") as writer:
        writer.write(old)
    with pytest.raises(Boom), open_movie_writer(target, (8, 8), 1, "uint16") as writer:
        writer.write(np.zeros((5, 8, 8, 1), np.uint16))
        assert writer.temp_path.exists()
        raise Boom
    assert list(tmp_path.iterdir()) == [target]
    with open_movie(target) as reader:
        np.testing.assert_array_equal(reader.read(), old)


_SLOW_WRITER = """
import sys, time
import numpy as np
from pyflowreg.io import open_movie_writer
path = sys.argv[1]
with open_movie_writer(path, (256, 256), 2, "uint16") as writer:
    for i in range(100000):
        writer.write(np.full((4, 256, 256, 2), i % 60000, np.uint16))
        print(i, flush=True)
        time.sleep(0.005)
"""


def _start_and_kill_writer(path):
    env = os.environ.copy()  # make the package importable even without installation
    src = str(Path(pyflowreg.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        written = -1
        while written < 10:  # wait until ~10 MB of frames have been written
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"writer subprocess ended early: {proc.stderr.read()}")
            written = int(line)
            assert time.monotonic() < deadline, "writer subprocess too slow"
        temps = [p for p in path.parent.iterdir() if is_temporary_path(p)]
        assert len(temps) == 1  # the partial output exists only under a temporary name
        assert f"-{proc.pid}-" in temps[0].name
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return temps[0]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("suffix", [".h5", ".tif"])
def test_sigkill_mid_write_leaves_no_final_file(tmp_path, suffix):
    target = tmp_path / f"registered{suffix}"
    leftover = _start_and_kill_writer(target)
    assert not target.exists()
    assert leftover.exists()  # garbage only under the temporary name
    assert completed_frame_count(target) is None
    assert read_hdf5_frame_count(target) is None
    # a fresh process recognises the leftover as stale and removes it
    assert cleanup_stale_temporaries(tmp_path, min_age_seconds=3600) == []
    assert cleanup_stale_temporaries(tmp_path) == [leftover]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_mid_write_keeps_previous_file(tmp_path):
    target = tmp_path / "registered.h5"
    old = np.arange(2 * 16 * 16 * 2, dtype=np.uint16).reshape(2, 16, 16, 2)
    with open_movie_writer(target, (16, 16), 2, "uint16") as writer:
        writer.write(old)
    _start_and_kill_writer(target)
    assert read_hdf5_frame_count(target) == 2
    with open_movie(target) as reader:
        np.testing.assert_array_equal(reader.read(), old)


def test_cleanup_keeps_live_and_foreign_files(tmp_path):
    mine = tmp_path / f".out.h5.tmp-{os.getpid()}-0123abcd.h5"
    mine.write_bytes(b"being written by this process")
    dead_pid = 2**22 + 12345  # above the default Linux pid_max: never a live process
    stale = tmp_path / f".out.h5.tmp-{dead_pid}-89abcdef.h5"
    stale.write_bytes(b"left by a killed writer")
    other = tmp_path / ".hidden-user-file"
    other.write_bytes(b"not ours")
    sub = tmp_path / "sub"
    sub.mkdir()
    nested = sub / f".x.npy.tmp-{dead_pid}-00000000.npy"
    nested.write_bytes(b"stale too")
    assert cleanup_stale_temporaries(tmp_path) == [stale]
    assert cleanup_stale_temporaries(tmp_path, recursive=True) == [nested]
    assert mine.exists() and other.exists()
    assert cleanup_stale_temporaries(tmp_path, check_pid=False) == [mine]
    assert cleanup_stale_temporaries(tmp_path / "missing") == []
