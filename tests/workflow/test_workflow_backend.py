"""The workflow's side of ``scheduler``: Snakemake submits its own jobs, so 'array' is refused."""

from __future__ import annotations


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
