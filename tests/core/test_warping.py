"""Warping conventions: backward warp, fill from the reference, exact valid masks."""

import numpy as np
import pytest
from scipy import ndimage

from pyflowreg.core.warping import (
    align_sequence,
    backward_valid_mask,
    compute_batch_valid_masks,
    imregister_binary,
    imregister_wrapper,
    invert_flow,
    warp_image,
)


def smooth_image(shape=(64, 80), seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 2.0).astype(np.float32)


def constant_flow(shape, u, v):
    return np.full(shape, u, np.float32), np.full(shape, v, np.float32)


@pytest.mark.parametrize("method", ["cubic", "linear", "nearest"])
def test_integer_shift_warped_back_equals_original_in_interior(method):
    original = smooth_image()
    # moving(y, x) = original(y - 3, x + 2) so registering with u=-2, v=3 recovers original.
    moving = np.roll(np.roll(original, 3, axis=0), -2, axis=1)
    u, v = constant_flow(original.shape, -2.0, 3.0)
    registered = imregister_wrapper(moving, u, v, original, interpolation_method=method)
    np.testing.assert_allclose(registered[3:-3, 3:-3], original[3:-3, 3:-3], atol=1e-5)


def test_subpixel_shift_warped_back_matches_in_interior():
    big = smooth_image((100, 100), seed=3)
    yy, xx = np.mgrid[0:100, 0:100].astype(np.float64)
    u0, v0 = 1.25, -0.75
    # moving sampled so that moving(y + v0, x + u0) = big(y, x)
    moving = ndimage.map_coordinates(big, [yy - v0, xx - u0], order=3, mode="nearest")
    u, v = constant_flow(big.shape, u0, v0)
    registered = imregister_wrapper(moving, u, v, big)
    assert np.abs(registered[8:-8, 8:-8] - big[8:-8, 8:-8]).max() < 2e-3


def test_out_of_bounds_pixels_take_fixed_values():
    moving = smooth_image()
    fixed = np.full_like(moving, 7.0)
    u, v = constant_flow(moving.shape, 5.0, 0.0)
    registered = imregister_wrapper(moving, u, v, fixed)
    assert np.all(registered[:, -5:] == 7.0)
    assert np.all(registered[:, :-5] != 7.0)


@pytest.mark.parametrize("u0, v0", [(2, 0), (-3, 1), (0, -4), (5, 5)])
def test_valid_mask_exact_for_integer_shifts(u0, v0):
    shape = (20, 30)
    u, v = constant_flow(shape, u0, v0)
    mask = backward_valid_mask(u, v)
    expected = np.zeros(shape, bool)
    ys = slice(max(0, -v0), shape[0] - max(0, v0))
    xs = slice(max(0, -u0), shape[1] - max(0, u0))
    expected[ys, xs] = True
    np.testing.assert_array_equal(mask, expected)


def test_valid_mask_is_symmetric_at_both_edges():
    # Sample positions beyond the last pixel centre are invalid on the right as on the left.
    u, v = constant_flow((10, 10), 0.5, 0.0)
    mask = backward_valid_mask(u, v)
    assert not mask[:, 9].any() and mask[:, :9].all()
    u, v = constant_flow((10, 10), -0.5, 0.0)
    mask = backward_valid_mask(u, v)
    assert not mask[:, 0].any() and mask[:, 1:].all()
    u, v = constant_flow((10, 10), 0.0, 9.0)
    assert backward_valid_mask(u, v)[0].all() and not backward_valid_mask(u, v)[1:].any()


def test_imregister_binary_nearest_and_in_bounds():
    mask = np.zeros((10, 12), np.uint8)
    mask[2:6, 3:9] = 255
    u, v = constant_flow(mask.shape, 2.0, 1.0)
    warped = imregister_binary(mask, u, v)
    expected = np.zeros(mask.shape, bool)
    expected[1:5, 1:7] = True
    np.testing.assert_array_equal(warped, expected)
    # An all-valid mask keeps only the in-bounds region of the flow.
    full = imregister_binary(np.ones((10, 12)), u, v)
    np.testing.assert_array_equal(full, backward_valid_mask(u, v))


def test_compute_batch_valid_masks_uint8_0_255():
    w = np.zeros((3, 8, 9, 2), np.float32)
    w[1, ..., 0] = 2.0
    w[2, ..., 1] = -1.0
    masks = compute_batch_valid_masks(w)
    assert masks.dtype == np.uint8 and masks.shape == (3, 8, 9)
    assert set(np.unique(masks)) <= {0, 255}
    assert masks[0].min() == 255
    assert (masks[1][:, -2:] == 0).all() and (masks[1][:, :-2] == 255).all()
    assert (masks[2][0] == 0).all() and (masks[2][1:] == 255).all()


def test_align_sequence_one_flow_and_per_frame_flows():
    ref = smooth_image()
    frames = np.stack([np.roll(ref, k, axis=1) for k in range(3)])[..., None]
    w_per_frame = np.zeros((3, *ref.shape, 2), np.float32)
    w_per_frame[:, ..., 0] = np.arange(3)[:, None, None]
    aligned = align_sequence(frames, w_per_frame, ref[..., None])
    assert aligned.shape == frames.shape
    for t in range(3):
        np.testing.assert_allclose(aligned[t, :, 3:-3, 0], ref[:, 3:-3], atol=1e-5)
    same = align_sequence(frames[:, :, :, 0], np.zeros((*ref.shape, 2)), ref)
    np.testing.assert_allclose(same, frames[:, :, :, 0], atol=1e-6)


def test_warping_rejects_bad_shapes_and_values():
    img = smooth_image()
    u, v = constant_flow(img.shape, 0.0, 0.0)
    with pytest.raises(ValueError, match="interpolation_method"):
        imregister_wrapper(img, u, v, img, interpolation_method="spline")
    with pytest.raises(ValueError, match="agree"):
        imregister_wrapper(img[:10], u, v, img[:10])
    bad = u.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        backward_valid_mask(bad, v)
    with pytest.raises(ValueError, match=r"\(T, H, W, 2\)"):
        compute_batch_valid_masks(np.zeros((4, 4, 2)))


def test_inverse_flow_undoes_a_smooth_field():
    # z(q) = -w(q + z(q)): carrying the reference into the frame by z and back by w is the
    # identity, to the fixed point's precision, wherever the samples stay inside the frame.
    yy, xx = np.mgrid[:64, :64].astype(np.float32)
    w = np.stack([1.5 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
                  -1.0 * np.cos(xx / 11.0) + 0.3], axis=-1).astype(np.float32)
    z = invert_flow(w)
    back, _ = warp_image(w, z[..., 0], z[..., 1], w)
    assert np.abs(back + z)[4:-4, 4:-4].max() < 2e-3
    assert np.array_equal(invert_flow(np.zeros_like(w)), np.zeros_like(w))
