"""Per-frame flows of a recording in frame order: first pass, temporal filter, refinement.

:class:`FlowSequence` is Stage 1's estimation of every frame's flow, chunk by chunk; the
correction (:mod:`pyflowreg.motion_correction.compensate`) warps and writes what it delivers,
and the calibration of the wide band's gain (:mod:`pyflowreg.motion_correction.band_gain`) runs
the same estimation on simulated frames.
"""

from __future__ import annotations

import numpy as np

from pyflowreg.core import temporal
from pyflowreg.core.bands import LowBand
from pyflowreg.core.optical_flow import (
    FlowEstimator,
    first_pass_parameters,
    refinement_parameters,
)
from pyflowreg.motion_correction.preprocess import prefilter_image
from pyflowreg.motion_correction.reference import read_filtered


def _batch_segments(t0: int, t1: int, buffer_size: int) -> list[tuple[int, int]]:
    """Split frames [t0, t1) where a batch of ``buffer_size`` frames ends."""
    cuts = [t for t in range(t0 + 1, t1) if t % buffer_size == 0]
    edges = [t0, *cuts, t1]
    return list(zip(edges[:-1], edges[1:], strict=False))


class FlowSequence:
    """Per-frame flows of a recording, delivered chunk by chunk, temporally filtered.

    Flows are estimated in frame order ahead of the chunk being written, because the filter of
    frame t looks at frames t - R .. t + R (R = ``reach``). Each batch of ``buffer_size``
    frames after the first starts from the flow of the batch before it: its mean frame
    registered to the reference (:meth:`_batch_start`). That start depends on the frames alone,
    not on earlier estimates, so a run can begin at any chunk (:meth:`start_at`) and deliver
    exactly the flows of a run from frame 0; this is what lets one recording be split into
    segments.

    With refinement, every frame's filtered first estimate becomes the prior of a second one
    (see :func:`pyflowreg.core.optical_flow.refinement_parameters`), which is filtered again:
    first estimates run 2 R frames ahead of the chunk, refined ones R. Only frames within reach
    of the current chunk are kept, so memory does not grow with the recording.

    ``wide_band_gain`` multiplies the wide band of every delivered flow's non-rigid part
    (:class:`pyflowreg.core.bands.LowBand`; 1 delivers the flows as estimated).
    """

    def __init__(self, reader, reference, options, params, sigma, radius, pool, *,
                 wide_band_gain: float = 1.0):
        self.reader, self.pool = reader, pool
        self.normalization, self.sigma, self.radius = reference.normalization, sigma, radius
        self.buffer_size = options.buffer_size
        self.reach = temporal.window_radius() if options.temporal_filter else 0
        fixed = reference.filtered(sigma)
        first_pass = first_pass_parameters(params) if options.refinement else params
        self.estimator = FlowEstimator(fixed, first_pass, weight=options.weight)
        self.refiner = None
        if options.refinement:
            refine_params, self.refine_top_level = refinement_parameters(params)
            self.refiner = FlowEstimator(fixed, refine_params, weight=options.weight)
        self.chunk_frames = options.chunk_frames
        self.raw, self.frames = {}, {}
        self.flows, self.summaries = {}, {}  # first estimates
        self.refined, self.refined_summaries = {}, {}
        self.next_frame = self.next_refined = 0
        self.noise_px = []  # per chunk: median noise of the first estimates' summaries
        self.batch_starts = {0: None}  # batch index -> initial flow of its frames
        self.wide_band_gain = float(wide_band_gain)
        self.band = LowBand(*fixed.shape[:2]) if self.wide_band_gain != 1.0 else None

    def _batch_start(self, batch: int):
        """Initial flow of a batch: the previous batch's mean frame registered to the reference.

        Frames are summed one by one in float64, so the start does not depend on which run
        asks for it.
        """
        if batch not in self.batch_starts:
            t0, t1 = (batch - 1) * self.buffer_size, batch * self.buffer_size
            total = None
            for a in range(t0, t1, self.chunk_frames):
                for frame in np.asarray(self.reader.read(a, min(t1, a + self.chunk_frames)),
                                        dtype=np.float64):
                    total = frame.copy() if total is None else np.add(total, frame, out=total)
            mean = (total / (t1 - t0)).astype(np.float32)
            norm = self.normalization
            moving = norm.stabilise(prefilter_image(norm.apply(mean), self.sigma))
            # Requests come in frame order; older batches are not asked for again.
            self.batch_starts = {b: w for b, w in self.batch_starts.items()
                                 if b == 0 or b >= batch - 1}
            self.batch_starts[batch] = self.estimator.estimate(moving)
        return self.batch_starts[batch]

    def _estimate(self, t0: int, t1: int) -> None:
        raw, filtered = read_filtered(
            self.reader, t0, t1, self.normalization, self.sigma, self.radius
        )
        for a, b in _batch_segments(t0, t1, self.buffer_size):
            uv = self._batch_start(a // self.buffer_size)
            ws = self.pool.map(lambda f, uv=uv: self.estimator.estimate(f, uv=uv),
                               list(filtered[a - t0 : b - t0]))
            for t, w in zip(range(a, b), ws, strict=True):
                self.raw[t], self.flows[t] = raw[t - t0], w
                self.summaries[t] = temporal.flow_summary(w)
                if self.refiner is not None:
                    self.frames[t] = filtered[t - t0]
        self.next_frame = t1

    def _filtered(self, flows: dict, summaries: dict, t0: int, t1: int):
        """Filtered flows and window indices of frames [t0, t1) from the estimates in reach."""
        lo, hi = max(0, t0 - self.reach), min(self.reader.n_frames, t1 + self.reach)
        span = range(lo, hi)
        stacked = np.stack([summaries[t] for t in span])
        filtered, windows, _ = temporal.filter_sequence(
            [flows[t] for t in span], stacked, range(t0 - lo, t1 - lo), map_fn=self.pool.map
        )
        return filtered, windows, stacked

    def _filtered_first(self, t0: int, t1: int):
        """Filtered first estimates of frames [t0, t1); records the noise they were judged by."""
        filtered, windows, stacked = self._filtered(self.flows, self.summaries, t0, t1)
        self.noise_px.append(float(np.median(temporal.summary_noise(stacked)[2:])))
        return filtered, windows

    def _refine(self, t1: int) -> None:
        # Priors of frames [next_refined, t1), then their refined estimates.
        t0 = self.next_refined
        priors, _ = self._filtered_first(t0, t1)
        refined = self.pool.map(
            lambda item: self.refiner.estimate(item[0], uv=item[1], prior=item[1],
                                               top_level=self.refine_top_level),
            [(self.frames[t], prior) for t, prior in zip(range(t0, t1), priors, strict=True)],
        )
        for t, w in zip(range(t0, t1), refined, strict=True):
            self.refined[t], self.refined_summaries[t] = w, temporal.flow_summary(w)
            del self.frames[t]
        self.next_refined = t1

    def start_at(self, start: int) -> None:
        """Deliver chunks from frame ``start`` on exactly as a run from frame 0 would.

        ``start`` must begin a chunk. The temporal filter of a span judges the noise over the
        whole span, so the refined estimates that the first chunks look back on are recomputed
        over the same spans a run from frame 0 used: span k ends at frame (k + 1) C + R.
        """
        if start % self.chunk_frames:
            raise ValueError(f"start frame {start} does not begin a chunk of "
                             f"{self.chunk_frames} frames")
        if start == 0:
            return
        n_frames, reach = self.reader.n_frames, self.reach
        if self.refiner is None:
            self.next_frame = max(0, start - reach)
            return

        def span_end(k: int) -> int:
            return 0 if k < 0 else min(n_frames, (k + 1) * self.chunk_frames + reach)

        last = start // self.chunk_frames - 1  # the span the chunk before `start` refined
        first = next(k for k in range(last + 1) if span_end(k) > start - reach)
        self.next_refined = span_end(first - 1)
        self.next_frame = max(0, self.next_refined - reach)
        self._estimate(self.next_frame, min(n_frames, span_end(last) + reach))
        for k in range(first, last + 1):
            if span_end(k) > self.next_refined:
                self._refine(span_end(k))
        # The earlier run recorded these spans' noise and wrote these frames.
        self.noise_px.clear()
        for t in [t for t in self.raw if t < start]:
            del self.raw[t]
        for t in [t for t in self.frames if t < self.next_refined]:
            del self.frames[t]

    def chunk(self, t0: int, t1: int):
        """Raw frames, filtered flows and chosen window indices of frames [t0, t1)."""
        n_frames, reach = self.reader.n_frames, self.reach
        lookahead = 2 * reach if self.refiner is not None else reach
        ahead = min(n_frames, t1 + lookahead)
        if ahead > self.next_frame:
            self._estimate(self.next_frame, ahead)
        if not reach:
            windows = np.zeros(t1 - t0, dtype=int)
            filtered = [self.flows[t] for t in range(t0, t1)]
        elif self.refiner is None:
            filtered, windows = self._filtered_first(t0, t1)
        else:
            refined_ahead = min(n_frames, t1 + reach)
            if refined_ahead > self.next_refined:
                self._refine(refined_ahead)
            filtered, windows, _ = self._filtered(self.refined, self.refined_summaries, t0, t1)
        raw = [self.raw.pop(t) for t in range(t0, t1)]
        # The next chunk's filters look back `reach` frames from t1; first estimates feed
        # priors from t1 + reach on, so they look back to t1.
        keep_first = t1 if self.refiner is not None else t1 - reach
        for t in [t for t in self.flows if t < keep_first]:
            del self.flows[t], self.summaries[t]
        for t in [t for t in self.refined if t < t1 - reach]:
            del self.refined[t], self.refined_summaries[t]
        if self.band is not None:
            filtered = self.pool.map(lambda w: self.band.scaled(w, self.wide_band_gain),
                                     filtered)
        return raw, np.stack(filtered), windows
