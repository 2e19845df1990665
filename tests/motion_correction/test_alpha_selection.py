"""The smoothness weight chosen per recording (pyflowreg.motion_correction.alpha_selection)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pyflowreg.core.noise import NoiseModel
from pyflowreg.io import open_movie
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.motion_correction.alpha_selection import (
    ALPHA_FACTORS,
    MIN_RECORDING_FRAMES,
    REFINED_ALPHA_FACTORS,
    bracket_search,
    select_alpha,
)
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.motion_correction.reference import build_reference
from pyflowreg.synthetic import make_benchmark_recording, write_recording

OPTIONS = OFOptions(quality_setting="balanced", reference_max_frames=24)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alpha")
    out = {}
    # ("smooth", 10, 0.0): dim and stored without a dark offset, so the read noise is clipped
    # at zero and no noise line fits.
    for model, photons, offset in (("smooth", 100, None), ("smooth", 10, None),
                                   ("smooth", 10, 0.0)):
        rec = make_benchmark_recording(model, photons_per_unit=photons, height=128, width=128,
                                       n_frames=24, seed=5)
        path = write_recording(rec, folder / f"{model}{photons}_{offset}.tif", dtype="uint16",
                               offset=offset)
        reader = open_movie(path)
        with FramePool(2) as pool:
            reference = build_reference(reader, OPTIONS, pool=pool)
        out[(model, photons) if offset is None else (model, photons, "clipped")] = (
            reader, reference)
    return out


def _select(reader, reference, params=None, pool=None, min_frames=16, **kwargs):
    # 24-frame recordings keep the suite fast; Stage 1 skips the choice below 100 frames.
    sigma = OPTIONS.channel_sigma(reader.n_channels)
    return select_alpha(reader, reference, params or OPTIONS.flow_parameters, sigma, pool=pool,
                        min_frames=min_frames, **kwargs)


def test_wide_deformation_gets_a_larger_weight_the_same_with_any_pool(recordings):
    reader, reference = recordings[("smooth", 100)]
    serial = _select(reader, reference)
    assert serial.path == "photon-model" and not serial.fell_back, serial
    assert serial.reason.startswith("cross-validated"), serial
    assert serial.alpha[0] > OPTIONS.flow_parameters.alpha[0], serial
    assert serial.frames == (4, 20)  # the middle 16 of 24 frames
    with FramePool(2) as pool:
        parallel = _select(reader, reference, pool=pool)
    # Fixed seed and frame order: a resumed or re-run recording gets the same weight.
    assert parallel == serial


def test_configured_weight_is_the_smallest_candidate(recordings):
    reader, reference = recordings[("smooth", 100)]
    params = dataclasses.replace(OPTIONS.flow_parameters, alpha=(2.0, 3.0))
    selection = _select(reader, reference, params)
    assert selection.candidates == tuple((2.0 * f, 3.0 * f) for f in ALPHA_FACTORS)
    assert selection.z[0] == 0.0 and len(selection.misfit) == len(ALPHA_FACTORS)
    assert selection.alpha in selection.candidates


def test_a_failing_noise_fit_still_chooses_the_weight_and_says_so(recordings):
    reader, reference = recordings[("smooth", 10, "clipped")]
    (model,) = reference.noise_models
    assert not model.plausible and model.kind == "bins", model.as_dict()
    selection = _select(reader, reference)
    assert selection.path == "measured-variance" and selection.fell_back, selection
    assert "no photon-noise model fits (bins)" in selection.reason, selection
    assert len(selection.candidates) >= 2 and len(selection.z) == len(selection.candidates)
    recorded = selection.as_dict()
    assert recorded["path"] == "measured-variance" and recorded["fell_back"] is True


def test_dim_light_follows_the_photon_model(recordings):
    # 10 photons per unit: read noise dominates, yet the fit finds the shot noise.
    reader, reference = recordings[("smooth", 10)]
    assert reference.noise_models[0].plausible, reference.noise_models[0].as_dict()
    assert _select(reader, reference).path == "photon-model"


def test_weight_kept_without_any_noise_measurement_when_short_or_disabled(recordings):
    reader, reference = recordings[("smooth", 100)]
    unmeasured = dataclasses.replace(reference, noise_models=[NoiseModel(0.0, 0.0, 0.0, 16)])
    selection = _select(reader, unmeasured)
    assert selection.reason == "no noise variance could be measured"
    assert selection.path == "configured" and selection.fell_back
    assert selection.alpha == OPTIONS.flow_parameters.alpha and selection.candidates == ()
    disabled = _select(reader, reference, enabled=False)
    assert disabled.reason == "disabled" and disabled.alpha == OPTIONS.flow_parameters.alpha
    assert disabled.as_dict()["frames"] is None
    short = _select(reader, reference, min_frames=MIN_RECORDING_FRAMES)
    assert short.reason == f"recording shorter than {MIN_RECORDING_FRAMES} frames"
    assert short.alpha == OPTIONS.flow_parameters.alpha
    # Kept by design, not by a failing fit: no fallback to report.
    assert not disabled.fell_back and not short.fell_back


@pytest.mark.parametrize("misfits, scored", [
    # falls to the largest weight: first, middle, then up from the middle
    ((4.0, 3.0, 2.0, 1.0), [0, 2, 3]),
    # best at the middle: the one above it loses and the scan stops there
    ((4.0, 3.0, 1.0, 2.0), [0, 2, 3]),
    # the middle loses to the first: only the one between them is left
    ((1.0, 0.5, 2.0, 3.0), [0, 1, 2]),
    ((1.0, 2.0, 3.0, 4.0), [0, 1, 2]),
    # three candidates: plain ascending, stopping at the first that does not improve
    ((3.0, 2.0, 1.0), [0, 1, 2]),
    ((1.0, 2.0, 0.5), [0, 1]),
    ((1.0,), [0]),
    # six candidates (with a refinement): the middle is the fourth, at most four are scored
    ((6.0, 5.0, 4.0, 3.0, 2.0, 1.0), [0, 3, 4, 5]),
    ((6.0, 5.0, 4.0, 3.0, 4.0, 5.0), [0, 3, 4]),
    ((1.0, 0.5, 0.8, 2.0, 3.0, 4.0), [0, 1, 2, 3]),
])
def test_bracket_search_scores_where_the_best_can_lie(misfits, scored):
    calls = []

    def mean_misfit(i):
        calls.append(i)
        return misfits[i]

    bracket_search(len(misfits), mean_misfit)
    assert sorted(set(calls)) == sorted(scored)
    assert len(set(calls)) <= max(3, len(misfits) // 2 + 1)


def test_a_refinement_widens_the_ladder_of_candidates(recordings):
    reader, reference = recordings[("smooth", 100)]
    selection = _select(reader, reference, factors=REFINED_ALPHA_FACTORS)
    # At most four of the six are scored, always the configured weight among them.
    assert 3 <= len(selection.candidates) <= 4
    assert selection.candidates[0] == OPTIONS.flow_parameters.alpha
    assert set(selection.candidates) <= {
        tuple(a * f for a in OPTIONS.flow_parameters.alpha) for f in REFINED_ALPHA_FACTORS}


@pytest.mark.slow
def test_stage1_reports_a_fallback_in_its_log_status_and_qc(tmp_path):
    # A whole Stage 1 on a dim recording stored without a dark offset (clipped read noise):
    # the weight is still chosen, and each record says how.
    rec = make_benchmark_recording("smooth", photons_per_unit=10, height=96, width=96,
                                   n_frames=MIN_RECORDING_FRAMES, seed=6)
    movie = write_recording(rec, tmp_path / "clipped.tif", dtype="uint16", offset=0.0)
    lines = []
    out = compensate_recording({"quality_setting": "fast", "n_workers": 2}, input_file=movie,
                               output_path=tmp_path / "out", log=lines.append)
    status = json.loads((out / "status.json").read_text())
    qc = json.loads((out / "qc.json").read_text())
    for record in (status["alpha_selection"], qc["settings"]["alpha_selection"]):
        assert record["path"] == "measured-variance" and record["fell_back"] is True, record
        assert len(record["candidates"]) >= 2
    assert qc["settings"]["noise_model"]["channels"][0]["kind"] == "bins"
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "fallback path" in warnings[0] and "clipped.tif" in warnings[0]
