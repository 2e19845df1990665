"""segment_frames: one recording as a preparation job, segment jobs and a join, resumed per job."""

from __future__ import annotations

import pytest

from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.synthetic import SyntheticRecording, write_recording

N_FRAMES = 70  # segments of 32: 32 + 32 + 6 frames
SEGMENT_RULES = ("prepare_segments", "compensate_segment", "compensate")


@pytest.fixture(scope="module")
def split_run(tmp_path_factory, snakemake, wf):
    """A workdir whose recording was planned by the workflow and corrected in segments.

    The segments are written by the library call the rules make (the same files); running
    them through Snakemake, and through a scheduler, is what CI's segments check does.
    """
    workdir = tmp_path_factory.mktemp("segments") / "wd"
    (workdir / wf.ROOT).mkdir(parents=True)
    rec = SyntheticRecording(*wf.SHAPE, N_FRAMES, seed=5, rigid_amplitude=2.0,
                             nonrigid_amplitude=0.5)
    write_recording(rec, workdir / wf.ROOT / "rec_00.tif", dtype="uint16")
    wf.write_config(workdir, segment_frames=32)
    planned = snakemake.ok(workdir, "-n")
    config = SessionConfig.from_yaml(workdir / "config.yaml")
    config.root = workdir / wf.ROOT
    run_stage1(config)
    return workdir, planned


def _stage1_counts(result, wf) -> dict:
    counts = wf.job_counts(result)
    return {rule: counts.get(rule, 0) for rule in SEGMENT_RULES}


def test_a_split_recording_plans_one_job_per_segment(split_run, wf):
    _, planned = split_run
    assert _stage1_counts(planned, wf) == {"prepare_segments": 1, "compensate_segment": 3,
                                           "compensate": 1}
    assert wf.job_counts(planned)["session_mask"] == 1


def test_a_split_recording_with_its_segments_is_up_to_date(split_run, wf, snakemake):
    workdir, _ = split_run
    plan = snakemake.ok(workdir, "-n")
    assert _stage1_counts(plan, wf) == {"prepare_segments": 0, "compensate_segment": 0,
                                        "compensate": 0}


def test_a_lost_segment_reruns_alone_and_an_edited_input_reruns_all(split_run, wf, tmp_path,
                                                                    snakemake):
    workdir = wf.clone(split_run[0], tmp_path / "wd")
    folder = wf.stage1_dir(workdir, "rec_00")
    # What a run killed while segment 1 was running leaves: segments 0 and 2 done, segment 1
    # without its status (written last), no join yet.
    (folder / "segments" / "seg_0001.json").unlink()
    for name in wf.STAGE1_FILES:
        (folder / name).unlink()
    plan = snakemake.ok(workdir, "-n")
    assert _stage1_counts(plan, wf) == {"prepare_segments": 0, "compensate_segment": 1,
                                        "compensate": 1}
    assert ("compensate_segment", "rec_00") in wf.planned_jobs(plan)

    wf.rewrite_recording(workdir / wf.ROOT / "rec_00.tif")
    plan = snakemake.ok(workdir, "-n")
    assert _stage1_counts(plan, wf) == {"prepare_segments": 1, "compensate_segment": 3,
                                        "compensate": 1}
