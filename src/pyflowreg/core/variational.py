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
    height, width, n_ch = fixed.shape
    parallel = use_parallel(height * width)
    for c in range(n_ch):
        # One contiguous (H, W) plane per channel: unit stride along x lets the rows vectorise.
        fixed_c = np.ascontiguousarray(fixed[:, :, c])
        warped_c = np.ascontiguousarray(warped[:, :, c])
        if parallel:
            _motion_tensor_parallel(fixed_c, warped_c, inside, gradient_constancy, tensor[c],
                                    get_num_threads())
        else:
            _motion_tensor_serial(fixed_c, warped_c, inside, gradient_constancy, tensor[c])


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
def _motion_tensor_rows(f1, f2, inside, gradient_constancy, tensor, y0, y1):
    # One channel: f1, f2 (H, W), tensor (6, H, W). float32 throughout: Python float constants
    # would promote the arithmetic to float64, and the float64 loop ran about twice as long.
    # Pixels outside the warp get a zero normaliser instead of a branch.
    height, width = f1.shape
    for y in range(y0, y1):
        if y == 0 or y == height - 1:
            for k in range(N_TENSOR):
                for x in range(width):
                    tensor[k, y, x] = 0.0
            continue
        for k in range(N_TENSOR):
            tensor[k, y, 0] = 0.0
            tensor[k, y, width - 1] = 0.0
        _tensor_row(f1, f2, inside, gradient_constancy, tensor, y)


@njit(cache=True, fastmath=True, inline="always")
def _tensor_row(f1, f2, inside, gradient_constancy, tensor, y):
    # Row views: unit-stride loads and stores without two-dimensional index arithmetic.
    half, quarter, two = np.float32(0.5), np.float32(0.25), np.float32(2.0)
    eps = np.float32(TENSOR_EPS)
    a0, a1, a2 = f1[y - 1], f1[y], f1[y + 1]
    b0, b1, b2 = f2[y - 1], f2[y], f2[y + 1]
    keep_row = inside[y]
    t0, t1, t2, t3, t4, t5 = (tensor[0, y], tensor[1, y], tensor[2, y], tensor[3, y],
                              tensor[4, y], tensor[5, y])
    if gradient_constancy:
        for x in range(1, f1.shape[1] - 1):
            keep = np.float32(keep_row[x])
            fxt = half * (b1[x + 1] - b1[x - 1] - a1[x + 1] + a1[x - 1])
            fyt = half * (b2[x] - b0[x] - a2[x] + a0[x])
            fxx = half * (a1[x + 1] - two * a1[x] + a1[x - 1]
                          + b1[x + 1] - two * b1[x] + b1[x - 1])
            fyy = half * (a2[x] - two * a1[x] + a0[x] + b2[x] - two * b1[x] + b0[x])
            fxy = half * quarter * (a2[x + 1] - a2[x - 1] - a0[x + 1] + a0[x - 1]
                                    + b2[x + 1] - b2[x - 1] - b0[x + 1] + b0[x - 1])
            n1 = keep / (fxx * fxx + fxy * fxy + eps)
            n2 = keep / (fxy * fxy + fyy * fyy + eps)
            t0[x] = fxx * fxx * n1 + fxy * fxy * n2
            t1[x] = fxx * fxy * n1 + fxy * fyy * n2
            t2[x] = fxx * fxt * n1 + fxy * fyt * n2
            t3[x] = fxy * fxy * n1 + fyy * fyy * n2
            t4[x] = fxy * fxt * n1 + fyy * fyt * n2
            t5[x] = fxt * fxt * n1 + fyt * fyt * n2
    else:
        for x in range(1, f1.shape[1] - 1):
            keep = np.float32(keep_row[x])
            gx = quarter * (a1[x + 1] - a1[x - 1] + b1[x + 1] - b1[x - 1])
            gy = quarter * (a2[x] - a0[x] + b2[x] - b0[x])
            ft = b1[x] - a1[x]
            n = keep / (gx * gx + gy * gy + eps)
            t0[x] = gx * gx * n
            t1[x] = gx * gy * n
            t2[x] = gx * ft * n
            t3[x] = gy * gy * n
            t4[x] = gy * ft * n
            t5[x] = ft * ft * n


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
    # Row views and one store per loop, so that every loop vectorises (see _sor_row).
    n_ch = tensor.shape[0]
    width = u.shape[1] - 2
    ty = y - 1
    energy = scratch_f[2 * y, :width]
    psi = scratch_f[2 * y + 1, :width]
    bits = scratch_i[y, : width]
    du_row, dv_row = du[y, 1 : width + 1], dv[y, 1 : width + 1]
    r1_row, r2_row, a12_row = r1[y, 1 : width + 1], r2[y, 1 : width + 1], a12[y, 1 : width + 1]
    d1_row, d2_row = d1[y, 1 : width + 1], d2[y, 1 : width + 1]
    for row in (r1_row, r2_row, a12_row, d1_row, d2_row):
        for x in range(width):
            row[x] = 0.0
    two = np.float32(2.0)
    for c in range(n_ch):
        j11, j12, j13 = tensor[c, 0, ty], tensor[c, 1, ty], tensor[c, 2, ty]
        j22, j23, j33 = tensor[c, 3, ty], tensor[c, 4, ty], tensor[c, 5, ty]
        for x in range(width):
            dux = du_row[x]
            dvx = dv_row[x]
            e = (j11[x] * dux * dux + two * j12[x] * dux * dvx + j22[x] * dvx * dvx
                 + two * j13[x] * dux + two * j23[x] * dvx + j33[x])
            energy[x] = max(e, np.float32(0.0)) + np.float32(PENALTY_EPS)
        _pow_row(energy, np.float32(a_data - 1.0), bits, psi)
        scale = np.float32(channel_weights[c] * a_data)
        for x in range(width):
            psi[x] *= scale
        for x in range(width):
            d1_row[x] += psi[x] * j11[x]
        for x in range(width):
            a12_row[x] += psi[x] * j12[x]
        for x in range(width):
            r1_row[x] -= psi[x] * j13[x]
        for x in range(width):
            d2_row[x] += psi[x] * j22[x]
        for x in range(width):
            r2_row[x] -= psi[x] * j23[x]
    # Smoothness: the neighbours' flow enters the right-hand side, the edge weights the diagonal.
    # x below runs over the padded row (1 .. width).
    w_e, w_n, w_s = w_east[y], w_south[y - 1], w_south[y]
    for component in range(2):
        flow = u if component == 0 else v
        rhs = r1[y] if component == 0 else r2[y]
        f_row, f_north, f_south = flow[y], flow[y - 1], flow[y + 1]
        for x in range(1, width + 1):
            fc = f_row[x]
            rhs[x] += (w_e[x - 1] * (f_row[x - 1] - fc) + w_e[x] * (f_row[x + 1] - fc)
                       + w_n[x] * (f_north[x] - fc) + w_s[x] * (f_south[x] - fc))
    for component in range(2):
        diag = d1[y] if component == 0 else d2[y]
        for x in range(1, width + 1):
            diag[x] = np.float32(1.0) / (diag[x] + w_e[x - 1] + w_e[x] + w_n[x] + w_s[x])


