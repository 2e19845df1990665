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
def _resample_rows_range(src, indices, weights, out, y0, y1):
    # out[y, j] = sum_k weights[j, k] * src[y, indices[j, k]] for rows y0..y1-1
    n_out = indices.shape[0]
    n_taps = indices.shape[1]
    for y in range(y0, y1):
        for j in range(n_out):
            acc = np.float32(0.0)
            for k in range(n_taps):
                acc += weights[j, k] * src[y, indices[j, k]]
            out[y, j] = acc


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


@njit(cache=True, fastmath=True, nogil=True)
def _resample_serial(src, col_idx, col_w, row_idx, row_w, tmp, out):
    _resample_rows_range(src, col_idx, col_w, tmp, 0, src.shape[0])
    _resample_cols_range(tmp, row_idx, row_w, out, 0, out.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _resample_parallel(src, col_idx, col_w, row_idx, row_w, tmp, out, n_threads):
    rows_in = src.shape[0]
    step = (rows_in + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _resample_rows_range(src, col_idx, col_w, tmp, t * step, min(rows_in, (t + 1) * step))
    rows_out = out.shape[0]
    step = (rows_out + n_threads - 1) // n_threads
    for t in prange(n_threads):
        _resample_cols_range(tmp, row_idx, row_w, out, t * step, min(rows_out, (t + 1) * step))


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
    tmp = np.empty((h_in, w_out), dtype=np.float32)
    out = np.empty((h_out, w_out), dtype=np.float32)
    if use_parallel(h_in * max(w_in, w_out)):
        _resample_parallel(image, col_idx, col_w, row_idx, row_w, tmp, out, get_num_threads())
    else:
        _resample_serial(image, col_idx, col_w, row_idx, row_w, tmp, out)
    return out


@njit(cache=True, fastmath=True, inline="always")
def _keys_weights(f):
    # Weights of taps base-1, base, base+1, base+2 for fractional offset f in [0, 1).
    a = -0.5
    t0 = 1.0 + f
    t1 = f
    t2 = 1.0 - f
    t3 = 2.0 - f
    w0 = ((a * t0 - 5.0 * a) * t0 + 8.0 * a) * t0 - 4.0 * a
    w1 = ((a + 2.0) * t1 - (a + 3.0)) * t1 * t1 + 1.0
    w2 = ((a + 2.0) * t2 - (a + 3.0)) * t2 * t2 + 1.0
    w3 = ((a * t3 - 5.0 * a) * t3 + 8.0 * a) * t3 - 4.0 * a
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
def _warp_cubic_rows(image, u, v, fill, x_max, y_max, out, inside, y0, y1):
    height, width, n_ch = image.shape
    for y in range(y0, y1):
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
            wx0, wx1, wx2, wx3 = _keys_weights(xs - xb)
            wy0, wy1, wy2, wy3 = _keys_weights(ys - yb)
            x0 = _clamp(xb - 1, width)
            x1 = _clamp(xb, width)
            x2 = _clamp(xb + 1, width)
            x3 = _clamp(xb + 2, width)
            y0 = _clamp(yb - 1, height)
            y1 = _clamp(yb, height)
            y2 = _clamp(yb + 1, height)
            y3 = _clamp(yb + 2, height)
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
