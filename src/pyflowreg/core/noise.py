"""Poisson-Gaussian noise model of a recording and the transform that makes its noise uniform.

Photon-counting detectors give ``var(x) = gain * x + intercept`` for a pixel of mean ``x``
(counts): shot noise grows with the signal, read noise and the dark offset set the intercept.
:func:`fit_noise_model` fits the line to pairs of consecutive frames: their difference holds the
noise of both, their mean the signal. Motion between the two frames changes pixels on edges, so
only the flattest pixels are used; calcium transients are rare enough for a median to ignore.

:func:`stabilising_shift` turns the model into the generalised Anscombe transform
``sqrt(x + shift)`` (Murtagh, Starck & Bijaoui 1995), whose output has about the same noise at
every brightness. The flow is estimated on transformed frames: bright structure no longer
outweighs dim structure in proportion to its shot noise, and a cell whose brightness changes
with its calcium activity changes the transformed image by only half as much in relative terms.
Where read noise dominates (a dim recording), the variance hardly changes with brightness, the
fit is rejected (:attr:`NoiseModel.plausible`) and the frames stay linear; where the fitted
intercept would put the darkest pixels near the square root's singularity, the caller clips the
shift (:meth:`pyflowreg.motion_correction.preprocess.Normalization.with_stabiliser`).

With a plausible model, :func:`fission` splits frames into two copies with independent noise,
which lets a setting of the flow be judged on data it was not fitted to
(:mod:`pyflowreg.motion_correction.alpha_selection`, scored by :func:`gradient_misfit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_PIXELS_PER_BIN = 200
N_BINS = 24
MAD_TO_STD = 1.4826
FLAT_FRACTION = 0.3  # share of pixels, the flattest, used for the fit
# The fitted line must explain most of the variance's change with brightness, or the data do not
# follow the model (already processed, clipped, or float data of unknown origin).
MIN_R_SQUARED = 0.8
FISSION_TAU = 0.5
FISSION_SMOOTH_PX = 2.0


@dataclass(frozen=True)
class NoiseModel:
    """``var(x) = gain * x + intercept`` in raw counts; ``r_squared`` of the fit over bins."""

    gain: float
    intercept: float
    r_squared: float
    n_samples: int

    @property
    def plausible(self) -> bool:
        """True when the fit describes shot noise: positive gain and a good straight-line fit."""
        return bool(self.gain > 0 and np.isfinite(self.intercept)
                    and self.r_squared >= MIN_R_SQUARED)

    def as_dict(self) -> dict:
        return {"gain": round(self.gain, 6), "intercept": round(self.intercept, 4),
                "r_squared": round(self.r_squared, 4), "n_samples": self.n_samples,
                "plausible": self.plausible}


def fit_noise_model(signal: np.ndarray, deviation: np.ndarray) -> NoiseModel:
    """Fit ``var = gain * signal + intercept`` of one channel.

    Parameters
    ----------
    signal : (H, W) array
        Mean intensity (raw counts) of every pixel.
    deviation : (N, H, W) array
        N samples of the noise with one frame's variance at each pixel, e.g. differences of
        consecutive frames divided by sqrt(2) (see :func:`pair_samples`).

    Returns
    -------
    NoiseModel
        With ``r_squared = 0`` (not plausible) when there is too little data to fit.
    """
    signal = np.asarray(signal, dtype=np.float64)
    deviation = np.asarray(deviation, dtype=np.float64)
    n_samples = int(deviation.shape[0])
    # Motion changes a pixel by about grad(I) . displacement: keep the flattest pixels, where it
    # cannot pass for shot noise.
    slope = np.hypot(*np.gradient(ndimage.gaussian_filter(signal, 2.0)))
    flat = slope <= np.quantile(slope, FLAT_FRACTION)
    mean = np.broadcast_to(signal[flat], (n_samples, int(flat.sum()))).ravel()
    diff = deviation[:, flat].ravel()
    if mean.size < N_BINS * MIN_PIXELS_PER_BIN:
        return NoiseModel(0.0, 0.0, 0.0, n_samples)
    # Equal-count bins over the brightness range; the MAD ignores the few pixels that flashed
    # with calcium activity or moved.
    order = np.argsort(mean, kind="stable")
    centres, variances = [], []
    for chunk in np.array_split(order, N_BINS):
        d = diff[chunk]
        spread = MAD_TO_STD * np.median(np.abs(d - np.median(d)))
        centres.append(float(mean[chunk].mean()))
        variances.append(float(spread**2))
    centres, variances = np.asarray(centres), np.asarray(variances)
    if np.ptp(centres) <= 0:
        return NoiseModel(0.0, 0.0, 0.0, n_samples)
    gain, intercept = np.polyfit(centres, variances, 1)
    residual = variances - (gain * centres + intercept)
    total = np.sum((variances - variances.mean()) ** 2)
    r_squared = 1.0 - np.sum(residual**2) / total if total > 0 else 0.0
    return NoiseModel(float(gain), float(intercept), float(r_squared), n_samples)


def pair_samples(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(signal, deviation)`` for :func:`fit_noise_model` from (N, 2, H, W) consecutive frames.

    The difference of two frames holds the noise of both, so it is divided by sqrt(2).
    """
    pairs = np.asarray(pairs, dtype=np.float64)
    return pairs.mean(axis=(0, 1)), (pairs[:, 1] - pairs[:, 0]) / np.sqrt(2.0)


