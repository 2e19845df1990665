"""Accuracy of motion correction against the synthetic generator's exact ground truth.

One module-scoped run corrects a 256 x 256 x 200 recording (rigid motion up to 6 px, non-rigid
1.5 px, photon noise) with the "quality" preset; every test reads its outputs.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from pyflowreg.core.optical_flow import get_displacement
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.synthetic import SyntheticRecording, write_recording

HEIGHT, WIDTH, N_FRAMES = 256, 256, 200
SCALE = 100.0  # write_recording's uint16 scale: stored counts = brightness * SCALE
MARGIN = 16  # interior used by the image comparisons (px)
INTERIOR = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def accuracy_run(tmp_path_factory):
    """Correct the accuracy recording once (the slow part of this folder)."""
    folder = tmp_path_factory.mktemp("accuracy")
    rec = SyntheticRecording(
        HEIGHT, WIDTH, N_FRAMES, rigid_amplitude=6.0, nonrigid_amplitude=1.5,
        photons_per_unit=100, read_noise=0.01, seed=11,
    )
    movie = write_recording(rec, folder / "movie.tif", dtype="uint16", scale=SCALE)
    # n_workers=1: the result does not depend on it, and with 2 numba threads a 256 x 256
    # full-resolution solve slows down ~20x when another process competes for the 2 CPUs.
    out = compensate_recording(
        {"quality_setting": "quality", "save_w": True, "n_workers": 1},
        input_file=movie, output_path=folder / "out",
    )
    return SimpleNamespace(rec=rec, movie=movie, out=out)


def _load_flow(out) -> np.ndarray:
    with h5py.File(out / "w.hdf5", "r") as f:
        return np.stack([f["u"][:], f["v"][:]], axis=-1)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a[INTERIOR].ravel(), b[INTERIOR].ravel())[0, 1])


def _gradient_energy(image: np.ndarray) -> float:
    gy, gx = np.gradient(np.asarray(image, dtype=np.float64)[INTERIOR])
    return float(np.sum(gx**2 + gy**2))


def _prepare(image: np.ndarray) -> np.ndarray:
    """Gaussian pre-filter (sigma 1 px) and scale to [0, 1], as the pipeline sees images."""
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 1.0, mode="nearest")
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def test_accuracy_run_writes_complete_outputs(accuracy_run):
    out = accuracy_run.out
    status = json.loads((out / "status.json").read_text())
    assert status["complete"] is True
    assert status["n_frames"] == N_FRAMES
    with h5py.File(out / "w.hdf5", "r") as f:
        assert f["u"].shape == f["v"].shape == (N_FRAMES, HEIGHT, WIDTH)
        assert f["u"].dtype == np.float32


def test_flow_endpoint_error_vs_ground_truth_below_0p3_px(accuracy_run):
    w_est = _load_flow(accuracy_run.out)
    w_true = accuracy_run.rec.flow_all()
    diff = w_est - w_true
    del w_est, w_true
    # The reference may sit at a constant offset from the motion-free frame: remove it.
    offset = diff.mean(axis=(0, 1, 2))
    epe = np.linalg.norm(diff - offset, axis=-1).mean(axis=(1, 2))  # per frame
    assert np.abs(offset).max() < 0.5, f"global offset {offset} px"
    assert epe.mean() <= 0.30, (
        f"mean end-point error {epe.mean():.3f} px (offset {offset}, per-frame min "
        f"{epe.min():.3f}, max {epe.max():.3f})"
    )
    assert epe.max() <= 0.5, f"worst frame {int(epe.argmax())}: EPE {epe.max():.3f} px"


def test_corrected_frames_correlate_with_clean_frames_better_than_raw(accuracy_run):
    rec = accuracy_run.rec
    raw = tifffile.imread(accuracy_run.movie)
    clean = rec.clean_all()[..., 0]
    with h5py.File(accuracy_run.out / "compensated.hdf5", "r") as f:
        corrected = f["ch1"][:]
    r_raw = np.mean([_pearson(raw[t], clean[t]) for t in range(N_FRAMES)])
    r_corrected = np.mean([_pearson(corrected[t], clean[t]) for t in range(N_FRAMES)])
    assert r_corrected > r_raw, f"corrected r={r_corrected:.4f}, raw r={r_raw:.4f}"
    # With 6 px motion the improvement must be substantial, not marginal.
    assert r_corrected > 0.9, f"corrected r={r_corrected:.4f}"


def test_temporal_average_as_sharp_as_clean_average(accuracy_run):
    average = np.load(accuracy_run.out / "temporal_average.npy")
    assert average.shape == (HEIGHT, WIDTH)
    assert average.dtype == np.float64
    clean_average = accuracy_run.rec.clean_all()[..., 0].mean(axis=0) * SCALE  # counts
    level = average[INTERIOR].mean() / clean_average[INTERIOR].mean()
    assert level == pytest.approx(1.0, abs=0.02), "average not in the input's intensity units"
    ratio = _gradient_energy(average) / _gradient_energy(clean_average)
    assert ratio >= 0.97, f"gradient-energy ratio {ratio:.4f}"


def test_reference_sits_on_motion_free_position(accuracy_run):
    reference = np.load(accuracy_run.out / "reference.npy")
    assert reference.shape == (HEIGHT, WIDTH)
    static = accuracy_run.rec.clean_static()[..., 0]
    w = get_displacement(_prepare(static), _prepare(reference))
    magnitude = np.linalg.norm(w, axis=-1)[INTERIOR]
    assert magnitude.mean() < 0.15, (
        f"reference {magnitude.mean():.3f} px (mean) from the motion-free scene, "
        f"mean flow {w[INTERIOR].mean(axis=(0, 1))}"
    )
