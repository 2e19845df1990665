"""Reading movies written by other software: TIFF axis layouts, HDF5 layouts, NPY shapes."""

from __future__ import annotations

import re
import tracemalloc

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.io import (
    HDF5MovieReader,
    NPYMovieReader,
    TIFFMovieReader,
    check_finite,
    open_movie,
    validate_movie,
)


def ramp(shape, dtype="uint16"):
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


# ----------------------------------------------------------------------------- TIFF
@pytest.mark.parametrize(
    ("axes", "shape", "to_thwc"),
    [
        ("YX", (6, 5), lambda a: a[None, ..., None]),
        ("TYX", (4, 6, 5), lambda a: a[..., None]),
        ("IYX", (4, 6, 5), lambda a: a[..., None]),
        ("QYX", (4, 6, 5), lambda a: a[..., None]),
        ("ZYX", (4, 6, 5), lambda a: a[..., None]),
        ("TCYX", (4, 2, 6, 5), lambda a: np.moveaxis(a, 1, -1)),
        ("CTYX", (2, 4, 6, 5), lambda a: np.moveaxis(a, 0, -1)),
        ("TYXS", (4, 6, 5, 3), lambda a: a),
        ("YXS", (6, 5, 3), lambda a: a[None]),
    ],
)
def test_tiff_axis_layouts(tmp_path, axes, shape, to_thwc):
    data = ramp(shape)
    path = tmp_path / f"layout_{axes}.tif"
    photometric = "rgb" if axes.endswith("S") else "minisblack"
    tifffile.imwrite(path, data, metadata={"axes": axes}, photometric=photometric)
    expected = to_thwc(data)
    with open_movie(path) as reader:
        assert isinstance(reader, TIFFMovieReader)
        assert reader.shape == expected.shape
        np.testing.assert_array_equal(reader.read(), expected)
        if reader.n_frames > 2:
            np.testing.assert_array_equal(reader.read(1, 3), expected[1:3])


def test_tiff_imagej_hyperstack_needs_plane(tmp_path):
    data = ramp((5, 3, 2, 6, 8))  # T Z C Y X
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(ValueError, match=r"hyper\.tif.*plane="):
        open_movie(path)
    with open_movie(path, plane=2) as reader:
        assert reader.shape == (5, 6, 8, 2)
        np.testing.assert_array_equal(reader.read(), np.moveaxis(data[:, 2], 1, -1))
    with pytest.raises(ValueError, match=r"hyper\.tif.*plane=3 out of range"):
        open_movie(path, plane=3)


def test_tiff_imagej_time_series_with_channels(tmp_path):
    data = ramp((7, 2, 6, 8), "float32")
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
    with open_movie(path) as reader:
        np.testing.assert_array_equal(reader.read(2, 5), np.moveaxis(data[2:5], 1, -1))


def test_tiff_single_ifd_contiguous_files(tmp_path):
    # ImageJ writes movies > 4 GB with one IFD followed by all frames; tifffile can do
    # the same with truncate=True. They are only readable through the memory map.
    data = ramp((6, 2, 8, 9))
    for imagej in (True, False):
        path = tmp_path / f"single_ifd_{imagej}.tif"
        tifffile.imwrite(path, data, imagej=imagej, metadata={"axes": "TCYX"}, truncate=True)
        with tifffile.TiffFile(path) as tif:
            assert len(tif.pages) == 1
        with open_movie(path) as reader:
            assert reader.shape == (6, 8, 9, 2)
            np.testing.assert_array_equal(reader.read(2, 6), np.moveaxis(data[2:6], 1, -1))


def test_tiff_big_endian_and_compressed(tmp_path):
    data = ramp((6, 8, 7), "int16") - 100
    tifffile.imwrite(tmp_path / "be.tif", data, byteorder=">")
    tifffile.imwrite(tmp_path / "z.tif", data, compression="zlib")
    for name in ("be.tif", "z.tif"):
        with open_movie(tmp_path / name) as reader:
            assert reader.dtype == np.dtype("int16")  # native byte order
            out = reader.read(1, 4)
            assert out.dtype.isnative
            np.testing.assert_array_equal(out[..., 0], data[1:4])


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiff_partial_read_uses_little_memory(tmp_path, compression):
    # 64 MB of pixels; reading 4 frames must not load the file (memmap or page-wise).
    tile = np.random.default_rng(1).integers(0, 50, size=(128, 128), dtype=np.uint16)
    data = np.broadcast_to(tile, (2000, 128, 128))
    path = tmp_path / "large.tif"
    kw = {"compression": "zlib", "compressionargs": {"level": 1}} if compression else {}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(data, metadata={"axes": "TYX"}, **kw)
    with open_movie(path) as reader:
        assert reader.n_frames == 2000
        tracemalloc.start()
        try:
            block = reader.read(1500, 1504)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(block[..., 0], data[1500:1504])
    assert peak < 8 * 2**20, f"read of 4 frames peaked at {peak / 2**20:.1f} MiB"


def test_tiff_file_from_other_writer_without_shape_metadata(tmp_path):
    data = ramp((5, 6, 4))
    path = tmp_path / "plain.tiff"
    with tifffile.TiffWriter(path) as tw:
        for frame in data:
            tw.write(frame, metadata=None, contiguous=False)
    with open_movie(path) as reader:
        assert reader.shape == (5, 6, 4, 1)
        np.testing.assert_array_equal(reader.read()[..., 0], data)


