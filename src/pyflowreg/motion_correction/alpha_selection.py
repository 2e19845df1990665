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
3. each scoring copy is warped by its flow and compared with the reference
   (:func:`pyflowreg.core.noise.gradient_misfit`); :func:`bracket_search` decides which
   candidates are scored, at most three;
4. a larger weight replaces the configured one only if it lowers the misfit by more than
   ``MIN_Z`` standard errors of the paired per-frame differences.

Without a plausible noise model (read-noise limited or processed data) the split has no model
to follow, and the configured weight is kept. So it is for recordings shorter than
``MIN_RECORDING_FRAMES``: the up to 48 first-pass flows of the choice would cost a large share of
correcting them (on 30-frame 192 x 192 recordings, 0.5-0.6 s of 1.8-2.4 s).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from pyflowreg.core import temporal
from pyflowreg.core.noise import fission, gradient_misfit
from pyflowreg.core.optical_flow import FlowEstimator, FlowParameters, channel_weights
from pyflowreg.core.warping import warp_image
from pyflowreg.motion_correction.parallel import FramePool

ALPHA_FACTORS = (1.0, 2.0, 4.0)  # candidates: the configured alpha times these
# With a refinement pass, which undoes much of the shrinkage a strong first-pass weight leaves,
# a fourth candidate pays: bright smooth and jitter recordings pick it (docs/method.md:
# balanced 4-14 % lower error). Without one (fast) it makes those recordings worse (jitter, 100
# photons: 0.098 -> 0.129 px). A 16x candidate is picked where it is worse (smooth, 100
# photons: 0.074 -> 0.094 px). bracket_search scores three of the four, so the choice costs
# no more than with three.
REFINED_ALPHA_FACTORS = (1.0, 2.0, 4.0, 8.0)
SELECTION_FRAMES = 16
MIN_RECORDING_FRAMES = 100
MIN_Z = 2.0
SEED = 0  # fixed: the same recording always gets the same weight


@dataclass(frozen=True)
class AlphaSelection:
    """The smoothness weight used for a recording and how it was chosen."""

    alpha: tuple[float, float]
    reason: str
    candidates: tuple[tuple[float, float], ...] = ()
    misfit: tuple[float, ...] = ()  # mean per candidate, reference-grid gradient units
    z: tuple[float, ...] = ()  # paired improvement over the configured weight, standard errors
    frames: tuple[int, int] | None = None

    def as_dict(self) -> dict:
        return {
            "alpha": [round(a, 6) for a in self.alpha],
            "reason": self.reason,
            "candidates": [[round(a, 6) for a in c] for c in self.candidates],
            "gradient_misfit": [float(f"{m:.6g}") for m in self.misfit],
            "z": [round(z, 3) for z in self.z],
            "frames": list(self.frames) if self.frames is not None else None,
        }


def bracket_search(n_candidates: int, mean_misfit) -> None:
    """Call ``mean_misfit(i)`` for the candidates (increasing weights) where the best can lie.

    The first and the middle candidate are scored; then the scan goes up from the middle if it
    beat the first, else up from the first, and stops at the first candidate that scores no
    better than the one before it. The misfit falls and then rises with the weight, so the
    candidates left out would lose; with four candidates three are scored, and with three the
    order is plain ascending.
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
    models = reference.noise_models
    if not models or not all(m.plausible for m in models):
        return AlphaSelection(configured, "no plausible noise model")
    min_frames = max(min_frames, 3)  # the paired test needs a few frames
    if reader.n_frames < min_frames:
        return AlphaSelection(configured, f"recording shorter than {min_frames} frames")
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
            registered, valid = warp_image(frame, w[..., 0], w[..., 1], fixed)
            misfits.append(sum(
                weights[c] * gradient_misfit(registered[..., c], fixed[..., c], valid)
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
    gains = [per_frame[0] - m for m in per_frame]
    z = [0.0] + [float(g.mean() / (g.std(ddof=1) / np.sqrt(g.size)))
                 if g.std(ddof=1) > 0 else 0.0 for g in gains[1:]]
    means = [float(m.mean()) for m in per_frame]
    significant = [i for i in range(1, len(candidates)) if z[i] >= MIN_Z]
    best = min(significant, key=lambda i: means[i]) if significant else 0
    return AlphaSelection(candidates[best], "cross-validated", tuple(candidates), tuple(means),
                          tuple(z), (t0, t1))
