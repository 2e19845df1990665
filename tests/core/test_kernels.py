"""numba kernels checked against plain numpy references on small inputs."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pyflowreg.core import interpolation, median, median_network, variational


def numpy_keys_sample(image, ys, xs):
    height, width = image.shape
    out = np.zeros_like(ys, dtype=np.float64)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    for dy in range(-1, 3):
        wy = interpolation.keys_kernel(ys - (y0 + dy))
        for dx in range(-1, 3):
            wx = interpolation.keys_kernel(xs - (x0 + dx))
            yy = np.clip(y0 + dy, 0, height - 1)
            xx = np.clip(x0 + dx, 0, width - 1)
            out += wy * wx * image[yy, xx]
    return out


def warp_inputs(seed, height, width, n_channels, max_shift):
    """A random image (H, W, C), flow components u, v within +-max_shift px, and a constant
    fill of -1, all float32, with empty output arrays."""
    rng = np.random.default_rng(seed)
    image = rng.random((height, width, n_channels)).astype(np.float32)
    u, v = rng.uniform(-max_shift, max_shift, (2, height, width)).astype(np.float32)
    return image, u, v, np.full_like(image, -1.0), np.empty_like(image), \
        np.empty((height, width), bool)


def test_warp_cubic_matches_numpy_reference():
    image, u, v, fill, out, inside = warp_inputs(0, 20, 24, 1, 3.0)
    interpolation.warp_cubic(image, u, v, fill, 23.0, 19.0, out, inside)
    ys = np.arange(20)[:, None] + v.astype(np.float64)
    xs = np.arange(24)[None, :] + u.astype(np.float64)
    expected_inside = (xs >= 0) & (xs <= 23) & (ys >= 0) & (ys <= 19)
    np.testing.assert_array_equal(inside, expected_inside)
    expected = np.where(expected_inside, numpy_keys_sample(image[..., 0], ys, xs), -1.0)
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-5)


def test_warp_cubic_channels_and_strided_output_match_single_channel_warps():
    # Each channel is warped as its own plane; outputs that are views into a larger array
    # (not contiguous) receive the result too.
    image, u, v, fill, out, inside = warp_inputs(4, 18, 21, 2, 4.0)
    interpolation.warp_cubic(image, u, v, fill, 20.0, 17.0, out, inside)
    for c in range(2):
        single = np.empty((18, 21, 1), np.float32)
        interpolation.warp_cubic(np.ascontiguousarray(image[..., c : c + 1]), u, v,
                                 np.ascontiguousarray(fill[..., c : c + 1]), 20.0, 17.0,
                                 single, inside)
        np.testing.assert_array_equal(out[..., c], single[..., 0])
    wide = np.zeros((18, 21, 3), np.float32)
    strided = wide[:, :, 1:2]
    interpolation.warp_cubic(np.ascontiguousarray(image[..., :1]), u, v, fill[..., :1], 20.0,
                             17.0, strided, inside)
    np.testing.assert_array_equal(wide[:, :, 1], out[..., 0])
    assert not inside.all() and inside.any()  # both the sampled and the filled path ran


def test_resize_weights_rows_sum_to_one_and_identity_resize_is_exact():
    for n_in, n_out, sigma in [(100, 80, 0.0), (100, 31, 1.1), (17, 40, 0.0)]:
        idx, w = interpolation.resize_weights(n_in, n_out, sigma)
        assert idx.min() >= 0 and idx.max() < n_in
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
    image = np.random.default_rng(1).random((30, 40)).astype(np.float32)
    np.testing.assert_allclose(interpolation.resize_2d(image, (30, 40), (0.0, 1e-9)), image,
                               atol=1e-6)


def test_resize_of_linear_ramp_keeps_pixel_centres():
    # Pixel-centre mapping: a linear ramp resized stays the same linear function of position.
    ramp = np.tile(np.arange(64, dtype=np.float32), (8, 1))
    small = interpolation.resize_2d(ramp, (8, 32))
    expected = (np.arange(32) + 0.5) * 2 - 0.5
    np.testing.assert_allclose(small[:, 2:-2], np.tile(expected, (8, 1))[:, 2:-2], atol=1e-4)


@pytest.mark.parametrize("shape, levels", [((23, 37), None), ((6, 6), None), ((64, 9), 3)])
def test_median_filter_matches_scipy(shape, levels):
    # levels: few distinct values, so windows hold ties (the pruned network must still be exact)
    image = np.random.default_rng(2).random(shape).astype(np.float32)
    if levels:
        image = np.round(image * levels).astype(np.float32)
    out = np.empty_like(image)
    median.median_filter_5x5(image, out)
    np.testing.assert_array_equal(out, ndimage.median_filter(image, 5, mode="nearest"))


def test_median_network_is_shorter_for_sorted_columns():
    # 85 compare-exchanges after presorting the columns, against 113 for 25 unsorted values.
    assert len(median_network.median25_network()) == 85
    assert len(median_network.batcher_pairs(5)) == 9


def test_median_kernel_file_is_the_generators_output():
    committed = Path(median_network.__file__).with_name("_median_kernel.py").read_text()
    assert committed == median_network.kernel_source()


def test_median_filter_rows_split_across_threads_match_one_thread():
    image = np.random.default_rng(5).random((400, 300)).astype(np.float32)  # parallel size
    serial, parallel = np.empty_like(image), np.empty_like(image)
    median._median_serial(image, serial)
    median._median_parallel(image, parallel, 2)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_array_equal(serial, ndimage.median_filter(image, 5, mode="nearest"))


def numpy_tensor(f1, f2, gradient_constancy):
    def d(f):
        fx = np.zeros_like(f)
        fy = np.zeros_like(f)
        fx[:, 1:-1] = 0.5 * (f[:, 2:] - f[:, :-2])
        fy[1:-1] = 0.5 * (f[2:] - f[:-2])
        return fx, fy

    fx1, fy1 = d(f1)
    fx2, fy2 = d(f2)
    if gradient_constancy:
        fxx1, fxy1 = d(fx1)
        fxx2, fxy2 = d(fx2)
        fxx1[:, 1:-1] = f1[:, 2:] - 2 * f1[:, 1:-1] + f1[:, :-2]
        fxx2[:, 1:-1] = f2[:, 2:] - 2 * f2[:, 1:-1] + f2[:, :-2]
        fyy1 = np.zeros_like(f1)
        fyy2 = np.zeros_like(f1)
        fyy1[1:-1] = f1[2:] - 2 * f1[1:-1] + f1[:-2]
        fyy2[1:-1] = f2[2:] - 2 * f2[1:-1] + f2[:-2]
        _, fxy1 = d(fx1)
        _, fxy2 = d(fx2)
        a, b, c = (fxx1 + fxx2) / 2, (fxy1 + fxy2) / 2, (fyy1 + fyy2) / 2
        rows = [(a, b, fx2 - fx1), (b, c, fy2 - fy1)]
    else:
        rows = [((fx1 + fx2) / 2, (fy1 + fy2) / 2, f2 - f1)]
    J = np.zeros((6, *f1.shape))
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for r in rows:
        n = 1.0 / (r[0] ** 2 + r[1] ** 2 + variational.TENSOR_EPS)
        for k, (i, j) in enumerate(pairs):
            J[k] += r[i] * r[j] * n
    J[:, 0, :] = J[:, -1, :] = J[:, :, 0] = J[:, :, -1] = 0
    return J


@pytest.mark.parametrize("gradient_constancy", [True, False])
def test_motion_tensor_matches_numpy_reference(gradient_constancy):
    rng = np.random.default_rng(3)
    f1 = ndimage.gaussian_filter(rng.random((16, 18)), 1).astype(np.float32)
    f2 = ndimage.gaussian_filter(rng.random((16, 18)), 1).astype(np.float32)
    inside = np.ones((16, 18), bool)
    inside[5, 7] = False
    tensor = np.empty((1, 6, 16, 18), np.float32)
    variational.motion_tensor(f1[..., None], f2[..., None], inside, gradient_constancy, tensor)
    expected = numpy_tensor(f1.astype(np.float64), f2.astype(np.float64), gradient_constancy)
    expected[:, 5, 7] = 0
    np.testing.assert_allclose(tensor[0], expected, rtol=2e-3, atol=1e-4)


def numpy_red_black_sweeps(tensor, u, v, alpha, a_data, omega, n_sweeps):
    """Lagged system built once, then red-black SOR sweeps, all on unpadded arrays."""
    h, w = u.shape
    du = np.zeros((h, w))
    dv = np.zeros((h, w))
    J = tensor[0].astype(np.float64)
    energy = J[0] * du**2 + 2 * J[1] * du * dv + J[3] * dv**2 + 2 * J[2] * du + 2 * J[4] * dv
    psi = a_data * (np.maximum(energy + J[5], 0) + variational.PENALTY_EPS) ** (a_data - 1)
    neighbours = [(0, -1), (0, 1), (-1, 0), (1, 0)]

    def nb(a, y, x):
        return [(a[y + dy, x + dx]) for dy, dx in neighbours if 0 <= y + dy < h and 0 <= x + dx < w]

    for _ in range(n_sweeps):
        for colour in (0, 1):
            for y in range(h):
                for x in range(w):
                    if (x + y + colour) % 2:
                        continue
                    nu, nv, ndu, ndv = nb(u, y, x), nb(v, y, x), nb(du, y, x), nb(dv, y, x)
                    s = alpha * len(nu)
                    ru = alpha * sum(q - u[y, x] for q in nu) - psi[y, x] * J[2, y, x]
                    rv = alpha * sum(q - v[y, x] for q in nv) - psi[y, x] * J[4, y, x]
                    gs = (alpha * sum(ndu) + ru - psi[y, x] * J[1, y, x] * dv[y, x])
                    gs /= psi[y, x] * J[0, y, x] + s
                    du[y, x] += omega * (gs - du[y, x])
                    gs = (alpha * sum(ndv) + rv - psi[y, x] * J[1, y, x] * du[y, x])
                    gs /= psi[y, x] * J[3, y, x] + s
                    dv[y, x] += omega * (gs - dv[y, x])
    return du, dv


# Odd and even widths: the solver keeps even and odd columns in separate halves of a row.
@pytest.mark.parametrize("h, w", [(9, 11), (10, 12), (7, 6)])
def test_sor_solver_matches_numpy_reference(h, w):
    rng = np.random.default_rng(4)
    tensor = (rng.random((1, 6, h, w)) * 0.2).astype(np.float32)
    tensor[0, 0] += 1
    tensor[0, 3] += 1
    u = rng.normal(size=(h, w)).astype(np.float32)
    v = rng.normal(size=(h, w)).astype(np.float32)
    padded = (h + 2, w + 2)
    u_pad = np.zeros(padded, np.float32)
    v_pad = np.zeros(padded, np.float32)
    u_pad[1:-1, 1:-1], v_pad[1:-1, 1:-1] = u, v
    du = np.zeros(padded, np.float32)
    dv = np.zeros(padded, np.float32)
    k = variational.split_width(w)
    work = [np.zeros(padded, np.float32) for _ in range(3)]
    work += [
        np.zeros((variational.N_SPLIT, h + 2, 2, k), np.float32),
        np.zeros((1, variational.N_TENSOR, h + 2, 2, k), np.float32),
        np.zeros((2 * (h + 2), 2 * k), np.float32),
        np.zeros((h + 2, 2 * k), np.int32),
    ]
    variational.solve_level_serial(
        tensor, np.ones(1, np.float32), u_pad, v_pad, du, dv, 1.5, 1.5, 0.45, 1.0,
        1.95, 3, 10, *work,
    )
    ref_du, ref_dv = numpy_red_black_sweeps(tensor, u, v, 1.5, 0.45, 1.95, 3)
    np.testing.assert_allclose(du[1:-1, 1:-1], ref_du, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dv[1:-1, 1:-1], ref_dv, rtol=1e-3, atol=1e-4)


def test_fast_power_is_accurate():
    values = np.geomspace(1e-5, 50.0, 1000).astype(np.float32)
    out = np.empty_like(values)
    bits = np.empty(values.size, np.int32)
    variational._pow_row(values, np.float32(-0.55), bits, out)
    np.testing.assert_allclose(out, values.astype(np.float64) ** -0.55, rtol=1e-4)
