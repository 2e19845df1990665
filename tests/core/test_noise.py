"""Noise model fit and the noise-stabilising transform (pyflowreg.core.noise, preprocess)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pyflowreg.core.noise import (
    NoiseModel,
    fission,
    fit_noise_model,
    gradient_misfit,
    pair_samples,
    stabilising_shift,
)
from pyflowreg.motion_correction.preprocess import MIN_SHIFT, Normalization


def _tissue(rng, shape=(128, 128)) -> np.ndarray:
    """Positive photon rates (photons per pixel per frame) spanning about 2 to 60."""
    blobs = ndimage.gaussian_filter(rng.standard_normal(shape), 4.0)
    return 2.0 + 58.0 * (blobs - blobs.min()) / np.ptp(blobs)


def _counts(rng, rate, *, gain, offset, read_noise):
    """Detector counts: gain x Poisson photons + offset + Gaussian read noise (counts)."""
    return gain * rng.poisson(rate) + offset + rng.normal(0.0, read_noise, rate.shape)


def _exact_model(gain, intercept, brightness=(100.0, 400.0)) -> NoiseModel:
    """A model that describes its data exactly (the line through two measured bins)."""
    bins = tuple((x, gain * x + intercept) for x in np.linspace(*brightness, 4))
    return NoiseModel(gain, intercept, 1.0, 16, gain_se=gain / 100, chi2=1.0,
                      relative_residual=0.0, bins=bins)


def _pairs(rng, rate, n_pairs=16, shift_px=0.0, **detector):
    pairs = []
    for _ in range(n_pairs):
        moved = ndimage.shift(rate, (shift_px, -shift_px), order=1, mode="nearest")
        pairs.append([_counts(rng, rate, **detector), _counts(rng, moved, **detector)])
    return np.asarray(pairs)


@pytest.mark.parametrize("shift_px", [0.0, 0.7])
def test_fit_recovers_poisson_gaussian_model(shift_px):
    # var = gain^2 * rate + read^2 = gain * (x - offset) + read^2 for x = gain * rate + offset.
    rng = np.random.default_rng(0)
    gain, offset, read_noise = 2.0, 100.0, 5.0
    pairs = _pairs(rng, _tissue(rng), shift_px=shift_px, gain=gain, offset=offset,
                   read_noise=read_noise)
    model = fit_noise_model(*pair_samples(pairs))
    assert model.plausible, model
    assert model.gain == pytest.approx(gain, rel=0.15)
    # The shift the transform needs: intercept / gain + 3 gain / 8 = -offset + read^2 / gain.
    expected_shift = -offset + read_noise**2 / gain + 0.375 * gain
    assert stabilising_shift(model) == pytest.approx(expected_shift, abs=12.0)


def test_constant_noise_is_not_a_photon_model_but_its_variance_is_known():
    # Gaussian noise of one variance at every brightness: no shot noise, nothing to stabilise,
    # but the line (of no significant gain) still gives the variance at every brightness.
    rng = np.random.default_rng(1)
    rate = _tissue(rng)
    pairs = np.stack([[rate + rng.normal(0, 3.0, rate.shape) for _ in range(2)]
                      for _ in range(16)])
    model = fit_noise_model(*pair_samples(pairs))
    assert not model.plausible, model
    assert model.kind == "line", model
    assert model.variance(np.array([5.0, 50.0])) == pytest.approx(9.0, rel=0.1)


def test_dim_integer_counts_still_give_the_gain():
    # 2-10 photons per pixel under 5 counts of read noise, stored as integers: the median
    # absolute deviation of integer differences takes the same value in every brightness bin,
    # so the variance must not be measured by it.
    rng = np.random.default_rng(6)
    rate = 2.0 + 8.0 * (_tissue(rng, (192, 192)) - 2.0) / 58.0
    pairs = np.round(_pairs(rng, rate, gain=1.0, offset=100.0, read_noise=5.0))
    model = fit_noise_model(*pair_samples(pairs))
    assert model.plausible, model
    assert model.gain == pytest.approx(1.0, rel=0.2), model
    assert model.intercept == pytest.approx(25.0 + 1 / 12 - 100.0, abs=20.0), model




def test_clipped_counts_leave_measured_variances_instead_of_a_line():
    # No dark offset: the read noise of dim pixels is clipped at zero, the line cannot be
    # fitted, but the variance of every brightness bin is measured and answers instead.
    rng = np.random.default_rng(8)
    rate = 1.0 + 5.0 * (_tissue(rng) - 2.0) / 58.0
    pairs = np.maximum(np.round(_pairs(rng, rate, gain=1.0, offset=0.0, read_noise=5.0)), 0)
    model = fit_noise_model(*pair_samples(pairs))
    assert not model.plausible and model.measured, model
    assert model.kind == "bins", model
    centres, variances = np.asarray(model.bins).T
    np.testing.assert_allclose(model.variance(centres), variances)
    assert model.as_dict()["kind"] == "bins"


def test_too_few_pixels_give_no_model():
    model = fit_noise_model(np.ones((8, 8)), np.zeros((2, 8, 8)))
    assert not model.plausible and model.r_squared == 0.0
    assert not model.measured and model.kind == "none"
    with pytest.raises(ValueError, match="no noise variance"):
        model.variance(np.ones(3))


def test_transform_makes_noise_uniform():
    # After sqrt(x + shift) the noise of dim and bright pixels differs far less than before.
    rng = np.random.default_rng(2)
    gain, offset, read_noise = 1.0, 100.0, 5.0
    levels = np.array([3.0, 300.0])  # photons per pixel
    samples = np.stack([_counts(rng, np.full(20000, lv), gain=gain, offset=offset,
                                read_noise=read_noise) for lv in levels])
    model = fit_noise_model(*pair_samples(_pairs(rng, _tissue(rng), gain=gain, offset=offset,
                                                 read_noise=read_noise)))
    transformed = np.sqrt(np.maximum(samples + stabilising_shift(model), 0.0))
    raw_ratio = samples[1].std() / samples[0].std()
    stable_ratio = transformed[1].std() / transformed[0].std()
    assert raw_ratio > 2.5
    assert 0.7 < stable_ratio < 1.3, stable_ratio


def test_stabiliser_maps_reference_to_unit_range_and_keeps_linear_channels():
    rng = np.random.default_rng(3)
    image = np.stack([_tissue(rng), _tissue(rng)], axis=-1).astype(np.float32) * 10 + 100
    norm = Normalization.from_image(image, "separate")
    filtered = norm.apply(image)
    stable = norm.with_stabiliser([-90.0, np.nan], filtered)
    out = stable.stabilise(filtered.copy())
    assert out[..., 0].min() == pytest.approx(0.0, abs=1e-6)
    assert out[..., 0].max() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(out[..., 1], filtered[..., 1])
    # sqrt compresses: the midpoint of the range maps above one half.
    assert np.interp(0.5, np.sort(filtered[..., 0].ravel()), np.sort(out[..., 0].ravel())) > 0.5


def test_overestimated_intercept_is_clipped():
    # A shift far below the darkest value would make the dark end's noise dominate: clipped.
    image = np.linspace(100, 1000, 64 * 64, dtype=np.float32).reshape(64, 64, 1)
    norm = Normalization.from_image(image)
    stable = norm.with_stabiliser([-5000.0], norm.apply(image))
    assert stable.shift[0] == pytest.approx(MIN_SHIFT)
    out = stable.stabilise(norm.apply(image))
    assert np.isfinite(out).all()


def test_fission_gives_independent_copies_with_the_predicted_noise():
    # Poisson-Gaussian counts: var = gain * (x - offset) + read^2 = gain * x + intercept.
    rng = np.random.default_rng(4)
    gain, offset, read_noise, tau = 2.0, 100.0, 5.0, 0.5
    rate = _tissue(rng, (96, 96))
    clean = gain * rate + offset
    frames = np.stack([_counts(rng, rate, gain=gain, offset=offset, read_noise=read_noise)
                       for _ in range(40)])
    model = _exact_model(gain, read_noise**2 - gain * offset)
    fit, score = fission(frames, model, np.random.default_rng(0), tau)
    noise_fit, noise_score = fit - clean, score - clean
    variance = gain * (clean - offset) + read_noise**2
    # Whitened by the true per-pixel noise, the copies carry (1 + tau^2) and (1 + 1/tau^2).
    assert np.var(noise_fit / np.sqrt(variance)) == pytest.approx(1 + tau**2, rel=0.05)
    assert np.var(noise_score / np.sqrt(variance)) == pytest.approx(1 + 1 / tau**2, rel=0.05)
    # Independent: their noises do not correlate (two views of the raw frame would give 1).
    correlation = np.corrcoef(noise_fit.ravel(), noise_score.ravel())[0, 1]
    assert abs(correlation) < 0.02
    # Same draw, same split: the selection that uses it is reproducible.
    again, _ = fission(frames, model, np.random.default_rng(0), tau)
    np.testing.assert_array_equal(fit, again)


def test_gradient_misfit_is_zero_for_equal_images_and_ignores_invalid_pixels():
    rng = np.random.default_rng(5)
    image = _tissue(rng, (64, 64))
    valid = np.ones(image.shape, bool)
    assert gradient_misfit(image, image, valid) == 0.0
    shifted = ndimage.shift(image, (0.0, 0.5), order=3, mode="nearest")
    assert gradient_misfit(shifted, image, valid) > 0.0
    # A brightness offset does not change gradients; a corrupted region outside valid is unseen.
    broken = image + 10.0
    broken[:, :16] = 1e6
    valid[:, :18] = False
    assert gradient_misfit(broken, image, valid) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(gradient_misfit(image, image, np.zeros_like(valid)))
