"""Stage 1 quality control: metrics against synthetic ground truth, flags, files, resume."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.motion_correction import compensate_recording
from pyflowreg.motion_correction.progress import Progress, format_seconds
from pyflowreg.motion_correction.qc import (
    FIGURES,
    N_SUMS,
    QC_FILE,
    crispness,
    frame_sums,
    outlier_frames,
)
from pyflowreg.synthetic import SyntheticRecording, write_recording

FAST = {"quality_setting": "fast", "n_workers": 2, "chunk_frames": 8}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def frame_sums_numpy(raw, corrected, w, valid, ref, offset, scale):
    """Pure-numpy reference of the ``frame_sums`` kernel (per-frame columns only)."""
    n = raw.shape[0]
    m = (valid != 0)[..., None].astype(np.float64)
    mag = np.hypot(w[..., 0].astype(np.float64), w[..., 1].astype(np.float64))
    out = np.empty((n, N_SUMS))
    out[:, 0] = (valid != 0).sum(axis=(1, 2))
    out[:, 1] = w[..., 0].sum(axis=(1, 2), dtype=np.float64)
    out[:, 2] = w[..., 1].sum(axis=(1, 2), dtype=np.float64)
    out[:, 3] = mag.sum(axis=(1, 2))
    out[:, 4] = mag.max(axis=(1, 2))
    ref = ref.astype(np.float64)[None]
    for col, movie in ((5, raw), (8, corrected)):
        x = (movie.astype(np.float64) - offset) * scale * m
        out[:, col] = x.sum(axis=(1, 2, 3))
        out[:, col + 1] = (x * x).sum(axis=(1, 2, 3))
        out[:, col + 2] = (x * ref).sum(axis=(1, 2, 3))
    out[:, 11] = (ref * m).sum(axis=(1, 2, 3))
    out[:, 12] = (ref * ref * m).sum(axis=(1, 2, 3))
    return out


def test_frame_sums_kernel_matches_numpy_reference():
    rng = np.random.default_rng(3)
    n, h, w_, c = 5, 13, 17, 2
    raw = rng.random((n, h, w_, c), dtype=np.float32) * 100
    corrected = rng.random((n, h, w_, c), dtype=np.float32) * 100
    w = rng.normal(0, 2, (n, h, w_, 2)).astype(np.float32)
    valid = (rng.random((n, h, w_, 1)) > 0.2).astype(np.uint8) * 255
    ref = rng.random((h, w_, c), dtype=np.float32)
    offset, scale = np.array([3.0, 5.0], np.float32), np.array([0.01, 0.02], np.float32)
    raw_sum, corrected_sum = np.zeros((h, w_, c)), np.zeros((h, w_, c))
    abs_w_sum, sums = np.zeros((h, w_)), np.empty((n, N_SUMS))
    frame_sums(raw, corrected, w, valid[..., 0], ref, offset, scale, raw_sum, corrected_sum,
               abs_w_sum, sums)
    expected = frame_sums_numpy(raw, corrected, w, valid[..., 0], ref, offset, scale)
    np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(raw_sum, raw.sum(axis=0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(corrected_sum, corrected.sum(axis=0, dtype=np.float64),
                               rtol=1e-6)
    np.testing.assert_allclose(abs_w_sum, np.hypot(w[..., 0], w[..., 1]).sum(axis=0),
                               rtol=1e-5)


def test_outlier_rule_flags_only_low_correlation_frames():
    corr = np.full(50, 0.95) + np.linspace(-0.005, 0.005, 50)
    corr[40] = 0.89  # 0.06 below the median: within the rule's minimum spread
    corr[[4, 30]] = 0.5
    corr[10] = 0.99  # better than usual is no outlier
    corr[20] = np.nan  # no valid pixel
    flagged, z = outlier_frames(corr)
    assert flagged.tolist() == [4, 20, 30]
    assert z[4] < -3.5 and z[10] > 0


def test_crispness_drops_when_an_image_is_blurred():
    from scipy import ndimage

    image = np.random.default_rng(0).random((40, 40))
    assert crispness(ndimage.gaussian_filter(image, 2)) < 0.5 * crispness(image)


def test_progress_line_reports_rate_and_time_left():
    progress = Progress(100)
    progress.start -= 10.0  # as if 10 s had passed
    line = progress.line(25)
    assert line.startswith("25/100 frames, 2.5 frames/s, ~30 s left"), line
    assert format_seconds(185) == "3 min 05 s" and format_seconds(7300) == "2 h 01 min"


@pytest.fixture(scope="module")
def moving_run(tmp_path_factory):
    """One corrected recording with 3 px rigid and 1 px non-rigid motion: (folder, rec, log)."""
    folder = tmp_path_factory.mktemp("qc_moving")
    rec = SyntheticRecording(48, 48, 24, rigid_amplitude=3.0, nonrigid_amplitude=1.0,
                             motion_timescale=4.0, seed=5)
    movie = write_recording(rec, folder / "movie.tif")
    messages = []
    compensate_recording(FAST, input_file=movie, output_path=folder / "out", resume=False,
                         log=messages.append)
    return folder / "out", rec, messages


def test_correction_raises_correlation_and_crispness(moving_run):
    out, _, _ = moving_run
    qc = json.loads((out / QC_FILE).read_text())
    corr_raw = np.array(qc["per_frame"]["corr_raw"])
    corr_corrected = np.array(qc["per_frame"]["corr_corrected"])
    assert qc["corr_corrected_median"] > qc["corr_raw_median"] + 0.02
    assert (corr_corrected > corr_raw).mean() > 0.8
    assert qc["crispness_ratio"] > 1.05
    assert qc["crispness_ratio"] == pytest.approx(
        qc["crispness_corrected"] / qc["crispness_raw"], rel=1e-4)
    assert qc["outlier_frames"] == []


def test_rigid_traces_follow_the_true_motion(moving_run):
    out, rec, _ = moving_run
    qc = json.loads((out / QC_FILE).read_text())
    true_mean = rec.flow_all().mean(axis=(1, 2))  # (T, 2), registers frames onto clean geometry
    measured = np.stack([qc["per_frame"]["rigid_u"], qc["per_frame"]["rigid_v"]], axis=-1)
    # The reference sits within a fraction of a pixel of the motion-free geometry.
    assert np.abs(measured - true_mean).max() < 0.6
    assert np.ptp(true_mean, axis=0).max() > 2.0  # the recording really moves


def test_residual_motion_is_small_and_below_the_raw_drift(moving_run):
    out, _, _ = moving_run
    qc = json.loads((out / QC_FILE).read_text())
    assert qc["residual_motion_px"] < 0.5
    assert qc["raw_drift_px"] > 2 * qc["residual_motion_px"]


def test_valid_fraction_and_flow_maxima_match_the_written_outputs(moving_run):
    out, _, _ = moving_run
    qc = json.loads((out / QC_FILE).read_text())
    with h5py.File(out / "idx.hdf") as f:
        valid = f["ch1"][:] != 0
    np.testing.assert_allclose(qc["per_frame"]["valid_fraction"], valid.mean(axis=(1, 2)),
                               atol=1e-6)
    assert qc["valid_everywhere_fraction"] == pytest.approx(valid.all(axis=0).mean(), abs=1e-6)
    assert qc["max_abs_w"] == pytest.approx(max(qc["per_frame"]["max_abs_w"]))


def test_figures_are_png_and_status_names_the_qc_file(moving_run):
    out, _, messages = moving_run
    qc = json.loads((out / QC_FILE).read_text())
    assert qc["figures"] == sorted(FIGURES.values())
    for name in FIGURES.values():
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    assert json.loads((out / "status.json").read_text())["qc_file"] == QC_FILE
    progress = [m for m in messages if "frames/s" in m and " left" in m]
    assert len(progress) == 3, messages  # one line per chunk of 8 frames


def test_planted_bad_frames_are_flagged(tmp_path):
    rec = SyntheticRecording(48, 48, 30, rigid_amplitude=2.0, nonrigid_amplitude=0.5, seed=8)
    other = SyntheticRecording(48, 48, 30, rigid_amplitude=2.0, nonrigid_amplitude=0.5,
                               seed=99)
    frames = rec.observed_all()[..., 0]
    bad = [6, 21]
    frames[bad] = other.observed_all()[bad, ..., 0]  # frames of another tissue sample
    movie = tmp_path / "planted.tif"
    tifffile.imwrite(movie, np.rint(np.clip(frames * 100, 0, 65535)).astype(np.uint16),
                     photometric="minisblack")
    compensate_recording(FAST, input_file=movie, output_path=tmp_path / "out", resume=False)
    qc = json.loads((tmp_path / "out" / QC_FILE).read_text())
    assert qc["outlier_frames"] == bad, qc["per_frame"]["corr_corrected"]


def test_qc_off_writes_no_qc_and_resume_needs_complete_qc(tmp_path, write_movie):
    movie, _ = write_movie(height=32, width=32, n_frames=10)
    out = tmp_path / "out"
    compensate_recording({**FAST, "qc": False}, input_file=movie, output_path=out)
    assert not (out / QC_FILE).exists()
    assert not any(out.glob("qc_*.png"))

    # Turning QC on changes the options: the result is recomputed, now with QC.
    messages = []
    compensate_recording(FAST, input_file=movie, output_path=out, log=messages.append)
    assert (out / QC_FILE).is_file() and not any("skipping" in m for m in messages)

    # A lost figure makes the folder incomplete; an intact one is skipped.
    compensate_recording(FAST, input_file=movie, output_path=out, log=messages.append)
    assert any("skipping" in m for m in messages)
    (out / FIGURES["correlation"]).unlink()
    messages.clear()
    compensate_recording(FAST, input_file=movie, output_path=out, log=messages.append)
    assert not any("skipping" in m for m in messages)
    assert (out / FIGURES["correlation"]).is_file()
