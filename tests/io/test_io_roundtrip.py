"""Write -> read round trips for every movie format, plus writer file layouts."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.io import (
    HDF5MovieWriter,
    NPYMovieWriter,
    TIFFMovieWriter,
    completed_frame_count,
    open_movie,
    open_movie_writer,
    read_hdf5_frame_count,
)

SUFFIXES = (".tif", ".h5", ".npy")
DTYPES = ("uint16", "int16", "float32")


def make_movie(n_frames=9, h=12, w=10, c=1, dtype="uint16", seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(300.0, 200.0, size=(n_frames, h, w, c))
    if np.dtype(dtype).kind == "u":
        data = np.abs(data)
    return data.astype(dtype)


def write_movie(path, movie, batch=4, **kw):
    _, h, w, c = movie.shape
    with open_movie_writer(path, (h, w), c, movie.dtype, **kw) as writer:
        for t0 in range(0, movie.shape[0], batch):
            writer.write(movie[t0 : t0 + batch])
    return path


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("n_channels", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_exact(tmp_path, suffix, n_channels, dtype):
    movie = make_movie(c=n_channels, dtype=dtype)
    path = write_movie(tmp_path / f"movie{suffix}", movie)
    with open_movie(path) as reader:
        assert reader.shape == movie.shape
        assert reader.n_frames == 9
        assert reader.frame_shape == (12, 10)
        assert reader.n_channels == n_channels
        assert reader.dtype == np.dtype(dtype)
        assert reader.path == path
        back = reader.read(0, reader.n_frames)
        assert back.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(back, movie)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporaries left


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_batch_reads_equal_whole_read(tmp_path, suffix):
    movie = make_movie(n_frames=23, c=2, dtype="int16")
    path = write_movie(tmp_path / f"movie{suffix}", movie, batch=5)
    with open_movie(path) as reader:
        whole = reader.read()
        np.testing.assert_array_equal(whole, movie)
        batches = list(reader.iter_batches(6))
        assert [b.shape[0] for b in batches] == [6, 6, 6, 5]
        np.testing.assert_array_equal(np.concatenate(batches), whole)
        bounds = list(reader.batch_bounds(10, start=3, stop=20))
        assert bounds == [(3, 13), (13, 20)]
        for t0, t1 in bounds:
            np.testing.assert_array_equal(reader.read(t0, t1), movie[t0:t1])
        np.testing.assert_array_equal(reader.read_frame(7), movie[7])
        np.testing.assert_array_equal(reader.read_frame(-1), movie[-1])
        assert reader.read(4, 4).shape == (0, 12, 10, 2)
        assert reader.read(5, 6).flags.c_contiguous
        with pytest.raises(IndexError, match="movie"):
            reader.read(20, 24)
        with pytest.raises(IndexError):
            reader.read_frame(23)
    assert reader.closed
    with pytest.raises(ValueError, match="closed"):
        reader.read(0, 1)


def test_reads_are_copies_not_views(tmp_path):
    movie = make_movie(n_frames=4)
    for suffix in SUFFIXES:
        path = write_movie(tmp_path / f"m{suffix}", movie)
        with open_movie(path) as reader:
            block = reader.read(0, 2)
            assert block.flags.writeable
            block[:] = 0  # must not touch the file / memory map
            np.testing.assert_array_equal(reader.read(0, 2), movie[:2])


@pytest.mark.parametrize("n_channels", [1, 2, 3])
def test_tiff_writer_layout_readable_by_tifffile(tmp_path, n_channels):
    movie = make_movie(n_frames=11, c=n_channels)
    path = write_movie(tmp_path / "out.tif", movie, batch=3)
    whole = tifffile.imread(path)
    if n_channels == 1:
        assert whole.shape == (11, 12, 10)
        np.testing.assert_array_equal(whole, movie[..., 0])
    else:
        assert whole.shape == (11, n_channels, 12, 10)
        np.testing.assert_array_equal(whole, np.moveaxis(movie, -1, 1))
    with tifffile.TiffFile(path) as tif:
        assert len(tif.series) == 1
        assert len(tif.pages) == 11 * n_channels
        assert tif.series[0].axes == ("TYX" if n_channels == 1 else "TCYX")
        assert tif.is_bigtiff  # frame count not announced -> BigTIFF
    with open_movie(path) as reader:
        np.testing.assert_array_equal(reader.read(), movie)


def test_tiff_bigtiff_decision(tmp_path):
    movie = make_movie(n_frames=3, c=2)
    auto_unknown = TIFFMovieWriter(tmp_path / "a.tif", (12, 10), 2, "uint16")
    assert auto_unknown.bigtiff
    auto_unknown.abort()
    small_known = TIFFMovieWriter(tmp_path / "b.tif", (12, 10), 2, "uint16", n_frames=3)
    assert not small_known.bigtiff
    small_known.write(movie)
    small_known.close()
    with tifffile.TiffFile(tmp_path / "b.tif") as tif:
        assert not tif.is_bigtiff
    huge = TIFFMovieWriter(tmp_path / "c.tif", (2048, 2048), 1, "uint16", n_frames=1000)
    assert huge.bigtiff  # 8.4 GB expected
    huge.abort()
    with pytest.raises(ValueError, match="c.tif.*bigtiff=True"):
        TIFFMovieWriter(tmp_path / "c.tif", (2048, 2048), 1, "uint16", n_frames=1000, bigtiff=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "b.tif"]


def test_bigtiff_round_trip(tmp_path):
    movie = make_movie(n_frames=15, c=2, dtype="float32")
    path = write_movie(tmp_path / "big.tiff", movie, bigtiff=True)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    assert tifffile.imread(path).shape == (15, 2, 12, 10)
    with open_movie(path) as reader:
        np.testing.assert_array_equal(reader.read(), movie)
        np.testing.assert_array_equal(reader.read(14, 15), movie[14:])


def test_tiff_single_frame_keeps_time_axis(tmp_path):
    for c in (1, 2):
        movie = make_movie(n_frames=1, c=c)
        path = write_movie(tmp_path / f"one{c}.tif", movie)
        with tifffile.TiffFile(path) as tif:
            meta = json.loads(tif.pages[0].description)
            assert meta["shape"][0] == 1
        with open_movie(path) as reader:
            assert reader.shape == (1, 12, 10, c)
            np.testing.assert_array_equal(reader.read(), movie)


def test_tiff_attrs_round_trip(tmp_path):
    movie = make_movie(n_frames=2)
    path = write_movie(tmp_path / "m.tif", movie, attrs={"source": "raw.tif", "fps": 30.0})
    with open_movie(path) as reader:
        assert reader.metadata["source"] == "raw.tif"
        assert reader.metadata["fps"] == 30.0


@pytest.mark.parametrize("n_frames", [None, 9])
@pytest.mark.parametrize("compression", [None, "gzip", 1])
def test_hdf5_file_structure(tmp_path, n_frames, compression):
    movie = make_movie(n_frames=9, c=3, dtype="int16")
    path = write_movie(
        tmp_path / "out.h5",
        movie,
        n_frames=n_frames,
        compression=compression,
        attrs={"source": "raw.tif", "sampling_hz": 30.0},
    )
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["ch1", "ch2", "ch3"]
        assert f.attrs["axis_order"] == "TYX"
        assert f.attrs["n_channels"] == 3
        assert f.attrs["n_frames"] == 9
        assert f.attrs["complete"] == 1 and bool(f.attrs["complete"])
        assert list(f.attrs["frame_shape"]) == [12, 10]
        assert f.attrs["source"] == "raw.tif"
        for c in range(3):
            ds = f[f"ch{c + 1}"]
            assert ds.shape == (9, 12, 10)
            assert ds.dtype == np.int16
            assert ds.chunks == (1, 12, 10)
            assert ds.maxshape == ((None, 12, 10) if n_frames is None else (9, 12, 10))
            assert ds.attrs["axis_order"] == "TYX"
            assert ds.compression == (None if compression is None else "gzip")
            assert ds.dtype.fields is None
            np.testing.assert_array_equal(ds[()], movie[..., c])
    assert read_hdf5_frame_count(path) == 9
    assert completed_frame_count(path) == 9
    with open_movie(path) as reader:
        assert reader.metadata["source"] == "raw.tif"
        assert reader.dataset_names == ["/ch1", "/ch2", "/ch3"]


def test_hdf5_custom_dataset_names(tmp_path):
    flow = make_movie(n_frames=5, c=2, dtype="float32")
    path = write_movie(tmp_path / "w.hdf5", flow, n_frames=5, dataset_names=("u", "v"))
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["u", "v"]
        assert list(f.attrs["channel_datasets"]) == ["u", "v"]
        assert f["v"].attrs["axis_order"] == "TYX"
        np.testing.assert_array_equal(f["v"][()], flow[..., 1])
    assert read_hdf5_frame_count(path) == 5
    assert completed_frame_count(path) == 5
    with open_movie(path) as reader:
        assert reader.dataset_names == ["/u", "/v"]
        np.testing.assert_array_equal(reader.read(), flow)
    tif = write_movie(tmp_path / "w.tif", flow, dataset_names=("u", "v"))
    with open_movie(tif) as reader:
        assert reader.metadata["channel_names"] == ["u", "v"]
    for bad in (("u",), ("u", "u"), ("a/b", "c"), "uv"):
        with pytest.raises(ValueError, match=r"bad\.h5.*dataset_names"):
            HDF5MovieWriter(tmp_path / "bad.h5", (4, 4), 2, "float32", dataset_names=bad)
    with pytest.raises(ValueError, match=r"bad\.npy.*names"):
        NPYMovieWriter(tmp_path / "bad.npy", (4, 4), 2, "float32", dataset_names=("u", "v"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.hdf5", "w.tif"]


def test_hdf5_attrs_are_matlab_friendly(tmp_path):
    attrs = {"note": "rigid", "names": ["ch1", "ch2"], "flag": True, "shifts": [1.5, 2.0]}
    path = write_movie(tmp_path / "a.h5", make_movie(n_frames=2), attrs=attrs)
    with h5py.File(path, "r") as f:
        assert f.attrs["note"] == "rigid"
        assert list(f.attrs["names"]) == ["ch1", "ch2"]
        assert f.attrs["flag"].dtype == np.uint8 and f.attrs["flag"] == 1
        np.testing.assert_array_equal(f.attrs["shifts"], [1.5, 2.0])


def test_hdf5_frame_count_for_unfinished_files(tmp_path):
    assert read_hdf5_frame_count(tmp_path / "missing.h5") is None
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as f:  # looks like a writer's file that never finished
        f.create_dataset("ch1", data=np.zeros((5, 4, 4), np.uint16))
        f.attrs["n_frames"] = 5
        f.attrs["complete"] = np.uint8(0)
    assert read_hdf5_frame_count(path) is None
    assert completed_frame_count(path) is None
    with pytest.raises(ValueError, match="partial.h5.*incomplete"):
        open_movie(path)
    with h5py.File(path, "a") as f:  # claims more frames than stored: truncated
        f.attrs["complete"] = np.uint8(1)
        f.attrs["n_frames"] = 50
    assert read_hdf5_frame_count(path) is None
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5 at all")
    assert read_hdf5_frame_count(tmp_path / "garbage.h5") is None


def test_completed_frame_count_other_formats(tmp_path):
    movie = make_movie(n_frames=6)
    for suffix in (".tif", ".npy"):
        path = write_movie(tmp_path / f"m{suffix}", movie)
        assert completed_frame_count(path) == 6
        assert completed_frame_count(tmp_path / f"missing{suffix}") is None
    (tmp_path / "bad.tif").write_bytes(b"\x00" * 64)
    assert completed_frame_count(tmp_path / "bad.tif") is None


def test_npy_writer_output_is_plain_npy(tmp_path):
    movie = make_movie(n_frames=5, c=2, dtype="float32")
    path = write_movie(tmp_path / "m.npy", movie, batch=2)
    loaded = np.load(path)
    assert loaded.shape == (5, 12, 10, 2)
    np.testing.assert_array_equal(loaded, movie)
    single = write_movie(tmp_path / "s.npy", movie[..., :1])
    assert np.load(single).shape == (5, 12, 10, 1)


def test_fixed_frame_count_is_enforced(tmp_path):
    movie = make_movie(n_frames=4)
    for suffix in SUFFIXES:
        path = tmp_path / f"fixed{suffix}"
        writer = open_movie_writer(path, (12, 10), 1, "uint16", n_frames=3)
        writer.write(movie[:2])
        with pytest.raises(ValueError, match=f"fixed{suffix}.*exceed"):
            writer.write(movie[2:4])
        with pytest.raises(ValueError, match=f"fixed{suffix}.*only 2 frames"):
            writer.close()
        assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_frames(tmp_path):
    with HDF5MovieWriter(tmp_path / "w.h5", (12, 10), 2, "uint16") as writer:
        with pytest.raises(ValueError, match=r"w\.h5.*\(n, 12, 10, 2\)"):
            writer.write(np.zeros((3, 12, 10), np.uint16))
        with pytest.raises(ValueError, match=r"w\.h5"):
            writer.write(np.zeros((3, 10, 12, 2), np.uint16))
        writer.write(np.zeros((3, 12, 10, 2), np.uint16))
    # (n, H, W) is fine for single-channel writers
    with NPYMovieWriter(tmp_path / "w.npy", (12, 10), 1, "uint16") as writer:
        writer.write(np.ones((2, 12, 10), np.uint16))
    assert np.load(tmp_path / "w.npy").shape == (2, 12, 10, 1)


def test_writer_without_frames_leaves_nothing(tmp_path):
    writer = open_movie_writer(tmp_path / "empty.h5", (4, 4), 1, "uint16")
    with pytest.raises(ValueError, match="empty.h5.*0 frames"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_writer_casts_to_storage_dtype(tmp_path):
    frames = np.array([-5.0, 0.4, 0.6, 70000.0]).reshape(1, 2, 2, 1).repeat(2, axis=0)
    with open_movie_writer(tmp_path / "c.h5", (2, 2), 1, "uint16") as writer:
        writer.write(frames)
    with open_movie(tmp_path / "c.h5") as reader:
        np.testing.assert_array_equal(reader.read()[0, ..., 0], [[0, 0], [1, 65535]])
    writer = open_movie_writer(tmp_path / "nan.h5", (2, 2), 1, "uint16")
    with pytest.raises(ValueError, match="nan.h5.*NaN"):
        writer.write(np.full((1, 2, 2, 1), np.nan))
    writer.abort()
    assert not (tmp_path / "nan.h5").exists()


def test_float16_is_upcast_to_float32(tmp_path):
    movie = make_movie(n_frames=3, dtype="float16")
    np.save(tmp_path / "half.npy", movie)
    with open_movie(tmp_path / "half.npy") as reader:
        assert reader.dtype == np.float32
        np.testing.assert_array_equal(reader.read(), movie.astype(np.float32))
    with open_movie_writer(tmp_path / "half.h5", (12, 10), 1, np.float16) as writer:
        assert writer.dtype == np.float32
        writer.write(movie)
    with h5py.File(tmp_path / "half.h5", "r") as f:
        assert f["ch1"].dtype == np.float32


def test_open_movie_writer_dispatch(tmp_path):
    kinds = {".tif": TIFFMovieWriter, ".TIFF": TIFFMovieWriter, ".h5": HDF5MovieWriter}
    kinds |= {".hdf5": HDF5MovieWriter, ".npy": NPYMovieWriter}
    for suffix, cls in kinds.items():
        writer = open_movie_writer(tmp_path / f"x{suffix}", (4, 4), 1, "uint8")
        assert type(writer) is cls
        writer.abort()
    assert list(tmp_path.iterdir()) == []
