"""The reference image of a recording: frames chosen within it, registered to their mean, averaged.

Two things make this reference better than a plain average of pre-registered frames:

- the window of reference frames is clipped to the recording (never repeating a frame), and
- each pass re-centres the average on the *mean position* of the frames: after registering every
  frame to the current reference, the mean flow over frames says how far the reference sits from
  the frames' average geometry, and the new average is warped back by it. With zero-mean motion
  the reference therefore lands on the motion-free position rather than on wherever the first
  average happened to be.

Frames are streamed in chunks, so memory does not grow with the number of reference frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from pyflowreg.core.noise import NoiseModel, fit_noise_model, pair_samples, stabilising_shift
from pyflowreg.core.optical_flow import FlowEstimator
from pyflowreg.core.warping import warp_image
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.motion_correction.preprocess import (
    Normalization,
    prefilter_image,
    temporal_radius,
)

REFERENCE_WINDOW_FRAMES = 450  # length of the default window 50..499
COARSE_FIRST_PASS_LEVELS = 2  # the first pass stops this many pyramid levels above the preset's
NOISE_PAIRS = 16  # consecutive frame pairs read to fit the noise model


def reference_frame_indices(n_frames: int, reference_frames) -> np.ndarray:
    """0-based frame indices of the reference, all distinct and inside the recording.

    ``reference_frames`` is a window ``[start, stop)`` or an explicit list of indices. A window
    keeps its length where the recording allows and slides towards the start when the recording
    is too short for it; explicit indices outside the recording are an error.
    """
    frames = list(reference_frames)
    if len(frames) == 2 and frames[0] < frames[1]:
        start, stop = int(frames[0]), int(frames[1])
        length = min(stop - start, n_frames)
        start = max(0, min(start, n_frames - length))
        return np.arange(start, start + length)
    indices = np.unique(np.asarray(frames, dtype=np.int64))
    if indices.max() >= n_frames:
        raise ValueError(
            f"reference_frames {frames} name frames beyond the recording's {n_frames} frames"
        )
    return indices


def evenly_spaced(indices: np.ndarray, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` of the sorted ``indices``, evenly spaced, first and last kept."""
    if indices.size <= max_frames:
        return indices
    picks = np.unique(np.round(np.linspace(0, indices.size - 1, max_frames)).astype(int))
    return indices[picks]


def contiguous_runs(indices: np.ndarray, max_len: int) -> list[tuple[int, int]]:
    """Split sorted indices into [t0, t1) runs of consecutive frames, each at most max_len long."""
    runs = []
    start = prev = int(indices[0])
    for i in map(int, indices[1:]):
        if i != prev + 1 or prev + 1 - start >= max_len:
            runs.append((start, prev + 1))
            start = i
        prev = i
    runs.append((start, prev + 1))
    return runs


def read_filtered(reader, t0: int, t1: int, norm: Normalization, sigma: np.ndarray, radius: int):
    """Raw frames [t0, t1) as float32 and their normalised, pre-filtered version.

    ``radius`` frames of context on each side (where they exist) feed the temporal filter.
    """
    lo, hi = max(0, t0 - radius), min(reader.n_frames, t1 + radius)
    raw = np.asarray(reader.read(lo, hi), dtype=np.float32)
    filtered = norm.flow_view(raw, sigma)
    return raw[t0 - lo : t1 - lo], filtered[t0 - lo : t1 - lo]


def fit_recording_noise(reader, n_pairs: int = NOISE_PAIRS) -> list[NoiseModel]:
    """Noise model of every channel from pairs of consecutive frames spread over the recording."""
    starts = np.unique(np.linspace(0, reader.n_frames - 2, min(n_pairs, reader.n_frames - 1))
                       .round().astype(int))
    pairs = np.stack([np.asarray(reader.read(t, t + 2), dtype=np.float64) for t in starts])
    models = []
    for c in range(pairs.shape[-1]):
        models.append(fit_noise_model(*pair_samples(pairs[..., c])))
    return models


def _batches(runs: list[tuple[int, int]], max_frames: int) -> list[list[tuple[int, int]]]:
    """Consecutive runs grouped so that each group holds at most ``max_frames`` frames."""
    groups, current, size = [], [], 0
    for t0, t1 in runs:
        if current and size + (t1 - t0) > max_frames:
            groups.append(current)
            current, size = [], 0
        current.append((t0, t1))
        size += t1 - t0
    if current:
        groups.append(current)
    return groups


