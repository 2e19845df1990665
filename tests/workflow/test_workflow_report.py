"""Quality control through the workflow: QC files, ``snakemake --report``, exclude_misaligned."""

from __future__ import annotations

import json

from pyflowreg.synthetic import SyntheticRecording, write_recording

RECORDING_FIGURES = ("qc_mean_images.png", "qc_displacement.png", "qc_correlation.png",
                     "qc_flow_magnitude.png")
SESSION_FIGURES = ("aligned_averages.png", "overlays.png", "coverage.png")


def test_run_writes_recording_and_session_qc(base_run, wf):
    for i in range(wf.N_BASE):
        folder = wf.stage1_dir(base_run, wf.rec_name(i))
        qc = json.loads((folder / "qc.json").read_text())
        assert qc["n_frames"] == wf.FRAMES
        assert all((folder / name).is_file() for name in RECORDING_FIGURES)
    qc_dir = wf.final_dir(base_run) / "qc"
    session = json.loads((qc_dir / "session.json").read_text())
    assert sorted(session["recordings"]) == [wf.rec_name(i) for i in range(wf.N_BASE)]
    assert session["misaligned"] == [] and session["center"] == "rec_01"
    assert all((qc_dir / name).is_file() for name in (*SESSION_FIGURES, "coverage.npy"))


def test_report_holds_every_figure_grouped_with_captions(base_run, snakemake, wf, tmp_path):
    workdir = wf.clone(base_run, tmp_path / "wd")
    result = snakemake.ok(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "Report created" in result.output
    for text in ('"Recordings"', '"Session"', "crispness", "Coverage map",
                 "red and green structures", "outlier frames"):
        assert text in html, text
    for i in range(wf.N_BASE):
        for name in RECORDING_FIGURES:
            assert f"{wf.rec_name(i)}/{name}" in html, name
    for name in SESSION_FIGURES:
        assert f"qc/{name}" in html, name


def test_exclude_misaligned_drops_the_recording_from_mask_and_videos(
        base_run, tmp_path, snakemake, wf):
    # The finished 3-recording run plus a recording of another tissue sample; the center stays
    # rec_01, so only the new recording's jobs and the session mask run.
    workdir = wf.clone(base_run, tmp_path / "wd")
    wf.write_config(workdir, wf.read_config(workdir), exclude_misaligned=True)
    other = SyntheticRecording(*wf.SHAPE, wf.FRAMES, rigid_amplitude=1.0,
                               nonrigid_amplitude=0.5, seed=4242)
    write_recording(other, workdir / wf.ROOT / "rec_03.tif")
    result = snakemake.ok(workdir)
    final = wf.final_dir(workdir)
    session = json.loads((final / "qc" / "session.json").read_text())
    assert session["excluded"] == ["rec_03"], session
    assert not (final / "aligned_rec_03.tif").exists()
    assert all((final / f"aligned_rec_0{i}.tif").is_file() for i in range(3))
    log = (workdir / "logs" / "session_mask.log").read_text()
    assert "WARNING: recording rec_03 did not align" in log, result.describe()
    bundle = wf.load_final_mask(workdir)
    expected = bundle["aligned_valid_masks"][:3].all(axis=0)
    assert (bundle["final_valid"] == expected).all()
    again = snakemake.ok(workdir)
    assert wf.planned_jobs(again) == set(), again.describe()
