"""A recording corrected in segments equals the unsplit run; segments resume on their own."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from pyflowreg.io import open_movie, open_movie_writer, read_hdf5_frame_count
from pyflowreg.motion_correction import compensate_recording, is_complete
from pyflowreg.motion_correction.flow_sequence import FlowSequence
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.motion_correction.segments import (
    SegmentsIncomplete,
    check_segment_frames,
    compensate_recording_in_segments,
    compensate_segment,
    join_segments,
    prepare_segments,
    segment_bounds,
    segment_names,
)

N_FRAMES = 150
SEGMENT = 64  # three segments: 64 + 64 + 22
# Batches of 48 frames: batch starts fall inside segments and at their borders.
OPTIONS = {"quality_setting": "balanced", "buffer_size": 48, "save_w": True, "n_workers": 2}
MOVIES = {"compensated.hdf5": ("ch1",), "idx.hdf": ("ch1",), "w.hdf5": ("u", "v")}


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    from pyflowreg.synthetic import SyntheticRecording, write_recording

    rec = SyntheticRecording(64, 64, N_FRAMES, seed=3, rigid_amplitude=3.0,
                             nonrigid_amplitude=1.0)
    return write_recording(rec, tmp_path_factory.mktemp("input") / "movie.tif", dtype="uint16")


@pytest.fixture(scope="module")
def unsplit(movie, tmp_path_factory):
    return compensate_recording(OPTIONS, input_file=movie,
                                output_path=tmp_path_factory.mktemp("unsplit") / "out")


@pytest.fixture(scope="module")
def split(movie, tmp_path_factory):
    return compensate_recording_in_segments(
        OPTIONS, input_file=movie, output_path=tmp_path_factory.mktemp("split") / "out",
        segment_frames=SEGMENT)


def _movies(folder):
    out = {}
    for name, datasets in MOVIES.items():
        with h5py.File(folder / name, "r") as f:
            out.update({f"{name}/{d}": f[d][:] for d in datasets})
    return out


def test_segments_give_the_unsplit_flows_and_frames_bit_for_bit(unsplit, split):
    expected, got = _movies(unsplit), _movies(split)
    for key, values in expected.items():
        np.testing.assert_array_equal(got[key], values, err_msg=key)
    np.testing.assert_allclose(np.load(split / "temporal_average.npy"),
                               np.load(unsplit / "temporal_average.npy"), rtol=1e-12)
    qc_split = json.loads((split / "qc.json").read_text())
    qc_unsplit = json.loads((unsplit / "qc.json").read_text())
    assert qc_split["per_frame"] == qc_unsplit["per_frame"]
    assert qc_split["outlier_frames"] == qc_unsplit["outlier_frames"]
    status, reference = (json.loads((f / "status.json").read_text()) for f in (split, unsplit))
    for key in ("n_frames", "alpha_selection", "temporal_filter", "refinement", "options"):
        assert status[key] == reference[key], key
    assert status["segments"]["count"] == 3 and status["segments"]["join"] == "virtual"


def test_joined_movies_are_virtual_and_name_a_missing_segment(split, tmp_path):
    with h5py.File(split / "compensated.hdf5", "r") as f:
        assert f["ch1"].is_virtual
        assert sorted({s.file_name for s in f["ch1"].virtual_sources()}) == [
            f"segments/{segment_names(k)['compensated']}" for k in range(3)]
    # The folder moves as a whole: the sources are found relative to it.
    moved = tmp_path / "moved"
    shutil.copytree(split, moved)
    assert read_hdf5_frame_count(moved / "compensated.hdf5") == N_FRAMES
    (moved / "segments" / segment_names(1)["compensated"]).unlink()
    assert read_hdf5_frame_count(moved / "compensated.hdf5") is None
    with pytest.raises(ValueError, match="seg_0001.hdf5 is missing"):
        open_movie(moved / "compensated.hdf5")


def test_a_killed_segment_reruns_alone_and_an_edited_input_reruns_all(movie, tmp_path):
    folder = tmp_path / "out"
    source = tmp_path / "movie.tif"
    shutil.copy(movie, source)
    compensate_recording_in_segments(OPTIONS, input_file=source, output_path=folder,
                                     segment_frames=SEGMENT)
    seg_dir = folder / "segments"

    def stamps():
        return {k: (seg_dir / segment_names(k)["compensated"]).stat().st_mtime_ns
                for k in range(3)}

    before = stamps()
    # A segment killed before its status was written: only its status is missing.
    (seg_dir / segment_names(1)["status"]).unlink()
    (folder / "status.json").unlink()
    compensate_recording_in_segments(OPTIONS, input_file=source, output_path=folder,
                                     segment_frames=SEGMENT)
    after = stamps()
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] != before[1]
    assert is_complete(folder, source, OFOptions.from_dict(OPTIONS))

    with open_movie(source) as reader:
        frames = np.asarray(reader.read(0, N_FRAMES))
    frames[100] = frames[101]  # an edited frame
    os.unlink(source)
    with open_movie_writer(source, frames.shape[1:3], 1, frames.dtype) as writer:
        writer.write(frames)
    assert not is_complete(folder, source, OFOptions.from_dict(OPTIONS))
    compensate_recording_in_segments(OPTIONS, input_file=source, output_path=folder,
                                     segment_frames=SEGMENT)
    assert all(after[k] != stamp for k, stamp in stamps().items())


def test_the_join_refuses_missing_segments_before_writing(movie, tmp_path):
    folder = tmp_path / "out"
    prepare_segments(OPTIONS, input_file=movie, output_path=folder, segment_frames=SEGMENT)
    compensate_segment(OPTIONS, input_file=movie, output_path=folder, segment=0)
    compensate_segment(OPTIONS, input_file=movie, output_path=folder, segment=2)
    with pytest.raises(SegmentsIncomplete, match=r"segment\(s\) \[1\] of 3"):
        join_segments(OPTIONS, input_file=movie, output_path=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["segments"]
    with pytest.raises(ValueError, match="segment 3 is outside 0..2"):
        compensate_segment(OPTIONS, input_file=movie, output_path=folder, segment=3)


def test_a_segment_without_its_preparation_is_an_error(movie, tmp_path):
    with pytest.raises(ValueError, match="prepared.pkl: missing or unreadable"):
        compensate_segment(OPTIONS, input_file=movie, output_path=tmp_path / "out", segment=0)
    assert not (tmp_path / "out" / "segments").exists() or not any(
        (tmp_path / "out" / "segments").glob("seg_*"))


def test_segment_length_must_follow_the_chunks():
    options = OFOptions(chunk_frames=32)
    check_segment_frames(4992, options)
    with pytest.raises(ValueError, match="not a multiple of chunk_frames .32.*try 4992 or 5024"):
        check_segment_frames(5000, options)
    assert segment_bounds(150, 64) == [(0, 64), (64, 128), (128, 150)]
    assert segment_bounds(128, 64) == [(0, 64), (64, 128)]


def test_a_flow_sequence_starts_only_where_a_chunk_starts(movie):
    from pyflowreg.motion_correction.reference import build_reference

    options = OFOptions.from_dict(OPTIONS)
    with open_movie(movie) as reader:
        reference = build_reference(reader, options)
        sigma = options.channel_sigma(1)
        flows = FlowSequence(reader, reference, options, options.flow_parameters, sigma, 1,
                              FramePool(1))
        with pytest.raises(ValueError, match="does not begin a chunk"):
            flows.start_at(40)


def test_a_wide_band_gain_is_applied_alike_from_any_start(movie):
    # Each segment measures the same gain (fixed seed and frames, see test_band_gain.py) and
    # applies it frame by frame, so a split run's flows equal the unsplit run's.
    from pyflowreg.core.bands import LowBand
    from pyflowreg.motion_correction.reference import build_reference

    options = OFOptions.from_dict(OPTIONS)
    with open_movie(movie) as reader, FramePool(2) as pool:
        reference = build_reference(reader, options, pool=pool)
        sigma = options.channel_sigma(1)

        def flows_from(start, gain):
            sequence = FlowSequence(reader, reference, options, options.flow_parameters, sigma,
                                    1, pool, wide_band_gain=gain)
            sequence.start_at(start)
            return sequence.chunk(start, start + options.chunk_frames)[1]

        plain = flows_from(64, 1.0)
        from_start = FlowSequence(reader, reference, options, options.flow_parameters, sigma, 1,
                                  pool, wide_band_gain=1.25)
        whole = [from_start.chunk(t, t + options.chunk_frames)[1]
                 for t in range(0, 96, options.chunk_frames)]
        gained = flows_from(64, 1.25)
    np.testing.assert_array_equal(gained, whole[2])
    band = LowBand(*plain.shape[1:3])
    expected = np.stack([band.scaled(w, 1.25) for w in plain])
    np.testing.assert_array_equal(gained, expected)
    assert np.abs(gained - plain).max() > 1e-3  # the gain changed the flows
