"""Cubic interpolation: resampling to a new grid size and sampling images at warped positions.

Two operations share the Keys cubic-convolution kernel (a = -0.5, the kernel behind MATLAB's and
OpenCV's "cubic"):

- ``resize_2d`` resamples an (H, W) array to a new size, optionally with a Gaussian anti-aliasing
  blur folded into the same separable weights. The blur+cubic weights of one axis are computed once
  per (input size, output size, sigma) and cached, so building an image pyramid costs two banded
  passes per level and no full-resolution temporaries.
- ``warp_cubic`` samples an (H, W, C) image at (y + v, x + u) for every pixel.

Pixel centres sit at integer coordinates; resizing maps pixel centres with
``src = (dst + 0.5) * n_in / n_out - 0.5`` so that a resize does not shift the image.
Borders are replicated (indices clamped).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import get_num_threads, njit, prange

from pyflowreg.core.threads import use_parallel

KEYS_A = -0.5
TRANSPOSE_BLOCK = 16  # columns per block of the transposed store of a resampling pass
CONFLICT_STRIDE = 64  # floats (256 bytes): row strides that map to few cache sets


def keys_kernel(distance: np.ndarray) -> np.ndarray:
    """Keys cubic-convolution weights for the given distances (any shape, in pixels)."""
    t = np.abs(np.asarray(distance, dtype=np.float64))
    a = KEYS_A
    near = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    far = ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    return np.where(t <= 1.0, near, np.where(t < 2.0, far, 0.0))


@lru_cache(maxsize=256)
def resize_weights(n_in: int, n_out: int, sigma: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Separable weights that resample one axis of length ``n_in`` to ``n_out``.

    The weights are those of a Gaussian blur (standard deviation ``sigma`` in input pixels)
    followed by Keys cubic interpolation at the mapped pixel centres, folded into one banded filter.

    Returns
    -------
    indices : (n_out, K) int64
        Input indices of each tap, clamped to ``[0, n_in - 1]`` (border replication).
    weights : (n_out, K) float32
        Tap weights; every row sums to 1.
    """
    radius = int(np.ceil(3.0 * sigma)) if sigma > 0 else 0
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    base = np.floor(src).astype(np.int64)
    frac = src - base
    # Cubic taps sit at base-1 .. base+2; each is itself a Gaussian-weighted sum of input pixels.
    cubic_offsets = np.arange(-1, 3)
    cubic_w = keys_kernel(frac[:, None] - cubic_offsets[None, :])  # (n_out, 4)
    if radius == 0:
        offsets = cubic_offsets
        weights = cubic_w
    else:
        g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        g /= g.sum()
        offsets = np.arange(-1 - radius, 3 + radius)
        weights = np.zeros((n_out, offsets.size))
        for k in range(4):
            weights[:, k : k + g.size] += cubic_w[:, k : k + 1] * g[None, :]
    indices = np.clip(base[:, None] + offsets[None, :], 0, n_in - 1)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(indices), np.ascontiguousarray(weights, dtype=np.float32)


@njit(cache=True, fastmath=True, inline="always")
def _resample_cols_range(src, indices, weights, out, i0, i1):
    # out[i, x] = sum_k weights[i, k] * src[indices[i, k], x]; rows of src stay contiguous.
    n_taps = indices.shape[1]
    width = src.shape[1]
    for i in range(i0, i1):
        for x in range(width):
            out[i, x] = 0.0
        for k in range(n_taps):
            w = weights[i, k]
            row = indices[i, k]
            for x in range(width):
                out[i, x] += w * src[row, x]


@njit(cache=True, fastmath=True, inline="always")
def _resample_cols_transposed(src, indices, weights, out, out_t, i0, i1):
    # Rows i0 .. i1 - 1 of the column pass (see _resample_cols_range), also stored transposed
    # in out_t, the input of the next pass: each thread transposes only the rows it computed.
    # The transposed rows are out.shape[0] floats apart. When that is a multiple of
    # CONFLICT_STRIDE floats, stores along a whole row of ``out`` all land in the same few cache
    # sets and evict each other; blocks of TRANSPOSE_BLOCK columns then keep the lines they
    # revisit in cache (256 x 205: 75 us whole rows, 36 us blocked). Other strides are faster
    # over whole rows.
    _resample_cols_range(src, indices, weights, out, i0, i1)
    width = out.shape[1]
    if out.shape[0] % CONFLICT_STRIDE:
        for i in range(i0, i1):
            for x in range(width):
                out_t[x, i] = out[i, x]
        return
    for x0 in range(0, width, TRANSPOSE_BLOCK):
        for i in range(i0, i1):
            for x in range(x0, min(x0 + TRANSPOSE_BLOCK, width)):
                out_t[x, i] = out[i, x]


