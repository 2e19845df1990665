"""Output contract of the session stages: files, NPZ / MAT bundle, PNGs, aligned videos, resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile
from PIL import Image

from pyflowreg.core.warping import align_sequence
from pyflowreg.io import open_movie
from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import align_mask, run_stage3

H, W = 64, 64
T = 8
STEMS = ("rec_00", "rec_01", "rec_02")
CENTER = 1
NPZ_KEYS = {
    "final_valid", "aligned_valid_masks", "per_seq_valid_masks", "displacement_fields_u",
    "displacement_fields_v", "temporal_averages", "compensated_h5_paths", "reference_average",
    "middle_idx",
}
OLD = 1_000_000_000  # an mtime (2001) no file written by the tests can have


def _config(root: Path, **overrides) -> SessionConfig:
    values = dict(root=str(root), pattern="rec_*.tif", quality_setting="fast", n_workers=2)
    values.update(overrides)
    return SessionConfig(**values)


@pytest.fixture(scope="module")
def done(small_session_source, tmp_path_factory):
    """The tiny session after Stages 1-3 with default output folders."""
    source, _ = small_session_source
    root = tmp_path_factory.mktemp("outputs_session")
    for stem in STEMS:
        shutil.copy2(source / f"{stem}.tif", root / f"{stem}.tif")
    config = _config(root)
    folders = run_stage1(config)
    middle_idx, center_file, fields = run_stage2(config)
    final = run_stage3(config)
    return {"root": root, "config": config, "folders": folders, "middle_idx": middle_idx,
            "center_file": center_file, "fields": fields, "final": final}


@pytest.fixture
def done_copy(done, tmp_path):
    """A private copy of the finished session (for tests that change or rerun it)."""
    root = tmp_path / "session"
    shutil.copytree(done["root"], root)
    return root


def _bundle(done) -> dict:
    with np.load(done["config"].final_results_path / "final_valid_idx.npz") as data:
        return {k: data[k] for k in data.files}


# ------------------------------------------------------------------------- per-recording files
def test_output_folders_are_under_root_by_default(done):
    root = done["root"]
    assert done["folders"] == [root / "compensated_outputs" / s for s in STEMS]
    assert done["config"].final_results_path == root / "final_results"


def test_stage1_and_stage2_write_their_files_per_recording(done):
    for folder in done["folders"]:
        names = {p.name for p in folder.iterdir()}
        assert {"compensated.hdf5", "idx.hdf", "temporal_average.npy", "reference.npy",
                "status.json", "w_to_reference.npz", "w_to_reference.json"} <= names
        assert not [n for n in names if n.startswith(".") or "tmp" in n.lower()], names
        assert json.loads((folder / "status.json").read_text())["complete"] is True
        average = np.load(folder / "temporal_average.npy")
        assert average.shape[:2] == (H, W)
        with open_movie(folder / "compensated.hdf5") as reader:
            assert reader.n_frames == T and reader.frame_shape == (H, W)
        with open_movie(folder / "idx.hdf") as reader:
            assert reader.n_frames == T


def test_w_to_reference_holds_u_and_v_float32(done):
    for i, folder in enumerate(done["folders"]):
        with np.load(folder / "w_to_reference.npz") as data:
            assert set(data.files) == {"u", "v"}
            for key in ("u", "v"):
                assert data[key].shape == (H, W) and data[key].dtype == np.float32
            np.testing.assert_array_equal(data["u"], done["fields"][i][..., 0])
            np.testing.assert_array_equal(data["v"], done["fields"][i][..., 1])
        info = json.loads((folder / "w_to_reference.json").read_text())
        # The center is named by its stem, as in qc/session.json and the workflow's files.
        assert info["provenance"]["center"] == done["center_file"].stem
        if i == CENTER:
            assert info["kept"] == "center"
        else:
            assert len(info["rigid_shift"]) == 2 and info["kept"] in info["ngf"]


def test_run_stage2_returns_center_index_file_and_fields(done):
    assert done["middle_idx"] == CENTER
    assert done["center_file"] == done["root"] / "rec_01.tif"
    assert len(done["fields"]) == 3
    for w in done["fields"]:
        assert w.shape == (H, W, 2) and w.dtype == np.float32
    assert not done["fields"][CENTER].any()
    assert all(done["fields"][i].any() for i in (0, 2))


# ------------------------------------------------------------------------- the bundle
def test_npz_bundle_has_exactly_the_documented_keys_shapes_and_dtypes(done):
    b = _bundle(done)
    assert set(b) == NPZ_KEYS
    assert b["final_valid"].shape == (H, W) and b["final_valid"].dtype == bool
    for key in ("aligned_valid_masks", "per_seq_valid_masks"):
        assert b[key].shape == (3, H, W) and b[key].dtype == bool, key
    for key in ("displacement_fields_u", "displacement_fields_v"):
        assert b[key].shape == (3, H, W) and b[key].dtype == np.float32, key
    assert b["temporal_averages"].shape == (3, H, W)
    assert b["temporal_averages"].dtype.kind == "f"
    assert b["reference_average"].shape == (H, W)
    assert b["compensated_h5_paths"].shape == (3,)
    assert b["compensated_h5_paths"].dtype.kind == "U"  # loads without allow_pickle
    assert b["middle_idx"].shape == () and b["middle_idx"].dtype.kind == "i"
    assert int(b["middle_idx"]) == CENTER


def test_npz_bundle_values_are_consistent(done):
    b = _bundle(done)
    np.testing.assert_array_equal(b["final_valid"], done["final"])
    np.testing.assert_array_equal(b["final_valid"], b["aligned_valid_masks"].all(axis=0))
    # the center's field is zero, so its aligned mask is its own mask
    np.testing.assert_array_equal(b["aligned_valid_masks"][CENTER],
                                  b["per_seq_valid_masks"][CENTER])
    for i, folder in enumerate(done["folders"]):
        np.testing.assert_array_equal(b["displacement_fields_u"][i], done["fields"][i][..., 0])
        np.testing.assert_array_equal(b["displacement_fields_v"][i], done["fields"][i][..., 1])
        average = np.load(folder / "temporal_average.npy").reshape(H, W)
        np.testing.assert_allclose(b["temporal_averages"][i], average, rtol=1e-6)
        assert Path(b["compensated_h5_paths"][i]) == folder / "compensated.hdf5"
        assert Path(b["compensated_h5_paths"][i]).is_file()
        with open_movie(folder / "idx.hdf") as reader:
            idx = reader.read(0, reader.n_frames)[..., 0] != 0
        np.testing.assert_array_equal(b["per_seq_valid_masks"][i], idx.all(axis=0))
        np.testing.assert_array_equal(
            b["aligned_valid_masks"][i], align_mask(idx.all(axis=0), done["fields"][i])
        )
    np.testing.assert_array_equal(b["reference_average"], b["temporal_averages"][CENTER])
    assert 0 < b["final_valid"].sum() < H * W


def test_mat_bundle_has_the_same_names_with_one_based_middle_idx(done):
    b = _bundle(done)
    mat = scipy.io.loadmat(str(done["config"].final_results_path / "final_valid_idx.mat"))
    assert NPZ_KEYS <= set(mat)
    assert int(np.asarray(mat["middle_idx"]).squeeze()) == CENTER + 1
    np.testing.assert_array_equal(mat["final_valid"].astype(bool), b["final_valid"])
    for key in ("aligned_valid_masks", "per_seq_valid_masks", "displacement_fields_u",
                "displacement_fields_v", "temporal_averages"):
        np.testing.assert_array_equal(np.asarray(mat[key]).astype(b[key].dtype), b[key])
    np.testing.assert_array_equal(mat["reference_average"], b["reference_average"])
    paths = [str(np.asarray(p).squeeze()) for p in np.asarray(mat["compensated_h5_paths"]).ravel()]
    assert paths == [str(p) for p in b["compensated_h5_paths"]]


def test_mask_pngs_hold_only_0_and_255_and_match_the_masks(done):
    b = _bundle(done)
    out = done["config"].final_results_path
    expected = {"final_valid_idx.png": b["final_valid"]}
    for i, stem in enumerate(STEMS):
        expected[f"{stem}_valid_idx.png"] = b["per_seq_valid_masks"][i]
        expected[f"{stem}_valid_idx_aligned.png"] = b["aligned_valid_masks"][i]
    for name, mask in expected.items():
        png = np.asarray(Image.open(out / name))
        assert png.shape == (H, W), name
        assert set(np.unique(png).tolist()) <= {0, 255}, name
        np.testing.assert_array_equal(png == 255, mask, err_msg=name)


# ------------------------------------------------------------------------- aligned videos
def test_aligned_tiff_is_one_stack_of_all_frames(done):
    out = done["config"].final_results_path
    for i, stem in enumerate(STEMS):
        stack = tifffile.imread(out / f"aligned_{stem}.tif")
        assert stack.shape == (T, H, W), stem
        assert np.isfinite(stack).all()
        with open_movie(done["folders"][i] / "compensated.hdf5") as reader:
            compensated = reader.read(0, T)[..., 0]
        if i == CENTER:  # zero field: the aligned center is its compensated movie
            np.testing.assert_allclose(stack, compensated, rtol=1e-5, atol=1e-5)
        else:
            assert not np.allclose(stack, compensated)


def test_hdf5_aligned_output_when_requested(done, done_copy):
    config = _config(done_copy, final_results="results_h5", align_output_format="hdf5")
    assert config.align_output_format == "HDF5"
    run_stage3(config)
    out = done_copy / "results_h5"
    tif_out = done_copy / "final_results"
    for stem in STEMS:
        path = out / f"aligned_{stem}.hdf5"
        assert path.is_file() and not (out / f"aligned_{stem}.tif").exists()
        with h5py.File(path, "r") as f:
            assert f.attrs.get("complete", 1)
        with open_movie(path) as reader:
            assert reader.n_frames == T and reader.frame_shape == (H, W)
            frames = reader.read(0, T)[..., 0]
        np.testing.assert_allclose(frames, tifffile.imread(tif_out / f"aligned_{stem}.tif"),
                                   rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------- resume
def _age(paths) -> None:
    for p in paths:
        os.utime(p, (OLD, OLD))


def _mtimes(paths) -> list[int]:
    return [int(p.stat().st_mtime) for p in paths]


def test_stage1_rerun_skips_complete_recordings(done_copy):
    config = _config(done_copy)
    # a copied input has a new path, so resume recomputes once; then it must skip
    run_stage1(config)
    outputs = [config.output_root_path / s / n for s in STEMS
               for n in ("compensated.hdf5", "status.json")]
    _age(outputs)
    run_stage1(config)
    assert _mtimes(outputs) == [OLD] * len(outputs)


def test_stage3_rerun_skips_existing_aligned_videos(done_copy):
    config = _config(done_copy)
    videos = [config.final_results_path / f"aligned_{s}.tif" for s in STEMS]
    _age(videos)
    final = run_stage3(config)
    assert _mtimes(videos) == [OLD] * 3
    np.testing.assert_array_equal(final, np.load(
        config.final_results_path / "final_valid_idx.npz")["final_valid"])


def test_stage3_without_resume_rewrites_aligned_videos(done_copy):
    config = _config(done_copy, resume=False)
    videos = [config.final_results_path / f"aligned_{s}.tif" for s in STEMS]
    _age(videos)
    run_stage3(config)
    assert all(m != OLD for m in _mtimes(videos))


def test_stage3_reexports_a_video_whose_field_changed(done_copy):
    config = _config(done_copy)
    videos = [config.final_results_path / f"aligned_{s}.tif" for s in STEMS]
    before = tifffile.imread(videos[0])
    _age(videos)
    npz = config.output_root_path / STEMS[0] / "w_to_reference.npz"
    with np.load(npz) as data:
        u, v = data["u"] + np.float32(0.5), data["v"]
    np.savez(npz, u=u, v=v)
    run_stage3(config)
    mtimes = _mtimes(videos)
    assert mtimes[0] != OLD and mtimes[1:] == [OLD, OLD]
    assert not np.allclose(tifffile.imread(videos[0]), before)


def test_stage3_reexports_videos_after_stage1_was_recomputed(done_copy):
    """Rerunning the pipeline after Stage 1 changed must not keep stale aligned videos.

    The center's field is zero whatever Stage 1 produced, so a resume check keyed on the field
    alone keeps the old aligned center video.
    """
    config = _config(done_copy, flow_options={"alpha": 8.0})  # changed options: new Stage 1
    run_stage1(config, log=lambda message: None)
    run_stage2(config)
    run_stage3(config)
    for i, stem in enumerate(STEMS):
        with open_movie(config.output_root_path / stem / "compensated.hdf5") as reader:
            compensated = reader.read(0, T)[..., 0]
        aligned = tifffile.imread(config.final_results_path / f"aligned_{stem}.tif")
        expected = align_sequence(compensated, _saved_fields(config)[i],
                                  np.load(config.output_root_path / STEMS[CENTER]
                                          / "temporal_average.npy").reshape(H, W))
        np.testing.assert_allclose(aligned, expected, rtol=1e-5, atol=1e-4, err_msg=stem)


def _saved_fields(config) -> list[np.ndarray]:
    fields = []
    for stem in STEMS:
        with np.load(config.output_root_path / stem / "w_to_reference.npz") as data:
            fields.append(np.stack([data["u"], data["v"]], axis=-1))
    return fields


def test_stage2_reuses_saved_fields_when_inputs_are_unchanged(done_copy, monkeypatch):
    config = _config(done_copy)
    files = [config.output_root_path / s / "w_to_reference.npz" for s in STEMS]
    _age(files)
    import pyflowreg.session.stage2_between_avgs as stage2

    def fail(*args, **kwargs):
        raise AssertionError("register_average called although inputs are unchanged")

    monkeypatch.setattr(stage2, "register_average", fail)
    _, _, fields = run_stage2(config)
    assert _mtimes(files) == [OLD] * 3
    with np.load(files[0]) as data:
        np.testing.assert_array_equal(fields[0][..., 0], data["u"])


def test_stage2_recomputes_when_an_average_or_parameter_changed(done_copy):
    config = _config(done_copy)
    files = [config.output_root_path / s / "w_to_reference.npz" for s in STEMS]
    # a changed (non-center) temporal average: only that recording is recomputed
    average_path = config.output_root_path / STEMS[2] / "temporal_average.npy"
    np.save(average_path, np.load(average_path) * np.float32(1.01))
    _age(files)
    run_stage2(config)
    assert _mtimes(files) == [OLD, OLD, _mtimes(files)[2]] and _mtimes(files)[2] != OLD
    # a changed Stage 2 parameter: every recording is recomputed
    _age(files)
    run_stage2(_config(done_copy, sigma_smooth=4.0))
    assert all(m != OLD for m in _mtimes(files))


def test_stage2_without_resume_recomputes(done_copy):
    config = _config(done_copy, resume=False)
    files = [config.output_root_path / s / "w_to_reference.npz" for s in STEMS]
    _age(files)
    run_stage2(config)
    assert all(m != OLD for m in _mtimes(files))


# ------------------------------------------------------------------------- valid-mask edges
def test_aligned_mask_treats_left_and_right_edges_alike():
    """A sample half a pixel beyond the last column is as invalid as one before the first.

    The ground truth of ``pyflowreg.synthetic`` (and MATLAB's interp2) counts a sample valid
    only inside [0, W-1] x [0, H-1]; pixels sampled in (W-1, W) hold extrapolated data.
    """
    mask = np.ones((8, 8), bool)
    right = np.zeros((8, 8, 2), np.float32)
    right[..., 0] = 0.5
    left = -right
    aligned_right, aligned_left = align_mask(mask, right), align_mask(mask, left)
    assert not aligned_left[:, 0].any()
    assert not aligned_right[:, -1].any(), "column W-1 samples x = W-0.5, outside the image"
    assert aligned_right.sum() == aligned_left.sum()
