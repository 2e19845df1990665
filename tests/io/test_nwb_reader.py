"""Reading TwoPhotonSeries from NWB files written by pynwb, and the metadata the files state."""

from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime

import numpy as np
import pytest
import tifffile
from pynwb import NWBHDF5IO, NWBFile
from pynwb.file import Subject
from pynwb.image import ImageSeries
from pynwb.ophys import OpticalChannel, TwoPhotonSeries

from pyflowreg.io import (
    NWBMovieReader,
    completed_frame_count,
    nwb_session_metadata,
    open_movie,
    validate_movie,
)

H, W = 32, 40  # non-square: a transposed frame cannot pass for the stored one
START = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def named(path):
    return re.escape(path.name)


def ramp(shape, dtype="uint16"):
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


def new_nwbfile(**fields):
    return NWBFile(
        session_description="two-photon session",
        identifier="session-0001",
        session_start_time=START,
        **fields,
    )


def add_plane(nwbfile, *, imaging_rate=None, name="ImagingPlane"):
    device = nwbfile.create_device(name="Microscope")
    channel = OpticalChannel(name="OpticalChannel", description="green", emission_lambda=525.0)
    extra = {} if imaging_rate is None else {"imaging_rate": imaging_rate}
    return nwbfile.create_imaging_plane(
        name=name,
        optical_channel=channel,
        description="layer 2/3",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6f",
        location="V1",
        **extra,
    )


def two_photon(name, frames, plane, **timing):
    """A series of ``frames`` (T, H, W[, Z]) stored in the schema's (frame, x, y[, z]) order:
    x is the width, so each frame is stored transposed."""
    stored = np.ascontiguousarray(np.swapaxes(frames, 1, 2))
    return TwoPhotonSeries(name=name, data=stored, imaging_plane=plane, unit="a.u.", **timing)


def write(path, nwbfile):
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def single_series_file(path, data, **timing):
    nwbfile = new_nwbfile()
    nwbfile.add_acquisition(two_photon("TwoPhotonSeries", data, add_plane(nwbfile), **timing))
    return write(path, nwbfile)


@pytest.fixture
def two_series_file(tmp_path):
    nwbfile = new_nwbfile()
    plane = add_plane(nwbfile)
    raw, motion = ramp((6, H, W)), ramp((6, H, W)) + 7
    nwbfile.add_acquisition(two_photon("raw", raw, plane, rate=30.0))
    module = nwbfile.create_processing_module("ophys", "processed imaging")
    module.add(two_photon("motion_corrected", motion, plane, rate=30.0))
    return write(tmp_path / "two.nwb", nwbfile), raw, motion


# ------------------------------------------------------------------------ frames read
def test_series_with_rate_is_read_as_stored(tmp_path):
    data = ramp((7, H, W))
    path = single_series_file(tmp_path / "rate.nwb", data, rate=30.0, starting_time=2.5)
    with open_movie(path) as reader:
        assert isinstance(reader, NWBMovieReader)
        assert reader.shape == (7, H, W, 1)
        assert reader.dtype == np.uint16
        np.testing.assert_array_equal(reader.read(), data[..., None])
        np.testing.assert_array_equal(reader.read(2, 5), data[2:5, ..., None])
        np.testing.assert_array_equal(reader.read_frame(-1), data[-1, ..., None])
        assert reader.series_name == "TwoPhotonSeries"
        assert reader.series_path == "/acquisition/TwoPhotonSeries"
        assert reader.rate == 30.0
        assert reader.starting_time == 2.5
        assert reader.timestamps() is None
    assert validate_movie(path) == (7, H, W, 1)
    assert completed_frame_count(path) == 7


def test_series_with_timestamps_in_a_processing_module(tmp_path):
    data = np.random.default_rng(0).normal(100, 10, (5, H, W)).astype(np.float32)
    stamps = np.array([0.0, 0.033, 0.068, 0.1, 0.134])
    nwbfile = new_nwbfile()
    module = nwbfile.create_processing_module("ophys", "processed imaging")
    module.add(two_photon("corrected", data, add_plane(nwbfile), timestamps=stamps))
    path = write(tmp_path / "stamps.nwb", nwbfile)
    with NWBMovieReader(path) as reader:
        assert reader.shape == (5, H, W, 1)
        assert reader.dtype == np.float32
        np.testing.assert_array_equal(reader.read()[..., 0], data)
        assert reader.series_path == "/processing/ophys/corrected"
        assert reader.rate is None
        assert reader.starting_time is None
        np.testing.assert_array_equal(reader.timestamps(), stamps)
    with pytest.raises(ValueError, match="closed"):
        reader.timestamps()


