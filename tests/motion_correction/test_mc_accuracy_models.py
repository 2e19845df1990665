"""Stage 1 accuracy pinned on three motion models at two photon levels (balanced preset).

The recordings are :func:`pyflowreg.synthetic.make_benchmark_recording` cases at
128 x 128 x 100 frames (small for the suite, but long enough for Stage 1 to choose the
smoothness weight; ``benchmarks/accuracy.py`` runs the 256 x 256 x 200 grid). Each bound is
about 1.5x the end-point error measured for its case, so a 50 % regression fails:

| case | measured EPE (px) | bound | with alpha fixed at 1.5 (``select_alpha: false``) |
|---|---|---|---|
| smooth, 100 photons/unit | 0.080 (alpha chosen) | 0.12 | 0.107 |
| smooth, 10 photons/unit | 0.201 | 0.30 | 0.203 (no plausible noise model: alpha kept) |
| local + line scan, 100 | 0.274 | 0.40 | 0.264 (alpha 1.5 chosen) |
| local + line scan, 10 | 0.602 | 0.90 | 0.601 (no plausible noise model: alpha kept) |
| local in patches + line scan, 100 | 0.163 | 0.25 | |
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pyflowreg.motion_correction import compensate_recording
from pyflowreg.synthetic import make_benchmark_recording, write_recording

SIZE, N_FRAMES = 128, 100  # 100: the shortest recording whose smoothness weight is chosen
BOUNDS = {  # (model, photons per unit) -> bound on the mean end-point error, px
    ("smooth", 100): 0.12,
    ("smooth", 10): 0.30,
    ("local", 100): 0.40,
    ("local", 10): 0.90,
    ("local_patches", 100): 0.25,
}

pytestmark = pytest.mark.slow


def _epe(w: np.ndarray, w_true: np.ndarray) -> np.ndarray:
    """End-point errors over the pixels whose true sample lies inside the frame."""
    _, height, width, _ = w_true.shape
    yy, xx = np.mgrid[:height, :width]
    x, y = xx + w_true[..., 0], yy + w_true[..., 1]
    observable = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return np.linalg.norm(w - w_true, axis=-1)[observable]


@pytest.fixture(scope="module", params=sorted(BOUNDS), ids=lambda case: f"{case[0]}-{case[1]}")
def corrected_case(request, tmp_path_factory):
    model, photons = request.param
    folder = tmp_path_factory.mktemp(f"{model}{photons}")
    rec = make_benchmark_recording(model, photons_per_unit=photons, height=SIZE, width=SIZE,
                                   n_frames=N_FRAMES, seed=3)
    movie = write_recording(rec, folder / "movie.tif", dtype="uint16")
    out = compensate_recording({"quality_setting": "balanced", "save_w": True, "n_workers": 2},
                               input_file=movie, output_path=folder / "out")
    with h5py.File(out / "w.hdf5", "r") as f:
        w = np.stack([f["u"][:], f["v"][:]], axis=-1)
    status = json.loads((out / "status.json").read_text())
    return request.param, w, rec.flow_all(), status


def test_field_error_within_bound(corrected_case):
    case, w, w_true, _ = corrected_case
    epe = _epe(w, w_true)
    assert epe.mean() <= BOUNDS[case], (
        f"{case}: EPE mean {epe.mean():.3f} px (p95 {np.percentile(epe, 95):.3f}), "
        f"bound {BOUNDS[case]}"
    )


def test_temporal_filter_recorded_and_used(corrected_case):
    case, _, _, status = corrected_case
    info = status["temporal_filter"]
    assert info["enabled"] and sum(info["frames_per_window"]) == N_FRAMES
    # Motion in these models changes slowly against the noise: most frames get a window.
    assert sum(info["frames_per_window"][1:]) > N_FRAMES / 2, (case, info)
    assert info["flow_noise_px"] > 0
    refinement = status["refinement"]
    assert refinement["enabled"] is True
    # The first pass leaves the final level to the refinement, which starts above both.
    assert refinement["first_pass_final_level"] == refinement["final_level"] + 1
    assert refinement["start_level"] > refinement["first_pass_final_level"]


def test_noise_model_stabilises_bright_recordings_only(corrected_case):
    # At 100 photons per unit shot noise dominates and the transform is used; at 10 the 5-count
    # read noise does, variance hardly changes with brightness and the frames stay linear.
    (model, photons), _, _, status = corrected_case
    (channel,) = status["noise_model"]["channels"]
    assert channel["stabilised"] is (photons >= 100), channel
    if channel["stabilised"]:
        assert channel["gain"] == pytest.approx(1.0, rel=0.5)  # 1 count per photon


def test_smoothness_weight_follows_the_deformation(corrected_case):
    # Wide smooth deformation wants more smoothness than 15-30 px local deformation; the split-
    # frame cross-validation tells them apart under shot noise and keeps alpha where it cannot.
    (model, photons), _, _, status = corrected_case
    selection = status["alpha_selection"]
    if photons < 100:  # read-noise limited: no plausible model to split the frames with
        assert selection["reason"] == "no plausible noise model"
        assert selection["alpha"] == [1.5, 1.5]
    elif model == "smooth":
        assert selection["alpha"][0] > 1.5, selection
    else:
        assert selection["alpha"] == [1.5, 1.5], selection
