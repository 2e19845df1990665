"""Poisson-Gaussian noise model of a recording and the transform that makes its noise uniform.

Photon-counting detectors give ``var(x) = gain * x + intercept`` for a pixel of mean ``x``
(counts): shot noise grows with the signal (``gain`` counts per photon), and the read noise and
the dark offset set the intercept (``read_noise**2 - gain * offset``). :func:`fit_noise_model`
fits the line to pairs of consecutive frames: their difference holds the noise of both, their
mean the signal. Three things would bias it, and each is taken out before the fit:

* motion between the two frames changes pixels on edges, and jumps of a fraction of a pixel
  pass for a large variance on textured tissue. :func:`remove_pair_motion` regresses each
  pair's difference on the image gradient block by block (a local shift to first order), and
  only the flattest pixels enter the fit;
* integer counts make the median absolute deviation jump between a few values at low photon
  counts, so every brightness bin of a dim recording got the same spread and no slope could be
  fitted. :func:`robust_variance` uses the median only to set aside outliers (calcium flashes,
  motion left over) and takes the variance of the rest, which is continuous in the data;
* counts clipped at the detector's floor have too little variance: brightness bins with more
  than a few clipped samples are left out.

The fit is weighted by each bin's standard error (from the spread over the frame pairs), which
makes its consistency measurable (``chi2``): where read noise dominates, the variance changes
little with brightness, and the line still describes it, with a small gain. A model whose gain
is significantly positive is a photon-noise model (:attr:`NoiseModel.plausible`);
:func:`stabilising_shift` turns it into the generalised Anscombe transform ``sqrt(x + shift)``
(Murtagh, Starck & Bijaoui 1995), whose output has about the same noise at every brightness.
The flow is estimated on transformed frames: bright structure does not outweigh dim structure
in proportion to its shot noise, and a cell whose brightness changes with its calcium activity
changes the transformed image by only half as much in relative terms. Without a significant
gain, or where the variance hardly grows over the recording's brightness (read noise
dominating, :attr:`NoiseModel.stabilises`), the frames stay linear; where the fitted
intercept would put the darkest pixels near the square root's singularity, the caller clips the
shift (:meth:`pyflowreg.motion_correction.preprocess.Normalization.with_stabiliser`).

Whatever the fit, :meth:`NoiseModel.variance` gives the noise variance at every brightness: the
line where it describes the data, else the measured variance of each brightness bin,
interpolated. :func:`fission` uses it to split frames into two copies with independent noise,
which lets a setting of the flow be judged on data it was not fitted to
(:mod:`pyflowreg.motion_correction.alpha_selection`, scored by :func:`gradient_misfit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pyflowreg.core.rigid import estimate_rigid_shift

MIN_PIXELS_PER_BIN = 200
N_BINS = 24
MAD_TO_STD = 1.4826
FLAT_FRACTION = 0.3  # share of pixels, the flattest, used for the fit
SIGNAL_SMOOTH_PX = 2.0  # px, smoothing of the mean brightness that pixels are binned by
OUTLIER_SIGMAS = 4.0  # samples this far from the median (robust sigmas) are set aside
# Variance of a standard normal truncated to +-4 sigma: the kept samples' variance is divided by
# it, so Gaussian noise is estimated without bias.
TRUNCATED_VARIANCE = 0.998932
ALIGN_UPSAMPLE = 20  # subpixel precision (1/20 px) of the rigid shift between a pair's frames
ALIGN_SMOOTH_PX = 1.5  # px, smoothing of the frames whose shifts are measured
# A pair's second frame is moved onto the first when they are this far apart (px); below it,
# the regression of the difference on the image derivatives takes the motion out.
ALIGN_MIN_PX = 0.25
ALIGN_MARGIN_PX = 6  # border left out beyond the shift: wrap-around, ringing of the Fourier shift
MOTION_BLOCK_PX = 32  # blocks of the local-shift regression of a pair's difference
MOTION_GRADIENT_SIGMA = 0.5  # px, smoothing of the pair mean for the motion terms
MIN_PAIRS_FOR_MEDIAN = 5  # with fewer frame pairs, the bins' variance is pooled over them
MAX_CLIPPED_FRACTION = 0.01  # bins with more samples at the detector's floor are left out
# The line describes the binned variances when the weighted residuals are not much larger than
# the bins' standard errors (chi-square per degree of freedom), or are small in relative terms
# (large frames measure the variances so precisely that a slight curvature is significant).
MAX_CHI2 = 4.0
MAX_RELATIVE_RESIDUAL = 0.05
MIN_GAIN_Z = 3.0  # a photon model needs a gain this many standard errors above zero
# The stabilising transform is applied where the variance grows at least this much over the
# brightness range. Dim recordings (read noise dominating, 3-10 photons per unit: 1.1-1.4x)
# stay linear: measured with the transform there, the accuracy grid moved by +-1 % at most.
MIN_VARIANCE_RATIO = 1.5
FISSION_TAU = 0.5
FISSION_SMOOTH_PX = 2.0


@dataclass(frozen=True)
class NoiseModel:
    """``var(x) = gain * x + intercept`` in raw counts, and how well it describes the data.

    ``r_squared``: share of the binned variances' spread the line explains; ``gain_se``: the
    gain's standard error; ``chi2``: weighted squared residuals per degree of freedom;
    ``relative_residual``: RMS residual over the mean variance; ``bins``: the brightness and
    measured variance of every bin used (counts, counts^2).
    """

    gain: float
    intercept: float
    r_squared: float
    n_samples: int
    gain_se: float = float("inf")
    chi2: float = float("inf")
    relative_residual: float = float("inf")
    bins: tuple[tuple[float, float], ...] = field(default=(), repr=False)

    @property
    def describes_data(self) -> bool:
        """True when the line describes the measured variances (photon noise or not)."""
        return bool(len(self.bins) >= 3 and np.isfinite(self.intercept)
                    and (self.chi2 <= MAX_CHI2 or self.relative_residual <= MAX_RELATIVE_RESIDUAL)
                    and all(self.gain * x + self.intercept > 0 for x, _ in self.bins))

    @property
    def plausible(self) -> bool:
        """True when the fit describes shot noise: a line that fits, with a significant gain."""
        return bool(self.describes_data and self.gain > 0
                    and self.gain >= MIN_GAIN_Z * self.gain_se)

    @property
    def variance_ratio(self) -> float:
        """How much the line's variance grows over the brightness of the measured bins."""
        if not self.bins:
            return 1.0
        lo, hi = self.bins[0][0], self.bins[-1][0]
        low = self.gain * lo + self.intercept
        return float((self.gain * hi + self.intercept) / low) if low > 0 else 1.0

    @property
    def stabilises(self) -> bool:
        """True when the noise-stabilising transform has something to equalise: a photon model
        whose variance grows by ``MIN_VARIANCE_RATIO`` or more over the recording's brightness
        (where read noise dominates, it hardly changes, and the frames stay linear)."""
        return self.plausible and self.variance_ratio >= MIN_VARIANCE_RATIO

    @property
    def measured(self) -> bool:
        """True when there are variances to go by at all (:meth:`variance` is defined)."""
        return len(self.bins) >= 1

    @property
    def kind(self) -> str:
        """How :meth:`variance` answers: ``"photon"``, ``"line"``, ``"bins"`` or ``"none"``."""
        if self.plausible:
            return "photon"
        if self.describes_data:
            return "line"
        return "bins" if self.measured else "none"

    def variance(self, x: np.ndarray) -> np.ndarray:
        """Noise variance (counts^2) at brightness ``x`` (counts), never below a floor.

        The fitted line where it describes the data (its gain taken as at least zero), else the
        bins' measured variances interpolated linearly (constant beyond the outer bins).
        """
        if not self.measured:
            raise ValueError("no noise variance was measured (too few frames or pixels)")
        centres, variances = np.asarray(self.bins, dtype=np.float64).T
        floor = 0.5 * float(variances.min())
        x = np.asarray(x, dtype=np.float64)
        if self.describes_data:
            return np.maximum(max(self.gain, 0.0) * x + self.intercept, floor)
        return np.maximum(np.interp(x, centres, variances), floor)

    def as_dict(self) -> dict:
        def finite(value, digits):
            return round(float(value), digits) if np.isfinite(value) else None

        return {"gain": round(self.gain, 6), "intercept": round(self.intercept, 4),
                "gain_se": finite(self.gain_se, 6), "r_squared": round(self.r_squared, 4),
                "chi2": finite(self.chi2, 3),
                "relative_residual": finite(self.relative_residual, 4),
                "n_samples": self.n_samples, "n_bins": len(self.bins), "kind": self.kind,
                "plausible": self.plausible,
                "variance_ratio": round(self.variance_ratio, 3)}