@njit(cache=True, fastmath=True, nogil=True)
def _resample_serial(src, col_idx, col_w, row_idx, row_w, tmp, tmp_t, out_t, out):
    _resample_cols_transposed(src, row_idx, row_w, tmp, tmp_t, 0, tmp.shape[0])
    _resample_cols_transposed(tmp_t, col_idx, col_w, out_t, out, 0, out_t.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _resample_parallel(src, col_idx, col_w, row_idx, row_w, tmp, tmp_t, out_t, out, n_threads):
    # Each pass splits its output rows across threads.
    rows = tmp.shape[0]
    step = (rows + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _resample_cols_transposed(src, row_idx, row_w, tmp, tmp_t, t * step,
                                  min(rows, (t + 1) * step))
    rows = out_t.shape[0]
    step = (rows + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _resample_cols_transposed(tmp_t, col_idx, col_w, out_t, out, t * step,
                                  min(rows, (t + 1) * step))


def resize_2d(
    image: np.ndarray, out_shape: tuple[int, int], sigma: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Resample a float32 (H, W) array to ``out_shape`` with optional anti-aliasing.

    Parameters
    ----------
    image : (H, W) float32
    out_shape : (H_out, W_out)
    sigma : (sigma_y, sigma_x)
        Gaussian blur applied before sampling, in input pixels along each axis.

    Returns
    -------
    (H_out, W_out) float32
    """
    h_in, w_in = image.shape
    h_out, w_out = out_shape
    if (h_in, w_in) == (h_out, w_out) and sigma == (0.0, 0.0):
        return image.copy()
    col_idx, col_w = resize_weights(w_in, w_out, float(sigma[1]))
    row_idx, row_w = resize_weights(h_in, h_out, float(sigma[0]))
    # Both passes accumulate whole contiguous rows (SIMD), the second on the transposed
    # intermediate: a gather along rows does not vectorise, and its cost grows with the tap
    # count, i.e. with the anti-aliasing blur of the coarse pyramid levels.
    tmp = np.empty((h_out, w_in), dtype=np.float32)
    tmp_t = np.empty((w_in, h_out), dtype=np.float32)
    out_t = np.empty((w_out, h_out), dtype=np.float32)
    out = np.empty((h_out, w_out), dtype=np.float32)
    if use_parallel(max(h_in, h_out) * max(w_in, w_out)):
        _resample_parallel(image, col_idx, col_w, row_idx, row_w, tmp, tmp_t, out_t, out,
                           get_num_threads())
    else:
        _resample_serial(image, col_idx, col_w, row_idx, row_w, tmp, tmp_t, out_t, out)
    return out


@njit(cache=True, fastmath=True, inline="always")
def _keys_weight_rows(frac, w0, w1, w2, w3):
    # Weights of taps base-1, base, base+1, base+2 for fractional offsets frac[x] in [0, 1),
    # float32 like the samples they weigh; one store per loop so that each loop vectorises.
    a = np.float32(KEYS_A)
    one, two, three = np.float32(1.0), np.float32(2.0), np.float32(3.0)
    four, five, eight = np.float32(4.0), np.float32(5.0), np.float32(8.0)
    for x in range(frac.shape[0]):
        t0 = one + frac[x]
        w0[x] = ((a * t0 - five * a) * t0 + eight * a) * t0 - four * a
    for x in range(frac.shape[0]):
        f = frac[x]
        w1[x] = ((a + two) * f - (a + three)) * f * f + one
    for x in range(frac.shape[0]):
        t2 = one - frac[x]
        w2[x] = ((a + two) * t2 - (a + three)) * t2 * t2 + one
    for x in range(frac.shape[0]):
        t3 = two - frac[x]
        w3[x] = ((a * t3 - five * a) * t3 + eight * a) * t3 - four * a


def warp_cubic(image, u, v, fill, x_max, y_max, out, inside):
    """Backward-warp ``image`` (H, W, C): ``out[y, x] = image(y + v[y, x], x + u[y, x])``.

    ``u``, ``v`` are (H, W) displacements in pixels of ``image``. A sample counts as inside when
    ``0 <= x + u <= x_max`` and ``0 <= y + v <= y_max``; elsewhere the output takes ``fill[y, x]``
    (an (H, W, C) array) and ``inside[y, x]`` is False. All float arrays float32.
    """
    height, width, n_ch = image.shape
    parallel = use_parallel(height * width)
    for c in range(n_ch):
        # One contiguous (H, W) plane per channel (a view when there is one channel): the
        # kernel's gather then indexes one flat array (a channel axis in the index arithmetic
        # made it three times slower).
        plane = np.ascontiguousarray(image[:, :, c])
        fill_c = np.ascontiguousarray(fill[:, :, c])
        out_c = out[:, :, c]
        direct = out_c.flags.c_contiguous
        if not direct:
            out_c = np.empty((height, width), dtype=np.float32)
        args = (plane, u, v, fill_c, float(x_max), float(y_max), out_c, inside)
        if parallel:
            _warp_cubic_parallel(*args, get_num_threads())
        else:
            _warp_cubic_serial(*args)
        if not direct:
            out[:, :, c] = out_c


@njit(cache=True, fastmath=True, nogil=True)
def _warp_cubic_serial(plane, u, v, fill, x_max, y_max, out, inside):
    _warp_cubic_rows(plane, u, v, fill, x_max, y_max, out, inside, 0, plane.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _warp_cubic_parallel(plane, u, v, fill, x_max, y_max, out, inside, n_threads):
    height = plane.shape[0]
    step = (height + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _warp_cubic_rows(
            plane, u, v, fill, x_max, y_max, out, inside, t * step,
            min(height, (t + 1) * step),
        )


@njit(cache=True, fastmath=True, inline="always")
def _warp_cubic_rows(plane, u, v, fill, x_max, y_max, out, inside, row0, row1):
    # One (H, W) plane. Per row: inside flags, integer parts and tap weights in vectorised
    # passes, then the 16-tap gather per pixel from the flattened plane. The integer part
    # x + floor(u) and the fraction u - floor(u) are exact, so the weights equal those from
    # floor(x + u) in float64.
    height, width = plane.shape
    flat = plane.reshape(-1)
    frac_x = np.empty(width, dtype=np.float32)
    frac_y = np.empty(width, dtype=np.float32)
    wx = np.empty((4, width), dtype=np.float32)
    wy = np.empty((4, width), dtype=np.float32)
    base_x = np.empty(width, dtype=np.int64)
    base_y = np.empty(width, dtype=np.int64)
    for y in range(row0, row1):
        u_row, v_row, inside_row = u[y], v[y], inside[y]
        out_row, fill_row = out[y], fill[y]
        for x in range(width):
            xs = x + np.float64(u_row[x])
            ys = y + np.float64(v_row[x])
            inside_row[x] = (xs >= 0.0) & (xs <= x_max) & (ys >= 0.0) & (ys <= y_max)
        for x in range(width):
            frac_x[x] = u_row[x] - np.floor(u_row[x])
        for x in range(width):
            frac_y[x] = v_row[x] - np.floor(v_row[x])
        for x in range(width):
            base_x[x] = x + np.int64(np.floor(u_row[x]))
        for x in range(width):
            base_y[x] = y + np.int64(np.floor(v_row[x]))
        _keys_weight_rows(frac_x, wx[0], wx[1], wx[2], wx[3])
        _keys_weight_rows(frac_y, wy[0], wy[1], wy[2], wy[3])
        for x in range(width):
            if not inside_row[x]:
                out_row[x] = fill_row[x]
                continue
            xb = base_x[x]
            yb = base_y[x]
            if 1 <= xb < width - 2 and 1 <= yb < height - 2:
                # Away from the border no tap needs clamping (most samples).
                i = (yb - 1) * width + xb - 1
                r0 = (wx[0, x] * flat[i] + wx[1, x] * flat[i + 1]
                      + wx[2, x] * flat[i + 2] + wx[3, x] * flat[i + 3])
                i += width
                r1 = (wx[0, x] * flat[i] + wx[1, x] * flat[i + 1]
                      + wx[2, x] * flat[i + 2] + wx[3, x] * flat[i + 3])
                i += width
                r2 = (wx[0, x] * flat[i] + wx[1, x] * flat[i + 1]
                      + wx[2, x] * flat[i + 2] + wx[3, x] * flat[i + 3])
                i += width
                r3 = (wx[0, x] * flat[i] + wx[1, x] * flat[i + 1]
                      + wx[2, x] * flat[i + 2] + wx[3, x] * flat[i + 3])
            else:
                x0, x1 = min(max(xb - 1, 0), width - 1), min(max(xb, 0), width - 1)
                x2, x3 = min(max(xb + 1, 0), width - 1), min(max(xb + 2, 0), width - 1)
                y0, y1 = min(max(yb - 1, 0), height - 1), min(max(yb, 0), height - 1)
                y2, y3 = min(max(yb + 1, 0), height - 1), min(max(yb + 2, 0), height - 1)
                r0 = (wx[0, x] * plane[y0, x0] + wx[1, x] * plane[y0, x1]
                      + wx[2, x] * plane[y0, x2] + wx[3, x] * plane[y0, x3])
                r1 = (wx[0, x] * plane[y1, x0] + wx[1, x] * plane[y1, x1]
                      + wx[2, x] * plane[y1, x2] + wx[3, x] * plane[y1, x3])
                r2 = (wx[0, x] * plane[y2, x0] + wx[1, x] * plane[y2, x1]
                      + wx[2, x] * plane[y2, x2] + wx[3, x] * plane[y2, x3])
                r3 = (wx[0, x] * plane[y3, x0] + wx[1, x] * plane[y3, x1]
                      + wx[2, x] * plane[y3, x2] + wx[3, x] * plane[y3, x3])
            out_row[x] = wy[0, x] * r0 + wy[1, x] * r1 + wy[2, x] * r2 + wy[3, x] * r3
