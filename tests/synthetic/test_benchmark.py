"""Benchmark recordings (pyflowreg.synthetic.benchmark, .real_data): models, noise, real tissue."""

import numpy as np
import pytest
import tifffile

from pyflowreg.synthetic import (
    MEAN_BRIGHTNESS,
    load_real_frames,
    make_benchmark_recording,
    write_recording,
)

MARGIN = 8  # px of interior used when comparing warped images


def interior(image):
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.fixture(scope="module")
def local_recording():
    return make_benchmark_recording("local", photons_per_unit=None, height=72, width=64,
                                    n_frames=8, seed=3)


@pytest.mark.parametrize("model", ["smooth", "local", "local_patches", "jitter"])
def test_ground_truth_flow_registers_noise_free_frames_onto_clean(model, warp_backward):
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
    assert rec.clean_static().mean() == pytest.approx(MEAN_BRIGHTNESS, rel=1e-3)
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


def test_unknown_model_and_impossible_sizes_are_rejected():
    with pytest.raises(ValueError, match="unknown benchmark model"):
        make_benchmark_recording("wobbly")
    with pytest.raises(ValueError, match="height, width >= 8"):
        make_benchmark_recording("smooth", height=4, width=4, n_frames=2)


@pytest.mark.parametrize("model, file", [("real", "mouse_vs1"), ("real_sima", "example.tif")])
def test_real_model_without_data_folder_names_what_is_missing(model, file):
    with pytest.raises(ValueError, match=rf"{model}' needs data_dir.*{file}"):
        make_benchmark_recording(model, height=None, width=None, n_frames=3)
    with pytest.raises(ValueError, match=rf"{model}' needs data_dir"):
        load_real_frames(model, None)


def test_real_data_is_read_from_the_given_folder_only(tmp_path, monkeypatch, real_data_dir):
    # The environment never stands in for the argument: the folder is the caller's choice.
    monkeypatch.setenv("FLOWREG_REAL_DATA", str(real_data_dir))
    with pytest.raises(ValueError, match="needs data_dir"):
        make_benchmark_recording("real", height=None, width=None, n_frames=3)
    with pytest.raises(FileNotFoundError, match="real-data folder .*absent"):
        make_benchmark_recording("real", height=None, width=None, n_frames=3,
                                 data_dir=tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="real recording .*mouse_vs1"):
        load_real_frames("real", tmp_path)
    with pytest.raises(ValueError, match="no real recording"):
        load_real_frames("smooth", real_data_dir)


def test_real_tissue_is_moved_by_known_motion(tmp_path, real_data_dir, warp_backward):
    rec = make_benchmark_recording("real", height=None, width=None, n_frames=6, seed=1,
                                   data_dir=real_data_dir)
    frames = load_real_frames("real", real_data_dir)
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
        make_benchmark_recording("real", height=None, width=None, n_frames=501,
                                 data_dir=real_data_dir)
    with pytest.raises(ValueError, match="52 x 52"):
        make_benchmark_recording("real", height=64, width=64, n_frames=3,
                                 data_dir=real_data_dir)