def stabilising_shift(model: NoiseModel) -> float:
    """``shift`` (counts) of the transform ``sqrt(x + shift)`` that makes the noise uniform.

    From ``var(x) = g x + b``: ``2 / g * sqrt(g x + b + 3 g^2 / 8)`` has unit variance, which is
    ``sqrt(x + b / g + 3 g / 8)`` up to a constant factor.
    """
    return model.intercept / model.gain + 0.375 * model.gain


def fission(frames: np.ndarray, model: NoiseModel, rng: np.random.Generator,
            tau: float = FISSION_TAU) -> tuple[np.ndarray, np.ndarray]:
    """Split (T, H, W) frames (raw counts) into two copies with independent noise.

    Gaussian data fission (Leiner, Duan, Wasserman & Ramdas 2023): with ``Z`` drawn from the
    noise's own distribution, ``x + tau Z`` and ``x - Z / tau`` are independent, so a flow fitted
    to the first can be scored on the second without the score rewarding a fit to the noise.
    The noise variance is the model's ``gain * m + intercept``, ``m`` the frame smoothed over a
    few pixels so the draw does not follow the noise it is meant to mimic. A small ``tau`` keeps
    the fitted copy almost as clean as the frame (variance ``1 + tau^2``) at the cost of a
    noisier score copy (``1 + 1 / tau^2``), whose extra noise adds the same amount to every
    candidate's score.
    """
    frames = np.asarray(frames, dtype=np.float64)
    local_mean = ndimage.gaussian_filter(frames, (0, FISSION_SMOOTH_PX, FISSION_SMOOTH_PX))
    variance = np.maximum(model.gain * local_mean + model.intercept, 0.0)
    draw = rng.standard_normal(frames.shape) * np.sqrt(variance)
    return frames + tau * draw, frames - draw / tau


def gradient_misfit(registered: np.ndarray, fixed: np.ndarray, valid: np.ndarray) -> float:
    """Mean squared difference of the spatial gradients of two (H, W) images over ``valid``.

    Gradients rather than intensities: a cell whose brightness follows its calcium activity
    differs from the reference over its whole area, which a flow can partly "explain" by
    moving it; the gradient difference is confined to its rim and changes less with the flow.
    """
    gy_r, gx_r = np.gradient(np.asarray(registered, dtype=np.float64))
    gy_f, gx_f = np.gradient(np.asarray(fixed, dtype=np.float64))
    misfit = (gx_r - gx_f) ** 2 + (gy_r - gy_f) ** 2
    return float(misfit[valid].mean()) if valid.any() else float("nan")
