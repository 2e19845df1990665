"""The files compensate_recording writes: names, shapes, dtypes, formats, channels, batches."""

from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.io import is_temporary_path, open_movie
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.motion_correction.alpha_selection import ALPHA_FACTORS, MIN_RECORDING_FRAMES
from pyflowreg.synthetic import SyntheticRecording, write_recording

H, W, T = 64, 64, 150
BASE = {"quality_setting": "fast", "n_workers": 2, "buffer_size": 40, "chunk_frames": 32}


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    rec = SyntheticRecording(H, W, T, rigid_amplitude=3.0, nonrigid_amplitude=1.0, seed=21)
    return write_recording(rec, folder / "movie.tif", dtype="uint16")


@pytest.fixture(scope="module")
def hdf5_run(movie, tmp_path_factory):
    """Default HDF5/float32 run in several batches (buffer_size 40 < 150 frames), with w."""
    out = compensate_recording({**BASE, "save_w": True}, input_file=movie,
                               output_path=tmp_path_factory.mktemp("hdf5") / "out")
    with h5py.File(out / "compensated.hdf5", "r") as f:
        data = f["ch1"][:]
    return SimpleNamespace(out=out, data=data)


def test_output_folder_holds_exactly_the_documented_files(hdf5_run):
    names = sorted(p.name for p in hdf5_run.out.iterdir())
    assert names == sorted([
        "compensated.hdf5", "idx.hdf", "w.hdf5", "temporal_average.npy", "reference.npy",
        "status.json", "qc.json", "qc_mean_images.png", "qc_displacement.png",
        "qc_correlation.png", "qc_flow_magnitude.png",
    ])
    assert not any(is_temporary_path(p) for p in hdf5_run.out.iterdir())


def test_compensated_hdf5_is_float32_t_h_w(hdf5_run):
    with h5py.File(hdf5_run.out / "compensated.hdf5", "r") as f:
        assert list(f.keys()) == ["ch1"]
        assert f["ch1"].shape == (T, H, W)
        assert f["ch1"].dtype == np.float32
    assert np.isfinite(hdf5_run.data).all()
    with open_movie(hdf5_run.out / "compensated.hdf5") as reader:
        assert reader.shape == (T, H, W, 1)


def test_multi_batch_run_corrects_every_frame(hdf5_run, movie):
    raw = tifffile.imread(movie).astype(np.float32)
    reference = np.load(hdf5_run.out / "reference.npy")
    inner = (slice(8, -8), slice(8, -8))

    def mismatch(frames):
        return np.abs(frames[:, inner[0], inner[1]] - reference[inner]).mean(axis=(1, 2))

    # Every frame, in every batch, ends up closer to the reference than it started.
    assert np.all(mismatch(hdf5_run.data) < mismatch(raw))


def test_idx_is_uint8_0_or_255(hdf5_run):
    with h5py.File(hdf5_run.out / "idx.hdf", "r") as f:
        idx = f["ch1"][:]
    assert idx.dtype == np.uint8
    assert idx.shape == (T, H, W)
    assert set(np.unique(idx).tolist()) <= {0, 255}
    assert (idx == 255).mean() > 0.8  # most pixels are sampled from inside the frame


def test_w_hdf5_holds_u_and_v(hdf5_run):
    with h5py.File(hdf5_run.out / "w.hdf5", "r") as f:
        assert {"u", "v"} <= set(f.keys())
        for name in ("u", "v"):
            assert f[name].shape == (T, H, W)
            assert f[name].dtype == np.float32
            assert np.isfinite(f[name][:]).all()


def test_temporal_average_is_mean_of_compensated_frames(hdf5_run):
    average = np.load(hdf5_run.out / "temporal_average.npy")
    assert average.shape == (H, W)
    assert average.dtype == np.float64
    np.testing.assert_allclose(average, hdf5_run.data.astype(np.float64).mean(axis=0),
                               rtol=1e-6, atol=1e-6)


def test_reference_npy_shape(hdf5_run):
    reference = np.load(hdf5_run.out / "reference.npy")
    assert reference.shape == (H, W)
    assert np.isfinite(reference).all()


