"""Crash safety and resume of compensate_recording: SIGKILL, damaged outputs, changed inputs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from pyflowreg.io import completed_frame_count, is_temporary_path
from pyflowreg.motion_correction import OFOptions, compensate_recording, is_complete
from pyflowreg.synthetic import SyntheticRecording, write_recording

FAST = {"quality_setting": "fast", "n_workers": 2}
OUTPUT_FILES = (
    "compensated.hdf5", "idx.hdf", "temporal_average.npy", "reference.npy", "status.json"
)

# --------------------------------------------------------------------------- SIGKILL mid-run
KILL_FRAMES = 300
KILL_OPTIONS = {"quality_setting": "fast", "chunk_frames": 16, "n_workers": 1}
CHILD = textwrap.dedent(
    """
    import json, sys
    from pyflowreg.motion_correction import compensate_recording

    movie, out, log_path, options = sys.argv[1:5]

    def log(msg):
        with open(log_path, "a") as fh:
            fh.write(msg + "\\n")

    compensate_recording(json.loads(options), input_file=movie, output_path=out, log=log)
    """
)
PROGRESS = re.compile(r": (\d+)/(\d+) frames\b", re.MULTILINE)


def _read_outputs(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(folder / "compensated.hdf5", "r") as f:
        out["compensated"] = f["ch1"][:]
    with h5py.File(folder / "idx.hdf", "r") as f:
        out["idx"] = f["ch1"][:]
    out["average"] = np.load(folder / "temporal_average.npy")
    out["reference"] = np.load(folder / "reference.npy")
    return out


def _temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_temporary_path(p))


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """Start a correction in a subprocess, SIGKILL it mid-recording, then resume in-process."""
    root = tmp_path_factory.mktemp("killed")
    rec = SyntheticRecording(128, 128, KILL_FRAMES, rigid_amplitude=3.0, nonrigid_amplitude=1.0,
                             seed=5)
    movie = write_recording(rec, root / "movie.tif", dtype="uint16")
    out, log_path = root / "out", root / "child.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(movie), str(out), str(log_path),
         json.dumps(KILL_OPTIONS)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            text = log_path.read_text() if log_path.exists() else ""
            done = max((int(m.group(1)) for m in PROGRESS.finditer(text)), default=0)
            temps = list(out.glob(".compensated.hdf5.tmp-*")) if out.exists() else []
            if temps and done >= 32:
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode(errors="replace")
            pytest.fail(f"child exited ({proc.returncode}) before it was killed: {stderr[-2000:]}")
        if time.monotonic() >= deadline:
            pytest.fail("child made no progress within 120 s")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    after_kill = SimpleNamespace(
        files=sorted(p.name for p in out.iterdir()),
        temporaries=[p.name for p in _temporaries(out)],
        frames_done=done,
        returncode=proc.returncode,
    )
    messages = []
    compensate_recording(KILL_OPTIONS, input_file=movie, output_path=out, resume=True,
                         log=messages.append)
    fresh = compensate_recording(KILL_OPTIONS, input_file=movie, output_path=root / "fresh")
    return SimpleNamespace(movie=movie, out=out, fresh=fresh, after_kill=after_kill,
                           messages=messages)


def test_sigkill_leaves_no_final_outputs(killed_run):
    after = killed_run.after_kill
    assert after.returncode == -signal.SIGKILL
    assert 32 <= after.frames_done < KILL_FRAMES
    assert "compensated.hdf5" not in after.files
    assert "status.json" not in after.files
    assert any(name.startswith(".compensated.hdf5.tmp-") for name in after.temporaries)


def test_resume_after_sigkill_equals_uninterrupted_run(killed_run):
    assert is_complete(killed_run.out, killed_run.movie, OFOptions.from_dict(KILL_OPTIONS))
    assert completed_frame_count(killed_run.out / "compensated.hdf5") == KILL_FRAMES
    resumed, fresh = _read_outputs(killed_run.out), _read_outputs(killed_run.fresh)
    for name in resumed:
        assert resumed[name].shape == fresh[name].shape, name
        assert np.array_equal(resumed[name], fresh[name]), f"{name} differs from a fresh run"


def test_resume_after_sigkill_removes_stale_temporaries(killed_run):
    # The killed process can never finish its temporaries; a completed rerun must not leave
    # them behind (each is as large as the corrected movie).
    leftovers = [p.name for p in _temporaries(killed_run.out)]
    assert leftovers == [], f"stale temporaries of the killed run remain: {leftovers}"


# --------------------------------------------------------------------------- damaged / changed
@pytest.fixture
def completed(write_movie, tmp_path):
    """A small movie and a folder holding its complete correction."""
    movie, rec = write_movie("movie.tif", n_frames=40)
    out = compensate_recording(FAST, input_file=movie, output_path=tmp_path / "out")
    assert is_complete(out, movie, OFOptions.from_dict(FAST))
    return SimpleNamespace(movie=movie, rec=rec, out=out)


def _mtimes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in OUTPUT_FILES}


def test_truncated_output_is_detected_and_recomputed(completed):
    target = completed.out / "compensated.hdf5"
    reference_data = _read_outputs(completed.out)["compensated"]
    os.truncate(target, target.stat().st_size // 2)
    assert not is_complete(completed.out, completed.movie, OFOptions.from_dict(FAST))
    messages = []
    compensate_recording(FAST, input_file=completed.movie, output_path=completed.out,
                         resume=True, log=messages.append)
    assert not any("skipping" in m for m in messages)
    assert completed_frame_count(target) == 40
    with h5py.File(target, "r") as f:
        assert f["ch1"].shape == (40, 64, 64)
        np.testing.assert_array_equal(f["ch1"][:], reference_data)
    assert is_complete(completed.out, completed.movie, OFOptions.from_dict(FAST))


def test_missing_idx_output_is_recomputed(completed):
    (completed.out / "idx.hdf").unlink()
    compensate_recording(FAST, input_file=completed.movie, output_path=completed.out)
    assert completed_frame_count(completed.out / "idx.hdf") == 40


def test_resume_on_complete_folder_skips(completed):
    before = _mtimes(completed.out)
    time.sleep(0.05)
    messages = []
    compensate_recording(FAST, input_file=completed.movie, output_path=completed.out,
                         resume=True, log=messages.append)
    assert _mtimes(completed.out) == before
    assert any("skipping" in m for m in messages)


def test_resume_ignores_n_workers_change(completed):
    before = _mtimes(completed.out)
    time.sleep(0.05)
    compensate_recording({**FAST, "n_workers": 1}, input_file=completed.movie,
                         output_path=completed.out, resume=True)
    assert _mtimes(completed.out) == before


def test_resume_false_recomputes(completed):
    before = _mtimes(completed.out)
    time.sleep(0.05)
    compensate_recording(FAST, input_file=completed.movie, output_path=completed.out,
                         resume=False)
    after = _mtimes(completed.out)
    changed = [name for name in OUTPUT_FILES if after[name] != before[name]]
    assert changed == list(OUTPUT_FILES)
    assert is_complete(completed.out, completed.movie, OFOptions.from_dict(FAST))


def test_changed_options_recompute(completed):
    before = _mtimes(completed.out)
    time.sleep(0.05)
    options = {**FAST, "quality_setting": "balanced"}
    compensate_recording(options, input_file=completed.movie, output_path=completed.out)
    assert _mtimes(completed.out)["compensated.hdf5"] != before["compensated.hdf5"]
    status = json.loads((completed.out / "status.json").read_text())
    assert status["options"]["quality_setting"] == "balanced"
    assert is_complete(completed.out, completed.movie, OFOptions.from_dict(options))
    assert not is_complete(completed.out, completed.movie, OFOptions.from_dict(FAST))


def test_changed_input_content_recomputes(completed):
    old = _read_outputs(completed.out)
    old_size = completed.movie.stat().st_size
    time.sleep(0.05)
    other = SyntheticRecording(64, 64, 40, rigid_amplitude=3.0, nonrigid_amplitude=1.0, seed=99)
    write_recording(other, completed.movie, dtype="uint16")  # same name, shape and dtype
    assert completed.movie.stat().st_size == old_size
    messages = []
    compensate_recording(FAST, input_file=completed.movie, output_path=completed.out,
                         log=messages.append)
    assert not any("skipping" in m for m in messages)
    new = _read_outputs(completed.out)
    assert not np.array_equal(new["compensated"], old["compensated"])
    fresh = compensate_recording(FAST, input_file=completed.movie,
                                 output_path=completed.out.parent / "fresh")
    np.testing.assert_array_equal(new["compensated"], _read_outputs(fresh)["compensated"])


def test_stale_status_from_other_input_is_not_trusted(completed, write_movie, tmp_path):
    other_movie, _ = write_movie("other.tif", n_frames=40, seed=3)
    assert not is_complete(completed.out, other_movie, OFOptions.from_dict(FAST))
    compensate_recording(FAST, input_file=other_movie, output_path=completed.out)
    assert is_complete(completed.out, other_movie, OFOptions.from_dict(FAST))
    assert not is_complete(completed.out, completed.movie, OFOptions.from_dict(FAST))
