"""Resuming from Snakemake's file metadata: exactly the affected jobs rerun.

Each test copies the workdir of one complete run (``base_run``: rec_00..rec_02, center rec_01)
including ``.snakemake/``, changes one thing and checks the jobs snakemake schedules.

The runs here use every default rerun trigger except ``code``: these tests are about the data,
the params and the input lists, and the repository's scripts may be edited while the suite runs
(which would, correctly, rerun everything).
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # full snakemake runs

RECS = ("rec_00", "rec_01", "rec_02")
CENTER = "rec_01"
TRIGGERS = ("--rerun-triggers", "mtime", "params", "input", "software-env")


@pytest.fixture
def copy_of_base(base_run, tmp_path, wf):
    return wf.clone(base_run, tmp_path / "wd")


def dry_run_jobs(snakemake, wf, workdir):
    result = snakemake.ok(workdir, "-n", *TRIGGERS)
    return wf.planned_jobs(result), result


def test_copied_workdir_is_up_to_date(copy_of_base, snakemake, wf):
    jobs, result = dry_run_jobs(snakemake, wf, copy_of_base)
    assert jobs == set(), result.describe()
    assert "Nothing to be done" in result.output


def test_changed_recording_content_reruns_it_and_downstream_only(copy_of_base, snakemake, wf):
    """New data in a non-center recording: its 4 jobs, then session_mask; nothing else."""
    workdir = copy_of_base
    untouched = {
        rec: (wf.stage1_dir(workdir, rec) / "compensated.hdf5").stat().st_mtime_ns
        for rec in ("rec_00", "rec_01")
    }
    wf.rewrite_recording(workdir / wf.ROOT / "rec_02.tif")
    expected = wf.jobs_for(["rec_02"]) | wf.FINAL_JOBS

    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == expected, result.describe()

    average = wf.stage1_dir(workdir, "rec_02") / "temporal_average.npy"
    old_average = np.load(average)
    ran = snakemake.ok(workdir, *TRIGGERS)
    assert wf.planned_jobs(ran) == expected, ran.describe()
    for rec, mtime in untouched.items():
        assert (wf.stage1_dir(workdir, rec) / "compensated.hdf5").stat().st_mtime_ns == mtime
    assert not np.array_equal(np.load(average), old_average), "rec_02 was not recomputed"
    again = snakemake.ok(workdir, "-n", *TRIGGERS)
    assert wf.planned_jobs(again) == set(), again.describe()


def test_changed_center_content_realigns_every_recording(copy_of_base, snakemake, wf):
    """New data in the center: its compensate, every align_recording and aligned_video job."""
    workdir = copy_of_base
    wf.rewrite_recording(workdir / wf.ROOT / f"{CENTER}.tif")
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == (
        {("compensate", CENTER)}
        | wf.jobs_for(RECS, ("align_recording", "aligned_video"))
        | wf.FINAL_JOBS
    ), result.describe()


def test_touch_without_new_content_reruns_nothing(copy_of_base, snakemake, wf):
    """A newer mtime with the same bytes is not a change: Snakemake compares the checksums it
    stored for small inputs, so the content-change test above must really rewrite the data."""
    workdir = copy_of_base
    later = time.time() + 5
    os.utime(workdir / wf.ROOT / "rec_02.tif", (later, later))
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == set(), result.describe()


def test_added_recording_runs_its_jobs_and_session_mask(
    copy_of_base, snakemake, wf, recordings_source
):
    """rec_03 added: the center stays rec_01 (ceil(4/2)-th), so only the new recording's jobs
    and session_mask (its input list grew) run."""
    workdir = copy_of_base
    shutil.copy2(recordings_source / "rec_03.tif", workdir / wf.ROOT / "rec_03.tif")
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == wf.jobs_for(["rec_03"]) | wf.FINAL_JOBS, result.describe()


def test_removed_recording_keeping_center_reruns_session_mask_only(copy_of_base, snakemake, wf):
    """rec_00 removed: rec_01 is still the center (ceil(2/2)-th of rec_01, rec_02); only
    session_mask (fewer inputs, new middle_idx) and the target rule run."""
    workdir = copy_of_base
    (workdir / wf.ROOT / "rec_00.tif").unlink()
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == wf.FINAL_JOBS, result.describe()


def test_removed_recording_moving_center_realigns_without_compensate(copy_of_base, snakemake, wf):
    """rec_02 removed: the center moves to rec_00 (ceil(2/2)-th of rec_00, rec_01), so both
    remaining recordings are re-aligned (Stage 2 + 3) but none is motion-corrected again."""
    workdir = copy_of_base
    (workdir / wf.ROOT / "rec_02.tif").unlink()
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == (
        wf.jobs_for(["rec_00", "rec_01"], ("align_recording", "aligned_video"))
        | wf.FINAL_JOBS
    ), result.describe()


def test_removed_recording_end_to_end(copy_of_base, snakemake, wf, base_run):
    """Running after a removal completes, and the new bundle covers only the remaining two."""
    workdir = copy_of_base
    (workdir / wf.ROOT / "rec_00.tif").unlink()
    ran = snakemake.ok(workdir, *TRIGGERS)
    assert wf.planned_jobs(ran) == wf.FINAL_JOBS, ran.describe()
    before, after = wf.load_final_mask(base_run), wf.load_final_mask(workdir)
    assert before["per_seq_valid_masks"].shape[0] == 3
    assert after["per_seq_valid_masks"].shape[0] == 2
    assert after["aligned_valid_masks"].shape[0] == 2
    assert int(after["middle_idx"]) == 0  # rec_01, the center, is now the first recording
    assert not any("rec_00" in str(p) for p in after["compensated_h5_paths"])
    assert after["final_valid"].shape == before["final_valid"].shape


def test_stage2_parameter_change_reruns_align_recording_and_downstream(copy_of_base, snakemake, wf):
    workdir = copy_of_base
    wf.write_config(workdir, wf.read_config(workdir), alpha_between=10.0)
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == (
        wf.jobs_for(RECS, ("align_recording", "aligned_video")) | wf.FINAL_JOBS
    ), result.describe()
    assert "params have changed" in result.output


def test_stage1_flow_option_change_reruns_compensate(copy_of_base, snakemake, wf):
    workdir = copy_of_base
    wf.write_config(workdir, wf.read_config(workdir), flow_options={"alpha": 2.0})
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == wf.jobs_for(RECS) | wf.FINAL_JOBS, result.describe()


def test_stage1_quality_setting_change_reruns_compensate(copy_of_base, snakemake, wf):
    workdir = copy_of_base
    wf.write_config(workdir, wf.read_config(workdir), quality_setting="balanced")
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == wf.jobs_for(RECS) | wf.FINAL_JOBS, result.describe()


def test_align_chunk_size_change_reruns_aligned_video_only(copy_of_base, snakemake, wf):
    workdir = copy_of_base
    wf.write_config(workdir, wf.read_config(workdir), align_chunk_size=4)
    jobs, result = dry_run_jobs(snakemake, wf, workdir)
    assert jobs == wf.jobs_for(RECS, ("aligned_video",)) | {("all", None)}, result.describe()
