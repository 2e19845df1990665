"""A session whose recordings are made of many files gives the results of one file each.

The tiny session's recordings are split into numbered trial files (a recordings sheet), a
folder of frames and ScanImage split files; every Stage 1-3 output equals that of the same
frames given as one TIFF per recording, and resume notices a change to any one file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from pyflowreg.io import open_movie
from pyflowreg.io.recording import MovieSource
from pyflowreg.session import SessionConfig, run_stage1, run_stage2, run_stage3
from pyflowreg.session.config import ConfigError

FAST = {"quality_setting": "fast", "n_workers": 2}
RECORDINGS = ("rec_00.tif", "rec_01.tif", "rec_02.tif")  # the tiny session of conftest.py


def _run_all(config):
    run_stage1(config, log=lambda message: None)
    run_stage2(config)
    run_stage3(config)


def _imwrite(path, frames):
    tifffile.imwrite(path, frames, photometric="minisblack")


def _split_session(source_folder, dest):
    """rec_00 as three trial files (sheet), rec_01 as a folder of one file per frame, rec_02
    as ScanImage split files found by the pattern-free sheet row of a glob."""
    dest.mkdir()
    frames = [tifffile.imread(source_folder / name) for name in RECORDINGS]
    (dest / "trials").mkdir()
    for k, (a, b) in enumerate([(0, 3), (3, 4), (4, 8)], start=1):
        _imwrite(dest / "trials" / f"rec_00_trial{k}.tif", frames[0][a:b])
    (dest / "frames").mkdir()
    for t, frame in enumerate(frames[1], start=1):
        _imwrite(dest / "frames" / f"img_{t}.tif", frame)
    for k, (a, b) in enumerate([(0, 5), (5, 8)], start=1):
        _imwrite(dest / f"rec_02_part{k}.tif", frames[2][a:b])
    (dest / "session.tsv").write_text(
        "recording\tpath\n"
        "rec_00\ttrials/rec_00_trial1.tif\n"
        "rec_00\ttrials/rec_00_trial2.tif\n"
        "rec_00\ttrials/rec_00_trial3.tif\n"
        "rec_01\tframes\n"
        "rec_02\trec_02_part*.tif\n"
    )
    return dest


@pytest.fixture(scope="module")
def sessions(small_session_source, tmp_path_factory):
    """(whole, split) configs, both run through Stages 1-3."""
    source_folder = small_session_source[0]
    whole_root = tmp_path_factory.mktemp("whole")
    for name in RECORDINGS:
        _imwrite(whole_root / name, tifffile.imread(source_folder / name))
    split_root = _split_session(source_folder, tmp_path_factory.mktemp("split") / "data")
    whole = SessionConfig(root=whole_root, **FAST)
    split = SessionConfig(root=split_root, recordings="session.tsv", **FAST)
    for config in (whole, split):
        _run_all(config)
    return whole, split


def test_sheet_recordings_are_sources_named_by_the_sheet(sessions):
    _, split = sessions
    recordings = split.discover_input_files()
    assert [r.stem for r in recordings] == ["rec_00", "rec_01", "rec_02"]
    assert all(isinstance(r, MovieSource) for r in recordings)
    assert [len(r.files) for r in recordings] == [3, 8, 2]


def test_split_recordings_give_the_results_of_whole_files(sessions):
    whole, split = sessions
    for stem in ("rec_00", "rec_01", "rec_02"):
        for name in ("compensated.hdf5", "idx.hdf"):
            with open_movie(whole.output_root_path / stem / name) as a, \
                    open_movie(split.output_root_path / stem / name) as b:
                np.testing.assert_array_equal(a.read(), b.read())
        a = tifffile.imread(whole.final_results_path / f"aligned_{stem}.tif")
        b = tifffile.imread(split.final_results_path / f"aligned_{stem}.tif")
        np.testing.assert_array_equal(a, b)
    masks = [np.load(c.final_results_path / "final_valid_idx.npz")["final_valid"]
             for c in (whole, split)]
    np.testing.assert_array_equal(*masks)


def test_status_fingerprints_every_file(sessions):
    _, split = sessions
    status = json.loads((split.output_root_path / "rec_00" / "status.json").read_text())
    assert [f["name"] for f in status["input"]["files"]] == [
        f"rec_00_trial{k}.tif" for k in (1, 2, 3)]


def test_editing_one_file_reruns_that_recording_only(sessions, tmp_path):
    _, split = sessions
    import shutil

    root = tmp_path / "data"
    shutil.copytree(split.root_path, root)
    config = SessionConfig(root=root, recordings="session.tsv", **FAST)
    messages = []
    run_stage1(config, log=messages.append)
    assert sum("skipping" in m for m in messages) == 3, messages  # moved, same bytes: resumes
    trial = root / "trials" / "rec_00_trial2.tif"
    frames = tifffile.imread(trial)
    frames[..., :2, :2] += 1
    _imwrite(trial, frames)
    messages.clear()
    run_stage1(config, log=messages.append)
    skipped = {m.split(":")[0] for m in messages if "skipping" in m}
    assert skipped == {"rec_01 (8 files)", "rec_02 (2 files)"}, messages
    assert any(m.startswith("rec_00 (3 files): done") for m in messages)


def test_a_file_in_two_recordings_is_a_config_error_before_any_output(sessions, tmp_path):
    _, split = sessions
    sheet = split.root_path / "twice.tsv"
    sheet.write_text("recording\tpath\na\trec_02_part1.tif\nb\trec_02_part1.tif\n")
    config = SessionConfig(root=split.root_path, recordings="twice.tsv",
                           output_root=tmp_path / "out", **FAST)
    with pytest.raises(ConfigError, match=r"rec_02_part1\.tif is listed in recordings 'a' and "
                                          r"'b'"):
        run_stage1(config)
    assert not (tmp_path / "out").exists()
