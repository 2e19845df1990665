"""The workflow's side of ``scheduler`` and threads: Snakemake submits its own jobs, so 'array' is
refused; each job uses the threads it is given."""

from __future__ import annotations

import json


def test_workflow_rejects_scheduler_array_before_any_job(tmp_path, snakemake, wf,
                                                         recordings_source):
    workdir = wf.make_workdir(tmp_path / "wd", recordings_source, 2, scheduler="array")
    result = snakemake(workdir, "-n")
    assert result.returncode != 0
    assert "scheduler 'array' is for array jobs of pyflowreg-session" in result.output
    assert not (workdir / wf.ROOT / "compensated_outputs").exists()


def test_workflow_accepts_backend_params(tmp_path, snakemake, wf, recordings_source):
    workdir = wf.make_workdir(tmp_path / "wd", recordings_source, 2,
                              backend_params={"numba_threads": 1})
    assert wf.job_counts(snakemake.ok(workdir, "-n"))["compensate"] == 2


def test_a_job_uses_the_threads_it_is_given(tmp_path, snakemake, wf, recordings_source,
                                            base_run):
    """Stage 1 runs as many workers as the job's threads: by default the run's cores shared
    out over the recordings (2 cores, 3 recordings: 1 each; 1 recording: 2), or what a profile
    or --set-threads gives it."""
    status = wf.stage1_dir(base_run, "rec_00") / "status.json"
    assert json.loads(status.read_text())["numba_threads"] == 1
    workdir = wf.make_workdir(tmp_path / "wd", recordings_source, 1)
    target = wf.stage1_dir(workdir, "rec_00") / "status.json"
    snakemake.ok(workdir, str(target.relative_to(workdir)))
    assert json.loads(target.read_text())["numba_threads"] == 2
    # The target first: --set-threads takes every value that follows it.
    snakemake.ok(workdir, str(target.relative_to(workdir)), "--forcerun", "compensate",
                 "--set-threads", "compensate=1")
    assert json.loads(target.read_text())["numba_threads"] == 1
