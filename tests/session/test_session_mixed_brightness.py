"""A session of mixed brightness needs no per-recording settings.

The same tissue and motion recorded dim (10 photons per unit, read-noise limited) and bright
(1000 photons per unit) go through ``run_stage1`` with one configuration. Each recording gets
its own noise fit and smoothness weight, and each lands near the accuracy of the fixed weight
that suits it best (``benchmarks/mixed_brightness.py`` measures that at 256² x 200).

Measured when set (128² x 100, seed 3, balanced): dim 0.201 px with alpha 1.5, bright
0.053 px with alpha 12; bounds 1.5 x.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.synthetic import make_benchmark_recording, write_recording

SIZE, N_FRAMES = 128, 100  # 100: the shortest recording whose smoothness weight is chosen
LEVELS = {"dim": 10.0, "bright": 1000.0}  # photons per unit
BOUNDS = {"dim": 0.30, "bright": 0.08}  # px, mean end-point error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mixed_session(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed_brightness")
    truth = {}
    for name, photons in LEVELS.items():
        rec = make_benchmark_recording("smooth", photons_per_unit=photons, height=SIZE,
                                       width=SIZE, n_frames=N_FRAMES, seed=3)
        write_recording(rec, root / f"{name}.tif", dtype="uint16")
        truth[name] = rec.flow_all()
    config = SessionConfig(root=root, quality_setting="balanced",
                           flow_options={"save_w": True}, n_workers=2)
    run_stage1(config, log=lambda message: None)
    results = {}
    for name in LEVELS:
        out = root / "compensated_outputs" / name
        with h5py.File(out / "w.hdf5", "r") as f:
            w = np.stack([f["u"][:], f["v"][:]], axis=-1)
        results[name] = (w, truth[name], json.loads((out / "status.json").read_text()))
    return results


def _epe_mean(w: np.ndarray, w_true: np.ndarray) -> float:
    _, height, width, _ = w_true.shape
    yy, xx = np.mgrid[:height, :width]
    x, y = xx + w_true[..., 0], yy + w_true[..., 1]
    observable = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return float(np.linalg.norm(w - w_true, axis=-1)[observable].mean())


def test_each_recording_gets_its_own_noise_fit_and_weight(mixed_session):
    dim, bright = (mixed_session[name][2] for name in ("dim", "bright"))
    dim_fit, bright_fit = (s["noise_model"]["channels"][0] for s in (dim, bright))
    # Both fits find the shot noise; the dim one is read-noise limited, so its variance hardly
    # grows with brightness and its frames stay linear, while the bright one is stabilised.
    assert dim_fit["plausible"] and bright_fit["plausible"]
    assert not dim_fit["stabilised"] and bright_fit["stabilised"]
    assert dim_fit["variance_ratio"] < bright_fit["variance_ratio"]
    # Bright frames afford a stronger weight (the model's wide deformation wants it).
    assert bright["alpha_selection"]["alpha"][0] > dim["alpha_selection"]["alpha"][0]


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_one_configuration_is_accurate_at_both_brightness_levels(mixed_session, name):
    w, w_true, status = mixed_session[name]
    epe = _epe_mean(w, w_true)
    assert epe <= BOUNDS[name], (name, epe, status["alpha_selection"])
