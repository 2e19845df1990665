"""The built-in demo: a demo_session job writes the recordings, then the three stages run."""

from __future__ import annotations

import json
import time

import pytest
import yaml

pytestmark = pytest.mark.slow  # full snakemake runs

DEMO_ROOT = "demo_data"  # conftest.DEMO_CONFIG
N_DEMO = 3


def readme_demo_config(wf):
    """The tests' small demo with the exports and metadata of the README's demo
    (config/config.yaml), so the NWB file checked here is the one the README's demo writes."""
    readme_demo = yaml.safe_load((wf.REPO / "config" / "config.yaml").read_text())["demo"]
    return dict(wf.DEMO_CONFIG, demo=dict(wf.DEMO_CONFIG["demo"], export=readme_demo["export"],
                                          metadata=readme_demo["metadata"]))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, snakemake, wf):
    """(workdir, result) of a full run of the demo config into a root that does not exist."""
    workdir = tmp_path_factory.mktemp("demo")
    wf.write_config(workdir, readme_demo_config(wf))
    assert wf.DEMO_CONFIG["root"] == DEMO_ROOT
    assert wf.DEMO_CONFIG["demo"]["n_recordings"] == N_DEMO
    assert not (workdir / DEMO_ROOT).exists()
    return workdir, snakemake(workdir)


def test_demo_full_run_exits_zero_and_runs_every_job(demo_run, wf):
    _, result = demo_run
    assert result.returncode == 0, result.describe()
    counts = wf.job_counts(result)
    assert counts == {
        "demo_session": 1, "compensate": N_DEMO, "align_recording": N_DEMO,
        "aligned_video": N_DEMO, "session_mask": 1, "export_nwb": 1, "export_suite2p": 1,
        "all": 1,
    }
    assert "Exiting because a job execution failed" not in result.output


def test_demo_full_run_writes_every_output(demo_run, wf):
    workdir, result = demo_run
    assert result.returncode == 0, result.describe()
    root = workdir / DEMO_ROOT
    final = root / "final_results"
    missing = [
        str(p.relative_to(workdir))
        for p in [
            root / ".flowreg_demo",
            *(root / f"{wf.rec_name(i)}.tif" for i in range(N_DEMO)),
            *(final / f"final_valid_idx.{ext}" for ext in ("png", "npz", "mat")),
            final / "session.nwb",
            final / "suite2p" / "plane0" / "data.bin",
            final / "suite2p" / "plane0" / "ops.npy",
            *(final / f"aligned_{wf.rec_name(i)}.tif" for i in range(N_DEMO)),
            *(final / f"{wf.rec_name(i)}_valid_idx.png" for i in range(N_DEMO)),
            *(final / f"{wf.rec_name(i)}_valid_idx_aligned.png" for i in range(N_DEMO)),
            *(
                root / "compensated_outputs" / wf.rec_name(i) / name
                for i in range(N_DEMO)
                # every per-recording file of the README's Outputs table (w.hdf5 is opt-in)
                for name in ("compensated.hdf5", "idx.hdf", "temporal_average.npy",
                             "reference.npy", "status.json", "w_to_reference.npz",
                             "w_to_reference.json")
            ),
        ]
        if not p.is_file() or p.stat().st_size == 0
    ]
    assert not missing, f"missing or empty outputs: {missing}"
    assert "demo_session" in (root / ".flowreg_demo").read_text()
    for rule in ("compensate", "align_recording", "aligned_video"):
        assert (workdir / "logs" / rule / f"{wf.rec_name(0)}.log").is_file()
        # Snakemake's per-rule timings sit under logs/, apart from the benchmarks/ scripts.
        assert (workdir / "logs" / "benchmarks" / rule / f"{wf.rec_name(0)}.tsv").is_file()
    assert (workdir / "logs" / "demo_session.log").is_file()
    assert not (workdir / "benchmarks").exists() and not (workdir / "benchmarks_snakemake").exists()
    # The center is named by its stem, as the CLI and the API name it.
    for i in range(N_DEMO):
        info = root / "compensated_outputs" / wf.rec_name(i) / "w_to_reference.json"
        assert json.loads(info.read_text())["provenance"]["center"] == "rec_01"


def test_demo_nwb_file_passes_nwbinspector(demo_run):
    nwbinspector = pytest.importorskip("nwbinspector")
    workdir, result = demo_run
    assert result.returncode == 0, result.describe()
    messages = list(nwbinspector.inspect_nwbfile(
        nwbfile_path=str(workdir / DEMO_ROOT / "final_results" / "session.nwb")))
    assert messages, "nwbinspector ran no check"
    serious = [m for m in messages if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION")
               # Its heuristic wants time to be the longest axis; the demo's recordings (8
               # frames of 48 x 48) are shorter than wide, while the series keep the schema's
               # (frame, x, y) order, which is right.
               and m.check_function_name != "check_data_orientation"]
    assert serious == [], [(m.check_function_name, m.object_name, m.message) for m in serious]


def test_demo_second_invocation_has_nothing_to_do(demo_run, snakemake, wf):
    workdir, result = demo_run
    assert result.returncode == 0, result.describe()
    again = snakemake.ok(workdir)
    assert "Nothing to be done" in again.output, again.describe()
    assert wf.job_counts(again) == {}
    assert wf.planned_jobs(again) == set()


def test_demo_dry_run_from_scratch_plans_demo_session(tmp_path, snakemake, wf):
    wf.write_config(tmp_path, wf.DEMO_CONFIG)
    result = snakemake.ok(tmp_path, "-n")
    assert wf.job_counts(result)["demo_session"] == 1
    assert not (tmp_path / DEMO_ROOT).exists(), "a dry-run must not write the demo session"


def test_demo_killed_while_writing_recovers_with_rerun_incomplete(tmp_path, snakemake, wf):
    """SIGKILL while demo_session writes the recordings, then `--unlock` and
    `--rerun-incomplete`: the partly written demo folder must not be mistaken for foreign data
    (today the marker is written last, so the workflow refuses to even parse)."""
    config = dict(wf.DEMO_CONFIG, demo=dict(wf.DEMO_CONFIG["demo"], height=96, width=96,
                                             frames=40))
    wf.write_config(tmp_path, config)
    root = tmp_path / DEMO_ROOT
    proc = snakemake.popen(tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (root / "rec_00.tif").exists():
            assert proc.poll() is None, (tmp_path / "killed_run.log").read_text()
            assert time.monotonic() < deadline, "demo_session never started writing"
            time.sleep(0.002)
    finally:
        snakemake.kill(proc)
    if (root / "ground_truth.npz").exists():  # write_session's last file
        pytest.skip("demo_session finished writing before the kill; nothing to recover")
    snakemake.ok(tmp_path, "--unlock")
    result = snakemake(tmp_path, "-n", "--rerun-incomplete")
    assert result.returncode == 0, result.describe()
    assert wf.job_counts(result)["demo_session"] == 1
