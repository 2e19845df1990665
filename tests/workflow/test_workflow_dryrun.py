"""`snakemake -n`: one job per recording and rule, one session_mask, for 1, 2 and 4 recordings."""

from __future__ import annotations

import pytest


def expected_counts(n: int, demo: bool) -> dict[str, int]:
    counts = {rule: n for rule in ("compensate", "align_recording", "aligned_video")}
    counts.update(session_mask=1, all=1)
    if demo:
        counts["demo_session"] = 1
    return counts


@pytest.mark.parametrize("n", [1, 2, 4])
def test_dry_run_job_counts_for_n_recordings(n, tmp_path, snakemake, wf, recordings_source):
    workdir = wf.make_workdir(tmp_path / "wd", recordings_source, n)
    result = snakemake.ok(workdir, "-n")
    assert wf.job_counts(result) == expected_counts(n, demo=False)
    recs = [wf.rec_name(i) for i in range(n)]
    assert wf.planned_jobs(result) == wf.jobs_for(recs) | wf.FINAL_JOBS
    assert not (workdir / "logs").exists(), "a dry-run must not run jobs"
    assert not (workdir / wf.ROOT / "compensated_outputs").exists()


@pytest.mark.parametrize("n", [1, 2, 4])
def test_dry_run_job_counts_for_n_demo_recordings(n, tmp_path, snakemake, wf):
    config = dict(wf.DEMO_CONFIG, demo=dict(wf.DEMO_CONFIG["demo"], n_recordings=n))
    wf.write_config(tmp_path, config)
    result = snakemake.ok(tmp_path, "-n")
    assert wf.job_counts(result) == expected_counts(n, demo=True)
    recs = [wf.rec_name(i) for i in range(n)]
    assert wf.planned_jobs(result) == (
        wf.jobs_for(recs) | wf.FINAL_JOBS | {("demo_session", None)}
    )
    assert not (tmp_path / config["root"]).exists()


def test_dry_run_quiet_summary_matches(tmp_path, snakemake, wf, recordings_source):
    """`--dry-run --quiet rules` prints only the summary table, with the same counts."""
    workdir = wf.make_workdir(tmp_path / "wd", recordings_source, 2)
    result = snakemake.ok(workdir, "--dry-run", "--quiet", "rules")
    assert wf.job_counts(result) == expected_counts(2, demo=False)
    assert wf.planned_jobs(result) == set(), "--quiet should not list the individual jobs"


def test_dry_run_plans_the_exports_after_the_session_mask(tmp_path, snakemake, wf,
                                                           recordings_source):
    workdir = wf.make_workdir(
        tmp_path / "wd", recordings_source, 2, export=["nwb", "suite2p"],
        metadata={"session_start_time": "2026-03-01T10:00:00+01:00", "imaging_rate": 30.0})
    result = snakemake.ok(workdir, "-n")
    assert wf.job_counts(result) == dict(expected_counts(2, demo=False), export_nwb=1,
                                         export_suite2p=1)
    # An NWB file needs a start time: without one the run stops before any job, naming it.
    wf.write_config(workdir, export=["nwb"], metadata={"imaging_rate": 30.0})
    refused = snakemake(workdir, "-n")
    assert refused.returncode != 0
    assert "session_start_time" in refused.output, refused.describe()
    assert not (workdir / "logs").exists()
