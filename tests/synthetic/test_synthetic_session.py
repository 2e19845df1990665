"""Synthetic sessions (pyflowreg.synthetic.session): between-recording warps, valid masks."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pyflowreg.synthetic import make_session

MARGIN = 10  # px of interior used when comparing warped images


def interior(image):
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.fixture(scope="module")
def session():
    return make_session(3, 80, 96, 20, rigid_amplitude=2.0, nonrigid_amplitude=1.0, seed=3)


def test_session_between_flow_aligns_each_view_onto_center(session, warp_backward):
    center = session.center_index
    assert center == 1  # ceil(3 / 2) - 1
    assert np.all(session.between_flow[center] == 0)
    reference = session.recordings[center].clean_static("baseline")[..., 0]
    for r, rec in enumerate(session.recordings):
        view = rec.clean_static("baseline")[..., 0]
        registered = warp_backward(view, session.between_flow[r])
        inside = ndi.binary_erosion(session.aligned_valid_mask(r), iterations=3)
        error = np.abs(registered - reference)[inside].mean()
        assert error < 0.01 * np.ptp(reference)
        if r != center:
            assert np.abs(view - reference).mean() > 10 * error
            assert np.hypot(*session.between_flow[r].reshape(-1, 2).T).max() > 5.0


def test_session_recordings_share_cells_but_not_activity_or_motion(session):
    first, second = session.recordings[0], session.recordings[2]
    assert first.n_cells == second.n_cells
    assert not np.allclose(first.dff, second.dff)
    assert not np.allclose(first.rigid_flow, second.rigid_flow)


def test_common_valid_mask_is_nonempty_and_smaller_than_frame(session):
    common = session.common_valid_mask()
    assert common.shape == (80, 96) and common.dtype == bool
    assert 0.3 < common.mean() < 1.0
    for r, rec in enumerate(session.recordings):
        assert rec.valid_mask().mean() < 1.0
        assert np.all(session.aligned_valid_mask(r) >= common)
    still = make_session(2, 48, 48, 5, between_rigid_amplitude=0.0,
                         between_nonrigid_amplitude=0.0, rigid_amplitude=0.0,
                         nonrigid_amplitude=0.0, center_index=0, seed=1)
    assert still.common_valid_mask().all()