def test_status_json_is_complete(hdf5_run):
    status = json.loads((hdf5_run.out / "status.json").read_text())
    assert status["complete"] is True
    assert status["n_frames"] == T
    assert status["frame_shape"] == [H, W]
    assert status["n_channels"] == 1
    # The default window holds all T frames here; at most reference_max_frames of them are used.
    assert status["reference"]["n_frames"] == min(T, 100)
    assert status["temporal_filter"]["enabled"] is True
    assert sum(status["temporal_filter"]["frames_per_window"]) == T
    assert status["temporal_filter"]["flow_noise_px"] >= 0
    # The fast preset does not refine; the noise model is fitted and recorded either way.
    assert status["refinement"] == {"enabled": False}
    (channel,) = status["noise_model"]["channels"]
    assert status["noise_model"]["enabled"] is True
    assert {"gain", "intercept", "r_squared", "plausible", "stabilised", "kind",
            "variance_ratio"} <= set(channel)
    # The transform only where a photon model's variance grows with brightness.
    assert channel["stabilised"] == (channel["plausible"] and channel["variance_ratio"] >= 1.5)
    # The smoothness weight is cross-validated for long recordings whatever the noise fit gave
    # (the long case is covered by test_mc_accuracy_models and test_alpha_selection).
    selection = status["alpha_selection"]
    if T < MIN_RECORDING_FRAMES:
        assert selection["reason"] == f"recording shorter than {MIN_RECORDING_FRAMES} frames"
        assert selection["alpha"] == [1.5, 1.5]
        assert selection["path"] == "configured" and selection["fell_back"] is False
    else:
        assert selection["reason"].startswith("cross-validated")
        # The search stops at the first candidate no better than the one before.
        assert 2 <= len(selection["candidates"]) == len(selection["gradient_misfit"]) \
            <= len(ALPHA_FACTORS)
        assert selection["alpha"] in selection["candidates"]


def test_output_dtype_same_keeps_uint16(movie, hdf5_run, tmp_path):
    out = compensate_recording({**BASE, "output_dtype": "same"}, input_file=movie,
                               output_path=tmp_path / "same")
    with h5py.File(out / "compensated.hdf5", "r") as f:
        data = f["ch1"][:]
    assert data.dtype == np.uint16
    assert data.shape == (T, H, W)
    # Rounded and clipped version of the float result.
    expected = np.clip(np.rint(hdf5_run.data), 0, 65535)
    assert np.abs(data.astype(np.float64) - expected).max() <= 1


def test_output_format_tiff_readable_by_tifffile(movie, hdf5_run, tmp_path):
    out = compensate_recording({**BASE, "output_format": "TIFF"}, input_file=movie,
                               output_path=tmp_path / "tiff")
    assert (out / "compensated.tif").is_file()
    assert not (out / "compensated.hdf5").exists()
    data = tifffile.imread(out / "compensated.tif")
    assert data.shape == (T, H, W)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, hdf5_run.data)
    status = json.loads((out / "status.json").read_text())
    assert status["complete"] is True


def test_output_format_npy(movie, hdf5_run, tmp_path):
    out = compensate_recording({**BASE, "output_format": "NPY"}, input_file=movie,
                               output_path=tmp_path / "npy")
    data = np.load(out / "compensated.npy")
    assert data.shape[:3] == (T, H, W)
    np.testing.assert_array_equal(data.reshape(T, H, W), hdf5_run.data)


def test_no_valid_idx_when_disabled(movie, tmp_path):
    out = compensate_recording({**BASE, "save_valid_idx": False}, input_file=movie,
                               output_path=tmp_path / "noidx")
    assert not (out / "idx.hdf").exists()
    assert not (out / "w.hdf5").exists()
    assert json.loads((out / "status.json").read_text())["complete"] is True


@pytest.fixture(scope="module")
def two_channel_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_channels")
    rec = SyntheticRecording(48, 48, 30, n_channels=2, rigid_amplitude=2.0,
                             nonrigid_amplitude=0.5, seed=4)
    movie = write_recording(rec, folder / "movie.tif", dtype="uint16")
    out = compensate_recording({**BASE, "output_dtype": "same"}, input_file=movie,
                               output_path=folder / "out")
    return SimpleNamespace(movie=movie, out=out)


def test_two_channel_outputs(two_channel_run):
    out = two_channel_run.out
    with h5py.File(out / "compensated.hdf5", "r") as f:
        assert sorted(f.keys()) == ["ch1", "ch2"]
        for name in ("ch1", "ch2"):
            assert f[name].shape == (30, 48, 48)
            assert f[name].dtype == np.uint16
        stack = np.stack([f["ch1"][:], f["ch2"][:]], axis=-1).astype(np.float64)
    average = np.load(out / "temporal_average.npy")
    assert average.shape == (48, 48, 2)
    # Mean of the float frames vs mean of their rounded copies: within rounding.
    np.testing.assert_allclose(average, stack.mean(axis=0), atol=0.5)
    assert np.load(out / "reference.npy").shape == (48, 48, 2)
    with h5py.File(out / "idx.hdf", "r") as f:
        assert f["ch1"].shape == (30, 48, 48)
    status = json.loads((out / "status.json").read_text())
    assert status["n_channels"] == 2