@njit(cache=True, fastmath=True, inline="always")
def _sor_row(y, colour, omega, du, dv, w_east, w_south, r1, r2, a12, d1, d2, new_u, new_v):
    # Red-black SOR on the pixels of one colour in row y. The update is evaluated for the whole
    # row (contiguous, SIMD-friendly: same-colour pixels never neighbour each other, so the other
    # colour's values it reads are final) and then copied back on the pixels of this colour.
    # Row views and one store per loop: numba's loops with two stores do not vectorise.
    width = du.shape[1] - 2
    du_row, du_north, du_south = du[y], du[y - 1], du[y + 1]
    dv_row, dv_north, dv_south = dv[y], dv[y - 1], dv[y + 1]
    w_e, w_n, w_s = w_east[y], w_south[y - 1], w_south[y]
    r1_row, r2_row, a12_row, d1_row, d2_row = r1[y], r2[y], a12[y], d1[y], d2[y]
    new_u_row, new_v_row = new_u[y], new_v[y]
    for x in range(1, width + 1):
        acc = (w_e[x - 1] * du_row[x - 1] + w_e[x] * du_row[x + 1]
               + w_n[x] * du_north[x] + w_s[x] * du_south[x])
        old = du_row[x]
        new_u_row[x] = old + omega * ((acc + r1_row[x] - a12_row[x] * dv_row[x]) * d1_row[x] - old)
    for x in range(1, width + 1):
        acc = (w_e[x - 1] * dv_row[x - 1] + w_e[x] * dv_row[x + 1]
               + w_n[x] * dv_north[x] + w_s[x] * dv_south[x])
        old = dv_row[x]
        new_v_row[x] = old + omega * (
            (acc + r2_row[x] - a12_row[x] * new_u_row[x]) * d2_row[x] - old
        )
    first = 2 - ((y + colour) & 1)  # first x with (x + y + colour) even
    for x in range(first, width + 1, 2):
        du_row[x] = new_u_row[x]
    for x in range(first, width + 1, 2):
        dv_row[x] = new_v_row[x]


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


@njit(cache=True, nogil=True)
def clear_borders(arrays):
    """Zero the one-pixel border of every padded (H + 2, W + 2) array of ``arrays`` (N, H + 2,
    W + 2)."""
    n, rows, cols = arrays.shape
    for i in range(n):
        for x in range(cols):
            arrays[i, 0, x] = 0.0
            arrays[i, rows - 1, x] = 0.0
        for y in range(rows):
            arrays[i, y, 0] = 0.0
            arrays[i, y, cols - 1] = 0.0