# ----------------------------------------------------------------------------- HDF5
def test_hdf5_single_dataset_layouts(tmp_path):
    data3 = ramp((5, 6, 7))
    data4 = ramp((5, 6, 7, 2))
    cases = {
        "tyx.h5": (data3, None, data3[..., None]),
        "tyxc.h5": (data4, None, data4),
        "tcyx.h5": (np.moveaxis(data4, -1, 1), "TCYX", data4),
        "yxt.h5": (np.moveaxis(data3, 0, -1), "YXT", data3[..., None]),
    }
    for name, (stored, axes, expected) in cases.items():
        with h5py.File(tmp_path / name, "w") as f:
            ds = f.create_dataset("mov", data=stored, chunks=True)
            if axes:
                ds.attrs["axis_order"] = axes
        with open_movie(tmp_path / name) as reader:
            assert isinstance(reader, HDF5MovieReader)
            assert reader.shape == expected.shape, name
            np.testing.assert_array_equal(reader.read(), expected)
            np.testing.assert_array_equal(reader.read(2, 4), expected[2:4])


def test_hdf5_finds_nested_dataset_and_prefers_common_names(tmp_path):
    data = ramp((4, 5, 6))
    with h5py.File(tmp_path / "nested.h5", "w") as f:
        f.create_dataset("acq/session1/frames", data=data)
        f.create_dataset("mean_image", data=data[0])  # 2-D: not a candidate
    with open_movie(tmp_path / "nested.h5") as reader:
        assert reader.dataset_names == ["/acq/session1/frames"]
        np.testing.assert_array_equal(reader.read()[..., 0], data)
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f.create_dataset("imaging", data=data)
        f.create_dataset("flow_x", data=data.astype("float32"))
    with open_movie(tmp_path / "two.h5") as reader:
        assert reader.dataset_names == ["/imaging"]
    with open_movie(tmp_path / "two.h5", dataset="flow_x") as reader:
        assert reader.dtype == np.float32


def test_hdf5_channel_datasets(tmp_path):
    a, b = ramp((6, 5, 4)), ramp((6, 5, 4)) + 1000
    with h5py.File(tmp_path / "chans.h5", "w") as f:
        f.create_dataset("ch10", data=a + 5)  # sorted numerically: ch2 before ch10
        f.create_dataset("ch2", data=b)
        f.create_dataset("ch1", data=a)
        f.create_dataset("other", data=a)  # ignored: channel datasets win
    with open_movie(tmp_path / "chans.h5") as reader:
        assert reader.dataset_names == ["/ch1", "/ch2", "/ch10"]
        np.testing.assert_array_equal(reader.read(1, 3), np.stack([a, b, a + 5], -1)[1:3])
    with h5py.File(tmp_path / "grouped.h5", "w") as f:
        f.create_dataset("reg/ch1", data=a)
        f.create_dataset("reg/ch2", data=b)
    with open_movie(tmp_path / "grouped.h5") as reader:
        assert reader.n_channels == 2
    with open_movie(tmp_path / "grouped.h5", dataset="reg") as reader:
        np.testing.assert_array_equal(reader.read(), np.stack([a, b], -1))


def test_hdf5_dimension_labels_and_plane(tmp_path):
    vol = ramp((4, 3, 6, 5, 2), "uint8")
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        ds = f.create_dataset("imaging", data=vol)
        ds.attrs["DIMENSION_LABELS"] = np.array(["t", "z", "y", "x", "c"], dtype=object)
    with pytest.raises(ValueError, match=r"vol\.h5.*5-D.*plane="):
        open_movie(tmp_path / "vol.h5")
    with open_movie(tmp_path / "vol.h5", plane=1) as reader:
        assert reader.shape == (4, 6, 5, 2)
        np.testing.assert_array_equal(reader.read(), vol[:, 1])


# ----------------------------------------------------------------------------- NPY
def test_npy_shapes(tmp_path):
    cases = {
        "frame.npy": (ramp((6, 5)), (1, 6, 5, 1)),
        "tyx.npy": (ramp((3, 6, 5)), (3, 6, 5, 1)),
        "tyxc.npy": (ramp((3, 6, 5, 2)), (3, 6, 5, 2)),
        "fortran.npy": (np.asfortranarray(ramp((3, 6, 5))), (3, 6, 5, 1)),
    }
    for name, (data, shape) in cases.items():
        np.save(tmp_path / name, data)
        with open_movie(tmp_path / name) as reader:
            assert isinstance(reader, NPYMovieReader)
            assert reader.shape == shape
            np.testing.assert_array_equal(reader.read(), data.reshape(shape))


# ----------------------------------------------------------------------------- helpers
def test_validate_movie(tmp_path):
    np.save(tmp_path / "m.npy", ramp((3, 4, 4)))
    assert validate_movie(tmp_path / "m.npy") == (3, 4, 4, 1)
    with pytest.raises(ValueError, match=r"m\.npy.*3 frames, at least 10"):
        validate_movie(tmp_path / "m.npy", min_frames=10)


def test_check_finite_names_file_and_frame():
    batch = np.zeros((5, 4, 4, 2), np.float32)
    check_finite(batch, "movie.h5", t0=100)
    check_finite(np.zeros((2, 3, 3, 1), np.uint16), "movie.h5")
    batch[3, 1, 1, 1] = np.nan
    batch[4, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=re.escape("movie.h5: frame 103")):
        check_finite(batch, "movie.h5", t0=100)
    batch[3] = 0
    with pytest.raises(ValueError, match=r"frame 104 .*1 inf"):
        check_finite(batch, "movie.h5", t0=100)
