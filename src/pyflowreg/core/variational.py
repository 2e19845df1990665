"""numba kernels of the variational solver at one pyramid level.

At each level the current flow (u, v) is fixed and the increment (du, dv) minimises

    sum_c weight_c * Psi_d([du, dv, 1] J_c [du, dv, 1]^T)
        + alpha_x Psi_s(|d/dx (u + du)|^2 ...) + alpha_y Psi_s(|d/dy (u + du)|^2 ...)

(Brox et al. 2004), with J_c the normalised motion tensor of channel c and Psi the generalised
Charbonnier penalty, Psi'(s^2) = a (s^2 + eps)^(a - 1). The Euler-Lagrange equations are solved by
red-black SOR with the non-linear weights Psi' lagged: recomputed every ``update_lag`` sweeps.

All unknowns live in *padded* arrays of shape (H + 2, W + 2): the ghost border carries zero edge
weights, so the per-pixel update needs no boundary branches (Neumann boundary). The red-black order
lets both colours' rows be split across threads without races. Inside the solver the padded rows
are held column-split (even columns, then odd ones; see ``N_SPLIT``) so that one colour of a
row is one contiguous run.

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


# The level's unknowns and coefficients are held column-split: row y of an (H + 2, W + 2) padded
# array becomes (2, K), its even padded columns x = 2k in [0] and its odd ones x = 2k + 1 in [1]
# (K = split_width(W)). Red-black SOR then updates one colour of a row as one contiguous run of
# one half, whose neighbours in x are contiguous runs of the other half: each sweep computes
# every pixel once, where a natural row layout computes the whole row and keeps half.
#
# The steps that read neighbours in x run per half with the half's constants, which the
# compiler needs to vectorise the runs (with run-time offsets they stay scalar):
#   even half: interior k = 1 .. W // 2, x - 1 = 2(k - 1) + 1 and x + 1 = 2k + 1, so the west and
#     east neighbours sit at k - 1 and k of the odd half;
#   odd half: interior k = 0 .. (W + 1) // 2 - 1, x - 1 = 2k and x + 1 = 2(k + 1), at k and k + 1
#     of the even half.
# The east edge weight of x - 1 (the pixel's west edge) lies in the other half at the west
# neighbour's index, that of x in the pixel's own half.
#
# Slots of the split work array (N_SPLIT, H + 2, 2, K): the flow the smoothness sees, the
# increments, the edge weights, the 2x2 point system (right-hand sides, coupling, inverse
# diagonals) and a row of SOR scratch.
U, V, DU, DV, W_EAST, W_SOUTH, R1, R2, A12, D1, D2, SOR_SCRATCH = range(12)
N_SPLIT = SOR_SCRATCH + 1


def split_width(width: int) -> int:
    """K: the length of each half of a padded row of ``width`` interior pixels."""
    return (width + 3) // 2


@njit(cache=True, inline="always")
def _split_row(row, halves):
    n = row.shape[0]
    even, odd = halves[0], halves[1]
    for k in range(n // 2):
        even[k] = row[2 * k]
        odd[k] = row[2 * k + 1]
    if n % 2:
        even[n // 2] = row[n - 1]


@njit(cache=True, inline="always")
def _merge_row(halves, row):
    n = row.shape[0]
    even, odd = halves[0], halves[1]
    for k in range(n // 2):
        row[2 * k] = even[k]
        row[2 * k + 1] = odd[k]
    if n % 2:
        row[n - 1] = even[n // 2]


@njit(cache=True, inline="always")
def _uniform_edge_row(y, height, width, alpha_x, alpha_y, w_east, w_south):
    # Quadratic smoothness (Psi_s' = 1): an edge weight is alpha between two pixels of the
    # domain and zero across its border. Column-split row y of both arrays.
    east, south = w_east[y], w_south[y]
    for half in range(2):
        for k in range(east.shape[1]):
            east[half, k] = 0.0
            south[half, k] = 0.0
    if y < 1 or y > height:
        return
    edge_x, edge_y = np.float32(alpha_x), np.float32(alpha_y)
    # East edges of x = 1 .. W - 1, south edges of x = 1 .. W in rows 1 .. H - 1.
    for k in range(1, (width - 1) // 2 + 1):
        east[0, k] = edge_x
    for k in range(width // 2):
        east[1, k] = edge_x
    if y < height:
        for k in range(1, width // 2 + 1):
            south[0, k] = edge_y
        for k in range((width + 1) // 2):
            south[1, k] = edge_y


@njit(cache=True, inline="always")
def _split_tensor_row(tensor, tensor_split, y):
    # Row y - 1 of the unpadded tensor into padded row y: tensor column t is padded x = t + 1.
    n_ch, width = tensor.shape[0], tensor.shape[3]
    for c in range(n_ch):
        for j in range(N_TENSOR):
            src = tensor[c, j, y - 1]
            even, odd = tensor_split[c, j, y, 0], tensor_split[c, j, y, 1]
            even[0] = 0.0
            even[even.shape[0] - 1] = 0.0
            odd[odd.shape[0] - 1] = 0.0
            for k in range(1, width // 2 + 1):
                even[k] = src[2 * k - 1]
            for k in range((width + 1) // 2):
                odd[k] = src[2 * k]


@njit(cache=True, fastmath=True, inline="always")
def _lagged_system_row(y, width, tensor_flat, split, flat, channel_weights, a_data, scratch_f,
                       scratch_i):
    # Recompute the data weights Psi_d' at the current increment and fold everything that stays
    # constant during the next sweeps into per-pixel coefficients of the 2x2 point system.
    # ``split`` holds the column-split arrays (see N_SPLIT), ``flat`` the same with each row's two
    # halves as one run: the data term is pointwise, so it runs once over the whole row (its
    # few ghost entries hold zeros and are never read back). One store per loop, so that every
    # loop vectorises.
    n_ch = tensor_flat.shape[0]
    n = flat.shape[2]
    energy = scratch_f[2 * y, :n]
    psi = scratch_f[2 * y + 1, :n]
    bits = scratch_i[y, :n]
    du_row, dv_row = flat[DU, y], flat[DV, y]
    r1_row, r2_row, a12_row = flat[R1, y], flat[R2, y], flat[A12, y]
    d1_row, d2_row = flat[D1, y], flat[D2, y]
    for row in (r1_row, r2_row, a12_row, d1_row, d2_row):
        for k in range(n):
            row[k] = 0.0
    two = np.float32(2.0)
    for c in range(n_ch):
        j11, j12, j13 = tensor_flat[c, 0, y], tensor_flat[c, 1, y], tensor_flat[c, 2, y]
        j22, j23, j33 = tensor_flat[c, 3, y], tensor_flat[c, 4, y], tensor_flat[c, 5, y]
        for k in range(n):
            duk = du_row[k]
            dvk = dv_row[k]
            e = (j11[k] * duk * duk + two * j12[k] * duk * dvk + j22[k] * dvk * dvk
                 + two * j13[k] * duk + two * j23[k] * dvk + j33[k])
            energy[k] = max(e, np.float32(0.0)) + np.float32(PENALTY_EPS)
        _pow_row(energy, np.float32(a_data - 1.0), bits, psi)
        scale = np.float32(channel_weights[c] * a_data)
        for k in range(n):
            psi[k] *= scale
        for k in range(n):
            d1_row[k] += psi[k] * j11[k]
        for k in range(n):
            a12_row[k] += psi[k] * j12[k]
        for k in range(n):
            r1_row[k] -= psi[k] * j13[k]
        for k in range(n):
            d2_row[k] += psi[k] * j22[k]
        for k in range(n):
            r2_row[k] -= psi[k] * j23[k]
    # Smoothness: one call per half with its constants (see N_SPLIT).
    u, v, w_east, w_south = split[U], split[V], split[W_EAST], split[W_SOUTH]
    r1, r2, d1, d2 = split[R1], split[R2], split[D1], split[D2]
    _smoothness_run(y, 0, 1, -1, 0, 1, width // 2, u, v, w_east, w_south, r1, r2, d1, d2)
    _smoothness_run(y, 1, 0, 0, 1, 0, (width + 1) // 2, u, v, w_east, w_south, r1, r2,
                    d1, d2)


@njit(cache=True, fastmath=True, inline="always")
def _smoothness_run(y, half, other, west, east, k0, n, u, v, w_east, w_south, r1, r2, d1, d2):
    # The neighbours' flow enters the right-hand side, the edge weights the diagonal.
    w_e, w_n, w_s = w_east[y], w_south[y - 1], w_south[y]
    _neighbour_rhs(half, other, west, east, k0, n, u[y], u[y - 1], u[y + 1], w_e, w_n, w_s, r1[y])
    _neighbour_rhs(half, other, west, east, k0, n, v[y], v[y - 1], v[y + 1], w_e, w_n, w_s, r2[y])
    _inverse_diagonal(half, other, west, k0, n, w_e, w_n, w_s, d1[y])
    _inverse_diagonal(half, other, west, k0, n, w_e, w_n, w_s, d2[y])


@njit(cache=True, fastmath=True, inline="always")
def _neighbour_rhs(half, other, west, east, k0, n, f_row, f_north, f_south, w_e, w_n, w_s, rhs):
    for k in range(k0, k0 + n):
        fc = f_row[half, k]
        rhs[half, k] += (
            w_e[other, k + west] * (f_row[other, k + west] - fc)
            + w_e[half, k] * (f_row[other, k + east] - fc)
            + w_n[half, k] * (f_north[half, k] - fc) + w_s[half, k] * (f_south[half, k] - fc)
        )


@njit(cache=True, fastmath=True, inline="always")
def _inverse_diagonal(half, other, west, k0, n, w_e, w_n, w_s, diag):
    for k in range(k0, k0 + n):
        diag[half, k] = np.float32(1.0) / (
            diag[half, k] + w_e[other, k + west] + w_e[half, k] + w_n[half, k] + w_s[half, k]
        )


@njit(cache=True, fastmath=True, inline="always")
def _sor_row(y, width, colour, omega, split):
    # Red-black SOR on the pixels of one colour in row y: those with (x + y + colour) even, one
    # half of the column-split row (its constants: see N_SPLIT). Their neighbours are of the
    # other colour, so the values read are final.
    du, dv, w_east, w_south = split[DU], split[DV], split[W_EAST], split[W_SOUTH]
    r1, r2, a12, d1, d2, scratch = (split[R1], split[R2], split[A12], split[D1], split[D2],
                                    split[SOR_SCRATCH])
    if (y + colour) & 1 == 0:
        _sor_run(y, 0, 1, -1, 0, 1, width // 2, omega, du, dv, w_east, w_south,
                 r1, r2, a12, d1, d2, scratch)
    else:
        _sor_run(y, 1, 0, 0, 1, 0, (width + 1) // 2, omega, du, dv, w_east, w_south,
                 r1, r2, a12, d1, d2, scratch)


@njit(cache=True, fastmath=True, inline="always")
def _sor_run(y, half, other, west, east, k0, n, omega, du, dv, w_east, w_south,
             r1, r2, a12, d1, d2, scratch):
    # New values go to ``scratch`` and are copied back: a loop that stores into the array it
    # reads at other offsets does not vectorise.
    du_row, du_north, du_south = du[y], du[y - 1], du[y + 1]
    dv_row, dv_north, dv_south = dv[y], dv[y - 1], dv[y + 1]
    w_e, w_n, w_s = w_east[y], w_south[y - 1], w_south[y]
    r1_row, r2_row, a12_row, d1_row, d2_row = r1[y], r2[y], a12[y], d1[y], d2[y]
    new = scratch[y, 0]
    # u first; v then sees the new u at its own pixel (Gauss-Seidel within the 2x2 system).
    _sor_component(half, other, west, east, k0, n, omega, du_row, du_north, du_south, dv_row,
                   w_e, w_n, w_s, r1_row, a12_row, d1_row, new)
    _sor_component(half, other, west, east, k0, n, omega, dv_row, dv_north, dv_south, du_row,
                   w_e, w_n, w_s, r2_row, a12_row, d2_row, new)


@njit(cache=True, fastmath=True, inline="always")
def _sor_component(half, other, west, east, k0, n, omega, f_row, f_north, f_south, coupled,
                   w_e, w_n, w_s, rhs, a12, inv_diag, new):
    for k in range(k0, k0 + n):
        acc = (w_e[other, k + west] * f_row[other, k + west]
               + w_e[half, k] * f_row[other, k + east]
               + w_n[half, k] * f_north[half, k] + w_s[half, k] * f_south[half, k])
        old = f_row[half, k]
        new[k] = old + omega * (
            (acc + rhs[half, k] - a12[half, k] * coupled[half, k]) * inv_diag[half, k] - old
        )
    for k in range(k0, k0 + n):
        f_row[half, k] = new[k]


@njit(cache=True, inline="always")
def _start_row(y, height, width, alpha_x, alpha_y, quadratic_smoothness, u, v, tensor, split,
               tensor_split):
    # Padded row y of a level's inputs into the split arrays; the increments start at zero.
    _split_row(u[y], split[U, y])
    _split_row(v[y], split[V, y])
    split[DU, y, :, :] = 0.0
    split[DV, y, :, :] = 0.0
    if quadratic_smoothness:
        _uniform_edge_row(y, height, width, alpha_x, alpha_y, split[W_EAST], split[W_SOUTH])
    if 1 <= y <= height:
        _split_tensor_row(tensor, tensor_split, y)


@njit(cache=True, inline="always")
def _merge_increment_row(y, split, du, dv):
    _merge_row(split[DU, y], du[y])
    _merge_row(split[DV, y], dv[y])


@njit(cache=True, inline="always")
def _split_edge_row(y, w_east, w_south, split):
    _split_row(w_east[y], split[W_EAST, y])
    _split_row(w_south[y], split[W_SOUTH, y])


@njit(cache=True, inline="always")
def _flat_views(split, tensor_split):
    # The split arrays with each row's two halves as one run, for the pointwise steps (one
    # reshape per level: per row it costs more than the row's work).
    rows, run = split.shape[1], 2 * split.shape[3]
    return (split.reshape(split.shape[0], rows, run),
            tensor_split.reshape(tensor_split.shape[0], N_TENSOR, rows, run))


@njit(cache=True, fastmath=True, nogil=True)
def solve_level_serial(
    tensor, channel_weights, u, v, du, dv, alpha_x, alpha_y, a_data, a_smooth,
    omega, iterations, update_lag, w_east, w_south, psi_s, split, tensor_split,
    scratch_f, scratch_i,
):
    """Solve for the increment (du, dv) at one level on one thread (small levels).

    tensor : (C, 6, H, W) float32, the level's motion tensors.
    u, v : padded (H + 2, W + 2) float32, the flow the smoothness term sees, zero borders.
    du, dv : padded (H + 2, W + 2) float32 with zero borders, the increment found (from zero).
    w_east, w_south, psi_s : padded (H + 2, W + 2) float32 work arrays with zero borders, used
        by non-quadratic smoothness (a_smooth < 1).
    split : (N_SPLIT, H + 2, 2, K) and tensor_split (C, 6, H + 2, 2, K) float32 work arrays of the
        column-split layout, K = split_width(W); scratch_f (2 (H + 2), 2 K) float32 and
        scratch_i (H + 2, 2 K) int32.
    alpha_x, alpha_y already include the level's scaling.
    """
    height, width = u.shape[0] - 2, u.shape[1] - 2
    omega = np.float32(omega)
    quadratic_smoothness = a_smooth == 1.0
    flat, tensor_flat = _flat_views(split, tensor_split)
    for y in range(height + 2):
        _start_row(y, height, width, alpha_x, alpha_y, quadratic_smoothness, u, v, tensor,
                   split, tensor_split)
    for it in range(iterations):
        if it % update_lag == 0:
            if not quadratic_smoothness:
                for y in range(1, height + 1):
                    _merge_increment_row(y, split, du, dv)
                for y in range(1, height + 1):
                    _smoothness_psi_row(y, u, v, du, dv, a_smooth, psi_s)
                for y in range(1, height + 1):
                    _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south)
                for y in range(height + 2):
                    _split_edge_row(y, w_east, w_south, split)
            for y in range(1, height + 1):
                _lagged_system_row(y, width, tensor_flat, split, flat, channel_weights, a_data,
                                   scratch_f, scratch_i)
        for colour in range(2):
            for y in range(1, height + 1):
                _sor_row(y, width, colour, omega, split)
    for y in range(1, height + 1):
        _merge_increment_row(y, split, du, dv)


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def solve_level_parallel(
    tensor, channel_weights, u, v, du, dv, alpha_x, alpha_y, a_data, a_smooth,
    omega, iterations, update_lag, w_east, w_south, psi_s, split, tensor_split,
    scratch_f, scratch_i,
):
    """Same as ``solve_level_serial`` with the rows of each step split across numba threads."""
    height, width = u.shape[0] - 2, u.shape[1] - 2
    omega = np.float32(omega)
    quadratic_smoothness = a_smooth == 1.0
    flat, tensor_flat = _flat_views(split, tensor_split)
    for y in prange(height + 2):
        _start_row(y, height, width, alpha_x, alpha_y, quadratic_smoothness, u, v, tensor,
                   split, tensor_split)
    for it in range(iterations):
        if it % update_lag == 0:
            if not quadratic_smoothness:
                for y in prange(1, height + 1):
                    _merge_increment_row(y, split, du, dv)
                for y in prange(1, height + 1):
                    _smoothness_psi_row(y, u, v, du, dv, a_smooth, psi_s)
                for y in prange(1, height + 1):
                    _edge_weights_row(y, psi_s, alpha_x, alpha_y, w_east, w_south)
                for y in prange(height + 2):
                    _split_edge_row(y, w_east, w_south, split)
            for y in prange(1, height + 1):
                _lagged_system_row(y, width, tensor_flat, split, flat, channel_weights, a_data,
                                   scratch_f, scratch_i)
        for colour in range(2):
            for y in prange(1, height + 1):
                _sor_row(y, width, colour, omega, split)
    for y in prange(1, height + 1):
        _merge_increment_row(y, split, du, dv)


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
