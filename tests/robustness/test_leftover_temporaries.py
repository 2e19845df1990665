"""A writer killed mid-write leaves a hidden temporary; the next write of that output removes it.

Found by ``benchmarks/fault_injection.py``: a Stage 3 file (an aligned video, the session
bundle) killed mid-write left ``.<name>.tmp-<pid>-<token><suffix>`` in ``final_results`` after
a successful recovery. Stage 1 cleans its own folder; Stage 3 shares one folder between jobs, so
only temporaries of the very output being written, by a process that no longer runs, may go.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from pyflowreg.io import atomic_save_npz, is_temporary_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_rewriting_an_output_removes_its_killed_writers_temporary(tmp_path):
    dead = _dead_pid()
    own_leftover = tmp_path / f".final_valid_idx.npz.tmp-{dead}-0c916afa.npz"
    own_leftover.write_bytes(b"half of a zip file")
    other_output = tmp_path / f".aligned_rec_01.tif.tmp-{dead}-4301c9a2.tif"
    other_output.write_bytes(b"another job's business")
    live_writer = tmp_path / ".final_valid_idx.npz.tmp-1-deadbeef.npz"  # pid 1 always runs
    live_writer.write_bytes(b"still being written")

    atomic_save_npz(tmp_path / "final_valid_idx.npz", mask=np.ones((4, 4), bool))

    assert not own_leftover.exists()
    assert other_output.exists() and live_writer.exists()
    assert is_temporary_path(other_output)
    with np.load(tmp_path / "final_valid_idx.npz") as npz:
        assert npz["mask"].all()
