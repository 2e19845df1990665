"""Time-varying motion (pyflowreg.synthetic.motion) and temporal traces (.traces)."""

import numpy as np
import pytest

from pyflowreg.synthetic import (
    MotionField,
    breathing_trace,
    jitter_trace,
    local_field,
    make_benchmark_recording,
)
from pyflowreg.synthetic.benchmark import BenchmarkRecording, SceneSource


def rigid_only(trace, height, width, line_fraction):
    n = len(trace)
    return MotionField(height, width, np.asarray(trace, float), np.zeros((0, 2)), np.zeros(0),
                       np.zeros((0, 2)), np.zeros((n, 0)), line_fraction=line_fraction)


def test_line_scan_rows_follow_their_acquisition_time():
    trace = np.array([[0.0, 0.0], [2.0, -1.0], [2.0, 3.0], [-1.0, 0.5]])
    height, width = 40, 48
    motion = rigid_only(trace, height, width, line_fraction=0.75)
    yy, xx = np.mgrid[:height, :width].astype(float)
    source = SceneSource(height, width, 3, 1, 16, seed=2)
    rec = BenchmarkRecording(source, motion, model="test")
    observed = rec.observed_all(noise=False)
    for t in range(3):
        dx, dy = motion.displacement(t, xx, yy)
        for y in (0, 13, 39):
            tau = t + 0.75 * y / height
            expected = [np.interp(tau, np.arange(4), trace[:, c]) for c in (0, 1)]
            np.testing.assert_allclose([dx[y], dy[y]], np.broadcast_to(
                np.array(expected)[:, None], (2, width)), atol=1e-12)
            # The row shows the tissue as it was at that row's time (a rigid shift of it).
            at_row_time = source.warped(t, np.full((height, width), expected[0]),
                                        np.full((height, width), expected[1]))
            np.testing.assert_allclose(observed[t, y], at_row_time[y], atol=1e-5)
    # Without line scanning every row of a frame sits at the frame's own time.
    still = rigid_only(trace, height, width, line_fraction=0.0)
    np.testing.assert_array_equal(still.displacement(1, xx, yy)[1], -1.0)


def test_patches_confine_the_local_field_and_keep_its_peak():
    size, n_times, reach = 128, 30, 16
    # The peak is set over the frame plus the grid's margin, so look there too.
    yy, xx = np.mgrid[-reach : size + reach : 2, -reach : size + reach : 2].astype(float)
    frame = (slice(None), slice(reach // 2, -reach // 2), slice(reach // 2, -reach // 2))

    def norms(**kw):
        field = local_field(np.random.default_rng(7), size, size, n_times, peak=3.0,
                            reach=reach, **kw)
        return np.array([np.hypot(*field.at(t, xx, yy)) for t in range(n_times)])

    dense, patchy = norms(), norms(patches=3)
    assert dense.max() == pytest.approx(3.0, rel=0.01)
    assert patchy.max() == pytest.approx(3.0, rel=0.01)
    # Most of the frame barely deforms: the time-mean norm per pixel, by area.
    dense_mean, patchy_mean = dense[frame].mean(0), patchy[frame].mean(0)
    assert np.median(patchy_mean) < 0.5 * np.median(dense_mean)
    assert np.mean(patchy_mean < 0.1) > 0.2 > np.mean(dense_mean < 0.1)
    # Same noise draw up to the envelope: patches=0 is the dense field itself.
    again = local_field(np.random.default_rng(7), size, size, n_times, peak=3.0, patches=0)
    assert np.array_equal(again.coef, local_field(np.random.default_rng(7), size, size,
                                                  n_times, peak=3.0).coef)


def test_local_field_features_are_15_to_30_px():
    field = local_field(np.random.default_rng(0), 128, 128, 3, peak=3.0)
    yy, xx = np.mgrid[:128, :128].astype(float)
    dx = field.at(1, xx, yy)[0]
    spectrum = np.abs(np.fft.fft2(dx - dx.mean())) ** 2
    autocorr = np.real(np.fft.ifft2(spectrum))[0]
    autocorr /= autocorr[0]
    fwhm = 2 * np.argmax(autocorr < 0.5)
    assert 15 <= fwhm <= 30


def test_jitter_model_has_sharp_jumps_and_periodic_breathing():
    pulse = breathing_trace(np.random.default_rng(0), 300, period=25.0)
    peaks = np.flatnonzero((pulse[1:-1] > pulse[:-2]) & (pulse[1:-1] >= pulse[2:])
                           & (pulse[1:-1] > 0.5))
    assert 10 <= len(peaks) <= 14  # one breath per ~25 frames
    assert np.mean(pulse < 0.1) > 0.5  # flat between breaths, sharp peaks
    jumps = jitter_trace(np.random.default_rng(0), 300, sigma=0.6)
    assert np.hypot(*np.diff(jumps, axis=0).T).mean() > 0.8
    rec = make_benchmark_recording("jitter", photons_per_unit=None, height=48, width=48,
                                   n_frames=60, seed=2)
    steps = np.hypot(*np.diff(rec.motion.rigid, axis=0).T)
    assert np.percentile(steps, 90) > 1.0


def test_impossible_motion_is_rejected():
    with pytest.raises(ValueError, match="line_fraction"):
        rigid_only(np.zeros((3, 2)), 8, 8, line_fraction=1.5)
    with pytest.raises(ValueError, match="not invertible"):
        MotionField(32, 32, np.zeros((3, 2)), np.array([[0.5, 0.0]]), np.zeros(1),
                    np.array([[1.0, 0.0]]), np.full((3, 1), 2.0))
