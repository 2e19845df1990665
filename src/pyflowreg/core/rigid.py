"""Rigid subpixel translation by phase correlation, in the flow convention of this package.

Used to initialise the between-recording alignment: the optical flow then only has to refine a
field that is already close.
"""

from __future__ import annotations

import numpy as np


def tukey(n: int, taper: float) -> np.ndarray:
    """Symmetric Tukey (tapered cosine) window of ``n`` points, ``taper`` of it in the cosines.

    Written here because importing ``scipy.signal`` for it costs about a second per process.
    """
    x = np.arange(n, dtype=np.float64)
    if n < 2 or taper <= 0:
        return np.ones(n)
    taper = min(taper, 1.0)
    width = int(np.floor(taper * (n - 1) / 2.0))
    window = np.ones(n)
    ramp = x[: width + 1]
    window[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * ramp / taper / (n - 1))))
    tail = x[n - width - 1 :]
    window[n - width - 1 :] = 0.5 * (1 + np.cos(np.pi * (-2.0 / taper + 1
                                                         + 2.0 * tail / taper / (n - 1))))
    return window


# Fraction of each axis tapered by the window; keeps the image border from dominating the
# correlation of non-periodic microscope images.
WINDOW_TAPER = 0.25


def estimate_rigid_shift(
    fixed: np.ndarray, moving: np.ndarray, *, upsample_factor: int = 4
) -> tuple[float, float]:
    """Translation (u, v) in pixels with ``moving(y + v, x + u) ~ fixed(y, x)``.

    Both images are mean-subtracted and tapered with a Tukey window before cross-correlation.

    Parameters
    ----------
    fixed, moving : (H, W) or (H, W, C) arrays of one shape; channels are averaged.
    upsample_factor : int, default 4
        Subpixel precision of the phase correlation is ``1 / upsample_factor`` pixels.

    Returns
    -------
    (u, v) : floats, pixels along x (columns) and y (rows).
    """
    fixed = np.asarray(fixed, dtype=np.float64)
    moving = np.asarray(moving, dtype=np.float64)
    if fixed.shape != moving.shape or fixed.ndim not in (2, 3):
        raise ValueError(
            f"fixed {fixed.shape} and moving {moving.shape} must be equal (H, W) or (H, W, C) "
            "shapes"
        )
    if int(upsample_factor) < 1:
        raise ValueError(f"upsample_factor must be >= 1, got {upsample_factor!r}")
    if fixed.ndim == 3:
        fixed = fixed.mean(axis=2)
        moving = moving.mean(axis=2)
    window = np.outer(
        tukey(fixed.shape[0], WINDOW_TAPER), tukey(fixed.shape[1], WINDOW_TAPER)
    )
    fixed = (fixed - fixed.mean()) * window
    moving = (moving - moving.mean()) * window
    # Plain cross-correlation: phase normalisation whitens the spectrum, which on smooth,
    # low-texture averages amplifies noise and lands on wrong peaks.
    spectrum = np.fft.fft2(fixed) * np.conj(np.fft.fft2(moving))
    lag = _correlation_peak(spectrum, int(upsample_factor))
    # The peak's lag s has moving(y - s) ~ fixed(y), so (u, v) = -s in the docstring's terms.
    return -float(lag[1]), -float(lag[0])


def _correlation_peak(spectrum: np.ndarray, upsample_factor: int) -> np.ndarray:
    """Lag (dy, dx) of the largest cross-correlation, to 1 / ``upsample_factor`` pixels.

    Guizar-Sicairos, Thurman & Fienup (2008): the whole-pixel peak from the inverse FFT, then
    the correlation evaluated by a matrix DFT on a grid of step 1 / ``upsample_factor`` over
    one pixel either side of it. This costs two small matrix products instead of an FFT of an
    upsampled array (and keeps scipy.fft and scikit-image out of every job's start).
    """
    shape = np.array(spectrum.shape)
    correlation = np.abs(np.fft.ifft2(spectrum))
    lag = np.array(np.unravel_index(np.argmax(correlation), correlation.shape), np.float64)
    past_half = lag > shape // 2  # circular lags past half the size are negative ones
    lag[past_half] -= shape[past_half]
    if upsample_factor == 1:
        return lag
    steps = np.arange(-upsample_factor, upsample_factor + 1) / upsample_factor
    rows = np.exp(2j * np.pi * np.outer(lag[0] + steps, np.fft.fftfreq(shape[0])))
    cols = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(shape[1]), lag[1] + steps))
    fine = np.abs(rows @ spectrum @ cols)
    iy, ix = np.unravel_index(np.argmax(fine), fine.shape)
    return lag + (steps[iy], steps[ix])


def rigid_flow(shape: tuple[int, int], u: float, v: float) -> np.ndarray:
    """Constant flow field (H, W, 2) float32 of the translation (u, v)."""
    w = np.empty((*shape, 2), dtype=np.float32)
    w[..., 0] = u
    w[..., 1] = v
    return w
