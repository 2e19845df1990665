"""Writers of recordings and sessions (pyflowreg.synthetic.writers)."""

import numpy as np
import pytest
import tifffile

from pyflowreg.synthetic import SyntheticRecording, make_session, write_recording, write_session


@pytest.mark.parametrize("dtype, n_channels", [("uint16", 1), ("float32", 1), ("uint16", 2)])
def test_write_recording_is_readable_with_all_frames(tmp_path, dtype, n_channels):
    rec = SyntheticRecording(40, 48, 9, n_channels=n_channels, seed=1)
    path = write_recording(rec, tmp_path / "rec.tif", dtype=dtype, chunk_frames=4)
    data = tifffile.imread(path)
    expected_shape = (9, 40, 48) if n_channels == 1 else (9, 40, 48, 2)
    assert data.shape == expected_shape and data.dtype == np.dtype(dtype)
    frames = rec.observed_all().reshape(expected_shape)
    if dtype == "float32":
        np.testing.assert_array_equal(data, frames)
    else:
        scaled = np.clip(frames * rec.photons_per_unit, 0, 65535)
        assert np.abs(data - scaled).max() <= 0.5 + 1e-3


class _FailingRecording(SyntheticRecording):
    """Fails after its first chunk of frames, as a run killed while writing would."""

    def iter_observed(self, chunk_frames, **kwargs):
        chunks = super().iter_observed(chunk_frames, **kwargs)
        yield next(chunks)
        raise RuntimeError("stopped while writing")


def test_write_recording_stopped_midway_leaves_no_movie(tmp_path):
    rec = _FailingRecording(32, 32, 12, seed=2)
    with pytest.raises(RuntimeError, match="stopped while writing"):
        write_recording(rec, tmp_path / "rec.tif", chunk_frames=4)
    assert list(tmp_path.iterdir()) == []


def test_write_session_writes_tiffs_and_ground_truth(tmp_path):
    sess = make_session(2, 32, 40, 6, seed=4)
    paths = write_session(sess, tmp_path / "out")
    assert [p.name for p in paths] == ["rec_00.tif", "rec_01.tif"]
    assert tifffile.imread(paths[1]).shape == (6, 32, 40)
    truth = np.load(tmp_path / "out" / "ground_truth.npz")
    assert truth["between_flow"].shape == (2, 32, 40, 2)
    assert truth["flow"].shape == (2, 6, 32, 40, 2)
    assert int(truth["center_index"]) == 0
    np.testing.assert_array_equal(truth["common_valid_mask"], sess.common_valid_mask())
    np.testing.assert_array_equal(truth["flow"][1], sess.recordings[1].flow_all())
