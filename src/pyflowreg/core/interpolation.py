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
    _resample_cols_range(src, indices, weights, out, i0, i1)
    for i in range(i0, i1):
        for x in range(out.shape[1]):
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
def _keys_weights(f):
    # Weights of taps base-1, base, base+1, base+2 for fractional offset f in [0, 1), float32
    # like the samples they weigh (in float64 the warp took about a quarter longer).
    a = np.float32(KEYS_A)
    one, two, three = np.float32(1.0), np.float32(2.0), np.float32(3.0)
    four, five, eight = np.float32(4.0), np.float32(5.0), np.float32(8.0)
    t0 = one + f
    t2 = one - f
    t3 = two - f
    w0 = ((a * t0 - five * a) * t0 + eight * a) * t0 - four * a
    w1 = ((a + two) * f - (a + three)) * f * f + one
    w2 = ((a + two) * t2 - (a + three)) * t2 * t2 + one
    w3 = ((a * t3 - five * a) * t3 + eight * a) * t3 - four * a
    return w0, w1, w2, w3


@njit(cache=True, fastmath=True, inline="always")
def _clamp(i, n):
    if i < 0:
        return 0
    if i > n - 1:
        return n - 1
    return i


def warp_cubic(image, u, v, fill, x_max, y_max, out, inside):
    """Backward-warp ``image`` (H, W, C): ``out[y, x] = image(y + v[y, x], x + u[y, x])``.

    ``u``, ``v`` are (H, W) displacements in pixels of ``image``. A sample counts as inside when
    ``0 <= x + u <= x_max`` and ``0 <= y + v <= y_max``; elsewhere the output takes ``fill[y, x]``
    (an (H, W, C) array) and ``inside[y, x]`` is False. All float arrays float32.
    """
    height, width = u.shape
    args = (image, u, v, fill, float(x_max), float(y_max), out, inside)
    if use_parallel(height * width):
        _warp_cubic_parallel(*args, get_num_threads())
    else:
        _warp_cubic_serial(*args)


@njit(cache=True, fastmath=True, nogil=True)
def _warp_cubic_serial(image, u, v, fill, x_max, y_max, out, inside):
    _warp_cubic_rows(image, u, v, fill, x_max, y_max, out, inside, 0, image.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _warp_cubic_parallel(image, u, v, fill, x_max, y_max, out, inside, n_threads):
    height = image.shape[0]
    step = (height + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _warp_cubic_rows(
            image, u, v, fill, x_max, y_max, out, inside, t * step,
            min(height, (t + 1) * step),
        )


@njit(cache=True, fastmath=True, inline="always")
def _warp_cubic_rows(image, u, v, fill, x_max, y_max, out, inside, row0, row1):
    height, width, n_ch = image.shape
    for y in range(row0, row1):
        for x in range(width):
            xs = x + u[y, x]
            ys = y + v[y, x]
            ok = (xs >= 0.0) and (xs <= x_max) and (ys >= 0.0) and (ys <= y_max)
            inside[y, x] = ok
            if not ok:
                for c in range(n_ch):
                    out[y, x, c] = fill[y, x, c]
                continue
            xb = int(np.floor(xs))
            yb = int(np.floor(ys))
            wx0, wx1, wx2, wx3 = _keys_weights(np.float32(xs - xb))
            wy0, wy1, wy2, wy3 = _keys_weights(np.float32(ys - yb))
            if 1 <= xb < width - 2 and 1 <= yb < height - 2:
                # Away from the border no tap needs clamping (most samples).
                x0, x1, x2, x3 = xb - 1, xb, xb + 1, xb + 2
                y0, y1, y2, y3 = yb - 1, yb, yb + 1, yb + 2
            else:
                x0, x1 = _clamp(xb - 1, width), _clamp(xb, width)
                x2, x3 = _clamp(xb + 1, width), _clamp(xb + 2, width)
                y0, y1 = _clamp(yb - 1, height), _clamp(yb, height)
                y2, y3 = _clamp(yb + 1, height), _clamp(yb + 2, height)
            for c in range(n_ch):
                r0 = (
                    wx0 * image[y0, x0, c] + wx1 * image[y0, x1, c]
                    + wx2 * image[y0, x2, c] + wx3 * image[y0, x3, c]
                )
                r1 = (
                    wx0 * image[y1, x0, c] + wx1 * image[y1, x1, c]
                    + wx2 * image[y1, x2, c] + wx3 * image[y1, x3, c]
                )
                r2 = (
                    wx0 * image[y2, x0, c] + wx1 * image[y2, x1, c]
                    + wx2 * image[y2, x2, c] + wx3 * image[y2, x3, c]
                )
                r3 = (
                    wx0 * image[y3, x0, c] + wx1 * image[y3, x1, c]
                    + wx2 * image[y3, x2, c] + wx3 * image[y3, x3, c]
                )
                out[y, x, c] = wy0 * r0 + wy1 * r1 + wy2 * r2 + wy3 * r3