def test_several_series_need_a_choice(two_series_file):
    path, raw, motion = two_series_file
    with pytest.raises(ValueError, match=named(path)) as info:
        open_movie(path)
    message = str(info.value)
    for text in ("/acquisition/raw", "(raw)", "/processing/ophys/motion_corrected",
                 "(motion_corrected)", "nwb_series"):
        assert text in message
    with open_movie(path, series="motion_corrected") as reader:
        np.testing.assert_array_equal(reader.read()[..., 0], motion)
    with open_movie(path, series="/acquisition/raw") as reader:
        assert reader.series_name == "raw"
        np.testing.assert_array_equal(reader.read(1, 4)[..., 0], raw[1:4])
    with pytest.raises(ValueError, match=rf"{named(path)}.*'rwa'.*/acquisition/raw"):
        open_movie(path, series="rwa")


def test_volumetric_series_needs_a_plane(tmp_path):
    volume = ramp((5, H, W, 3), "int16")  # stored as (frame, x, y, z)
    path = single_series_file(tmp_path / "volume.nwb", volume, rate=10.0)
    with pytest.raises(ValueError, match=rf"{named(path)}.*3 z-planes.*plane="):
        open_movie(path)
    with open_movie(path, plane=2) as reader:
        assert reader.shape == (5, H, W, 1)
        np.testing.assert_array_equal(reader.read()[..., 0], volume[..., 2])
        np.testing.assert_array_equal(reader.read(3, 5)[..., 0], volume[3:5, ..., 2])
    with pytest.raises(ValueError, match=rf"{named(path)}.*plane=3 out of range.*3 planes"):
        open_movie(path, plane=3)

    one_plane = ramp((4, H, W, 1), "int16")
    path = single_series_file(tmp_path / "one_plane.nwb", one_plane, rate=10.0)
    with open_movie(path) as reader:
        np.testing.assert_array_equal(reader.read(), one_plane)


def test_plane_of_a_single_plane_series_is_an_error(tmp_path):
    path = single_series_file(tmp_path / "flat.nwb", ramp((3, H, W)), rate=5.0)
    with pytest.raises(ValueError, match=rf"{named(path)}.*plane=0.*no Z axis"):
        open_movie(path, plane=0)


# ------------------------------------------------------------------------- metadata
def test_session_metadata_states_what_the_file_holds(tmp_path):
    nwbfile = new_nwbfile(
        experimenter=["Doe, Jane", "Roe, Rick"],
        lab="Imaging Lab",
        institution="Some University",
        experiment_description="visual stimulation",
        subject=Subject(subject_id="m17", species="Mus musculus", sex="F", age="P90D",
                        strain="C57BL/6J", description="head-fixed"),
    )
    plane = add_plane(nwbfile, imaging_rate=15.0)
    nwbfile.add_acquisition(two_photon("TwoPhotonSeries", ramp((3, H, W)), plane, rate=15.0))
    path = write(tmp_path / "meta.nwb", nwbfile)
    expected = {
        "session_description": "two-photon session",
        "identifier": "session-0001",
        "session_start_time": START.isoformat(),
        "experimenter": ["Doe, Jane", "Roe, Rick"],
        "institution": "Some University",
        "lab": "Imaging Lab",
        "experiment_description": "visual stimulation",
        "subject": {"subject_id": "m17", "species": "Mus musculus", "sex": "F", "age": "P90D",
                    "strain": "C57BL/6J", "description": "head-fixed"},
        "series": "/acquisition/TwoPhotonSeries",
        "imaging_rate": 15.0,
        "indicator": "GCaMP6f",
        "excitation_lambda": 920.0,
        "emission_lambda": 525.0,
        "location": "V1",
        "device": "Microscope",
    }
    assert nwb_session_metadata(path) == expected
    with open_movie(path) as reader:
        assert reader.session_metadata() == expected
    assert datetime.fromisoformat(expected["session_start_time"]) == START


def test_session_metadata_leaves_out_what_the_file_does_not_state(tmp_path):
    path = single_series_file(tmp_path / "bare.nwb", ramp((3, H, W)), rate=7.5)
    meta = nwb_session_metadata(path)
    assert set(meta) == {"session_description", "identifier", "session_start_time", "series",
                         "imaging_rate", "indicator", "excitation_lambda", "emission_lambda",
                         "location", "device"}
    assert meta["imaging_rate"] == 7.5  # the plane states none: the series' rate


