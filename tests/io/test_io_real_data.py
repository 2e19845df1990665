"""Reading the real 2-photon recordings shipped in shared/data/real (see its README.md)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.io import open_movie, open_movie_writer, validate_movie


@pytest.fixture
def real_file(real_data_dir):
    """Path of one real recording below the real-data folder; skips the test without it."""

    def find(relative):
        path = real_data_dir / relative
        if not path.is_file():
            pytest.skip(f"real data not available: {path}")
        return path

    return find


def test_thunder_mouse_tiff(real_file):
    path = real_file("thunder_mouse_vs1/mouse_vs1_500x64x64_int16.tif")
    with open_movie(path) as reader:
        assert reader.shape == (500, 64, 64, 1)
        assert reader.dtype == np.int16
        whole = reader.read()
        assert whole.min() == 0 and whole.max() == 909
        assert abs(whole.mean() - 80.7) < 0.05
        batches = [b for b in reader.iter_batches(64)]
        np.testing.assert_array_equal(np.concatenate(batches), whole)
        np.testing.assert_array_equal(reader.read(123, 130)[..., 0], tifffile.imread(path)[123:130])


def test_sima_example_tiff(real_file):
    path = real_file("sima_example/example.tif")
    assert validate_movie(path) == (20, 128, 256, 1)
    with open_movie(path) as reader:
        assert reader.dtype == np.uint16
        whole = reader.read()
        assert whole.min() == 0 and whole.max() == 4094
        np.testing.assert_array_equal(whole[..., 0], tifffile.imread(path))
        np.testing.assert_array_equal(reader.read(7, 9), whole[7:9])


def test_sima_single_frame_tiffs(real_file):
    for name in ("0.tif", "1.tif", "2.tif"):
        path = real_file(f"sima_example/example-tiffs/{name}")
        with open_movie(path) as reader:
            assert reader.shape == (1, 173, 173, 1)
            assert reader.dtype == np.uint16


def test_sima_volume_hdf5_requires_plane(real_file):
    path = real_file("sima_example/example-volume.h5")
    with pytest.raises(ValueError, match=r"example-volume\.h5.*5-D.*plane="):
        open_movie(path)
    with h5py.File(path, "r") as f:
        volume = f["imaging"][()]
    assert volume.shape == (10, 3, 64, 64, 2)
    for plane in range(3):
        with open_movie(path, plane=plane) as reader:
            assert reader.shape == (10, 64, 64, 2)
            assert reader.dtype == np.uint8
            np.testing.assert_array_equal(reader.read(), volume[:, plane])
            np.testing.assert_array_equal(reader.read(4, 6), volume[4:6, plane])


@pytest.mark.parametrize("suffix", [".tif", ".h5", ".npy"])
def test_real_movie_round_trip(tmp_path, suffix, real_file):
    path = real_file("thunder_mouse_vs1/mouse_vs1_500x64x64_int16.tif")
    out = tmp_path / f"copy{suffix}"
    with open_movie(path) as reader:
        with open_movie_writer(out, reader.frame_shape, reader.n_channels, reader.dtype) as writer:
            for batch in reader.iter_batches(100):
                writer.write(batch)
        original = reader.read()
    with open_movie(out) as copy:
        np.testing.assert_array_equal(copy.read(), original)
