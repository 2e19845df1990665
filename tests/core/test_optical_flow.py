"""Accuracy and input checks of get_displacement against known displacement fields."""

import numpy as np
import pytest
from scipy import ndimage

from pyflowreg.core.optical_flow import (
    FlowEstimator,
    FlowParameters,
    get_displacement,
    pyramid_shapes,
)
from pyflowreg.synthetic import make_image_pair


def prefilter(image, lo, hi, sigma=1.0):
    """What motion correction does before the flow: Gaussian sigma 1 px, scale to [0, 1]."""
    sig = (sigma, sigma) + ((0.0,) if image.ndim == 3 else ())
    return ((ndimage.gaussian_filter(image, sig) - lo) / (hi - lo)).astype(np.float32)


def epe(w, w_true):
    return float(np.linalg.norm(w - w_true, axis=-1).mean())


def test_identical_frames_give_zero_flow():
    fixed, _, _ = make_image_pair(128, 128, seed=4)
    f = prefilter(fixed, fixed.min(), fixed.max())
    w = get_displacement(f, f)
    assert w.shape == (128, 128, 2) and w.dtype == np.float32
    assert np.abs(w).max() < 0.01


@pytest.mark.parametrize("shift", [(1.3, -0.6), (-2.45, 3.7)])
def test_rigid_subpixel_shift_recovered(shift):
    fixed, moving, w_true = make_image_pair(128, 128, rigid_shift=shift, nonrigid=False, seed=1)
    lo, hi = fixed.min(), fixed.max()
    w = get_displacement(prefilter(fixed, lo, hi), prefilter(moving, lo, hi))
    interior = w[8:-8, 8:-8]
    assert abs(float(np.median(interior[..., 0])) - shift[0]) < 0.05
    assert abs(float(np.median(interior[..., 1])) - shift[1]) < 0.05
    assert epe(interior, w_true[8:-8, 8:-8]) < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_nonrigid_field_recovered_without_noise(seed):
    fixed, moving, w_true = make_image_pair(256, 256, max_displacement=6.0, seed=seed)
    assert np.linalg.norm(w_true, axis=-1).max() > 5.9
    lo, hi = fixed.min(), fixed.max()
    w = get_displacement(prefilter(fixed, lo, hi), prefilter(moving, lo, hi))
    assert epe(w, w_true) <= 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_nonrigid_field_recovered_with_photon_noise(seed):
    # As in motion correction: a noisy frame against a (noise-free) averaged reference.
    reference, _, _ = make_image_pair(256, 256, max_displacement=6.0, seed=seed)
    _, noisy, w_true = make_image_pair(
        256, 256, max_displacement=6.0, photons_per_unit=100, read_noise=0.01, seed=seed
    )
    lo, hi = reference.min(), reference.max()
    w = get_displacement(prefilter(reference, lo, hi), prefilter(noisy, lo, hi))
    assert epe(w, w_true) <= 0.35


@pytest.mark.parametrize("min_level, bound", [(4, 0.2), (6, 0.35)])
def test_faster_presets_stay_accurate(min_level, bound):
    fixed, moving, w_true = make_image_pair(256, 256, max_displacement=6.0, seed=2)
    lo, hi = fixed.min(), fixed.max()
    w = get_displacement(prefilter(fixed, lo, hi), prefilter(moving, lo, hi), min_level=min_level)
    assert epe(w, w_true) <= bound


def test_multichannel_with_channel_weights():
    fixed, moving, w_true = make_image_pair(128, 128, max_displacement=4.0, n_channels=2, seed=3)
    lo, hi = fixed.min(), fixed.max()
    f, m = prefilter(fixed, lo, hi), prefilter(moving, lo, hi)
    assert f.shape == (128, 128, 2)
    assert epe(get_displacement(f, m), w_true) < 0.2
    # Channel 2 of `moving` made motion-free: the weights decide which motion is found.
    m_static = m.copy()
    m_static[..., 1] = f[..., 1]
    assert epe(get_displacement(f, m_static, weight=[1.0, 0.0]), w_true) < 0.2
    assert np.abs(get_displacement(f, m_static, weight=[0.0, 1.0])).mean() < 0.05


