"""Every invalid input is rejected when opened, with an error naming the file."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
import tifffile

from pyflowreg.io import (
    HDF5MovieWriter,
    TIFFMovieWriter,
    atomic_output,
    open_movie,
    open_movie_writer,
    validate_movie,
)


def named(path):
    """Regex matching the file name inside an error message."""
    return re.escape(path.name)


def test_missing_file(tmp_path):
    for name in ("absent.tif", "absent.h5", "absent.npy", "absent.avi"):
        path = tmp_path / name
        with pytest.raises(FileNotFoundError, match=named(path)):
            open_movie(path)
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        validate_movie(tmp_path / "absent.npy")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "movie.avi"
    path.write_bytes(b"RIFF....AVI ")
    with pytest.raises(ValueError, match=r"movie\.avi.*unsupported movie file type"):
        open_movie(path)
    with pytest.raises(ValueError, match=r"out\.mp4.*unsupported output file type"):
        open_movie_writer(tmp_path / "out.mp4", (4, 4), 1, "uint16")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "stack.tif"
    folder.mkdir()
    with pytest.raises(ValueError, match=named(folder)):
        open_movie(folder)


def test_corrupt_tiff_random_bytes(tmp_path):
    path = tmp_path / "corrupt.tif"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=rf"{named(path)}.*not a readable TIFF"):
        open_movie(path)


def test_empty_tiff(tmp_path):
    path = tmp_path / "empty.tif"
    path.touch()
    with pytest.raises(ValueError, match=rf"{named(path)}.*empty"):
        open_movie(path)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95, 0.999])
@pytest.mark.parametrize("kind", ["contiguous", "compressed", "pages"])
def test_truncated_tiff(tmp_path, kind, fraction):
    data = np.random.default_rng(0).integers(0, 4000, size=(20, 32, 32)).astype(np.uint16)
    full = tmp_path / "full.tif"
    if kind == "contiguous":
        tifffile.imwrite(full, data, metadata={"axes": "TYX"})
    elif kind == "compressed":
        tifffile.imwrite(full, data, compression="zlib")
    else:
        with tifffile.TiffWriter(full) as tw:
            for frame in data:
                tw.write(frame, metadata=None)
    raw = full.read_bytes()
    path = tmp_path / "truncated.tif"
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(ValueError, match=named(path)):
        open_movie(path)


def test_truncated_tiff_from_our_writer(tmp_path):
    full = tmp_path / "full.tif"
    with TIFFMovieWriter(full, (16, 16), 2, "uint16") as writer:
        writer.write(np.ones((10, 16, 16, 2), np.uint16))
    raw = full.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=rf"{named(path)}.*truncated"):
        open_movie(path)


def test_corrupt_and_truncated_hdf5(tmp_path):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ValueError, match=rf"{named(path)}.*not a readable HDF5"):
        open_movie(path)
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        f.create_dataset("mov", data=np.ones((50, 32, 32), np.uint16))
    raw = good.read_bytes()
    cut = tmp_path / "cut.h5"
    for size in (4000, int(len(raw) * 0.9)):  # header or pixel data missing
        cut.write_bytes(raw[:size])
        with pytest.raises(ValueError, match=named(cut)):
            open_movie(cut)


def test_npy_errors(tmp_path):
    cases = {
        "zero_frames.npy": (np.zeros((0, 8, 8), np.uint16), "0 frames"),
        "one_pixel.npy": (np.zeros((10, 1, 1), np.uint16), "1x1 pixels is smaller"),
        "one_row.npy": (np.zeros((10, 1, 64), np.float32), "1x64"),
        "complex.npy": (np.zeros((4, 8, 8), np.complex64), "complex64"),
        "bool.npy": (np.zeros((4, 8, 8), bool), "bool"),
        "strings.npy": (np.full((4, 8, 8), "a"), "<U1"),
        "five_d.npy": (np.zeros((2, 2, 4, 4, 1), np.uint8), "not a movie"),
        "one_d.npy": (np.zeros(16, np.uint8), "not a movie"),
    }
    for name, (array, message) in cases.items():
        path = tmp_path / name
        np.save(path, array)
        with pytest.raises(ValueError, match=rf"{named(path)}.*{re.escape(message)}"):
            open_movie(path)
    obj = tmp_path / "objects.npy"
    np.save(obj, np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=rf"{named(obj)}.*object"):
        open_movie(obj)
    good = np.zeros((10, 16, 16), np.uint16)
    np.save(tmp_path / "good.npy", good)
    cut = tmp_path / "cut.npy"
    cut.write_bytes((tmp_path / "good.npy").read_bytes()[:1000])
    with pytest.raises(ValueError, match=rf"{named(cut)}.*truncated"):
        open_movie(cut)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"definitely not numpy")
    with pytest.raises(ValueError, match=rf"{named(junk)}.*not a valid \.npy"):
        open_movie(junk)


def test_tiff_errors_small_frames_and_dtypes(tmp_path):
    cases = {
        "row.tif": (np.zeros((5, 1, 8), np.uint16), "1x8"),
        "complex.tif": (np.zeros((3, 8, 8), np.complex64), "complex"),
        "bool.tif": (np.zeros((3, 8, 8), bool), "bool"),
    }
    for name, (array, message) in cases.items():
        path = tmp_path / name
        tifffile.imwrite(path, array, metadata={"axes": "TYX"}, photometric="minisblack")
        with pytest.raises(ValueError, match=rf"{named(path)}.*{message}"):
            open_movie(path)


def test_tiff_ambiguous_axes(tmp_path):
    path = tmp_path / "noaxes.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 8, 8), np.uint16))  # shape only: 'QQYX'
    with pytest.raises(ValueError, match=rf"{named(path)}.*ambiguous axis labels"):
        open_movie(path)


def test_hdf5_inconsistent_channel_shapes(tmp_path):
    path = tmp_path / "channels.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("ch1", data=np.zeros((10, 8, 8), np.uint16))
        f.create_dataset("ch2", data=np.zeros((9, 8, 8), np.uint16))
    with pytest.raises(ValueError, match=rf"{named(path)}.*inconsistent channel shapes"):
        open_movie(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("ch1", data=np.zeros((10, 8, 8), np.uint16))
        f.create_dataset("ch2", data=np.zeros((10, 8, 8), np.float32))
    with pytest.raises(ValueError, match=rf"{named(path)}.*inconsistent channel dtypes"):
        open_movie(path)


def test_hdf5_ambiguous_and_missing(tmp_path):
    path = tmp_path / "ambiguous.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=np.zeros((10, 8, 8), np.uint16))
        f.create_dataset("registered", data=np.zeros((10, 8, 8), np.float32))
    with pytest.raises(ValueError, match=rf"{named(path)}.*ambiguous.*/raw.*/registered"):
        open_movie(path)
    with pytest.raises(ValueError, match=rf"{named(path)}.*'nope'"):
        open_movie(path, dataset="nope")
    groups = tmp_path / "groups.h5"
    with h5py.File(groups, "w") as f:
        for g in ("a", "b"):
            f.create_dataset(f"{g}/ch1", data=np.zeros((4, 8, 8), np.uint16))
    with pytest.raises(ValueError, match=rf"{named(groups)}.*several groups"):
        open_movie(groups)
    empty = tmp_path / "nomovie.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("mean", data=np.zeros((8, 8)))
        f.create_dataset("labels", data=np.array([b"a", b"b"]))
    with pytest.raises(ValueError, match=rf"{named(empty)}.*no 3-D/4-D.*/mean"):
        open_movie(empty)


def test_hdf5_channel_list_attribute_must_match(tmp_path):
    path = tmp_path / "listed.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("u", data=np.zeros((4, 8, 8), np.float32))
        f.attrs["channel_datasets"] = ["u", "v"]
    with pytest.raises(ValueError, match=rf"{named(path)}.*missing datasets \['v'\]"):
        open_movie(path)


def test_hdf5_bad_datasets(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("complex", data=np.zeros((4, 8, 8), np.complex64))
        f.create_dataset("tiny", data=np.zeros((4, 1, 8), np.uint16))
        f.create_dataset("empty", data=np.zeros((0, 8, 8), np.uint16))
        f.create_dataset("five", data=np.zeros((2, 3, 8, 8, 1), np.uint16))
        ds = f.create_dataset("weird", data=np.zeros((4, 8, 8), np.uint16))
        ds.attrs["axis_order"] = "TYW"
    expected = {
        "complex": "complex64",
        "tiny": "1x8 pixels",
        "empty": "0 frames",
        "five": "no axis_order",
        "weird": "lack the image axis 'X'",
    }
    for dataset, message in expected.items():
        with pytest.raises(ValueError, match=rf"{named(path)}.*{message}"):
            open_movie(path, dataset=dataset)


def test_options_for_wrong_format(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"m\.npy.*dataset="):
        open_movie(tmp_path / "m.npy", dataset="mov")
    with pytest.raises(ValueError, match=r"m\.npy.*plane="):
        open_movie(tmp_path / "m.npy", plane=0)


def test_writer_argument_errors_create_nothing(tmp_path):
    out = tmp_path / "out.h5"
    bad = [
        ({"frame_shape": (1, 8)}, "1x8"),
        ({"frame_shape": (8,)}, "frame_shape"),
        ({"n_channels": 0}, "n_channels"),
        ({"dtype": np.complex64}, "complex64"),
        ({"dtype": bool}, "bool"),
        ({"n_frames": 0}, "n_frames"),
        ({"compression": "lzf"}, "compression"),
        ({"attrs": {"complete": 1}}, "reserved"),
        ({"attrs": {"bad": object()}}, "bad"),
    ]
    for override, message in bad:
        kw = {"frame_shape": (8, 8), "n_channels": 1, "dtype": "uint16"} | override
        with pytest.raises(ValueError, match=rf"out\.h5.*{message}"):
            HDF5MovieWriter(out, kw.pop("frame_shape"), kw.pop("n_channels"), kw.pop("dtype"), **kw)
    with pytest.raises(ValueError, match=r"out\.tif.*compression"):
        TIFFMovieWriter(tmp_path / "out.tif", (8, 8), 1, "uint16", compression="zlib")
    with pytest.raises(ValueError, match=r"out\.tif.*JSON"):
        TIFFMovieWriter(tmp_path / "out.tif", (8, 8), 1, "uint16", attrs={"x": object()})
    with pytest.raises(ValueError, match=r"out\.npy.*attributes"):
        open_movie_writer(tmp_path / "out.npy", (8, 8), 1, "uint16", attrs={"x": 1})
    with pytest.raises(ValueError, match=r"out\.h5.*TIFFMovieWriter needs"):
        TIFFMovieWriter(out, (8, 8), 1, "uint16")
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        open_movie_writer(tmp_path / "no_such_dir" / "out.h5", (8, 8), 1, "uint16")
    with (
        pytest.raises(FileNotFoundError, match="no_such_dir"),
        atomic_output(tmp_path / "no_such_dir" / "x.npy"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
