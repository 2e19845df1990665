"""The smoothness weight chosen per recording (pyflowreg.motion_correction.alpha_selection)."""

from __future__ import annotations

import dataclasses

import pytest

from pyflowreg.io import open_movie
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
    for model, photons in (("smooth", 100), ("smooth", 10)):
        rec = make_benchmark_recording(model, photons_per_unit=photons, height=128, width=128,
                                       n_frames=24, seed=5)
        path = write_recording(rec, folder / f"{model}{photons}.tif", dtype="uint16")
        reader = open_movie(path)
        with FramePool(2) as pool:
            reference = build_reference(reader, OPTIONS, pool=pool)
        out[(model, photons)] = (reader, reference)
    return out


def _select(reader, reference, params=None, pool=None, min_frames=16, **kwargs):
    # 24-frame recordings keep the suite fast; Stage 1 skips the choice below 100 frames.
    sigma = OPTIONS.channel_sigma(reader.n_channels)
    return select_alpha(reader, reference, params or OPTIONS.flow_parameters, sigma, pool=pool,
                        min_frames=min_frames, **kwargs)


def test_wide_deformation_gets_a_larger_weight_the_same_with_any_pool(recordings):
    reader, reference = recordings[("smooth", 100)]
    serial = _select(reader, reference)
    assert serial.reason == "cross-validated"
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


def test_weight_kept_without_a_plausible_noise_model_or_when_disabled(recordings):
    reader, reference = recordings[("smooth", 10)]  # read noise dominates: no photon model
    assert not reference.noise_models[0].plausible
    selection = _select(reader, reference)
    assert selection.reason == "no plausible noise model"
    assert selection.alpha == OPTIONS.flow_parameters.alpha and selection.candidates == ()
    reader, reference = recordings[("smooth", 100)]
    disabled = _select(reader, reference, enabled=False)
    assert disabled.reason == "disabled" and disabled.alpha == OPTIONS.flow_parameters.alpha
    assert disabled.as_dict()["frames"] is None
    short = _select(reader, reference, min_frames=MIN_RECORDING_FRAMES)
    assert short.reason == f"recording shorter than {MIN_RECORDING_FRAMES} frames"
    assert short.alpha == OPTIONS.flow_parameters.alpha


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
])
def test_bracket_search_scores_where_the_best_can_lie(misfits, scored):
    calls = []

    def mean_misfit(i):
        calls.append(i)
        return misfits[i]

    bracket_search(len(misfits), mean_misfit)
    assert sorted(set(calls)) == sorted(scored)
    assert len(set(calls)) <= 3


def test_a_refinement_adds_the_largest_candidate(recordings):
    reader, reference = recordings[("smooth", 100)]
    selection = _select(reader, reference, factors=REFINED_ALPHA_FACTORS)
    # Three of the four are scored, always the configured weight among them.
    assert len(selection.candidates) == 3
    assert selection.candidates[0] == OPTIONS.flow_parameters.alpha
    assert set(selection.candidates) <= {
        tuple(a * f for a in OPTIONS.flow_parameters.alpha) for f in REFINED_ALPHA_FACTORS}