def test_initial_flow_uv_is_used():
    fixed, moving, w_true = make_image_pair(128, 128, max_displacement=5.0, seed=5)
    lo, hi = fixed.min(), fixed.max()
    f, m = prefilter(fixed, lo, hi), prefilter(moving, lo, hi)
    # One coarse level with few sweeps cannot find the field alone, but keeps a good start.
    coarse = dict(levels=1, iterations=5)
    assert epe(get_displacement(f, m, **coarse), w_true) > 1.0
    assert epe(get_displacement(f, m, uv=w_true, **coarse), w_true) < 0.2


def test_estimator_reuses_reference_and_matches_function():
    fixed, moving, _ = make_image_pair(96, 112, seed=6)
    lo, hi = fixed.min(), fixed.max()
    f, m = prefilter(fixed, lo, hi), prefilter(moving, lo, hi)
    est = FlowEstimator(f, FlowParameters(min_level=2))
    np.testing.assert_array_equal(est.estimate(m), get_displacement(f, m, min_level=2))


def test_float64_input_gives_float32_flow_of_same_value():
    fixed, moving, _ = make_image_pair(64, 64, seed=7)
    w32 = get_displacement(fixed, moving)
    w64 = get_displacement(fixed.astype(np.float64), moving.astype(np.float64))
    assert w64.dtype == np.float32
    np.testing.assert_array_equal(w32, w64)


def test_pyramid_depth_per_axis():
    shapes = pyramid_shapes(256, 64)
    assert shapes[0] == (256, 64)
    assert min(h for h, _ in shapes) >= 10 and min(w for _, w in shapes) >= 10
    # The short axis stops shrinking at >= 10 px, the long axis keeps going.
    assert shapes[-1][0] < 20 and shapes[-1][1] == shapes[-2][1]
    assert len(pyramid_shapes(256, 256, levels=3)) == 3


@pytest.mark.parametrize(
    "fixed, moving, match",
    [
        (np.zeros((32, 32)), np.zeros((32, 31)), "must match"),
        (np.zeros((1, 1)), np.zeros((1, 1)), "too small"),
        (np.zeros((32, 32), complex), np.zeros((32, 32), complex), "dtype"),
        (np.zeros((32, 32), bool), np.zeros((32, 32), bool), "dtype"),
        (np.full((32, 32), np.nan), np.zeros((32, 32)), "NaN"),
        (np.zeros((32, 32)), np.full((32, 32), np.inf), "NaN or infinite"),
        (np.zeros((2, 32, 32, 1)), np.zeros((2, 32, 32, 1)), "shape"),
    ],
)
def test_bad_images_raise_value_error(fixed, moving, match):
    with pytest.raises(ValueError, match=match):
        get_displacement(fixed, moving)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=0), "alpha"),
        (dict(alpha=(1, 2, 3)), "alpha"),
        (dict(eta=1.0), "eta"),
        (dict(iterations=0), "iterations"),
        (dict(update_lag=0), "update_lag"),
        (dict(a_data=0.0), "a_data"),
        (dict(const_assumption="ssd"), "const_assumption"),
        (dict(weight=[1.0, 1.0]), "weight"),
        (dict(uv=np.zeros((32, 32, 3))), "uv"),
        (dict(uv=np.full((32, 32, 2), np.nan)), "uv"),
        (dict(min_level=-1), "min_level"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs, match):
    img = np.random.default_rng(0).random((32, 32))
    with pytest.raises(ValueError, match=match):
        get_displacement(img, img, **kwargs)


