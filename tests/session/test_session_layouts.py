"""Input layouts through Stages 1-3 of the API: two channels with per-channel weights.

A two-channel session (channel 1 functional, channel 2 structural) registered on channel 1 only
(``weight: [1, 0]``): every output keeps both channels, and channel 2 is moved by exactly the
fields channel 1 determined, in Stage 1 (per frame), Stage 2 (between recordings) and the
aligned videos.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile

from pyflowreg.core import align_sequence
from pyflowreg.io import open_movie
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import register_average, run_stage2, stage2_params
from pyflowreg.session.stage3_valid_mask import run_stage3
from pyflowreg.synthetic import make_session, write_session

H, W, T = 48, 48, 8
STEMS = ("rec_00", "rec_01", "rec_02")
OPTIONS = {"weight": [1, 0], "save_w": True, "output_dtype": "float32"}


def _config(root, **overrides) -> SessionConfig:
    values = dict(root=str(root), pattern="rec_*.tif", quality_setting="fast", n_workers=2,
                  flow_options=OPTIONS)
    values.update(overrides)
    return SessionConfig(**values)


@pytest.fixture(scope="module")
def two_channel(tmp_path_factory):
    """A 3-recording two-channel session after Stages 1-3 (computed once for the module)."""
    root = tmp_path_factory.mktemp("two_channel")
    session = make_session(3, H, W, T, n_channels=2, between_rigid_amplitude=4.0,
                           between_nonrigid_amplitude=1.0, rigid_amplitude=1.5,
                           nonrigid_amplitude=0.5, seed=4)
    write_session(session, root, ground_truth_flows=False)
    config = _config(root)
    folders = run_stage1(config)
    middle_idx, _, fields = run_stage2(config)
    final = run_stage3(config, middle_idx, fields)
    return {"root": root, "config": config, "folders": folders, "fields": fields,
            "middle_idx": middle_idx, "final": final}


def _read_all(path) -> np.ndarray:
    with open_movie(path) as reader:
        return reader.read(0, reader.n_frames)


def _flows(folder) -> np.ndarray:
    with h5py.File(folder / "w.hdf5", "r") as f:
        return np.stack([f["u"][:], f["v"][:]], axis=-1)


def test_stage1_keeps_both_channels_and_moves_them_with_one_field(two_channel):
    for stem, folder in zip(STEMS, two_channel["folders"], strict=True):
        with h5py.File(folder / "compensated.hdf5", "r") as f:
            assert sorted(f) == ["ch1", "ch2"]
            assert f["ch1"].shape == f["ch2"].shape == (T, H, W)
        assert np.load(folder / "temporal_average.npy").shape == (H, W, 2)
        raw = _read_all(two_channel["root"] / f"{stem}.tif").astype(np.float32)
        corrected = _read_all(folder / "compensated.hdf5")
        reference = np.load(folder / "reference.npy")
        # Both channels are the raw frames warped by the one flow saved per frame.
        expected = align_sequence(raw, _flows(folder), reference)
        np.testing.assert_allclose(corrected, expected, rtol=1e-5, atol=1e-3)


def test_weight_zero_channel_does_not_drive_stage1(two_channel, tmp_path):
    # Replace channel 2 with unrelated noise: with weight [1, 0] the flows must not change.
    source = two_channel["root"] / "rec_00.tif"
    frames = tifffile.imread(source)
    noise = np.random.default_rng(0).integers(0, 4000, frames.shape[:3]).astype(frames.dtype)
    frames[..., 1] = noise
    other = tmp_path / "rec_00.tif"
    tifffile.imwrite(other, frames, photometric="minisblack", planarconfig="contig")
    out = compensate_recording({"quality_setting": "fast", "n_workers": 2, **OPTIONS},
                               input_file=other, output_path=tmp_path / "out")
    np.testing.assert_array_equal(_flows(out), _flows(two_channel["folders"][0]))
    ch2 = _read_all(out / "compensated.hdf5")[..., 1]
    expected = align_sequence(noise.astype(np.float32), _flows(out),
                              np.load(out / "reference.npy")[..., 1])
    np.testing.assert_allclose(ch2, expected, rtol=1e-5, atol=1e-3)


def test_weight_zero_channel_does_not_drive_stage2(two_channel):
    config = two_channel["config"]
    params = stage2_params(config)
    assert params["weight"] == [1.0, 0.0]
    center = np.load(two_channel["folders"][1] / "temporal_average.npy")
    moving = np.load(two_channel["folders"][0] / "temporal_average.npy")
    scrambled = moving.copy()
    scrambled[..., 1] = np.random.default_rng(1).random((H, W)) * moving[..., 1].max()
    w_original, _ = register_average(center, moving, **params)
    w_scrambled, _ = register_average(center, scrambled, **params)
    np.testing.assert_array_equal(w_scrambled, w_original)
    np.testing.assert_array_equal(w_original, two_channel["fields"][0])


def test_aligned_videos_keep_both_channels_warped_by_the_stage2_field(two_channel):
    config = two_channel["config"]
    final = config.final_results_path
    center_reference = np.load(two_channel["folders"][two_channel["middle_idx"]]
                               / "temporal_average.npy")
    for stem, folder, w in zip(STEMS, two_channel["folders"], two_channel["fields"],
                               strict=True):
        aligned = _read_all(final / f"aligned_{stem}.tif")
        assert aligned.shape == (T, H, W, 2)
        compensated = _read_all(folder / "compensated.hdf5")
        expected = align_sequence(compensated, w, center_reference)
        np.testing.assert_allclose(aligned, expected, rtol=1e-5, atol=1e-3)


def test_bundles_hold_both_channels(two_channel):
    final = two_channel["config"].final_results_path
    with np.load(final / "final_valid_idx.npz") as npz:
        assert npz["temporal_averages"].shape == (3, H, W, 2)
        assert npz["reference_average"].shape == (H, W, 2)
        averages = npz["temporal_averages"]
    mat = scipy.io.loadmat(final / "final_valid_idx.mat")
    assert mat["temporal_averages"].shape == (3, H, W, 2)
    np.testing.assert_array_equal(mat["temporal_averages"], averages)
    for i, folder in enumerate(two_channel["folders"]):
        np.testing.assert_allclose(averages[i], np.load(folder / "temporal_average.npy"),
                                   rtol=1e-6)


def test_two_channel_session_with_weight_on_channel_two(two_channel, tmp_path):
    # The other way round (registration on the structural channel) runs through every stage.
    root = tmp_path / "session"
    root.mkdir()
    for stem in STEMS[:2]:
        shutil.copy2(two_channel["root"] / f"{stem}.tif", root / f"{stem}.tif")
    config = _config(root, flow_options={**OPTIONS, "weight": [0, 1]})
    run_stage1(config)
    middle_idx, _, fields = run_stage2(config)
    final = run_stage3(config, middle_idx, fields)
    assert final.shape == (H, W) and final.any()
    assert _read_all(config.final_results_path / "aligned_rec_00.tif").shape == (T, H, W, 2)
