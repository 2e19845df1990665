"""numba kernels of the variational solver at one pyramid level.

At each level the current flow (u, v) is fixed and the increment (du, dv) minimises

    sum_c weight_c * Psi_d([du, dv, 1] J_c [du, dv, 1]^T)
        + alpha_x Psi_s(|d/dx (u + du)|^2 ...) + alpha_y Psi_s(|d/dy (u + du)|^2 ...)

(Brox et al. 2004), with J_c the normalised motion tensor of channel c and Psi the generalised
Charbonnier penalty, Psi'(s^2) = a (s^2 + eps)^(a - 1). The Euler-Lagrange equations are solved by
red-black SOR with the non-linear weights Psi' lagged: recomputed every ``update_lag`` sweeps.

All unknowns live in *padded* arrays of shape (H + 2, W + 2): the ghost border carries zero edge
weights, so the per-pixel update needs no boundary branches (Neumann boundary). The red-black order
lets both colours' rows be split across threads without races.

Units inside a level are that level's pixels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

from pyflowreg.core.threads import use_parallel

# Regularises the contrast normalisation of the motion tensor, in squared intensity per pixel of
# images scaled to [0, 1]. The published value 1e-6 gives full weight even to gradients far below
# the photon noise of 2-photon frames (|grad| ~ 0.001 of the range per pixel); 1e-4 down-weights
# only regions flatter than ~1 % of the range per pixel. Measured on synthetic frames (256^2,
# smooth 6 px fields, 100 photons per unit): mean end-point error 0.33 -> 0.30 px with noise and
# 0.054 -> 0.050 px without.
TENSOR_EPS = 1e-4
PENALTY_EPS = 1e-5  # epsilon of the generalised Charbonnier penalty
N_TENSOR = 6  # J11, J12, J13, J22, J23, J33


def motion_tensor(fixed, warped, inside, gradient_constancy, tensor):
    """Normalised motion tensors per channel.

    fixed, warped : (H, W, C) float32 level images (moving already warped by the current flow).
    inside : (H, W) bool, False where the warp sampled outside the moving image; the tensor is
        zero there and on the 1-pixel border so the smoothness term fills those pixels in.
    tensor : (C, 6, H, W) float32 output: J11, J12, J13, J22, J23, J33.
    """
    height, width = inside.shape
    if use_parallel(height * width):
        _motion_tensor_parallel(fixed, warped, inside, gradient_constancy, tensor,
                                get_num_threads())
    else:
        _motion_tensor_serial(fixed, warped, inside, gradient_constancy, tensor)


@njit(cache=True, fastmath=True, nogil=True)
def _motion_tensor_serial(fixed, warped, inside, gradient_constancy, tensor):
    _motion_tensor_rows(fixed, warped, inside, gradient_constancy, tensor, 0, fixed.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _motion_tensor_parallel(fixed, warped, inside, gradient_constancy, tensor, n_threads):
    height = fixed.shape[0]
    step = (height + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _motion_tensor_rows(
            fixed, warped, inside, gradient_constancy, tensor, t * step,
            min(height, (t + 1) * step),
        )


@njit(cache=True, fastmath=True, inline="always")
def _motion_tensor_rows(fixed, warped, inside, gradient_constancy, tensor, y0, y1):
    height, width, n_ch = fixed.shape
    for y in range(y0, y1):
        for x in range(width):
            border = y == 0 or x == 0 or y == height - 1 or x == width - 1
            if border or not inside[y, x]:
                for c in range(n_ch):
                    for k in range(N_TENSOR):
                        tensor[c, k, y, x] = 0.0
                continue
            for c in range(n_ch):
                f1 = fixed
                f2 = warped
                fx1 = 0.5 * (f1[y, x + 1, c] - f1[y, x - 1, c])
                fy1 = 0.5 * (f1[y + 1, x, c] - f1[y - 1, x, c])
                fx2 = 0.5 * (f2[y, x + 1, c] - f2[y, x - 1, c])
                fy2 = 0.5 * (f2[y + 1, x, c] - f2[y - 1, x, c])
                if gradient_constancy:
                    fxx1 = f1[y, x + 1, c] - 2.0 * f1[y, x, c] + f1[y, x - 1, c]
                    fyy1 = f1[y + 1, x, c] - 2.0 * f1[y, x, c] + f1[y - 1, x, c]
                    fxy1 = 0.25 * (
                        f1[y + 1, x + 1, c] - f1[y + 1, x - 1, c]
                        - f1[y - 1, x + 1, c] + f1[y - 1, x - 1, c]
                    )
                    fxx2 = f2[y, x + 1, c] - 2.0 * f2[y, x, c] + f2[y, x - 1, c]
                    fyy2 = f2[y + 1, x, c] - 2.0 * f2[y, x, c] + f2[y - 1, x, c]
                    fxy2 = 0.25 * (
                        f2[y + 1, x + 1, c] - f2[y + 1, x - 1, c]
                        - f2[y - 1, x + 1, c] + f2[y - 1, x - 1, c]
                    )
                    a = 0.5 * (fxx1 + fxx2)
                    b = 0.5 * (fxy1 + fxy2)
                    d = 0.5 * (fyy1 + fyy2)
                    fxt = fx2 - fx1
                    fyt = fy2 - fy1
                    n1 = 1.0 / (a * a + b * b + TENSOR_EPS)
                    n2 = 1.0 / (b * b + d * d + TENSOR_EPS)
                    tensor[c, 0, y, x] = a * a * n1 + b * b * n2
                    tensor[c, 1, y, x] = a * b * n1 + b * d * n2
                    tensor[c, 2, y, x] = a * fxt * n1 + b * fyt * n2
                    tensor[c, 3, y, x] = b * b * n1 + d * d * n2
                    tensor[c, 4, y, x] = b * fxt * n1 + d * fyt * n2
                    tensor[c, 5, y, x] = fxt * fxt * n1 + fyt * fyt * n2
                else:
                    gx = 0.5 * (fx1 + fx2)
                    gy = 0.5 * (fy1 + fy2)
                    ft = f2[y, x, c] - f1[y, x, c]
                    n = 1.0 / (gx * gx + gy * gy + TENSOR_EPS)
                    tensor[c, 0, y, x] = gx * gx * n
                    tensor[c, 1, y, x] = gx * gy * n
                    tensor[c, 2, y, x] = gx * ft * n
                    tensor[c, 3, y, x] = gy * gy * n
                    tensor[c, 4, y, x] = gy * ft * n
                    tensor[c, 5, y, x] = ft * ft * n


@njit(cache=True, fastmath=True, inline="always")
def _smoothness_psi_row(y, u, v, du, dv, a_smooth, psi_s):
    # Psi_s' from |grad(u + du)|^2 + |grad(v + dv)|^2 (central differences on the padded grid).
    width = u.shape[1] - 2
    height = u.shape[0] - 2
    ym = y - 1 if y > 1 else y
    yp = y + 1 if y < height else y
    for x in range(1, width + 1):
        xm = x - 1 if x > 1 else x
        xp = x + 1 if x < width else x
        ux = 0.5 * (u[y, xp] + du[y, xp] - u[y, xm] - du[y, xm])
        uy = 0.5 * (u[yp, x] + du[yp, x] - u[ym, x] - du[ym, x])
        vx = 0.5 * (v[y, xp] + dv[y, xp] - v[y, xm] - dv[y, xm])
        vy = 0.5 * (v[yp, x] + dv[yp, x] - v[ym, x] - dv[ym, x])
        s = ux * ux + uy * uy + vx * vx + vy * vy
        psi_s[y, x] = a_smooth * math.exp((a_smooth - 1.0) * math.log(s + PENALTY_EPS))


@njit(cache=True, fastmath=True, inline="always")
def _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south):
    # Edge weights between (y, x)-(y, x+1) and (y, x)-(y+1, x); zero across the domain border.
    height = psi_s.shape[0] - 2
    width = psi_s.shape[1] - 2
    for x in range(1, width + 1):
        if x < width:
            w_east[y, x] = alpha_x * 0.5 * (psi_s[y, x] + psi_s[y, x + 1])
        else:
            w_east[y, x] = 0.0
        if y < height:
            w_south[y, x] = alpha_y * 0.5 * (psi_s[y, x] + psi_s[y + 1, x])
        else:
            w_south[y, x] = 0.0


@njit(cache=True, fastmath=True, inline="always")
def _pow_row(values, exponent, bits, out):
    # out = values ** exponent for positive float32 values, vectorisable: log2 and exp2 are
    # evaluated from the IEEE-754 bit fields (relative error ~1e-5, plenty for penalty weights).
    # ``bits`` is an int32 scratch row aliasing nothing else. Short, separate loops vectorise.
    n = values.shape[0]
    value_bits = values.view(np.int32)
    for x in range(n):
        bits[x] = (value_bits[x] & 0x007FFFFF) | 0x3F800000
    for x in range(n):
        out[x] = np.float32(((value_bits[x] >> 23) & 0xFF) - 127)
    mantissa = bits.view(np.float32)
    for x in range(n):
        m = mantissa[x]
        t = (m - np.float32(1.0)) / (m + np.float32(1.0))
        t2 = t * t
        log2_m = t * (
            np.float32(2.8853900817779268)
            + t2 * (np.float32(0.9617966939259756)
                    + t2 * (np.float32(0.5770780163555854) + t2 * np.float32(0.4121985831111324)))
        )
        y = exponent * (out[x] + log2_m)
        out[x] = min(max(y, np.float32(-125.0)), np.float32(125.0))
    for x in range(n):
        y = out[x]
        yi = np.floor(y)
        f = (y - yi) * np.float32(0.6931471805599453)
        out[x] = np.float32(1.0) + f * (
            np.float32(1.0) + f * (np.float32(0.5) + f * (
                np.float32(1.0 / 6.0) + f * (np.float32(1.0 / 24.0) + f * (
                    np.float32(1.0 / 120.0) + f * np.float32(1.0 / 720.0))))))
        bits[x] = (np.int32(yi) + np.int32(127)) << 23
    scale = bits.view(np.float32)
    for x in range(n):
        out[x] *= scale[x]


@njit(cache=True, fastmath=True, inline="always")
def _lagged_system_row(
    y, tensor, channel_weights, a_data, u, v, du, dv, w_east, w_south,
    r1, r2, a12, d1, d2, scratch_f, scratch_i,
):
    # Recompute the data weights Psi_d' at the current increment and fold everything that stays
    # constant during the next sweeps into per-pixel coefficients of the 2x2 point system.
    n_ch = tensor.shape[0]
    width = u.shape[1] - 2
    ty = y - 1
    energy = scratch_f[2 * y, :width]
    psi = scratch_f[2 * y + 1, :width]
    bits = scratch_i[y, : width]
    for x in range(1, width + 1):
        r1[y, x] = 0.0
        r2[y, x] = 0.0
        a12[y, x] = 0.0
        d1[y, x] = 0.0
        d2[y, x] = 0.0
    for c in range(n_ch):
        for x in range(1, width + 1):
            tx = x - 1
            dux = du[y, x]
            dvx = dv[y, x]
            e = (
                tensor[c, 0, ty, tx] * dux * dux
                + np.float32(2.0) * tensor[c, 1, ty, tx] * dux * dvx
                + tensor[c, 3, ty, tx] * dvx * dvx
                + np.float32(2.0) * tensor[c, 2, ty, tx] * dux
                + np.float32(2.0) * tensor[c, 4, ty, tx] * dvx
                + tensor[c, 5, ty, tx]
            )
            energy[tx] = max(e, np.float32(0.0)) + np.float32(PENALTY_EPS)
        _pow_row(energy, np.float32(a_data - 1.0), bits, psi)
        scale = np.float32(channel_weights[c] * a_data)
        for x in range(1, width + 1):
            tx = x - 1
            p = scale * psi[tx]
            d1[y, x] += p * tensor[c, 0, ty, tx]
            a12[y, x] += p * tensor[c, 1, ty, tx]
            r1[y, x] -= p * tensor[c, 2, ty, tx]
            d2[y, x] += p * tensor[c, 3, ty, tx]
            r2[y, x] -= p * tensor[c, 4, ty, tx]
    for x in range(1, width + 1):
        ww = w_east[y, x - 1]
        we = w_east[y, x]
        wn = w_south[y - 1, x]
        ws = w_south[y, x]
        uc = u[y, x]
        vc = v[y, x]
        ru = ww * (u[y, x - 1] - uc) + we * (u[y, x + 1] - uc) + wn * (u[y - 1, x] - uc)
        ru += ws * (u[y + 1, x] - uc)
        rv = ww * (v[y, x - 1] - vc) + we * (v[y, x + 1] - vc) + wn * (v[y - 1, x] - vc)
        rv += ws * (v[y + 1, x] - vc)
        wsum = ww + we + wn + ws
        r1[y, x] += ru
        r2[y, x] += rv
        d1[y, x] = np.float32(1.0) / (d1[y, x] + wsum)
        d2[y, x] = np.float32(1.0) / (d2[y, x] + wsum)


@njit(cache=True, fastmath=True, inline="always")
def _sor_row(y, colour, omega, du, dv, w_east, w_south, r1, r2, a12, d1, d2, new_u, new_v):
    # Red-black SOR on the pixels of one colour in row y. The update is evaluated for the whole
    # row (contiguous, SIMD-friendly: same-colour pixels never neighbour each other, so the other
    # colour's values it reads are final) and then blended back on the pixels of this colour.
    width = du.shape[1] - 2
    for x in range(1, width + 1):
        acc = w_east[y, x - 1] * du[y, x - 1] + w_east[y, x] * du[y, x + 1]
        acc += w_south[y - 1, x] * du[y - 1, x] + w_south[y, x] * du[y + 1, x]
        old = du[y, x]
        new_u[y, x] = old + omega * ((acc + r1[y, x] - a12[y, x] * dv[y, x]) * d1[y, x] - old)
    for x in range(1, width + 1):
        acc = w_east[y, x - 1] * dv[y, x - 1] + w_east[y, x] * dv[y, x + 1]
        acc += w_south[y - 1, x] * dv[y - 1, x] + w_south[y, x] * dv[y + 1, x]
        old = dv[y, x]
        new_v[y, x] = old + omega * ((acc + r2[y, x] - a12[y, x] * new_u[y, x]) * d2[y, x] - old)
    for x in range(1, width + 1):
        if ((x + y + colour) & 1) == 0:
            du[y, x] = new_u[y, x]
            dv[y, x] = new_v[y, x]


@njit(cache=True, fastmath=True, nogil=True)
def solve_level_serial(
    tensor, channel_weights, u, v, du, dv, alpha_x, alpha_y, a_data, a_smooth,
    omega, iterations, update_lag, w_east, w_south, psi_s, r1, r2, a12, d1, d2,
    new_u, new_v, scratch_f, scratch_i,
):
    """Solve for the increment (du, dv) at one level on one thread (small levels).

    u, v, du, dv and the work arrays are padded (H + 2, W + 2) float32, except ``scratch_f``
    (2 (H + 2), W + 2) float32 and ``scratch_i`` (H + 2, W + 2) int32; du, dv are updated in place.
    alpha_x, alpha_y already include the level's scaling.
    """
    height = u.shape[0] - 2
    omega = np.float32(omega)
    quadratic_smoothness = a_smooth == 1.0
    if quadratic_smoothness:
        psi_s[:, :] = 1.0
        for y in range(1, height + 1):
            _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south)
    for it in range(iterations):
        if it % update_lag == 0:
            if not quadratic_smoothness:
                for y in range(1, height + 1):
                    _smoothness_psi_row(y, u, v, du, dv, a_smooth, psi_s)
                for y in range(1, height + 1):
                    _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south)
            for y in range(1, height + 1):
                _lagged_system_row(
                    y, tensor, channel_weights, a_data, u, v, du, dv,
                    w_east, w_south, r1, r2, a12, d1, d2, scratch_f, scratch_i,
                )
        for colour in range(2):
            for y in range(1, height + 1):
                _sor_row(y, colour, omega, du, dv, w_east, w_south, r1, r2, a12, d1, d2,
                         new_u, new_v)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def solve_level_parallel(
    tensor, channel_weights, u, v, du, dv, alpha_x, alpha_y, a_data, a_smooth,
    omega, iterations, update_lag, w_east, w_south, psi_s, r1, r2, a12, d1, d2,
    new_u, new_v, scratch_f, scratch_i,
):
    """Same as ``solve_level_serial`` with rows of each colour split across numba threads."""
    height = u.shape[0] - 2
    omega = np.float32(omega)
    quadratic_smoothness = a_smooth == 1.0
    if quadratic_smoothness:
        psi_s[:, :] = 1.0
        for y in prange(1, height + 1):
            _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south)
    for it in range(iterations):
        if it % update_lag == 0:
            if not quadratic_smoothness:
                for y in prange(1, height + 1):
                    _smoothness_psi_row(y, u, v, du, dv, a_smooth, psi_s)
                for y in prange(1, height + 1):
                    _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south)
            for y in prange(1, height + 1):
                _lagged_system_row(
                    y, tensor, channel_weights, a_data, u, v, du, dv,
                    w_east, w_south, r1, r2, a12, d1, d2, scratch_f, scratch_i,
                )
        for colour in range(2):
            for y in prange(1, height + 1):
                _sor_row(y, colour, omega, du, dv, w_east, w_south, r1, r2, a12, d1, d2,
                         new_u, new_v)


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort of ``n`` inputs (padded to a power
    of two with +inf slots, whose comparators are dropped)."""
    n_padded = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < n_padded:
        k = p
        while k >= 1:
            for j in range(k % p, n_padded - k, 2 * k):
                for i in range(min(k, n_padded - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return [(i, j) for i, j in pairs if j < n]


def _median25_network() -> np.ndarray:
    """Compare-exchange pairs (i, j), i < j, after which slot 12 holds the median of 25 values
    given as five sorted columns (slots 5c .. 5c + 4 ascending).

    Batcher's network for 25 inputs, without the comparators that never swap on sorted columns
    and then without those that cannot reach slot 12 (85 remain, against 113 for unsorted
    input). A comparator never swaps on any real input with sorted columns if it never swaps on
    the 0-1 inputs with sorted columns (threshold the input between the two values it would
    swap: thresholding commutes with the network and keeps the columns sorted), so checking
    the 6**5 0-1 inputs is a proof.
    """
    counts = np.array(np.meshgrid(*[np.arange(6)] * 5, indexing="ij")).reshape(5, -1).T
    slots = np.arange(5)
    values = np.concatenate([slots[None, :] >= 5 - counts[:, c : c + 1] for c in range(5)],
                            axis=1)
    active = []
    for i, j in _batcher_pairs(25):
        low, high = values[:, i], values[:, j]
        if np.any(low > high):
            active.append((i, j))
            values[:, i], values[:, j] = low & high, low | high
    needed = {12}
    kept = []
    for i, j in reversed(active):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    return np.array(kept[::-1], dtype=np.int64)


MEDIAN25_NETWORK = _median25_network()
SORT5_NETWORK = np.array(_batcher_pairs(5), dtype=np.int64)


@njit(cache=True, fastmath=True, inline="always")
def _compare_exchange_rows(rows, network):
    # Each (i, j) of the network puts min and max of rows i and j, element-wise, into i and j.
    for k in range(network.shape[0]):
        i = network[k, 0]
        j = network[k, 1]
        for x in range(rows.shape[1]):
            a = rows[i, x]
            b = rows[j, x]
            rows[i, x] = min(a, b)
            rows[j, x] = max(a, b)


@njit(cache=True, fastmath=True, inline="always")
def _median_rows(src, network, sort5, out, y0, y1):
    height, width = src.shape
    # Per row: the five source rows around it, border-replicated by two columns and sorted
    # column by column (each sorted column serves five windows), then one row of 25 window
    # values per pixel, so every compare-exchange runs over the whole row at once (SIMD).
    columns = np.empty((5, width + 4), dtype=np.float32)
    window = np.empty((25, width), dtype=np.float32)
    for y in range(y0, y1):
        for dy in range(5):
            yy = min(max(y + dy - 2, 0), height - 1)
            for x in range(width):
                columns[dy, x + 2] = src[yy, x]
            for x in range(2):
                columns[dy, x] = src[yy, 0]
                columns[dy, width + 2 + x] = src[yy, width - 1]
        _compare_exchange_rows(columns, sort5)
        for dx in range(5):
            for dy in range(5):
                for x in range(width):
                    window[5 * dx + dy, x] = columns[dy, x + dx]
        _compare_exchange_rows(window, network)
        for x in range(width):
            out[y, x] = window[12, x]


@njit(cache=True, fastmath=True, nogil=True)
def _median_serial(src, network, sort5, out):
    _median_rows(src, network, sort5, out, 0, src.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _median_parallel(src, network, sort5, out, n_threads):
    height = src.shape[0]
    step = (height + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _median_rows(src, network, sort5, out, t * step, min(height, (t + 1) * step))


def median_filter_5x5(src: np.ndarray, out: np.ndarray) -> None:
    """5x5 median of an (H, W) float32 array into ``out``, with replicated borders."""
    if use_parallel(src.size):
        _median_parallel(src, MEDIAN25_NETWORK, SORT5_NETWORK, out, get_num_threads())
    else:
        _median_serial(src, MEDIAN25_NETWORK, SORT5_NETWORK, out)
