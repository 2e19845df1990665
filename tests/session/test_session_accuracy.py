"""Accuracy of the whole session pipeline on a synthetic 5-recording session with known warps.

One module-scoped run of Stages 1-3 (192 x 192 px, 30 frames per recording, between-recording
rigid offsets up to 12 px plus a 2.5 px non-rigid warp) is checked against the ground truth of
:func:`pyflowreg.synthetic.make_session`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3
from pyflowreg.synthetic import make_session, write_session

N_RECORDINGS = 5
SIZE = 192
N_FRAMES = 30
MAX_EPE = 0.35  # px, mean end-point error of every Stage 2 field
MIN_DICE = 0.99
MARGIN = 3  # px eroded from the final mask before comparing images (cubic edge effects)

pytestmark = pytest.mark.slow


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _warp(image: np.ndarray, w: np.ndarray) -> np.ndarray:
    """image(y + v, x + u), cubic."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]].astype(float)
    coords = [yy + w[..., 1], xx + w[..., 0]]
    return ndi.map_coordinates(image, coords, order=3, mode="nearest")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Ground truth, config and every stage's result of one run."""
    session = make_session(
        N_RECORDINGS, SIZE, SIZE, N_FRAMES,
        between_rigid_amplitude=12.0, between_nonrigid_amplitude=2.5, seed=0,
    )
    root = tmp_path_factory.mktemp("accuracy_session")
    paths = write_session(session, root)
    config = SessionConfig(
        root=str(root), pattern="rec_*.tif", quality_setting="fast", n_workers=2,
    )
    folders = run_stage1(config)
    middle_idx, center_file, fields = run_stage2(config)
    final = run_stage3(config, middle_idx, fields)
    return {
        "session": session, "config": config, "paths": paths, "folders": folders,
        "middle_idx": middle_idx, "center_file": center_file, "fields": fields, "final": final,
    }


def _end_point_error(w: np.ndarray, truth: np.ndarray) -> float:
    return float(np.hypot(*(w - truth).transpose(2, 0, 1)).mean())


def _non_center(pipeline) -> list[int]:
    return [r for r in range(N_RECORDINGS) if r != pipeline["session"].center_index]


def test_center_is_the_middle_recording_and_gets_a_zero_field(pipeline):
    session = pipeline["session"]
    assert pipeline["middle_idx"] == session.center_index == 2
    assert pipeline["center_file"].name == "rec_02.tif"
    assert not np.any(pipeline["fields"][session.center_index])


def test_stage2_end_point_error_is_subpixel_for_every_recording(pipeline):
    truth = pipeline["session"].between_flow
    errors = {r: _end_point_error(pipeline["fields"][r], truth[r]) for r in _non_center(pipeline)}
    assert all(e <= MAX_EPE for e in errors.values()), errors


def test_stage2_beats_its_rigid_initialisation(pipeline):
    """The non-rigid field is more accurate than the recorded rigid shift as a constant field."""
    truth = pipeline["session"].between_flow
    for r in _non_center(pipeline):
        info = json.loads((pipeline["folders"][r] / "w_to_reference.json").read_text())
        u0, v0 = info["rigid_shift"]
        rigid = np.broadcast_to(np.array([u0, v0], np.float32), truth[r].shape)
        rigid_error = _end_point_error(rigid, truth[r])
        flow_error = _end_point_error(pipeline["fields"][r], truth[r])
        assert flow_error < rigid_error, (r, flow_error, rigid_error)
        assert info["kept"] != "rigid"


def test_rigid_shift_recovers_the_mean_between_recording_offset(pipeline):
    truth = pipeline["session"].between_flow
    for r in _non_center(pipeline):
        info = json.loads((pipeline["folders"][r] / "w_to_reference.json").read_text())
        mean_truth = truth[r].reshape(-1, 2).mean(0)
        assert np.hypot(*(np.asarray(info["rigid_shift"]) - mean_truth)) < 1.5, (r, info)


def test_saved_fields_equal_the_returned_fields(pipeline):
    for folder, w in zip(pipeline["folders"], pipeline["fields"], strict=True):
        with np.load(folder / "w_to_reference.npz") as data:
            np.testing.assert_array_equal(data["u"], w[..., 0])
            np.testing.assert_array_equal(data["v"], w[..., 1])


def test_final_mask_matches_the_ground_truth_common_region(pipeline):
    truth = pipeline["session"].common_valid_mask()
    final = pipeline["final"]
    dice = 2 * np.sum(final & truth) / (final.sum() + truth.sum())
    assert dice >= MIN_DICE, dice


def _aligned_and_compensated(pipeline, r):
    config = pipeline["config"]
    stem = pipeline["paths"][r].stem
    aligned = tifffile.imread(config.final_results_path / f"aligned_{stem}.tif")
    from pyflowreg.io import open_movie

    with open_movie(pipeline["folders"][r] / "compensated.hdf5") as reader:
        compensated = reader.read(0, reader.n_frames)[..., 0]
    return aligned, compensated


def test_aligned_videos_correlate_with_the_center_recording(pipeline):
    """Aligned frames of every other recording look like the center's (motion-free) view."""
    session = pipeline["session"]
    inner = ndi.binary_erosion(pipeline["final"], iterations=MARGIN)
    center_view = session.recordings[session.center_index].clean_static()[..., 0]
    for r in _non_center(pipeline):
        aligned, compensated = _aligned_and_compensated(pipeline, r)
        assert aligned.shape == (N_FRAMES, SIZE, SIZE)
        r_aligned = np.mean([_pearson(f[inner], center_view[inner]) for f in aligned])
        r_unaligned = np.mean([_pearson(f[inner], center_view[inner]) for f in compensated])
        assert r_aligned >= 0.8, (r, r_aligned)
        assert r_aligned > r_unaligned + 0.3, (r, r_aligned, r_unaligned)


def test_aligned_frames_match_the_true_frames_in_the_center_grid(pipeline):
    """Frame t of aligned_<stem> ~ recording r's clean frame t moved by the true between-flow."""
    session = pipeline["session"]
    inner = ndi.binary_erosion(pipeline["final"], iterations=MARGIN)
    for r in _non_center(pipeline):
        aligned, _ = _aligned_and_compensated(pipeline, r)
        clean = session.recordings[r].clean(0, N_FRAMES)[..., 0]
        truth = [_warp(frame, session.between_flow[r]) for frame in clean]
        correlation = np.mean([_pearson(a[inner], t[inner]) for a, t in zip(aligned, truth,
                                                                             strict=True)])
        assert correlation >= 0.93, (r, correlation)
