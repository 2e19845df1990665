"""Reading movies from Zarr stores written by zarr: plain arrays, groups and OME-Zarr images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import zarr

from pyflowreg.io import ZarrMovieReader, completed_frame_count, open_movie, validate_movie

H, W = 32, 40  # non-square: a transposed frame cannot pass for the stored one


def named(path):
    return re.escape(Path(path).name)


def ramp(shape, dtype="uint16"):
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


def write_array(path, data, *, zarr_format, chunks=None, attrs=None, **kwargs):
    array = zarr.create_array(
        path, shape=data.shape, dtype=data.dtype, chunks=chunks or (1, *data.shape[1:]),
        zarr_format=zarr_format, attributes=attrs, **kwargs,
    )
    array[:] = data
    return path


OME_AXES = [
    {"name": "t", "type": "time", "unit": "second"},
    {"name": "c", "type": "channel"},
    {"name": "z", "type": "space", "unit": "micrometer"},
    {"name": "y", "type": "space", "unit": "micrometer"},
    {"name": "x", "type": "space", "unit": "micrometer"},
]


def write_ome_image(group, data, *, version, axes=OME_AXES):
    """An OME-Zarr image of ``data`` in ``group`` as the NGFF spec lays it out: the full
    resolution at ``0`` and a level halved in y and x at ``1``."""
    datasets = []
    for level, array in enumerate([data, data[..., ::2, ::2]]):
        if version == "0.4":  # Zarr 2 with '/'-separated chunk keys
            layout = {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
        else:  # Zarr 3 arrays name their dimensions after the axes
            layout = {"dimension_names": [axis["name"] for axis in axes]}
        stored = group.create_array(
            str(level), shape=array.shape, dtype=array.dtype,
            chunks=(1,) * (array.ndim - 2) + array.shape[-2:], **layout,
        )
        stored[:] = array
        scale = [1.0] * (array.ndim - 2) + [0.5 * 2**level] * 2
        datasets.append({"path": str(level),
                         "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    multiscale = {"name": "image", "axes": axes, "datasets": datasets}
    if version == "0.4":
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}


def ome_store(path, data, *, version, axes=OME_AXES):
    root = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    write_ome_image(root, data, version=version, axes=axes)
    return path


# ----------------------------------------------------------------------- plain arrays
@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize(("shape", "to_thwc"), [
    ((6, H, W), lambda a: a[..., None]),
    ((6, H, W, 2), lambda a: a),
])
def test_array_at_the_root(tmp_path, zarr_format, shape, to_thwc):
    data = ramp(shape)
    path = write_array(tmp_path / "movie.zarr", data, zarr_format=zarr_format)
    expected = to_thwc(data)
    with open_movie(path) as reader:
        assert isinstance(reader, ZarrMovieReader)
        assert reader.shape == expected.shape
        assert reader.dtype == np.uint16
        assert reader.array_path == ""
        assert not reader.is_ome_zarr
        np.testing.assert_array_equal(reader.read(), expected)
        np.testing.assert_array_equal(reader.read(2, 5), expected[2:5])
        np.testing.assert_array_equal(reader.read_frame(-1), expected[-1])
    assert validate_movie(path) == expected.shape
    assert completed_frame_count(path) == 6


def test_axis_labels_of_plain_arrays(tmp_path):
    data = ramp((5, 2, H, W), "float32")  # (T, C, H, W)
    expected = np.moveaxis(data, 1, -1)
    labelled = write_array(tmp_path / "labelled.zarr", data, zarr_format=2,
                           attrs={"axis_order": "TCYX"})
    named_dims = write_array(tmp_path / "dims.zarr", data, zarr_format=3,
                             dimension_names=("t", "c", "y", "x"))
    xarray_dims = write_array(tmp_path / "xarray.zarr", data, zarr_format=2,
                              attrs={"_ARRAY_DIMENSIONS": ["time", "channel", "y", "x"]})
    for path in (labelled, named_dims, xarray_dims):
        with open_movie(path) as reader:
            assert reader.shape == (5, H, W, 2), path
            np.testing.assert_array_equal(reader.read(1, 4), expected[1:4])


def test_big_endian_array_is_read_in_native_order(tmp_path):
    data = ramp((4, H, W), ">u2")
    path = write_array(tmp_path / "big_endian.zarr", data, zarr_format=2)
    with open_movie(path) as reader:
        assert reader.dtype == np.dtype("=u2")
        np.testing.assert_array_equal(reader.read()[..., 0], data)


# ----------------------------------------------------------------------------- groups
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_group_with_one_movie_array(tmp_path, zarr_format):
    data = ramp((4, H, W), "int16")
    root = zarr.open_group(tmp_path / "group.zarr", mode="w", zarr_format=zarr_format)
    root.create_array("frame_times", shape=(4,), dtype="float64")  # 1-D: not a movie
    movie = root.create_group("imaging").create_array("mov", shape=data.shape, dtype=data.dtype)
    movie[:] = data
    with open_movie(tmp_path / "group.zarr") as reader:
        assert reader.array_path == "imaging/mov"
        np.testing.assert_array_equal(reader.read()[..., 0], data)


def test_group_with_two_movie_arrays_is_ambiguous(tmp_path):
    path = tmp_path / "two.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.create_array("raw", shape=(4, H, W), dtype="uint16")
    root.create_array("corrected", shape=(4, H, W), dtype="float32")
    with pytest.raises(ValueError, match=rf"{named(path)}.*several candidate arrays") as info:
        open_movie(path)
    assert "raw (4, 32, 40)" in str(info.value)
    assert "corrected (4, 32, 40)" in str(info.value)


# --------------------------------------------------------------------------- OME-Zarr
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_full_resolution_of_one_plane(tmp_path, version):
    data = ramp((5, 2, 3, H, W))  # t, c, z, y, x
    path = ome_store(tmp_path / "image.ome.zarr", data, version=version)
    with pytest.raises(ValueError, match=rf"{named(path)}.*3 z-planes.*plane="):
        open_movie(path)
    with open_movie(path, plane=1) as reader:
        assert reader.is_ome_zarr
        assert reader.array_path == "0"
        assert reader.shape == (5, H, W, 2)  # level 0, not the halved level 1
        expected = np.moveaxis(data[:, :, 1], 1, -1)
        np.testing.assert_array_equal(reader.read(), expected)
        np.testing.assert_array_equal(reader.read(3, 5), expected[3:5])
    with pytest.raises(ValueError, match=rf"{named(path)}.*plane=3 out of range"):
        open_movie(path, plane=3)


def test_ome_zarr_without_time_is_a_stack_of_planes(tmp_path):
    data = ramp((4, H, W))  # z, y, x
    path = ome_store(tmp_path / "stack.zarr", data, version="0.4", axes=OME_AXES[2:])
    with open_movie(path) as reader:
        np.testing.assert_array_equal(reader.read()[..., 0], data)


def test_ome_zarr_image_below_the_root(tmp_path):
    data = ramp((4, 1, 1, H, W))
    path = tmp_path / "converted.zarr"  # bioformats2raw puts the image at <store>/0
    root = zarr.open_group(path, mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    write_ome_image(root.create_group("0"), data, version="0.4")
    with open_movie(path) as reader:
        assert reader.array_path == "0/0"
        np.testing.assert_array_equal(reader.read()[..., 0], data[:, 0, 0])


def test_ome_zarr_with_an_unknown_axis(tmp_path):
    axes = [{"name": "t", "type": "time"}, {"name": "angle", "type": "space"},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    path = ome_store(tmp_path / "odd.zarr", ramp((3, 2, H, W)), version="0.4", axes=axes)
    with pytest.raises(ValueError, match=rf"{named(path)}.*axis 'angle'"):
        open_movie(path)


# ---------------------------------------------------------------------------- laziness
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_range_read_decodes_only_its_chunks(tmp_path, zarr_format):
    data = ramp((8, H, W))
    path = write_array(tmp_path / "lazy.zarr", data, zarr_format=zarr_format)
    for t in (0, 1, 6, 7):  # frames outside 2..5 become undecodable
        chunk = path / f"{t}.0.0" if zarr_format == 2 else path / "c" / str(t) / "0" / "0"
        assert chunk.is_file(), f"no chunk file {chunk}"
        chunk.write_bytes(b"garbage" * 16)
    with open_movie(path) as reader:
        np.testing.assert_array_equal(reader.read(2, 6)[..., 0], data[2:6])
        with pytest.raises(ValueError, match=rf"{named(path)}.*cannot read frames 0\.\.7"):
            reader.read()


# --------------------------------------------------------------------------- errors
def test_unusable_stores_and_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.zarr"):
        open_movie(tmp_path / "absent.zarr")
    empty_folder = tmp_path / "empty.zarr"
    empty_folder.mkdir()
    with pytest.raises(ValueError, match=rf"{named(empty_folder)}.*not a readable Zarr store"):
        open_movie(empty_folder)
    assert completed_frame_count(empty_folder) is None
    a_file = tmp_path / "file.zarr"
    a_file.write_bytes(b"zarr?")
    with pytest.raises(ValueError, match=rf"{named(a_file)}.*folder"):
        open_movie(a_file)
    empty_group = tmp_path / "group.zarr"
    zarr.open_group(empty_group, mode="w", zarr_format=3)
    with pytest.raises(ValueError, match=rf"{named(empty_group)}.*holds no arrays"):
        open_movie(empty_group)
    movie = write_array(tmp_path / "movie.zarr", ramp((3, H, W)), zarr_format=3)
    with pytest.raises(ValueError, match=rf"{named(movie)}.*dataset= only applies to HDF5"):
        open_movie(movie, dataset="mov")
    with pytest.raises(ValueError, match=rf"{named(movie)}.*series= only applies to NWB"):
        open_movie(movie, series="TwoPhotonSeries")
    line = write_array(tmp_path / "line.zarr", ramp((3, 1, W)), zarr_format=2)
    with pytest.raises(ValueError, match=rf"{named(line)}.*1x{W} pixels is smaller"):
        open_movie(line)
    five_d = write_array(tmp_path / "five.zarr", ramp((2, 2, 2, H, W)), zarr_format=2)
    with pytest.raises(ValueError, match=rf"{named(five_d)}.*no axis_order/axes attribute"):
        open_movie(five_d)
