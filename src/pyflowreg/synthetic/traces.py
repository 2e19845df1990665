"""Temporal traces: zero-mean series (drift, breathing, jitter) that drive motion over time.

Every trace is drawn from the generator it is given, so a caller's random stream decides it
entirely. :func:`standardised` is also the normalisation of the scene's textures and of the
recordings' own motion and brightness traces.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["breathing_trace", "drift_trace", "jitter_trace", "standardised"]


def standardised(series: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-std columns (axis 0); constant columns become zero.

    Parameters
    ----------
    series : ndarray
        Samples along axis 0.

    Returns
    -------
    ndarray
        Float array of the same shape.
    """
    series = series - series.mean(axis=0)
    std = series.std(axis=0)
    return series / np.where(std > 1e-12, std, np.inf)


def _smooth(series: np.ndarray, sigma: float) -> np.ndarray:
    return ndi.gaussian_filter1d(series, sigma, axis=0, mode="nearest") if sigma > 0 else series


def _peak_normalised(trace: np.ndarray, peak: float) -> np.ndarray:
    """Scale a (n, 2) trace so its largest vector norm is ``peak`` px."""
    top = float(np.hypot(trace[:, 0], trace[:, 1]).max(initial=0))
    return trace * (peak / top) if top > 0 else trace * 0.0


def drift_trace(rng: np.random.Generator, n: int, *, peak: float, timescale: float) -> np.ndarray:
    """Slow rigid drift (n, 2) px: a smoothed random walk plus smoothed noise, zero mean.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the random walk and the noise added to it.
    n : int
        Length of the trace (frames).
    peak : float
        Largest vector norm of the trace (px).
    timescale : float
        Gaussian sigma (samples) of the smoothing.

    Returns
    -------
    ndarray
        (n, 2) float64 displacements (dx, dy).
    """
    walk = _smooth(np.cumsum(rng.standard_normal((n, 2)), 0), timescale)
    trace = 0.5 * standardised(walk) + standardised(_smooth(rng.standard_normal((n, 2)),
                                                            timescale))
    return _peak_normalised(trace - trace.mean(0), peak)


def breathing_trace(
    rng: np.random.Generator, n: int, *, period: float, sharpness: float = 5.0
) -> np.ndarray:
    """Periodic pulse (n,) in [0, 1] with one sharp peak per ``period`` samples, zero at rest.

    The pulse is ``exp(sharpness * (cos(2 pi t / period + phase) - 1))``: flat between breaths,
    a peak of width about ``period / (2 pi sqrt(sharpness))`` samples. The period varies by
    +-10 % from breath to breath, as real breathing does.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the phase and the breath-to-breath variation of the period.
    n : int
        Length of the pulse (frames).
    period : float
        Mean period (samples).
    sharpness : float
        Larger values give narrower peaks.

    Returns
    -------
    ndarray
        (n,) float64 pulse, minimum 0 and maximum 1.
    """
    rate = (2 * np.pi / period) * (1 + 0.1 * standardised(_smooth(rng.standard_normal(n),
                                                                  period)))
    angle = np.cumsum(rate) + rng.uniform(0, 2 * np.pi)
    pulse = np.exp(sharpness * (np.cos(angle) - 1.0))
    return (pulse - pulse.min()) / max(float(np.ptp(pulse)), 1e-12)


def jitter_trace(rng: np.random.Generator, n: int, *, sigma: float) -> np.ndarray:
    """Independent per-sample rigid jumps (n, 2) px, Gaussian with ``sigma`` per axis, zero mean.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the jumps.
    n : int
        Number of jumps (frames).
    sigma : float
        Standard deviation per axis (px).

    Returns
    -------
    ndarray
        (n, 2) float64 displacements (dx, dy).
    """
    trace = sigma * rng.standard_normal((n, 2))
    return trace - trace.mean(0)
