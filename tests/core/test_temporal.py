"""Adaptive temporal filtering of flow sequences (pyflowreg.core.temporal)."""

from __future__ import annotations

import numpy as np
import pytest

from pyflowreg.core import temporal

H, W = 24, 32


def _fields(rigid: np.ndarray, nonrigid_amplitude: np.ndarray) -> np.ndarray:
    """(T, H, W, 2) fields: a rigid (u, v) per frame plus a fixed wave scaled per frame."""
    yy, xx = np.mgrid[:H, :W]
    wave = np.stack([np.sin(2 * np.pi * xx / W), np.cos(2 * np.pi * yy / H)], -1)
    return (rigid[:, None, None, :] + nonrigid_amplitude[:, None, None, None] * wave).astype(
        np.float32
    )


def _noise(rng, shape, std):
    # Spatially smooth noise, as a flow solver's errors are: independent per frame.
    from scipy import ndimage

    raw = rng.standard_normal(shape)
    smooth = ndimage.gaussian_filter(raw, (0, 3, 3, 0))
    return (std * smooth / smooth.std()).astype(np.float32)


def test_flow_summary_separates_rigid_and_block_means():
    rigid = np.array([[1.5, -2.0]])
    w = _fields(rigid, np.array([0.7]))[0]
    summary = temporal.flow_summary(w)
    assert summary.shape == (2 + 2 * temporal.SUMMARY_BLOCKS**2,)
    np.testing.assert_allclose(summary[:2], w.mean(axis=(0, 1)), atol=1e-6)
    # The block means of the non-rigid part sum to ~0 (equal-size blocks) and are non-trivial.
    assert abs(summary[2::2].mean()) < 1e-6 and np.abs(summary[2:]).max() > 0.1


@pytest.mark.parametrize("shape", [(256, 256), (97, 130), (3, 5), (2, 9), (1, 1)])
def test_flow_summary_equals_tile_means_on_any_shape(shape):
    # Written out tile by tile, as the summary is defined; tiles of no pixel are left out.
    w = np.random.default_rng(1).normal(0.5, 3.0, (*shape, 2)).astype(np.float32)
    rigid = w.astype(np.float64).mean(axis=(0, 1))
    rows = np.linspace(0, shape[0], temporal.SUMMARY_BLOCKS + 1).astype(int)
    cols = np.linspace(0, shape[1], temporal.SUMMARY_BLOCKS + 1).astype(int)
    expected = [rigid]
    for r0, r1 in zip(rows[:-1], rows[1:], strict=True):
        for c0, c1 in zip(cols[:-1], cols[1:], strict=True):
            if r1 > r0 and c1 > c0:
                expected.append(w[r0:r1, c0:c1].astype(np.float64).mean(axis=(0, 1)) - rigid)
    np.testing.assert_allclose(temporal.flow_summary(w), np.concatenate(expected),
                               rtol=0, atol=1e-12)


def test_summary_noise_ignores_smooth_motion_and_recovers_white_noise():
    rng = np.random.default_rng(0)
    t = np.arange(400)
    smooth = np.stack([3 * np.sin(t / 30), 2 * np.cos(t / 45)], -1)
    noisy = smooth + 0.1 * rng.standard_normal(smooth.shape)
    np.testing.assert_allclose(temporal.summary_noise(noisy), 0.1, rtol=0.15)
    assert temporal.summary_noise(smooth).max() < 0.01


def test_smooth_motion_gets_wide_windows_and_less_error():
    rng = np.random.default_rng(1)
    n = 80
    t = np.arange(n)
    truth = _fields(np.stack([2 * np.sin(t / 15), np.cos(t / 20)], -1), 0.8 * np.sin(t / 12))
    noisy = truth + _noise(rng, truth.shape, 0.2)
    filtered, sigmas = temporal.adaptive_temporal_filter(noisy)
    err_before = np.linalg.norm(noisy - truth, axis=-1).mean()
    err_after = np.linalg.norm(filtered - truth, axis=-1).mean()
    assert err_after < 0.6 * err_before, (err_before, err_after)
    assert np.median(sigmas) >= 3.0


