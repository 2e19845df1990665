"""Image pairs with a known displacement (pyflowreg.synthetic.pair)."""

import numpy as np

from pyflowreg.synthetic import make_image_pair

MARGIN = 10  # px of interior used when comparing warped images


def interior(image):
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN]


def test_image_pair_flow_registers_moving_onto_fixed(warp_backward):
    fixed, moving, w_true = make_image_pair(96, 96, max_displacement=4.0, rigid_shift=(2.5, -1.5),
                                            seed=1)
    assert fixed.shape == moving.shape == (96, 96) and w_true.shape == (96, 96, 2)
    assert fixed.dtype == moving.dtype == w_true.dtype == np.float32
    error = np.abs(interior(warp_backward(moving, w_true) - fixed)).mean()
    assert error < 0.01 * np.ptp(fixed)
    assert error < 0.1 * np.abs(interior(moving - fixed)).mean()
    nonrigid = w_true - np.array([2.5, -1.5], np.float32)
    assert 3.0 < np.hypot(nonrigid[..., 0], nonrigid[..., 1]).max() < 4.5


def test_image_pair_rigid_shift_is_exact_and_noise_independent():
    fixed, moving, w_true = make_image_pair(64, 64, rigid_shift=(1.25, -0.5), nonrigid=False,
                                            photons_per_unit=100.0, read_noise=0.01,
                                            n_channels=2, seed=2)
    assert fixed.shape == (64, 64, 2)
    np.testing.assert_array_equal(w_true[..., 0], 1.25)
    np.testing.assert_array_equal(w_true[..., 1], -0.5)
    clean_fixed, clean_moving, _ = make_image_pair(64, 64, rigid_shift=(1.25, -0.5),
                                                   nonrigid=False, n_channels=2, seed=2)
    noise_fixed, noise_moving = fixed - clean_fixed, moving - clean_moving
    assert abs(np.corrcoef(noise_fixed.ravel(), noise_moving.ravel())[0, 1]) < 0.05
