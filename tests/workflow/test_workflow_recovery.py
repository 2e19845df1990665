"""Failure handling: a SIGKILLed run recovers with the command of docs/recovery.md,
--rerun-incomplete (its stale lock is removed, no --unlock needed); --keep-going with one corrupt
recording finishes the others and names the bad file."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.slow  # full snakemake runs

STARTUP_TIMEOUT = 120


def _stage1_in_progress(workdir) -> bool:
    """A compensate job has written its outputs and snakemake still has jobs in flight."""
    done = list((workdir / "data" / "compensated_outputs").glob("*/status.json"))
    incomplete = workdir / ".snakemake" / "incomplete"
    return bool(done) and incomplete.is_dir() and any(incomplete.iterdir())


@pytest.fixture(scope="module")
def killed_workdir(tmp_path_factory, snakemake, wf, recordings_source):
    """A workdir whose full run was SIGKILLed (whole process group) during Stage 1, right
    after the first compensate job wrote its outputs."""
    workdir = wf.make_workdir(tmp_path_factory.mktemp("killed") / "wd", recordings_source,
                              wf.N_BASE)
    proc = snakemake.popen(workdir)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _stage1_in_progress(workdir):
            assert proc.poll() is None, (workdir / "killed_run.log").read_text()
            assert time.monotonic() < deadline, "no compensate job finished in time"
            time.sleep(0.005)
    finally:
        snakemake.kill(proc)
    assert proc.returncode == -9
    final = wf.final_dir(workdir) / "final_valid_idx.npz"
    assert not final.exists(), "the run finished before it was killed; nothing to recover"
    return workdir


def test_killed_run_leaves_incomplete_markers_and_lock(killed_workdir):
    assert any((killed_workdir / ".snakemake" / "incomplete").iterdir())
    assert any((killed_workdir / ".snakemake" / "locks").iterdir())
    assert (killed_workdir / "logs" / "compensate").is_dir()


def test_killed_run_recovers_with_rerun_incomplete(killed_workdir, snakemake, wf, base_run,
                                                   tmp_path):
    workdir = wf.clone(killed_workdir, tmp_path / "wd")
    result = snakemake.ok(workdir, "--rerun-incomplete")
    assert "removed a stale lock" in result.output, result.describe()
    jobs = wf.planned_jobs(result)
    assert ("session_mask", None) in jobs
    assert any(rule == "compensate" for rule, _ in jobs), result.describe()
    again = snakemake.ok(workdir, "-n")
    assert wf.planned_jobs(again) == set(), again.describe()

    # identical to an uninterrupted run on the same recordings and config
    resumed, reference = wf.load_final_mask(workdir), wf.load_final_mask(base_run)
    assert resumed.keys() == reference.keys()
    for key in reference:
        if reference[key].dtype.kind in "biuf":
            np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)
    for i in range(wf.N_BASE):
        name = f"aligned_{wf.rec_name(i)}.tif"
        np.testing.assert_array_equal(
            tifffile.imread(wf.final_dir(workdir) / name),
            tifffile.imread(wf.final_dir(base_run) / name), err_msg=name,
        )


def test_killed_run_without_rerun_incomplete_never_trusts_partial_outputs(
    killed_workdir, snakemake, wf, tmp_path
):
    """After the kill, a plain dry-run either refuses (IncompleteFilesException, pointing at
    --rerun-incomplete) or plans the unfinished compensate jobs again; it never skips them."""
    workdir = wf.clone(killed_workdir, tmp_path / "wd")
    result = snakemake(workdir, "-n")
    if result.returncode != 0:
        assert "IncompleteFilesException" in result.output, result.describe()
        assert "--rerun-incomplete" in result.output
    else:
        assert any(rule == "compensate" for rule, _ in wf.planned_jobs(result)), result.describe()


@pytest.fixture(scope="module")
def corrupt_run(tmp_path_factory, snakemake, wf, recordings_source):
    """(workdir, result) of a --keep-going run whose rec_01.tif is random bytes."""
    workdir = wf.make_workdir(tmp_path_factory.mktemp("corrupt") / "wd", recordings_source,
                              wf.N_BASE)
    bad = workdir / wf.ROOT / "rec_01.tif"
    size = bad.stat().st_size
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return workdir, snakemake(workdir, "--keep-going")


def test_keep_going_finishes_the_other_recordings(corrupt_run, wf):
    workdir, result = corrupt_run
    for rec in ("rec_00", "rec_02"):
        for name in wf.STAGE1_FILES:
            assert (wf.stage1_dir(workdir, rec) / name).is_file(), (rec, name, result.describe())
    assert not (wf.stage1_dir(workdir, "rec_01") / "compensated.hdf5").exists()
    assert not (wf.final_dir(workdir) / "final_valid_idx.npz").exists()


def test_keep_going_exits_nonzero(corrupt_run):
    _, result = corrupt_run
    assert result.returncode != 0, result.describe()
    assert "Error in rule compensate" in result.output


def test_keep_going_error_names_the_corrupt_file(corrupt_run):
    workdir, result = corrupt_run
    log = (workdir / "logs" / "compensate" / "rec_01.log").read_text()
    assert "rec_01.tif" in log
    assert "not a readable TIFF" in log or "TIFF" in log
    # snakemake's own report points at the failing job: its input and its log
    assert "data/rec_01.tif" in result.output
    assert "logs/compensate/rec_01.log" in result.output


def test_rerun_after_fixing_the_bad_recording_computes_only_what_is_missing(
    corrupt_run, snakemake, wf, recordings_source, tmp_path
):
    workdir = wf.clone(corrupt_run[0], tmp_path / "wd")
    shutil.copy2(recordings_source / "rec_01.tif", workdir / wf.ROOT / "rec_01.tif")
    result = snakemake.ok(workdir, "--keep-going")
    counts = wf.job_counts(result)
    # Stage 1 of rec_00 and rec_02 is reused; rec_01 (the center) and what follows it run
    assert counts["compensate"] == 1, result.describe()
    assert ("compensate", "rec_01") in wf.planned_jobs(result)
    assert (wf.final_dir(workdir) / "final_valid_idx.npz").is_file()