def test_rigid_jumps_are_kept_exactly():
    # Every frame jumps rigidly (jitter); the filter must not average the jumps away.
    rng = np.random.default_rng(2)
    n = 40
    rigid = rng.normal(0, 1.0, (n, 2))
    truth = _fields(rigid, np.full(n, 0.5))
    filtered, _ = temporal.adaptive_temporal_filter(truth)
    np.testing.assert_allclose(filtered.mean(axis=(1, 2)), truth.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(filtered, truth, atol=1e-4)


def test_sudden_nonrigid_change_narrows_the_window_there():
    rng = np.random.default_rng(3)
    n = 60
    amplitude = np.where(np.arange(n) < 30, 0.0, 1.5)  # a step of the deformation at frame 30
    truth = _fields(np.zeros((n, 2)), amplitude)
    noisy = truth + _noise(rng, truth.shape, 0.05)
    filtered, sigmas = temporal.adaptive_temporal_filter(noisy)
    assert sigmas[28:32].max() <= 1.0, sigmas[25:35]
    # Away from the step the windows stay wide (ICI may narrow the odd frame by chance).
    assert np.median(sigmas[:20]) >= 4.5 and np.median(sigmas[42:]) >= 4.5
    # Across the step the error stays at the noise level: no blur.
    step_error = np.linalg.norm(filtered[28:32] - truth[28:32], axis=-1).mean()
    assert step_error < 0.1, step_error


def test_without_noise_information_frames_keep_their_own_field():
    windows = temporal.choose_windows(np.zeros((5, 4)), np.zeros(4))
    np.testing.assert_array_equal(windows, 0)


@pytest.mark.parametrize("t", [0, 3, 9])
def test_filter_frame_matches_numpy_reference(t):
    rng = np.random.default_rng(4)
    flows = rng.normal(size=(10, 6, 7, 2)).astype(np.float32)
    sigma = 2.0
    offsets = np.arange(10) - t
    k = np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= temporal.TRUNCATE * sigma)
    rigid = flows.mean(axis=(1, 2), dtype=np.float64)
    nonrigid = flows - rigid[:, None, None, :]
    expected = np.tensordot(k / k.sum(), nonrigid, axes=1) + rigid[t]
    np.testing.assert_allclose(temporal.filter_frame(flows, t, sigma), expected, atol=1e-5)
    np.testing.assert_allclose(
        temporal.filter_frame(flows, t, sigma, rigid), expected, atol=1e-5
    )


def test_filter_frame_rounds_like_numpy_accumulation():
    # The fused accumulation must give the very fields numpy's float32 sum gave, so Stage 1's
    # outputs do not change with it.
    rng = np.random.default_rng(6)
    flows = [rng.normal(size=(33, 41, 2)).astype(np.float32) for _ in range(30)]
    rigid = np.stack([w.mean(axis=(0, 1), dtype=np.float64) for w in flows])
    t, sigma = 14, 4.5
    k = temporal._kernel(sigma, np.arange(30) - t)
    support = np.flatnonzero(k)
    k = k[support] / k[support].sum()
    expected = np.multiply(flows[support[0]], np.float32(k[0]), dtype=np.float32)
    for weight, s in zip(k[1:], support[1:], strict=True):
        expected += np.float32(weight) * flows[s]
    expected += (rigid[t] - k @ rigid[support]).astype(np.float32)
    np.testing.assert_array_equal(temporal.filter_frame(flows, t, sigma, rigid), expected)


def test_filter_frame_rejects_fields_of_different_shapes():
    flows = [np.zeros((8, 9, 2), np.float32), np.zeros((8, 10, 2), np.float32)]
    with pytest.raises(ValueError, match="flow 1 has shape"):
        temporal.filter_frame(flows, 0, 1.0)


def test_rigid_jitter_survives_noisy_fields():
    # Rigid jumps of ~1 px every frame on top of noisy estimates: the rigid window is judged
    # against the noise of a whole-field average, so the jumps are kept, not averaged away.
    rng = np.random.default_rng(5)
    n = 60
    rigid = rng.normal(0, 1.0, (n, 2))
    truth = _fields(rigid, 0.5 * np.sin(np.arange(n) / 10))
    noisy = truth + _noise(rng, truth.shape, 0.15)
    filtered, _ = temporal.adaptive_temporal_filter(noisy)
    rigid_error = np.linalg.norm(filtered.mean(axis=(1, 2)) - rigid, axis=-1)
    assert rigid_error.mean() < 0.1, rigid_error.mean()
    assert np.linalg.norm(filtered - truth, axis=-1).mean() < np.linalg.norm(
        noisy - truth, axis=-1
    ).mean()
