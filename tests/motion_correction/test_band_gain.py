"""The gain of the wide non-rigid band, calibrated on simulated frames
(pyflowreg.motion_correction.band_gain)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pyflowreg.io import open_movie
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.motion_correction.band_gain import (
    MAX_GAIN,
    MAX_NOISE_RATIO,
    MIN_SHRINKAGE,
    calibrate_band_gain,
)
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.motion_correction.reference import build_reference
from pyflowreg.synthetic import make_benchmark_recording, write_recording

OPTIONS = OFOptions(quality_setting="balanced", reference_max_frames=24)


def _recording(folder, model, photons):
    """24 frames of 128 x 128 px, their reader and reference."""
    rec = make_benchmark_recording(model, photons_per_unit=photons, height=128, width=128,
                                   n_frames=24, seed=2)
    path = write_recording(rec, folder / f"{model}{photons}.tif", dtype="uint16")
    reader = open_movie(path)
    with FramePool(2) as pool:
        reference = build_reference(reader, OPTIONS, pool=pool)
    return path, reader, reference


@pytest.fixture(scope="module")
def dim_wide(tmp_path_factory):
    """Dim wide deformation (10 photons per unit)."""
    return _recording(tmp_path_factory.mktemp("band_gain"), "smooth_wide", 10)


def _calibrate(reader, reference, pool, **kwargs):
    sigma = OPTIONS.channel_sigma(reader.n_channels)
    params = dataclasses.replace(OPTIONS.flow_parameters, alpha=(12.0, 12.0))
    return calibrate_band_gain(reader, reference, OPTIONS, params, sigma, pool=pool,
                               **{"min_frames": 16, **kwargs})


def test_dim_wide_deformation_gets_a_gain_the_same_with_any_pool(dim_wide):
    _, reader, reference = dim_wide
    with FramePool(1) as pool:
        serial = _calibrate(reader, reference, pool)
    # The estimation keeps less than all of the wide band in dim light, and the gain undoes
    # part of that: between 1 and 1 / k.
    assert 0.5 < serial.shrinkage < 1.0, serial
    assert 1.0 < serial.gain <= min(MAX_GAIN, 1.0 / serial.shrinkage), serial
    assert 0.0 <= serial.noise_ratio < 1.0, serial
    # Two runs of 8 frames, at a quarter and three quarters of the 24 frames.
    assert serial.frames == ((2, 10), (14, 22)), serial
    with FramePool(2) as pool:
        parallel = _calibrate(reader, reference, pool)
    # Fixed seed and frames: a resumed run, or each segment of a split one, gets the same gain.
    assert parallel == serial
    recorded = serial.as_dict()
    assert recorded["gain"] == round(serial.gain, 4) and recorded["frames"] == [[2, 10], [14, 22]]
    assert recorded["band_sigma_px"] > 0


def test_no_gain_where_nothing_can_be_measured(dim_wide):
    _, reader, reference = dim_wide
    with FramePool(1) as pool:
        disabled = _calibrate(reader, reference, pool, enabled=False)
        short = _calibrate(reader, reference, pool, min_frames=100)
        unmeasured = _calibrate(reader, dataclasses.replace(reference, noise_models=[]), pool)
    assert (disabled.gain, disabled.reason) == (1.0, "disabled")
    assert (short.gain, short.reason) == (1.0, "recording shorter than 100 frames")
    assert (unmeasured.gain, unmeasured.reason) == (1.0, "no noise variance could be measured")
    assert disabled.shrinkage is None and short.frames == ()


def test_no_gain_where_the_flows_are_mostly_error(tmp_path):
    # At 3 photons per unit the jitter's wide band is mostly lost: the simulated estimation
    # keeps 40 % of it, and 1 / k would multiply the recording's errors with its motion.
    _, reader, reference = _recording(tmp_path, "jitter", 3)
    with FramePool(2) as pool:
        result = _calibrate(reader, reference, pool)
    assert result.shrinkage < MIN_SHRINKAGE or result.noise_ratio > MAX_NOISE_RATIO, result
    assert result.gain == 1.0 and result.reason.startswith("the simulated estimation kept"), \
        result


def test_stage1_records_the_gain_and_the_option_turns_it_off(dim_wide, tmp_path):
    path, _, _ = dim_wide
    out = compensate_recording({"quality_setting": "balanced", "n_workers": 2,
                                "calibrate_gain": False, "qc": False},
                               input_file=path, output_path=tmp_path / "off")
    status = json.loads((out / "status.json").read_text())
    assert status["band_gain"]["gain"] == 1.0 and status["band_gain"]["reason"] == "disabled"
    assert status["options"]["calibrate_gain"] is False
    with pytest.raises(ValueError, match="calibrate_gain must be true or false"):
        OFOptions(calibrate_gain="yes")
