"""The smoothness weight of a recording, chosen by cross-validation on split frames.

The best weight depends on what the tissue does: wide, smooth deformation wants a strong
smoothness term, local deformation of 15-30 px features a weak one, and a fixed value serves one
at the expense of the other (measured in ``docs/method.md``). So the weight is chosen per
recording, from its own frames:

1. a run of ``SELECTION_FRAMES`` consecutive frames from the middle of the recording is split
   by data fission (:func:`pyflowreg.core.noise.fission`) into a fitting copy and a scoring copy
   with independent noise, using the recording's fitted Poisson-Gaussian noise model;
2. for a candidate (the configured ``alpha`` times one of ``ALPHA_FACTORS``, or of
   ``REFINED_ALPHA_FACTORS`` when a refinement pass follows) the first-pass flows of the
   fitting copies are estimated and temporally filtered, as Stage 1 does;
3. the reference is warped into each scoring copy's geometry by the inverse of its flow
   (:func:`pyflowreg.core.warping.invert_flow`) and compared with it
   (:func:`pyflowreg.core.noise.gradient_misfit`) away from the frame's border;
   :func:`bracket_search` decides which candidates are scored, at most four;
4. a larger weight replaces the configured one only if it lowers the misfit by more than
   ``MIN_Z`` standard errors of the paired per-frame differences; of those, the smallest that
   scores within one standard error of the best is taken.

The split follows the noise variance the recording's noise fit measured at every brightness
(:meth:`pyflowreg.core.noise.NoiseModel.variance`): the Poisson-Gaussian line where it fits
(``path`` ``"photon-model"``), else the variance measured in each brightness bin
(``"measured-variance"``: data already processed, clipped at the detector's floor, or of a
detector the line does not describe). Only where nothing could be measured, or for recordings
shorter than ``MIN_RECORDING_FRAMES`` (the up to 48 first-pass flows of the choice would cost a
large share of correcting them: on 30-frame 192 x 192 recordings, 0.5-0.6 s of 1.8-2.4 s), is
the configured weight kept (``"configured"``). Where the noise fit failed (the second path, or
nothing measured) the choice is reported as a fallback in the log, the recording's
``status.json`` and ``qc.json`` and the session's quality control.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pyflowreg.core import temporal
from pyflowreg.core.noise import fission, gradient_misfit
from pyflowreg.core.optical_flow import FlowEstimator, FlowParameters, channel_weights
from pyflowreg.core.warping import invert_flow, warp_image
from pyflowreg.motion_correction.parallel import FramePool

ALPHA_FACTORS = (1.0, 2.0, 4.0)  # candidates: the configured alpha times these
# With a refinement pass, which undoes much of the shrinkage a strong first-pass weight leaves,
# larger weights pay where the deformation is wide: bright smooth and jitter recordings pick
# x8 (docs/method.md: balanced 4-14 % lower error), and deformation as wide as the frame wants
# more the larger the frame (smooth_wide, 512 px, 100 photons: alpha 12 0.055 px, 24 0.044).
# So the ladder goes up to x32, and bracket_search scores at most four of its six rungs.
# Without a refinement (fast) larger weights make those recordings worse (jitter, 100 photons:
# 0.098 -> 0.129 px with x8).
REFINED_ALPHA_FACTORS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
SELECTION_FRAMES = 16
SCORE_MARGIN_PX = 8  # frame border left out of the score, beyond the largest displacement
MIN_RECORDING_FRAMES = 100
# A larger weight must score 2.5 standard errors better than the configured one (16 paired
# frames: about 1 % of chance wins per candidate). Dim recordings give noisy scores: at 2 a
# larger weight came through on smooth, 3 photons; at 3 the wide deformation of a dim 256 px
# recording kept 1.5 (0.144 px, where the weight it scored best gives 0.131).
MIN_Z = 2.5
SEED = 0  # fixed: the same recording always gets the same weight


@dataclass(frozen=True)
class AlphaSelection:
    """The smoothness weight used for a recording and how it was chosen.

    ``path``: ``"photon-model"`` (chosen, the split following the fitted Poisson-Gaussian
    model), ``"measured-variance"`` (chosen, following the measured variances because the
    model did not fit) or ``"configured"`` (not chosen: the configured weight); ``reason`` says
    why in words. ``fell_back``: the noise fit failed, so the choice took a fallback path (the
    measured variances, or none at all); a recording too short for the choice, or a choice
    turned off, keeps the configured weight by design and has not fallen back.
    """

    alpha: tuple[float, float]
    reason: str
    path: str = "configured"
    candidates: tuple[tuple[float, float], ...] = ()
    misfit: tuple[float, ...] = ()  # mean per candidate, reference-grid gradient units
    z: tuple[float, ...] = ()  # paired improvement over the configured weight, standard errors
    frames: tuple[int, int] | None = None
    fell_back: bool = False

    def as_dict(self) -> dict:
        return {
            "alpha": [round(a, 6) for a in self.alpha],
            "path": self.path,
            "fell_back": self.fell_back,
            "reason": self.reason,
            "candidates": [[round(a, 6) for a in c] for c in self.candidates],
            "gradient_misfit": [float(f"{m:.6g}") for m in self.misfit],
            "z": [round(z, 3) for z in self.z],
            "frames": list(self.frames) if self.frames is not None else None,
        }


def paired_z(worse: np.ndarray, better: np.ndarray) -> float:
    """How many standard errors the per-frame misfits ``better`` lie below ``worse`` (paired)."""
    gain = np.asarray(worse) - np.asarray(better)
    spread = gain.std(ddof=1)
    return float(gain.mean() / (spread / np.sqrt(gain.size))) if spread > 0 else 0.0


def bracket_search(n_candidates: int, mean_misfit) -> None:
    """Call ``mean_misfit(i)`` for the candidates (increasing weights) where the best can lie.

    The first and the middle candidate are scored; then the scan goes up from the middle if it
    beat the first, else up from the first, and stops at the first candidate that scores no
    better than the one before it. The misfit falls and then rises with the weight, so the
    candidates left out would lose; of six candidates at most four are scored, of four three,
    and with three the order is plain ascending.
    """
    mean_misfit(0)
    if n_candidates < 2:
        return
    middle = n_candidates // 2
    start, stop = (middle, n_candidates) if mean_misfit(middle) < mean_misfit(0) else (0, middle)
    previous = start
    for i in range(start + 1, stop):
        if mean_misfit(i) >= mean_misfit(previous):
            break
        previous = i


def select_alpha(reader, reference, params: FlowParameters, sigma: np.ndarray, *, weight=None,
                 pool=None, enabled: bool = True, min_frames: int = MIN_RECORDING_FRAMES,
                 factors=ALPHA_FACTORS) -> AlphaSelection:
    """Choose the smoothness weight of ``reader``'s recording (see the module docstring).

    ``reference`` is the recording's :class:`~pyflowreg.motion_correction.reference.Reference`
    (its noise models and normalisation); ``params`` the configured solver parameters;
    recordings of fewer than ``min_frames`` frames keep them. ``factors``: increasing
    multiples of the configured weight to try, starting with 1.
    """
    configured = tuple(float(a) for a in params.alpha)
    if not enabled:
        return AlphaSelection(configured, "disabled")
    min_frames = max(min_frames, 3)  # the paired test needs a few frames
    if reader.n_frames < min_frames:
        return AlphaSelection(configured, f"recording shorter than {min_frames} frames")
    models = reference.noise_models
    if not models or not all(m.measured for m in models):
        return AlphaSelection(configured, "no noise variance could be measured", fell_back=True)
    if all(m.plausible for m in models):
        path, basis = "photon-model", "split by the fitted photon-noise model"
    else:
        path = "measured-variance"
        basis = ("split by the measured noise variances: no photon-noise model fits "
                 f"({', '.join(m.kind for m in models)})")
    n_frames = min(SELECTION_FRAMES, reader.n_frames)
    t0 = (reader.n_frames - n_frames) // 2
    t1 = t0 + n_frames
    raw = np.asarray(reader.read(t0, t1), dtype=np.float64)
    rng = np.random.default_rng(SEED)
    halves = [fission(raw[..., c], model, rng) for c, model in enumerate(models)]
    norm = reference.normalization
    fit = norm.flow_view(np.stack([h[0] for h in halves], -1), sigma)
    score = norm.flow_view(np.stack([h[1] for h in halves], -1), sigma)
    fixed = reference.filtered(sigma)
    weights = channel_weights(weight, fixed.shape[2])
    pool = pool if pool is not None else FramePool(1)

    def misfit_per_frame(factor: float) -> np.ndarray:
        alpha = tuple(a * factor for a in configured)
        estimator = FlowEstimator(fixed, dataclasses.replace(params, alpha=alpha), weight=weight)
        flows = pool.map(estimator.estimate, list(fit))
        summaries = np.stack([temporal.flow_summary(w) for w in flows])
        flows, _, _ = temporal.filter_sequence(flows, summaries, range(n_frames),
                                               map_fn=pool.map)
        misfits = []
        for frame, w in zip(score, flows, strict=True):
            # The reference is carried into the frame's geometry, not the frame into the
            # reference's: interpolating the noisy scoring copy would smooth its noise by an
            # amount that depends on the flow (its fractional shifts), which biased the score
            # towards smoother flows on dim recordings (smooth, 10 photons: the largest weight
            # chosen, 0.287 px against 0.196). The copy's own noise then adds the same to every
            # candidate.
            inverse = invert_flow(w)
            in_frame, valid = warp_image(fixed, inverse[..., 0], inverse[..., 1], fixed)
            # Near the frame's edge the flow is extrapolated by the smoothness term, not
            # measured; scoring there would reward the strongest smoothing.
            margin = SCORE_MARGIN_PX + int(np.ceil(np.abs(w).max()))
            valid[:margin] = valid[-margin:] = False
            valid[:, :margin] = valid[:, -margin:] = False
            misfits.append(sum(
                weights[c] * gradient_misfit(frame[..., c], in_frame[..., c], valid)
                for c in range(fixed.shape[2])))
        return np.asarray(misfits)

    scored: dict[int, np.ndarray] = {}

    def mean_misfit(i: int) -> float:
        if i not in scored:
            scored[i] = misfit_per_frame(factors[i])
        return float(scored[i].mean())

    bracket_search(len(factors), mean_misfit)
    order = sorted(scored)
    candidates = [tuple(a * factors[i] for a in configured) for i in order]
    per_frame = [scored[i] for i in order]
    z = [0.0] + [paired_z(per_frame[0], m) for m in per_frame[1:]]
    means = [float(m.mean()) for m in per_frame]
    significant = [i for i in range(1, len(candidates)) if z[i] >= MIN_Z]
    best = 0
    if significant:
        # The smallest weight that scores within one standard error of the best: near the
        # optimum the misfit is flat, and of two weights it cannot tell apart the smaller
        # one leaves the refinement pass the most to do (smooth, 512 px: x8 and x16 score
        # alike, x16 ends 0.090 px against 0.072).
        top = min(significant, key=lambda i: means[i])
        best = min(i for i in significant if paired_z(per_frame[i], per_frame[top]) <= 1.0)
    return AlphaSelection(candidates[best], f"cross-validated, {basis}", path,
                          tuple(candidates), tuple(means), tuple(z), (t0, t1),
                          fell_back=path != "photon-model")
