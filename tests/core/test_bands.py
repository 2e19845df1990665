"""The wide band of a flow's non-rigid part and its gain (pyflowreg.core.bands)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pyflowreg.core.bands import LOW_BAND_SIGMA_PX, LowBand, wide_band_gain


def _grid(height, width):
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    return yy, xx


def test_band_keeps_wide_deformation_and_drops_rigid_motion_and_fine_detail():
    height, width = 160, 224
    band = LowBand(height, width)
    yy, xx = _grid(height, width)
    rigid = np.stack([np.full_like(xx, 3.0), np.full_like(xx, -2.0)], -1)
    assert np.abs(band(rigid)).max() < 1e-5  # the spatial mean is not part of the band
    # A tilt stays, a wave of 200 px keeps what a Gaussian of the band's width passes (away
    # from the border, where the renormalised Gaussian leans to one side).
    wavelength = 200.0
    passed = np.exp(-2 * (np.pi * LOW_BAND_SIGMA_PX / wavelength) ** 2)
    wide = np.stack([0.01 * xx, np.sin(2 * np.pi * yy / wavelength)], -1)
    expected = np.stack([wide[..., 0], passed * wide[..., 1]], -1)
    expected -= expected.mean(axis=(0, 1))
    inner = (slice(50, -50), slice(50, -50))
    assert np.abs(band(wide) - expected)[inner].max() < 0.05 * np.abs(expected).max()
    # Detail of a few pixels is gone.
    fine = np.stack([np.sin(2 * np.pi * xx / 6.0), np.cos(2 * np.pi * yy / 8.0)], -1)
    assert np.abs(band(fine)[inner]).max() < 0.01


def test_band_is_close_to_a_gaussian_of_the_configured_width():
    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.standard_normal((256, 256, 2)), (8, 8, 0))
    field -= field.mean(axis=(0, 1))
    gaussian = ndimage.gaussian_filter(field, (LOW_BAND_SIGMA_PX, LOW_BAND_SIGMA_PX, 0),
                                       mode="nearest")
    inner = (slice(64, -64), slice(64, -64))
    error = LowBand(256, 256)(field) - gaussian
    # Nodes a sigma apart with linear interpolation between them: near, not equal.
    assert np.sqrt(np.mean(error[inner] ** 2)) < 0.2 * np.sqrt(np.mean(gaussian[inner] ** 2))


def test_scaled_multiplies_only_the_band():
    height, width = 96, 128
    band = LowBand(height, width)
    yy, xx = _grid(height, width)
    w = np.stack([1.0 + 0.02 * xx + 0.3 * np.sin(xx), -0.5 + 0.01 * yy], -1).astype(np.float32)
    assert band.scaled(w, 1.0) is not None and np.array_equal(band.scaled(w, 1.0), w)
    scaled = band.scaled(w, 1.25)
    assert scaled.dtype == np.float32 and scaled.shape == w.shape
    np.testing.assert_allclose(scaled - w, 0.25 * band(w), atol=1e-5)
    # The rigid part (the mean) is left as it is.
    np.testing.assert_allclose(scaled.mean(axis=(0, 1)), w.mean(axis=(0, 1)), atol=1e-5)
    with pytest.raises(ValueError, match="this band is for"):
        band(np.zeros((height, width + 1, 2), np.float32))


def test_gain_undoes_a_known_shrinkage_as_far_as_the_noise_allows():
    rng = np.random.default_rng(1)
    height, width, n = 128, 128, 12
    yy, xx = _grid(height, width)
    truth = []
    for _ in range(n):
        phase = rng.uniform(0, 2 * np.pi, 2)
        truth.append(np.stack([np.sin(2 * np.pi * xx / 180.0 + phase[0]),
                               np.cos(2 * np.pi * yy / 150.0 + phase[1])], -1))
    truth = np.asarray(truth, dtype=np.float32)
    band = LowBand(height, width)
    shrinkage = 0.8
    clean = shrinkage * truth
    gain, k, noise_ratio = wide_band_gain(truth, [clean], band, margin=10)
    assert k == pytest.approx(shrinkage, abs=1e-3) and noise_ratio < 1e-4
    assert gain == pytest.approx(1.0 / shrinkage, rel=1e-3)
    # Wide errors independent of the truth lower the gain by the share of variance they hold.
    errors = np.stack([band(ndimage.gaussian_filter(rng.standard_normal((height, width, 2)),
                                                    (20, 20, 0))) for _ in range(n)])
    errors *= 0.3 * np.std(band(truth[0])) / np.std(errors)
    gain, k, noise_ratio = wide_band_gain(truth, [clean + errors], band, margin=10)
    assert 0.02 < noise_ratio < 0.3
    assert k == pytest.approx(shrinkage, abs=0.05)
    assert gain == pytest.approx((1.0 - noise_ratio) / k, rel=1e-6)
    assert gain < 1.0 / shrinkage
    # Nothing wide to measure: no gain.
    flat = np.zeros_like(truth)
    assert wide_band_gain(flat, [clean], band, margin=10) == (1.0, 1.0, 0.0)
