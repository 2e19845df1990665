"""Unusable inputs and options fail with a clear error before any output is written."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.motion_correction import OFOptions, compensate_recording, is_complete

FAST = {"quality_setting": "fast", "n_workers": 2}


def _assert_no_output(folder):
    assert not folder.exists() or not any(folder.iterdir()), sorted(folder.iterdir())


def _run(movie, out, options=None):
    return compensate_recording(options or FAST, input_file=movie, output_path=out)


def test_missing_file_raises_file_not_found(tmp_path):
    movie = tmp_path / "does_not_exist.tif"
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="does_not_exist.tif"):
        _run(movie, out)
    _assert_no_output(out)


def test_corrupt_tiff_raises_naming_the_file(tmp_path):
    movie = tmp_path / "corrupt.tif"
    movie.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="corrupt.tif"):
        _run(movie, out)
    _assert_no_output(out)


def test_truncated_tiff_raises_naming_the_file(tmp_path):
    movie = tmp_path / "truncated.tif"
    tifffile.imwrite(movie, np.ones((20, 32, 32), np.uint16))
    with open(movie, "r+b") as fh:
        fh.truncate(movie.stat().st_size // 2)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="truncated.tif"):
        _run(movie, out)
    _assert_no_output(out)


@pytest.mark.parametrize("n_frames", [0, 1])
def test_movie_with_fewer_than_two_frames_raises(tmp_path, n_frames):
    movie = tmp_path / f"frames_{n_frames}.npy"
    np.save(movie, np.ones((n_frames, 16, 16), np.float32))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"frames_{n_frames}.npy") as info:
        _run(movie, out)
    assert str(n_frames) in str(info.value)
    _assert_no_output(out)


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_nan_frame_raises_naming_file_and_frame(tmp_path, suffix):
    frames = np.random.default_rng(1).random((60, 16, 16)).astype(np.float32)
    frames[37, 4, 5] = np.nan
    movie = tmp_path / f"with_nan{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(movie, frames)
    else:
        np.save(movie, frames)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"with_nan\\{suffix}") as info:
        _run(movie, out)
    assert "frame 37" in str(info.value)
    _assert_no_output(out)


def test_inf_frame_raises_naming_the_frame(tmp_path):
    frames = np.ones((10, 16, 16), np.float64)
    frames[9, 0, 0] = np.inf
    movie = tmp_path / "with_inf.npy"
    np.save(movie, frames)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="frame 9"):
        _run(movie, out)
    _assert_no_output(out)


def test_complex_dtype_raises_naming_file_and_dtype(tmp_path):
    movie = tmp_path / "complex.npy"
    np.save(movie, np.ones((10, 16, 16), np.complex64))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="complex.npy") as info:
        _run(movie, out)
    assert "complex64" in str(info.value)
    _assert_no_output(out)


def test_inconsistent_channel_shapes_raise_naming_the_file(tmp_path):
    movie = tmp_path / "channels.h5"
    with h5py.File(movie, "w") as f:
        f["ch1"] = np.ones((10, 16, 16), np.float32)
        f["ch2"] = np.ones((10, 16, 20), np.float32)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="channels.h5"):
        _run(movie, out)
    _assert_no_output(out)


def test_unsupported_suffix_raises(tmp_path):
    movie = tmp_path / "movie.avi"
    movie.write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="movie.avi"):
        _run(movie, out)
    _assert_no_output(out)


@pytest.mark.parametrize("size", [0, -5])
def test_non_positive_buffer_size_raises(tmp_path, size):
    movie = tmp_path / "ok.npy"
    np.save(movie, np.ones((10, 16, 16), np.float32))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="buffer_size"):
        _run(movie, out, {**FAST, "buffer_size": size})
    _assert_no_output(out)


def test_unknown_option_key_raises_naming_it(tmp_path):
    movie = tmp_path / "ok.npy"
    np.save(movie, np.ones((10, 16, 16), np.float32))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="quality_seting"):
        _run(movie, out, {**FAST, "quality_seting": "fast"})
    _assert_no_output(out)


def test_sigma_rows_not_matching_channels_raise(tmp_path):
    movie = tmp_path / "ok.npy"
    np.save(movie, np.ones((10, 16, 16), np.float32))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="sigma"):
        _run(movie, out, {**FAST, "sigma": [[1, 1, 0.1], [2, 2, 0.1]]})
    _assert_no_output(out)


def test_reference_list_beyond_recording_raises_without_output(tmp_path):
    movie = tmp_path / "ok.npy"
    np.save(movie, np.random.default_rng(2).random((10, 16, 16)).astype(np.float32))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="reference_frames"):
        _run(movie, out, {**FAST, "reference_frames": [0, 3, 10]})
    _assert_no_output(out)


def test_bad_options_leave_an_existing_complete_result_intact(tmp_path):
    movie = tmp_path / "ok.npy"
    np.save(movie, np.random.default_rng(3).random((10, 16, 16)).astype(np.float32))
    out = _run(movie, tmp_path / "out")
    assert is_complete(out, movie, OFOptions.from_dict(FAST))
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError, match="reference_frames"):
        _run(movie, out, {**FAST, "reference_frames": [0, 3, 10]})
    # A rejected request must not invalidate the earlier, still valid result.
    assert sorted(p.name for p in out.iterdir()) == before
    assert is_complete(out, movie, OFOptions.from_dict(FAST))
