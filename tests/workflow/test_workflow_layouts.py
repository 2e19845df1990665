"""Input layouts through the whole Snakemake workflow.

* HDF5 recordings of uneven length (8 and 11 frames), a session of two, aligned videos as HDF5;
* one ``.npy`` recording (a session of one: it is its own center);
* two two-channel TIFF recordings registered on channel 1 (``weight: [1, 0]``): every output keeps
  both channels.

Each test is one real ``snakemake`` run on a tiny session (48 x 48 px).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io

from pyflowreg.io import open_movie
from pyflowreg.synthetic import make_session, write_session

pytestmark = pytest.mark.slow  # full snakemake runs

H = W = 48


def _frames(n_recordings: int, n_frames: int, seed: int, n_channels: int = 1):
    session = make_session(n_recordings, H, W, n_frames, between_rigid_amplitude=3.0,
                           between_nonrigid_amplitude=1.0, rigid_amplitude=1.0,
                           nonrigid_amplitude=0.5, seed=seed, n_channels=n_channels)
    # uint16 photon counts, as a microscope writes them
    return [np.rint(np.clip(rec.observed_all() * rec.photons_per_unit, 0, 65535))
            .astype(np.uint16) for rec in session.recordings]


def _n_frames(path) -> int:
    with open_movie(path) as reader:
        return reader.n_frames


def _check_session(workdir, wf, stems, n_frames, n_channels=1, video_suffix=".tif"):
    """Every per-recording and session output exists with the recording's frames and channels."""
    for stem, n in zip(stems, n_frames, strict=True):
        folder = wf.stage1_dir(workdir, stem)
        with open_movie(folder / "compensated.hdf5") as reader:
            assert (reader.n_frames, reader.n_channels) == (n, n_channels)
        with open_movie(wf.final_dir(workdir) / f"aligned_{stem}{video_suffix}") as reader:
            assert (reader.n_frames, reader.frame_shape, reader.n_channels) == \
                (n, (H, W), n_channels)
    bundle = wf.load_final_mask(workdir)
    assert bundle["per_seq_valid_masks"].shape == (len(stems), H, W)
    assert bundle["final_valid"].any()
    average_shape = (len(stems), H, W) + ((n_channels,) if n_channels > 1 else ())
    assert bundle["temporal_averages"].shape == average_shape
    mat = scipy.io.loadmat(wf.final_dir(workdir) / "final_valid_idx.mat")
    np.testing.assert_array_equal(mat["temporal_averages"].reshape(average_shape),
                                  bundle["temporal_averages"])
    return bundle


def test_hdf5_session_of_two_uneven_recordings(tmp_path, snakemake, wf):
    workdir = tmp_path / "wd"
    data = workdir / wf.ROOT
    data.mkdir(parents=True)
    movies = _frames(2, 11, seed=21)
    lengths = (8, 11)
    for i, (movie, n) in enumerate(zip(movies, lengths, strict=True)):
        with h5py.File(data / f"rec_{i:02d}.h5", "w") as f:
            f.create_dataset("mov", data=movie[:n, ..., 0])  # (T, H, W), as most labs store it
    wf.write_config(workdir, pattern="rec_*.h5", align_output_format="HDF5")
    wf_result = snakemake.ok(workdir)
    assert wf.job_counts(wf_result)["compensate"] == 2
    bundle = _check_session(workdir, wf, ["rec_00", "rec_01"], lengths, video_suffix=".hdf5")
    assert int(bundle["middle_idx"]) == 0  # ceil(2 / 2)-th of two, 0-based


def test_npy_session_of_one_recording(tmp_path, snakemake, wf):
    workdir = tmp_path / "wd"
    data = workdir / wf.ROOT
    data.mkdir(parents=True)
    np.save(data / "rec_00.npy", _frames(1, 8, seed=22)[0])  # (T, H, W, 1)
    wf.write_config(workdir, pattern="rec_*.npy")
    snakemake.ok(workdir)
    bundle = _check_session(workdir, wf, ["rec_00"], [8])
    # Its own center: the Stage 2 field is zero and the session mask is its own valid mask.
    assert not bundle["displacement_fields_u"].any() and not bundle["displacement_fields_v"].any()
    np.testing.assert_array_equal(bundle["final_valid"], bundle["per_seq_valid_masks"][0])


def test_two_channel_tiff_session_keeps_both_channels(tmp_path, snakemake, wf):
    workdir = tmp_path / "wd"
    data = workdir / wf.ROOT
    session = make_session(2, H, W, 8, n_channels=2, between_rigid_amplitude=3.0,
                           between_nonrigid_amplitude=1.0, rigid_amplitude=1.0,
                           nonrigid_amplitude=0.5, seed=23)
    write_session(session, data, ground_truth_flows=False)
    (data / "ground_truth.npz").unlink()
    wf.write_config(workdir, flow_options={"weight": [1, 0]})
    snakemake.ok(workdir)
    _check_session(workdir, wf, ["rec_00", "rec_01"], [8, 8], n_channels=2)
    # rec_01 is the non-center recording of two: its Stage 2 field was driven by channel 1.
    info = json.loads((wf.stage1_dir(workdir, "rec_01") / "w_to_reference.json").read_text())
    assert info["provenance"]["params"]["weight"] == [1.0, 0.0]
    assert info["kept"] != "center"
