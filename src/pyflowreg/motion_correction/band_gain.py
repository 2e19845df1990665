"""The gain of a recording's wide non-rigid band, calibrated by simulating its own frames.

Stage 1's flows underestimate wide deformation, the more the dimmer the recording
(:mod:`pyflowreg.core.bands`): on `smooth_wide` at 10 photons per unit the estimated wide band
is 87 % of the true one, at 100 photons on `smooth` 95 %. How much depends on the tissue, the
noise and the smoothness weight, so it is measured per recording, on frames whose motion is
known:

1. two runs of 8 consecutive frames, centred at a quarter and three quarters of the
   recording, are corrected as Stage 1 corrects them
   (:class:`~pyflowreg.motion_correction.flow_sequence.FlowSequence`: first pass, temporal
   filter, refinement, with the chosen α);
2. the reference is moved by these flows and given noise drawn from the recording's fitted
   noise variance (:meth:`pyflowreg.core.noise.NoiseModel.variance`) at every pixel's
   brightness, once added and once taken away: frames that look like the recording's, whose
   true flows are known;
3. the same estimation on them shows how much of the wide band it keeps (``k``) and how much
   it gets wrong; :func:`pyflowreg.core.bands.wide_band_gain` turns both into the gain that
   minimises the error of the recording's own flows;
4. Stage 1 multiplies the wide band of every flow by that gain, never by less than 1 (a gain
   below 1 would smooth what the choice of α already judged) nor more than ``MAX_GAIN``, and
   not at all where the simulated estimation keeps less than ``MIN_SHRINKAGE`` of the band or
   gets more than ``MAX_NOISE_RATIO`` of its variance wrong.

The errors of temporally filtered flows are correlated over the filter's window, so 16
consecutive frames hold only one or two independent samples of them: from the middle 16 frames
and one noise draw the gain of the same recording ranged over 1.00-1.06 with the seed. Two
runs apart and the pair of opposite draws, which cancels the noise's effect on the estimates to
first order, bring that to 1.057-1.061 (dim wide deformation, ``docs/method.md``).

Calcium activity, which the simulated frames lack, only adds to the shrinkage of the real
frames, so the simulation errs on the side of too small a gain. Recordings shorter than
``MIN_RECORDING_FRAMES`` keep gain 1 (the calibration estimates the flows of 48 frames),
as do recordings whose noise variance could not be measured (nothing to simulate).
The gain, ``k`` and the noise ratio are in ``status.json`` and ``qc.json`` (``band_gain``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyflowreg.core.bands import LOW_BAND_SIGMA_PX, LowBand, wide_band_gain
from pyflowreg.core.warping import invert_flow, warp_image
from pyflowreg.motion_correction.alpha_selection import MIN_RECORDING_FRAMES, SCORE_MARGIN_PX
from pyflowreg.motion_correction.flow_sequence import FlowSequence
from pyflowreg.motion_correction.preprocess import temporal_radius

CALIBRATION_FRAMES = 16
CALIBRATION_RUNS = 2  # runs of 8 frames, centred at 1/4 and 3/4 of the recording
MAX_GAIN = 1.5
# The simulation takes the recording's own flows for its true motion. Where the estimation
# gets more than this share of the wide band wrong, or keeps less than this share of it, those
# flows are as much error as motion (or a fraction of it), and the gain measured on them made
# recordings worse: 3 photons per unit, jitter and local in patches (k 0.47-0.55, noise ratios
# 0.34-0.41, gains 1.17-1.27): 2.5-4.7 % more error. The dim recordings the gain helps stay
# inside (dim wide deformation: k 0.93, noise ratio 0.03 on 200 frames, 0.75 and 0.22 on 100).
MAX_NOISE_RATIO = 0.3
MIN_SHRINKAGE = 0.6
SEED = 1  # fixed: the same recording always gets the same gain (and segments agree)


@dataclass(frozen=True)
class BandGain:
    """The gain applied to a recording's wide non-rigid band and how it was measured.

    ``shrinkage``: the share of a known wide band the estimation kept (``k``);
    ``noise_ratio``: the variance it got wrong, relative to the band's; ``frames``: the runs
    of the recording's frames (start, stop) the simulation was built from.
    """

    gain: float
    reason: str
    shrinkage: float | None = None
    noise_ratio: float | None = None
    frames: tuple[tuple[int, int], ...] = ()

    def as_dict(self) -> dict:
        def rounded(value):
            return None if value is None else round(value, 4)

        return {"gain": round(self.gain, 4), "reason": self.reason,
                "shrinkage": rounded(self.shrinkage), "noise_ratio": rounded(self.noise_ratio),
                "frames": [list(run) for run in self.frames],
                "band_sigma_px": LOW_BAND_SIGMA_PX}


class _Frames:
    """Frames held in memory, read like a recording by :class:`FlowSequence`."""

    def __init__(self, frames: np.ndarray):
        self.frames = frames
        self.n_frames = len(frames)

    def read(self, t0: int, t1: int) -> np.ndarray:
        return self.frames[t0:t1]


def _flows(frames, reference, options, params, sigma, pool) -> np.ndarray:
    """Stage 1's flows of ``frames`` (N, H, W, C): (N, H, W, 2) float32."""
    sequence = FlowSequence(_Frames(frames), reference, options, params, sigma,
                            temporal_radius(sigma), pool)
    return sequence.chunk(0, len(frames))[1]