def test_session_metadata_of_one_of_several_series(two_series_file):
    path, _, _ = two_series_file
    with pytest.raises(ValueError, match=rf"{named(path)}.*nwb_series"):
        nwb_session_metadata(path)
    assert nwb_session_metadata(path, series="raw")["series"] == "/acquisition/raw"
    with pytest.raises(FileNotFoundError, match="absent.nwb"):
        nwb_session_metadata(path.with_name("absent.nwb"))


# --------------------------------------------------------------------------- errors
def test_file_without_two_photon_series(tmp_path):
    nwbfile = new_nwbfile()
    nwbfile.add_acquisition(ImageSeries(name="behaviour_camera", data=ramp((3, H, W)),
                                        unit="a.u.", rate=20.0))
    path = write(tmp_path / "no_series.nwb", nwbfile)
    with pytest.raises(ValueError, match=rf"{named(path)}.*no TwoPhotonSeries.*behaviour_camera"):
        open_movie(path)
    empty = write(tmp_path / "empty.nwb", new_nwbfile())
    with pytest.raises(ValueError, match=rf"{named(empty)}.*no TwoPhotonSeries"):
        open_movie(empty)


def test_series_with_external_files(tmp_path):
    tifffile.imwrite(tmp_path / "frames.tif", ramp((4, H, W)), photometric="minisblack")
    nwbfile = new_nwbfile()
    nwbfile.add_acquisition(TwoPhotonSeries(
        name="external", imaging_plane=add_plane(nwbfile), unit="a.u.", rate=30.0,
        external_file=["frames.tif"], format="external", starting_frame=[0], num_samples=4,
    ))
    path = write(tmp_path / "external.nwb", nwbfile)
    with pytest.raises(ValueError, match=rf"{named(path)}.*external files \(frames\.tif\)"):
        open_movie(path)


def test_unusable_paths_and_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.nwb"):
        open_movie(tmp_path / "absent.nwb")
    garbage = tmp_path / "garbage.nwb"
    garbage.write_bytes(b"not an hdf5 file" * 64)
    with pytest.raises(ValueError, match=rf"{named(garbage)}.*not a readable HDF5 NWB file"):
        open_movie(garbage)
    folder = tmp_path / "zarr_backed.nwb"
    folder.mkdir()
    with pytest.raises(ValueError, match=rf"{named(folder)}.*Zarr-backed NWB"):
        open_movie(folder)
    assert completed_frame_count(folder) is None
    tif = tmp_path / "movie.tif"
    tifffile.imwrite(tif, ramp((3, H, W)), photometric="minisblack")
    with pytest.raises(ValueError, match=rf"{named(tif)}.*series= only applies to NWB"):
        open_movie(tif, series="TwoPhotonSeries")


def test_pixel_types_and_frame_sizes_follow_the_movie_rules(tmp_path):
    half = ramp((3, H, W), "float16")
    path = single_series_file(tmp_path / "half.nwb", half, rate=1.0)
    with open_movie(path) as reader:
        assert reader.dtype == np.float32
        np.testing.assert_array_equal(reader.read()[..., 0], half.astype(np.float32))
    line = single_series_file(tmp_path / "line.nwb", ramp((3, 1, W)), rate=1.0)
    with pytest.raises(ValueError, match=rf"{named(line)}.*1x{W} pixels is smaller"):
        open_movie(line)


# ---------------------------------------------------------------------------- laziness
def test_batches_of_a_long_series_do_not_load_the_dataset(tmp_path):
    data = np.random.default_rng(2).integers(0, 4000, size=(2000, H, W), dtype=np.uint16)
    path = single_series_file(tmp_path / "long.nwb", data, rate=30.0)
    with open_movie(path) as reader:
        tracemalloc.start()
        try:
            for t0, t1 in reader.batch_bounds(50):
                batch = reader.read(t0, t1)
                assert np.array_equal(batch[..., 0], data[t0:t1])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < data.nbytes / 10, f"batches of 50 peaked at {peak} bytes of {data.nbytes}"


def test_importing_the_io_package_does_not_import_pynwb_or_zarr():
    code = ("import sys, pyflowreg.io; "
            "print(sorted(m for m in ('pynwb', 'hdmf', 'zarr') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