@dataclass
class Reference:
    """A recording's reference and how it was built."""

    image: np.ndarray  # (H, W, C) float32, raw intensity units
    normalization: Normalization
    frame_indices: np.ndarray
    passes: int = 0
    offsets_px: list[float] = field(default_factory=list)  # mean |re-centring| per pass
    noise_models: list[NoiseModel] = field(default_factory=list)  # per channel, if fitted

    def filtered(self, sigma: np.ndarray) -> np.ndarray:
        """The reference as the flow sees it: normalised and spatially pre-filtered."""
        norm = self.normalization
        return norm.stabilise(prefilter_image(norm.apply(self.image), sigma))


def build_reference(reader, options: OFOptions, *, log=None, pool=None) -> Reference:
    """Build the reference of the recording behind ``reader`` (a pyflowreg.io MovieReader).

    ``pool`` (a :class:`~pyflowreg.motion_correction.parallel.FramePool`) spreads frames over
    threads; sums are taken in frame order, so the result does not depend on it.
    """
    n_frames = reader.n_frames
    pool = pool or FramePool(1)
    sigma = options.channel_sigma(reader.n_channels)
    indices = evenly_spaced(
        reference_frame_indices(n_frames, options.reference_frames), options.max_reference_frames
    )
    runs = contiguous_runs(indices, options.chunk_frames)
    radius = temporal_radius(sigma)

    mean = np.zeros((*reader.frame_shape, reader.n_channels), dtype=np.float64)
    for t0, t1 in runs:
        mean += np.asarray(reader.read(t0, t1), dtype=np.float64).sum(axis=0)
    mean = (mean / indices.size).astype(np.float32)
    filtered_mean = prefilter_image(mean, sigma)
    norm = Normalization.from_image(
        filtered_mean, options.channel_normalization, weight=options.weight
    )
    noise_models = []
    if options.stabilise_noise and n_frames >= 2:
        noise_models = fit_recording_noise(reader)
        shifts = [stabilising_shift(m) if m.stabilises else np.nan for m in noise_models]
        # Normalising and Gaussian filtering commute: the filtered mean serves both.
        norm = norm.with_stabiliser(shifts, norm.apply(filtered_mean))
    reference = Reference(mean, norm, indices, noise_models=noise_models)
    if n_frames < 2 or indices.size < 2:
        return reference

    params = options.flow_parameters
    # The first pass only has to find the frames' rough geometry, so it stops at a coarser
    # level; later passes refine at the preset's own.
    coarse = dataclasses.replace(params, min_level=params.min_level + COARSE_FIRST_PASS_LEVELS)
    for n_pass in range(1, options.reference_passes + 1):
        estimator = FlowEstimator(
            reference.filtered(sigma), coarse if n_pass == 1 else params, weight=options.weight
        )
        registered_sum = np.zeros_like(mean, dtype=np.float64)
        flow_sum = np.zeros((*reader.frame_shape, 2), dtype=np.float64)
        def register(item, estimator=estimator, fill=reference.image):
            raw_frame, filtered_frame = item
            w = estimator.estimate(filtered_frame)
            registered, _ = warp_image(raw_frame, w[..., 0], w[..., 1], fill)
            return w, registered

        for batch in _batches(runs, options.chunk_frames):
            pairs = []
            for t0, t1 in batch:
                raw, filtered = read_filtered(reader, t0, t1, norm, sigma, radius)
                pairs.extend(zip(raw, filtered, strict=True))
            # Spaced-out reference frames form runs of one frame: gather a chunk's worth
            # before handing them to the workers, or they would run one at a time.
            for w, registered in pool.map(register, pairs):
                flow_sum += w
                registered_sum += registered
        mean_flow = (flow_sum / indices.size).astype(np.float32)
        average = (registered_sum / indices.size).astype(np.float32)
        # Warp the average by minus the mean flow: from the reference's geometry back to the
        # frames' mean position.
        recentred, _ = warp_image(average, -mean_flow[..., 0], -mean_flow[..., 1], average)
        offset = float(np.linalg.norm(mean_flow, axis=-1).mean())
        reference = Reference(
            recentred, norm, indices, n_pass, [*reference.offsets_px, offset], noise_models
        )
        if log is not None:
            log(f"reference pass {n_pass}: re-centred by {offset:.3f} px (mean)")
        if n_pass >= 2 and offset < options.reference_tolerance:
            break
    return reference
