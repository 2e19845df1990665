"""Tests of the benchmark recordings (pyflowreg.synthetic_motion, pyflowreg.synthetic_benchmark)."""

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from pyflowreg import synthetic_benchmark as sb
from pyflowreg.synthetic import make_benchmark_recording, write_recording
from pyflowreg.synthetic_motion import (
    MotionField,
    breathing_trace,
    jitter_trace,
    local_field,
)

MARGIN = 8  # px of interior used when comparing warped images


def warp_backward(image, flow):
    """registered(y, x) = image(y + v, x + u), cubic spline."""
    height, width = image.shape
    yy, xx = np.mgrid[:height, :width].astype(float)
    return ndi.map_coordinates(image, [yy + flow[..., 1], xx + flow[..., 0]], order=3,
                               mode="nearest")


def interior(image):
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN]


def rigid_only(trace, height, width, line_fraction):
    n = len(trace)
    return MotionField(height, width, np.asarray(trace, float), np.zeros((0, 2)), np.zeros(0),
                       np.zeros((0, 2)), np.zeros((n, 0)), line_fraction=line_fraction)


@pytest.fixture(scope="module")
def local_recording():
    return make_benchmark_recording("local", photons_per_unit=None, height=72, width=64,
                                    n_frames=8, seed=3)


@pytest.mark.parametrize("model", ["smooth", "local", "local_patches", "jitter"])
def test_ground_truth_flow_registers_noise_free_frames_onto_clean(model):
    rec = make_benchmark_recording(model, photons_per_unit=None, height=72, width=64,
                                   n_frames=8, seed=1)
    observed, clean, flow = rec.observed_all(noise=False), rec.clean_all(), rec.flow_all()
    assert observed.shape == clean.shape == (8, 72, 64, 1) and flow.shape == (8, 72, 64, 2)
    moved = 0
    for t in range(8):
        dynamic_range = float(np.ptp(clean[t]))
        registered = warp_backward(observed[t, ..., 0], flow[t])
        error = np.abs(interior(registered - clean[t, ..., 0])).mean()
        assert error < 1e-2 * dynamic_range
        unregistered = np.abs(interior(observed[t, ..., 0] - clean[t, ..., 0])).mean()
        moved += unregistered > 10 * error
    assert moved >= 6  # the motion is not negligible


def test_flow_is_exact_inverse_of_line_scanned_local_displacement(local_recording):
    rec = local_recording
    yy, xx = np.mgrid[: rec.height, : rec.width].astype(float)
    for t in (0, 4, 7):
        w = rec.flow(t, t + 1)[0].astype(float)
        dx, dy = rec.motion.displacement(t, xx + w[..., 0], yy + w[..., 1])
        residual = np.hypot(w[..., 0] + dx, w[..., 1] + dy)
        assert residual.max() < 5e-3 and residual.mean() < 5e-4


def test_line_scan_rows_follow_their_acquisition_time():
    trace = np.array([[0.0, 0.0], [2.0, -1.0], [2.0, 3.0], [-1.0, 0.5]])
    height, width = 40, 48
    motion = rigid_only(trace, height, width, line_fraction=0.75)
    yy, xx = np.mgrid[:height, :width].astype(float)
    source = sb._SceneSource(height, width, 3, 1, 16, seed=2)
    rec = sb.BenchmarkRecording(source, motion, model="test")
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


def test_fast_motion_bends_line_scanned_frames(local_recording):
    d = local_recording.displacement(0, 8)
    rigid_step = np.abs(np.diff(local_recording.motion.rigid, axis=0)).max()
    top_to_bottom = np.abs(d[:, -1].mean(1) - d[:, 0].mean(1)).max()
    assert rigid_step > 0.2 and top_to_bottom > 0.2


@pytest.mark.parametrize("photons", [3.0, 100.0, 1000.0])
def test_photon_level_gives_stated_mean_photon_count_and_noise(photons):
    rec = make_benchmark_recording("smooth", photons_per_unit=photons, height=64, width=64,
                                   n_frames=3, seed=4)
    noisy, mean = rec.observed_all(), rec.observed_all(noise=False)
    assert rec.clean_static().mean() == pytest.approx(sb.MEAN_BRIGHTNESS, rel=1e-3)
    assert (noisy * photons).mean() == pytest.approx(0.45 * photons, rel=0.03, abs=0.05)
    read = 5.0 / photons
    expected = (np.maximum(mean, 0).mean() / photons) + read**2
    assert (noisy - mean).var() == pytest.approx(expected, rel=0.05)


def test_written_counts_are_photons_plus_dark_offset(tmp_path):
    rec = make_benchmark_recording("jitter", photons_per_unit=100.0, height=40, width=48,
                                   n_frames=5, seed=1)
    path = write_recording(rec, tmp_path / "rec.tif", dtype="uint16", chunk_frames=2)
    stored = tifffile.imread(path)
    assert stored.shape == (5, 40, 48) and stored.dtype == np.uint16
    expected = rec.observed_all()[..., 0] * 100.0 + 100.0
    assert np.abs(stored - expected).max() <= 0.5 + 1e-3
    assert stored.min() > 0  # read noise never clipped
    assert stored.mean() == pytest.approx(145.0, rel=0.05)  # about 45 photons per pixel
    explicit = write_recording(rec, tmp_path / "explicit.tif", scale=rec.count_scale,
                               offset=rec.count_offset)
    np.testing.assert_array_equal(tifffile.imread(explicit), stored)


