"""Array tasks over (recording, segment) pairs give the outputs of the unsplit Stage 1."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1, run_stage1_array, stage1_tasks
from pyflowreg.synthetic import make_session, write_session

N_FRAMES = 70  # three segments of 32 per recording
FAST = {"quality_setting": "fast", "n_workers": 2}


@pytest.fixture(scope="module")
def session_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("segmented_session")
    write_session(make_session(2, 48, 48, N_FRAMES, seed=2), root, ground_truth_flows=False)
    return root


def _movie(folder, name="compensated.hdf5"):
    with h5py.File(folder / name, "r") as f:
        return f["ch1"][:]


def test_array_tasks_in_any_order_give_the_unsplit_outputs(session_root, tmp_path):
    unsplit = SessionConfig(root=session_root, output_root=tmp_path / "unsplit", **FAST)
    split = SessionConfig(root=session_root, output_root=tmp_path / "split", segment_frames=32,
                          **FAST)
    tasks = stage1_tasks(split)
    assert [(path.name, segment) for path, segment in tasks] == [
        ("rec_00.tif", 0), ("rec_00.tif", 1), ("rec_00.tif", 2),
        ("rec_01.tif", 0), ("rec_01.tif", 1), ("rec_01.tif", 2)]
    assert len(stage1_tasks(unsplit)) == 2
    # The tasks of a scheduler's array start in any order; the last of a recording joins it.
    for task_id in (5, 2, 6, 1, 3):
        run_stage1_array(split, task_id)
    assert (split.output_root_path / "rec_00" / "status.json").is_file()
    assert not (split.output_root_path / "rec_01" / "status.json").exists()
    run_stage1_array(split, 4)
    run_stage1(unsplit)
    for rec in ("rec_00", "rec_01"):
        for name in ("compensated.hdf5", "idx.hdf"):
            np.testing.assert_array_equal(_movie(split.output_root_path / rec, name),
                                          _movie(unsplit.output_root_path / rec, name))


def test_cli_prints_the_array_size(session_root, tmp_path, run_cli, write_toml):
    config = write_toml(tmp_path / "session.toml",
                        dict(root=str(session_root), segment_frames=32, **FAST))
    result = run_cli(config, "--array-tasks")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6"
    assert not (session_root / "compensated_outputs").exists()