def _simulate(reference, flows, rng) -> tuple[np.ndarray, np.ndarray]:
    """The reference moved by each of ``flows``, with the recording's noise added and taken
    away: two (N, H, W, C) sequences with opposite noise draws."""
    image = reference.image.astype(np.float32)
    plus = np.empty((len(flows), *image.shape), dtype=np.float32)
    minus = np.empty_like(plus)
    for t, w in enumerate(flows):
        inverse = invert_flow(w)
        moved, _ = warp_image(image, inverse[..., 0], inverse[..., 1], image)
        for c, model in enumerate(reference.noise_models):
            std = np.sqrt(np.maximum(model.variance(moved[..., c].astype(np.float64)), 0.0))
            noise = std * rng.standard_normal(std.shape)
            plus[t, ..., c] = moved[..., c] + noise
            minus[t, ..., c] = moved[..., c] - noise
    return plus, minus


def calibrate_band_gain(reader, reference, options, params, sigma, *, pool,
                        enabled: bool = True,
                        min_frames: int = MIN_RECORDING_FRAMES) -> BandGain:
    """Measure the gain of ``reader``'s wide non-rigid band (see the module docstring).

    ``params`` are the flow parameters Stage 1 corrects with (the chosen α), ``reference`` the
    recording's :class:`~pyflowreg.motion_correction.reference.Reference` (its image and noise
    models).
    """
    if not enabled:
        return BandGain(1.0, "disabled")
    if reader.n_frames < min_frames:
        return BandGain(1.0, f"recording shorter than {min_frames} frames")
    models = reference.noise_models
    if not models or not all(m.measured for m in models):
        return BandGain(1.0, "no noise variance could be measured")
    length = CALIBRATION_FRAMES // CALIBRATION_RUNS
    runs = tuple((start, start + length) for start in
                 (int(round((i + 0.5) * reader.n_frames / CALIBRATION_RUNS - length / 2))
                  for i in range(CALIBRATION_RUNS)))
    truth = [_flows(np.asarray(reader.read(t0, t1), dtype=np.float32), reference, options,
                    params, sigma, pool) for t0, t1 in runs]
    height, width = truth[0].shape[1:3]
    margin = SCORE_MARGIN_PX + int(np.ceil(max(np.abs(flows).max() for flows in truth)))
    if 2 * margin + 2 * LOW_BAND_SIGMA_PX >= min(height, width):
        return BandGain(1.0, "frame too small for a wide band", frames=runs)
    rng = np.random.default_rng(SEED)
    pairs = [_simulate(reference, flows, rng) for flows in truth]
    # Per noise sign, the estimates of every run in the order of ``truth``.
    estimates = [np.concatenate([_flows(pair[sign], reference, options, params, sigma, pool)
                                 for pair in pairs]) for sign in (0, 1)]
    gain, shrinkage, noise_ratio = wide_band_gain(np.concatenate(truth), estimates,
                                                  LowBand(height, width), margin)
    if noise_ratio > MAX_NOISE_RATIO or shrinkage < MIN_SHRINKAGE:
        return BandGain(1.0, f"the simulated estimation kept {shrinkage:.0%} of the wide band "
                        f"and got {noise_ratio:.0%} of it wrong (calibrated only from "
                        f"{MIN_SHRINKAGE:.0%} kept and up to {MAX_NOISE_RATIO:.0%} wrong)",
                        shrinkage, noise_ratio, runs)
    return BandGain(float(np.clip(gain, 1.0, MAX_GAIN)),
                    "simulated from the recording's own flows and noise", shrinkage,
                    noise_ratio, runs)
