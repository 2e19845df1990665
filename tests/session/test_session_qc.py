"""Session quality control: alignment flags, field summary, field-of-view cost, coverage map."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from pyflowreg.session import SessionConfig, cli
from pyflowreg.session.qc import (
    ALIGNMENT_THRESHOLD,
    COVERAGE_FILE,
    FIGURES,
    MIN_OVERLAP,
    SESSION_QC_FILE,
    alignment_score,
    coverage_map,
    field_summary,
    fov_costs,
    qc_dir,
    write_session_qc,
)
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3
from pyflowreg.synthetic import SyntheticRecording, write_recording

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FOREIGN = "rec_03"  # rendered from another tissue sample
SMALL_SHAPE, SMALL_FRAMES = (64, 64), 8  # those of the shared tiny session (conftest)
FAST = {"quality_setting": "fast", "n_workers": 2}


def test_fov_cost_counts_what_one_recording_alone_removes():
    full = np.ones((10, 10), bool)
    a = full.copy()
    a[:, :2] = False  # removes 20 px that everybody else has
    b = full.copy()
    b[:1, :] = False  # 10 px, 2 of them also missing in a
    masks = [a, b, full]
    costs = fov_costs(masks, kept=[0, 1, 2])
    assert costs[0] == (pytest.approx(18 / 90), 18)  # base = b (90 px), a removes 18 of them
    assert costs[1] == (pytest.approx(8 / 80), 8)
    assert costs[2] == (0.0, 0)
    # Left out of the kept set, a recording's cost is what it would remove if it were kept.
    assert fov_costs(masks, kept=[1, 2])[0] == (pytest.approx(18 / 90), 18)
    np.testing.assert_array_equal(coverage_map(masks), a.astype(int) + b + full)


def test_field_summary_separates_rigid_and_nonrigid_parts():
    yy, xx = np.mgrid[:32, :32]
    w = np.zeros((32, 32, 2), np.float32)
    w[..., 0] = 3.0 + 0.5 * np.sin(2 * np.pi * xx / 32)
    w[..., 1] = -2.0
    summary = field_summary(w)
    assert summary["rigid_shift_px"] == pytest.approx([3.0, -2.0], abs=1e-3)
    assert summary["nonrigid_rms_px"] == pytest.approx(0.5 / np.sqrt(2), abs=1e-3)
    assert summary["nonrigid_max_px"] == pytest.approx(0.5, abs=1e-3)


def test_alignment_score_is_one_for_identical_and_drops_with_misalignment():
    rec = SyntheticRecording(48, 48, 1, rigid_amplitude=0, nonrigid_amplitude=0, seed=2)
    image = rec.clean_static()
    region = np.ones((48, 48), bool)
    assert alignment_score(image, image, region) == pytest.approx(1.0)
    assert alignment_score(image, np.roll(image, 6, axis=1), region) < ALIGNMENT_THRESHOLD
    assert np.isnan(alignment_score(image, image, np.zeros((48, 48), bool)))


def test_a_fallback_choice_of_alpha_is_listed_marked_and_warned(tmp_path):
    image = SyntheticRecording(48, 48, 1, rigid_amplitude=0, nonrigid_amplitude=0,
                               seed=2).clean_static()
    stems = ["rec_a", "rec_b", "rec_c"]
    stage1 = [
        {"alpha": [12.0, 12.0], "path": "photon-model", "fell_back": False,
         "reason": "cross-validated, split by the fitted photon-noise model"},
        {"alpha": [3.0, 3.0], "path": "measured-variance", "fell_back": True,
         "reason": "cross-validated, split by the measured noise variances: no photon-noise "
                   "model fits (bins)"},
        None,  # a Stage 1 folder without the record
    ]
    messages = []
    report = write_session_qc(
        tmp_path, stems=stems, averages=[image] * 3,
        fields=[np.zeros((48, 48, 2), np.float32)] * 3,
        aligned_masks=[np.ones((48, 48), bool)] * 3, middle_idx=1, stage1=stage1,
        log=messages.append)
    assert report["alpha_fallback"] == ["rec_b"]
    entries = report["recordings"]
    assert (entries["rec_a"]["alpha"], entries["rec_a"]["alpha_path"]) == (12.0, "photon-model")
    assert entries["rec_b"]["alpha_fell_back"] and not entries["rec_a"]["alpha_fell_back"]
    assert entries["rec_c"]["alpha"] is None and not entries["rec_c"]["alpha_fell_back"]
    assert json.loads((qc_dir(tmp_path) / SESSION_QC_FILE).read_text()) == report
    (warning,) = [m for m in messages if "WARNING" in m]
    assert "rec_b" in warning and "measured-variance" in warning and "qc.json" in warning
    for name in FIGURES.values():
        assert (qc_dir(tmp_path) / name).read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def foreign_session(small_session_source, tmp_path_factory):
    """The tiny session plus one recording of another tissue sample, through all 3 stages.

    Stages 1-3 run through the CLI's entry point (the API writes the same files, see the
    exclusion test). Returns (root, SyntheticSession, what the run wrote to stderr).
    """
    source, session = small_session_source
    root = tmp_path_factory.mktemp("qc") / "data"
    root.mkdir()
    for name in ("rec_00.tif", "rec_01.tif", "rec_02.tif"):
        shutil.copy2(source / name, root / name)
    other = SyntheticRecording(*SMALL_SHAPE, SMALL_FRAMES, rigid_amplitude=1.5,
                               nonrigid_amplitude=0.5, seed=4242)
    write_recording(other, root / f"{FOREIGN}.tif")
    config = root.parent / "session.toml"
    config.write_text(f'root = "{root}"\npattern = "rec_*.tif"\nquality_setting = "fast"\n'
                      "n_workers = 2\n")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert cli.main([str(config)]) == 0, stderr.getvalue()
    return root, session, stderr.getvalue()


def _session_json(root):
    return json.loads((qc_dir(root / "final_results") / SESSION_QC_FILE).read_text())


def test_recording_of_another_tissue_sample_is_flagged_and_warned(foreign_session):
    root, _, stderr = foreign_session
    report = _session_json(root)
    flags = {stem: entry["alignment_ok"] for stem, entry in report["recordings"].items()}
    assert flags == {"rec_00": True, "rec_01": True, "rec_02": True, FOREIGN: False}
    assert report["misaligned"] == [FOREIGN] and report["excluded"] == []
    for stem in ("rec_00", "rec_02"):
        assert report["recordings"][stem]["alignment_score"] > 0.7
    foreign = report["recordings"][FOREIGN]
    assert (foreign["alignment_score"] < ALIGNMENT_THRESHOLD
            or foreign["overlap_fraction"] < MIN_OVERLAP)
    assert all(report["recordings"][s]["overlap_fraction"] > 0.8 for s in ("rec_00", "rec_02"))
    assert report["recordings"]["rec_01"]["is_center"]
    warnings = [line for line in stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and FOREIGN in warnings[0]
    assert "exclude_misaligned" in warnings[0]
    # 8-frame recordings keep the configured weight by design: recorded, not a fallback.
    assert report["alpha_fallback"] == []
    assert {e["alpha_path"] for e in report["recordings"].values()} == {"configured"}


def test_rigid_shift_matches_the_true_between_recording_warp(foreign_session):
    root, session, _ = foreign_session
    report = _session_json(root)
    for r in (0, 2):
        truth = session.between_flow[r].reshape(-1, 2).mean(axis=0)
        entry = report["recordings"][f"rec_{r:02d}"]
        assert entry["rigid_shift_px"] == pytest.approx(truth.tolist(), abs=0.5)
        assert entry["nonrigid_rms_px"] < 1.5


def test_coverage_map_and_costs_agree_with_the_session_masks(foreign_session):
    root, _, _ = foreign_session
    out = root / "final_results"
    report = _session_json(root)
    with np.load(out / "final_valid_idx.npz") as bundle:
        aligned = bundle["aligned_valid_masks"]
        final = bundle["final_valid"]
    coverage = np.load(qc_dir(out) / COVERAGE_FILE)
    np.testing.assert_array_equal(coverage, aligned.sum(axis=0))
    np.testing.assert_array_equal(final, np.logical_and.reduce(aligned))  # nothing excluded
    assert report["session_mask_px"] == int(final.sum())
    for r, (stem, entry) in enumerate(report["recordings"].items()):
        others = np.logical_and.reduce([aligned[i] for i in range(len(aligned)) if i != r])
        assert entry["fov_cost_px"] == int((others & ~aligned[r]).sum()), stem
        assert entry["fov_cost"] == pytest.approx(entry["fov_cost_px"] / others.sum(), abs=1e-4)
    # The foreign recording overlaps the center only by chance: it costs the most.
    costs = {stem: entry["fov_cost"] for stem, entry in report["recordings"].items()}
    assert max(costs, key=costs.get) == FOREIGN
    for name in (*FIGURES.values(),):
        assert (qc_dir(out) / name).read_bytes()[:8] == PNG_MAGIC


def test_exclude_misaligned_leaves_the_recording_out_of_mask_and_videos(foreign_session):
    root, _, _ = foreign_session
    out = root / "final_results"
    assert (out / f"aligned_{FOREIGN}.tif").is_file()  # written by the run without exclusion
    config = SessionConfig(root=str(root), pattern="rec_*.tif", exclude_misaligned=True, **FAST)
    middle_idx, _, fields = run_stage2(config)
    final = run_stage3(config, middle_idx, fields)
    report = _session_json(root)
    assert report["excluded"] == [FOREIGN] and report["exclude_misaligned"] is True
    assert report["recordings"][FOREIGN]["excluded"]
    with np.load(out / "final_valid_idx.npz") as bundle:
        aligned = bundle["aligned_valid_masks"]
        np.testing.assert_array_equal(bundle["final_valid"], final)
    np.testing.assert_array_equal(final, np.logical_and.reduce(aligned[:3]))
    assert final.sum() > np.logical_and.reduce(aligned).sum()
    assert not (out / f"aligned_{FOREIGN}.tif").exists()
    assert all((out / f"aligned_rec_{r:02d}.tif").is_file() for r in range(3))