def robust_variance(samples: np.ndarray) -> float:
    """Variance of mostly Gaussian samples, outliers set aside; continuous in integer data.

    The median and the median absolute deviation only decide which samples are outliers (more
    than ``OUTLIER_SIGMAS`` robust sigmas from the median); the variance is that of the rest,
    corrected for the truncation. With integer counts the MAD takes few distinct values, so it
    cannot measure a variance itself.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> counts = np.round(rng.normal(0.0, 1.3, 100_000))  # quantised, variance 1.69 + 1/12
    >>> round(robust_variance(counts), 2)
    1.78
    >>> round(robust_variance(np.r_[counts, np.full(500, 80.0)]), 2)  # flashes ignored
    1.78
    """
    samples = np.asarray(samples, dtype=np.float64).ravel()
    if samples.size < 2:
        return 0.0
    centre = np.median(samples)
    spread = MAD_TO_STD * np.median(np.abs(samples - centre))
    if spread <= 0:
        spread = samples.std()
    if spread <= 0:
        return 0.0
    kept = samples[np.abs(samples - centre) <= OUTLIER_SIGMAS * spread]
    return float(kept.var() / TRUNCATED_VARIANCE) if kept.size > 1 else 0.0


def remove_pair_motion(mean: np.ndarray, deviation: np.ndarray,
                       block: int = MOTION_BLOCK_PX) -> np.ndarray:
    """``deviation`` of one frame pair with its motion terms regressed out, block by block.

    A shift ``s`` between the two frames changes a pixel by about ``grad(mean) . s`` plus, for
    shifts near a pixel on fine texture, ``s^T H s / 2`` (``H`` the Hessian). In every ``block``
    x ``block`` block the five coefficients of those terms are fitted to ``deviation`` by least
    squares and the fit is subtracted. Noise stays: the pair's sum and difference have
    uncorrelated noise, so the regression fits next to none of it, and the few degrees of
    freedom it takes are given back (the residual is scaled by ``sqrt(n / (n - 5))``).

    Parameters
    ----------
    mean : (H, W) array
        Mean of the two frames (counts).
    deviation : (H, W) array
        Their difference divided by sqrt(2) (counts).
    block : int
        Side of the blocks with their own shift (px).

    Returns
    -------
    (H, W) float64 array
    """
    mean = np.asarray(mean, dtype=np.float64)
    deviation = np.asarray(deviation, dtype=np.float64)
    smooth = ndimage.gaussian_filter(mean, MOTION_GRADIENT_SIGMA)
    gy, gx = np.gradient(smooth)
    gxy, gxx = np.gradient(gx)
    gyy = np.gradient(gy, axis=0)
    terms = np.stack([gx, gy, gxx, gxy, gyy]).reshape(5, -1)
    height, width = mean.shape
    rows = np.minimum(np.arange(height) // block, max(height // block - 1, 0))
    cols = np.minimum(np.arange(width) // block, max(width // block - 1, 0))
    label = (rows[:, None] * (cols.max() + 1) + cols[None, :]).ravel()
    n_blocks = int(label.max()) + 1
    n_terms = terms.shape[0]
    normal = np.empty((n_blocks, n_terms, n_terms))
    for i in range(n_terms):
        for j in range(i, n_terms):
            normal[:, i, j] = normal[:, j, i] = np.bincount(
                label, weights=terms[i] * terms[j], minlength=n_blocks)
    rhs = np.stack([np.bincount(label, weights=t * deviation.ravel(), minlength=n_blocks)
                    for t in terms], axis=1)
    # A flat block has no texture to move: its tiny normal matrix is regularised, not inverted.
    ridge = 1e-9 * np.trace(normal, axis1=1, axis2=2)[:, None, None] + 1e-300
    coefficients = np.linalg.solve(normal + ridge * np.eye(n_terms), rhs[..., None])[..., 0]
    motion = np.einsum("kp,pk->p", terms, coefficients[label])
    pixels = np.bincount(label, minlength=n_blocks)[label]
    scale = np.sqrt(pixels / np.maximum(pixels - n_terms, 1))
    return ((deviation.ravel() - motion) * scale).reshape(mean.shape)


def fit_noise_model(signal: np.ndarray, deviation: np.ndarray,
                    clipped: np.ndarray | None = None) -> NoiseModel:
    """Fit ``var = gain * signal + intercept`` of one channel.

    Parameters
    ----------
    signal : (H, W) array
        Mean intensity (raw counts) of every pixel.
    deviation : (N, H, W) array
        N samples of the noise with one frame's variance at each pixel, e.g. differences of
        consecutive frames divided by sqrt(2), with their motion removed (see
        :func:`pair_samples`).
    clipped : (H, W) array, optional
        Fraction of each pixel's samples at the detector's floor; bins where more than
        ``MAX_CLIPPED_FRACTION`` of the samples are clipped are left out.

    Returns
    -------
    NoiseModel
        Without bins (``measured`` false) when there is too little data to measure.
    """
    signal = np.asarray(signal, dtype=np.float64)
    deviation = np.asarray(deviation, dtype=np.float64)
    n_samples = int(deviation.shape[0])
    empty = NoiseModel(0.0, 0.0, 0.0, n_samples)
    # Motion left over changes a pixel by about grad(I) . displacement: keep the flattest
    # pixels, where it cannot pass for shot noise.
    smooth = ndimage.gaussian_filter(signal, SIGNAL_SMOOTH_PX)
    slope = np.hypot(*np.gradient(smooth))
    flat = slope <= np.quantile(slope, FLAT_FRACTION)
    # Pixels are sorted into bins by the smoothed mean, and each bin is placed at the plain mean
    # of its pixels. The mean of a few frames is itself noisy: sorting by it puts pixels whose
    # noise happened to be high into the bright bins, which flattens the line (dim recordings
    # lost a third of their gain), while placing bins at smoothed values compresses their range
    # and steepens it. The smoothed value hardly depends on a pixel's own noise, and since the
    # variance is linear in the mean, any such grouping keeps the line.
    rank = smooth[flat]
    mean = signal[flat]
    samples = deviation[:, flat]  # (N, pixels)
    clipped = np.zeros(mean.shape) if clipped is None else np.asarray(clipped)[flat]
    order = np.argsort(rank, kind="stable")
    centres, variances, errors, unclipped = [], [], [], []
    for chunk in np.array_split(order, N_BINS):
        if chunk.size * n_samples < MIN_PIXELS_PER_BIN:
            continue
        values = samples[:, chunk]
        if n_samples >= MIN_PAIRS_FOR_MEDIAN:
            # One estimate per pair, and their median: a pair caught in fast motion (a
            # breathing peak) inflates its own estimate only. The spread of the estimates gives
            # the standard error, including any correlation of the noise between neighbouring
            # pixels (the median's error is about 1.25 times the mean's).
            per_pair = np.array([robust_variance(v) for v in values])
            variance = float(np.median(per_pair))
            error = 1.25 * float(per_pair.std(ddof=1) / np.sqrt(n_samples))
        else:
            variance = robust_variance(values)
            error = variance * np.sqrt(2.0 / values.size)
        if variance <= 0:
            continue
        centres.append(float(mean[chunk].mean()))
        variances.append(variance)
        errors.append(max(error, 1e-6 * variance))
        unclipped.append(bool(np.mean(clipped[chunk]) <= MAX_CLIPPED_FRACTION))
    if not centres:
        return empty
    # Every bin is kept as a measured variance (in order of brightness, for interpolation); the
    # line is fitted to the unclipped ones only.
    bins = tuple(sorted(zip(centres, variances, strict=True)))
    fitted = np.asarray(unclipped)
    centres, variances, errors = (np.asarray(a)[fitted] for a in (centres, variances, errors))
    if centres.size < 3 or np.ptp(centres) <= 0:
        return NoiseModel(0.0, float(np.mean([v for _, v in bins])), 0.0, n_samples, bins=bins)
    weights = 1.0 / errors**2
    design = np.stack([centres, np.ones_like(centres)], axis=1)
    normal = design.T @ (design * weights[:, None])
    gain, intercept = np.linalg.solve(normal, design.T @ (weights * variances))
    residual = variances - (gain * centres + intercept)
    chi2 = float(np.sum(weights * residual**2) / (centres.size - 2))
    covariance = np.linalg.inv(normal) * max(chi2, 1.0)
    total = np.sum((variances - variances.mean()) ** 2)
    r_squared = 1.0 - np.sum(residual**2) / total if total > 0 else 0.0
    relative = float(np.sqrt(np.mean(residual**2)) / variances.mean())
    return NoiseModel(float(gain), float(intercept), float(r_squared), n_samples,
                      gain_se=float(np.sqrt(covariance[0, 0])), chi2=chi2,
                      relative_residual=relative, bins=bins)


def align_pair(second: np.ndarray, shift: tuple[float, float]) -> tuple[np.ndarray, int]:
    """``second`` moved by ``shift`` = (u, v) px, and the border to leave out (px).

    The shift is applied as a phase ramp in the Fourier domain. That is a unitary map: white
    noise keeps its variance, where interpolation would smooth it and bias the variance
    measured afterwards. The frame wraps around at its border and rings next to it, so that
    many pixels (the shift plus ``ALIGN_MARGIN_PX``) are to be left out.
    """
    u, v = shift
    spectrum = ndimage.fourier_shift(np.fft.fft2(second), (-v, -u))
    margin = int(np.ceil(max(abs(u), abs(v)))) + ALIGN_MARGIN_PX
    return np.fft.ifft2(spectrum).real, margin


def frame_shifts(frames: np.ndarray) -> np.ndarray:
    """Rigid shift (u, v) of every (H, W) frame against the frames' mean, (N, 2) px.

    Both smoothed by ``ALIGN_SMOOTH_PX``: against a mean of many frames and without the
    finest, noisiest detail, a dim frame's shift is measured far better than against another
    single frame.
    """
    template = ndimage.gaussian_filter(frames.mean(axis=0), ALIGN_SMOOTH_PX)
    return np.array([estimate_rigid_shift(template, ndimage.gaussian_filter(f, ALIGN_SMOOTH_PX),
                                          upsample_factor=ALIGN_UPSAMPLE) for f in frames])


def pair_samples(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(signal, deviation, clipped)`` for :func:`fit_noise_model` from (N, 2, H, W) frames.

    Each pair holds two consecutive frames. Where they moved rigidly by more than
    ``ALIGN_MIN_PX`` against each other (:func:`frame_shifts`), the second is moved onto the
    first (:func:`align_pair`); the rest of their motion is regressed out of the difference
    (:func:`remove_pair_motion`), and the difference, which holds the noise of both, is divided
    by sqrt(2). ``clipped`` is the fraction of each pixel's samples at the smallest value of
    all, the detector's floor where data are clipped there (elsewhere next to no sample is).
    The arrays leave out the border that the largest shift makes unusable.
    """
    pairs = np.asarray(pairs, dtype=np.float64)
    n_pairs, _, height, width = pairs.shape
    shifts = frame_shifts(pairs.reshape(-1, height, width)).reshape(n_pairs, 2, 2)
    second, margin = pairs[:, 1].copy(), 0
    for k, (shift_first, shift_second) in enumerate(shifts):
        relative = shift_second - shift_first
        if np.abs(relative).max() >= ALIGN_MIN_PX:
            second[k], pair_margin = align_pair(second[k], tuple(relative))
            margin = max(margin, pair_margin)
    if 2 * margin >= min(height, width) - 2 * MOTION_BLOCK_PX:
        margin, second = 0, pairs[:, 1]  # motion as large as the frame: keep what there is
    inner = (slice(None), slice(margin, height - margin), slice(margin, width - margin))
    first, second = pairs[:, 0][inner], second[inner]
    means = 0.5 * (first + second)
    deviation = np.stack([remove_pair_motion(m, (b - a) / np.sqrt(2.0))
                          for m, a, b in zip(means, first, second, strict=True)])
    clipped = (pairs == pairs.min()).mean(axis=1)[inner].mean(axis=0)
    return means.mean(axis=0), deviation, clipped


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
    The noise variance is the model's (:meth:`NoiseModel.variance`) at ``m``, the frame smoothed
    over a few pixels so the draw does not follow the noise it is meant to mimic. A small
    ``tau`` keeps the fitted copy almost as clean as the frame (variance ``1 + tau^2``) at the
    cost of a noisier score copy (``1 + 1 / tau^2``), whose extra noise adds the same amount to
    every candidate's score.
    """
    frames = np.asarray(frames, dtype=np.float64)
    local_mean = ndimage.gaussian_filter(frames, (0, FISSION_SMOOTH_PX, FISSION_SMOOTH_PX))
    variance = model.variance(local_mean)
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