def test_non_quadratic_smoothness_runs_and_is_accurate():
    fixed, moving, w_true = make_image_pair(128, 128, max_displacement=4.0, seed=8)
    lo, hi = fixed.min(), fixed.max()
    w = get_displacement(prefilter(fixed, lo, hi), prefilter(moving, lo, hi), a_smooth=0.5)
    assert epe(w, w_true) < 0.3


def test_prior_moves_what_smoothness_pulls_towards():
    # With a very strong smoothness weight the result is the smoothest field the term allows:
    # without a prior that is nearly flat (the field's structure is lost); with the true field
    # as prior it is the prior plus a nearly constant offset.
    fixed, moving, w_true = make_image_pair(128, 128, max_displacement=4.0, seed=7)
    lo, hi = fixed.min(), fixed.max()
    f, m = prefilter(fixed, lo, hi), prefilter(moving, lo, hi)
    est = FlowEstimator(f, FlowParameters(alpha=1e4, min_level=0, iterations=30))
    flat = est.estimate(m, uv=w_true)
    anchored = est.estimate(m, uv=w_true, prior=w_true)
    structure = float(np.std(w_true, axis=(0, 1)).mean())
    assert float(np.std(flat, axis=(0, 1)).mean()) < 0.3 * structure
    deviation = anchored - w_true
    assert float(np.std(deviation, axis=(0, 1)).mean()) < 0.05 * structure
    assert epe(anchored, w_true) < 0.1


def test_refinement_from_good_start_keeps_accuracy():
    # The refinement pass: start a few levels above the final one from the field, anchored on it.
    from pyflowreg.core.optical_flow import refinement_parameters

    reference, _, _ = make_image_pair(256, 256, max_displacement=6.0, seed=8)
    _, noisy, w_true = make_image_pair(256, 256, max_displacement=6.0, photons_per_unit=100,
                                       read_noise=0.01, seed=8)
    lo, hi = reference.min(), reference.max()
    f, m = prefilter(reference, lo, hi), prefilter(noisy, lo, hi)
    params = FlowParameters(min_level=1, iterations=20)
    first = FlowEstimator(f, params).estimate(m)
    smooth_first = ndimage.gaussian_filter(first, (3, 3, 0))
    refined_params, top_level = refinement_parameters(params)
    assert top_level > params.min_level and refined_params.alpha[0] > params.alpha[0]
    refined = FlowEstimator(f, refined_params).estimate(m, uv=smooth_first, prior=smooth_first,
                                                         top_level=top_level)
    assert epe(refined, w_true) <= epe(first, w_true) + 0.02
    assert epe(refined, w_true) < 0.35


def test_top_level_skips_coarse_levels():
    fixed, moving, w_true = make_image_pair(128, 128, max_displacement=5.0, seed=9)
    lo, hi = fixed.min(), fixed.max()
    f, m = prefilter(fixed, lo, hi), prefilter(moving, lo, hi)
    est = FlowEstimator(f, FlowParameters(min_level=0, iterations=10))
    # Started at the final level from zero, a 5 px field is not found; from the field it is kept.
    full = epe(est.estimate(m), w_true)
    assert epe(est.estimate(m, top_level=0), w_true) > 3 * full
    assert epe(est.estimate(m, uv=w_true, top_level=0), w_true) < 1.5 * full


def test_level_workspace_reuse_does_not_leak_between_estimates():
    # The solver's padded arrays are reused by the thread: a smaller image in between (views of
    # the same buffer, stale values at the old borders) must not change the next result.
    rng = np.random.default_rng(5)
    big = ndimage.gaussian_filter(rng.random((90, 120)), 2).astype(np.float32)
    small = ndimage.gaussian_filter(rng.random((37, 41)), 2).astype(np.float32)
    params = FlowParameters(min_level=0, iterations=10, a_smooth=0.8)
    estimator = FlowEstimator(big, params)
    moving = np.roll(big, 1, axis=1)
    first = estimator.estimate(moving)
    FlowEstimator(small, params).estimate(np.roll(small, 2, axis=0))
    np.testing.assert_array_equal(estimator.estimate(moving), first)