def test_streams_are_reproducible_and_chunk_independent(local_recording):
    again = make_benchmark_recording("local", photons_per_unit=None, height=72, width=64,
                                     n_frames=8, seed=3)
    np.testing.assert_array_equal(again.flow(2, 5), local_recording.flow(2, 5))
    noisy = make_benchmark_recording("local", photons_per_unit=10.0, height=72, width=64,
                                     n_frames=8, seed=3)
    chunks = np.concatenate([frames for _, frames in noisy.iter_observed(3)])
    np.testing.assert_array_equal(chunks, noisy.observed_all())
    other = make_benchmark_recording("local", photons_per_unit=10.0, height=72, width=64,
                                     n_frames=8, seed=4)
    assert not np.allclose(other.observed(0, 2), noisy.observed(0, 2))


def test_motion_is_zero_mean_and_local_field_bounded():
    rec = make_benchmark_recording("local", photons_per_unit=None, height=96, width=96,
                                   n_frames=40, seed=5)
    local = rec.motion.local
    yy, xx = np.mgrid[:96, :96].astype(float)
    norms = np.array([np.hypot(*local.at(t, xx, yy)) for t in range(40)])
    assert norms.max() <= 3.0 * 1.01 and norms.mean() > 0.3
    assert np.abs(rec.motion.rigid[:-1].mean(0)).max() < 1e-9
    smooth = make_benchmark_recording("smooth", photons_per_unit=None, height=64, width=64,
                                      n_frames=30, seed=5)
    assert np.abs(smooth.displacement(0, 30).mean(0)).max() < 1e-4


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
    # Same noise draw up to the envelope: patches=0 leaves the dense field as it was.
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


def test_unknown_model_and_impossible_sizes_are_rejected():
    with pytest.raises(ValueError, match="unknown benchmark model"):
        make_benchmark_recording("wobbly")
    with pytest.raises(ValueError, match="height, width >= 8"):
        make_benchmark_recording("smooth", height=4, width=4, n_frames=2)
    with pytest.raises(ValueError, match="line_fraction"):
        rigid_only(np.zeros((3, 2)), 8, 8, line_fraction=1.5)
    with pytest.raises(ValueError, match="not invertible"):
        MotionField(32, 32, np.zeros((3, 2)), np.array([[0.5, 0.0]]), np.zeros(1),
                    np.array([[1.0, 0.0]]), np.full((3, 1), 2.0))


def test_real_loader_names_the_missing_data(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="real recording .*mouse_vs1"):
        sb.load_real_frames("real", data_dir=tmp_path)
    monkeypatch.setenv(sb.REAL_DATA_ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="absent"):
        make_benchmark_recording("real", n_frames=3)
    with pytest.raises(ValueError, match="no real recording"):
        sb.load_real_frames("smooth")


def real_or_skip(model, **kwargs):
    try:
        return make_benchmark_recording(model, height=None, width=None, **kwargs)
    except FileNotFoundError as err:
        pytest.skip(f"real data not available: {err}")


def test_real_tissue_is_moved_by_known_motion(tmp_path):
    rec = real_or_skip("real", n_frames=6, seed=1)
    frames = sb.load_real_frames("real")
    assert rec.shape == (6, 52, 52, 1)
    np.testing.assert_array_equal(rec.clean(0, 6), frames[:6, 6:-6, 6:-6])
    np.testing.assert_allclose(rec.clean_static(), frames[:6, 6:-6, 6:-6].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(rec.observed_all(), rec.observed_all(noise=False))  # own noise
    observed, clean, flow = rec.observed_all(), rec.clean_all(), rec.flow_all()
    errors, unregistered = [], []
    for t in range(6):
        registered = warp_backward(observed[t, ..., 0], flow[t])
        errors.append(np.abs(interior(registered - clean[t, ..., 0])).mean())
        unregistered.append(np.abs(interior(observed[t, ..., 0] - clean[t, ..., 0])).mean())
        # Interpolating the real frames' own noise twice blurs it a little: not exact, but close.
        assert errors[-1] < 1e-2 * np.ptp(clean[t])
    assert np.mean(errors) < 0.5 * np.mean(unregistered)
    stored = tifffile.imread(write_recording(rec, tmp_path / "real.tif"))
    assert np.abs(stored - np.clip(observed[..., 0], 0, None)).max() <= 0.5 + 1e-3  # own counts
    with pytest.raises(ValueError, match="500 real frames"):
        make_benchmark_recording("real", height=None, width=None, n_frames=501)
    with pytest.raises(ValueError, match="52 x 52"):
        make_benchmark_recording("real", height=64, width=64, n_frames=3)
