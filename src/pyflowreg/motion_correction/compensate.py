"""Motion correction of one recording, streamed in chunks and crash-safe.

``compensate_recording`` validates the input, builds the reference, then reads, corrects and
writes the recording ``chunk_frames`` at a time, so memory does not depend on its length. Every
output goes to a temporary file that is renamed into place only when complete, and
``status.json`` is written last: a folder without a complete ``status.json`` is never trusted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from pyflowreg import __version__
from pyflowreg.core import temporal
from pyflowreg.core.optical_flow import (
    FlowEstimator,
    channel_weights,
    first_pass_parameters,
    refinement_parameters,
)
from pyflowreg.core.threads import available_cpus
from pyflowreg.core.warping import warp_image
from pyflowreg.io import (
    atomic_output,
    atomic_save_npy,
    check_finite,
    check_not_constant,
    cleanup_stale_temporaries,
    completed_frame_count,
    open_movie_writer,
)
from pyflowreg.io.fingerprint import (
    fingerprint_matches,
    input_fingerprint,
    refreshed_fingerprint,
    start_hashing,
)
from pyflowreg.io.recording import as_recording, open_recording
from pyflowreg.motion_correction.alpha_selection import (
    ALPHA_FACTORS,
    REFINED_ALPHA_FACTORS,
    AlphaSelection,
    select_alpha,
)
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import CorrectionPool, FramePool
from pyflowreg.motion_correction.preprocess import prefilter_image, temporal_radius
from pyflowreg.motion_correction.progress import Progress
from pyflowreg.motion_correction.qc import QC_FILE, RecordingQC, is_qc_complete
from pyflowreg.motion_correction.reference import (
    Reference,
    build_reference,
    read_filtered,
    reference_frame_indices,
)

STATUS_FILE = "status.json"
IDX_FILE = "idx.hdf"
W_FILE = "w.hdf5"
AVERAGE_FILE = "temporal_average.npy"
REFERENCE_FILE = "reference.npy"
SEGMENTS_DIR = "segments"  # the parts of a split run (see segments.py)
COMPENSATED_STEM = "compensated"
OUTPUT_SUFFIX = {"HDF5": ".hdf5", "TIFF": ".tif", "NPY": ".npy"}
MIN_FRAMES = 2


def compensated_path(folder: Path, output_format: str = "HDF5") -> Path:
    """Where the corrected movie of a recording lives."""
    return Path(folder) / f"{COMPENSATED_STEM}{OUTPUT_SUFFIX[output_format]}"


def is_complete(folder: Path, input_file: Path, options: OFOptions) -> bool:
    """True when ``folder`` holds a finished, verified correction of ``input_file``.

    Checks the status file, that the options match, that every output exists with the input's
    frame count and that the input has not changed since (see
    :func:`pyflowreg.io.fingerprint.fingerprint_matches`).
    """
    folder = Path(folder)
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not status.get("complete") or status.get("options") != comparable_options(options):
        return False
    n_frames = status.get("n_frames")
    outputs = [compensated_path(folder, options.output_format)]
    if options.save_valid_idx:
        outputs.append(folder / IDX_FILE)
    if options.save_w:
        outputs.append(folder / W_FILE)
    if any(completed_frame_count(p) != n_frames for p in outputs):
        return False
    if options.qc and not is_qc_complete(folder):
        return False
    # Last: when the input's modification time changed this reads the whole file.
    if not (folder / AVERAGE_FILE).is_file():
        return False
    return fingerprint_matches(status.get("input"), input_file)


def _refresh_input_stat(folder: Path, input_file) -> None:
    # A moved or copied session matched by its hash: record the new modification times, so
    # the next check is a stat again instead of another full read.
    status_file = folder / STATUS_FILE
    status = json.loads(status_file.read_text())
    refreshed = refreshed_fingerprint(status["input"], input_file)
    if refreshed is not None:
        status["input"] = refreshed
        with atomic_output(status_file) as tmp:
            Path(tmp).write_text(json.dumps(status, indent=2))


def comparable_options(options: OFOptions) -> dict:
    """The options a result depends on, as stored in ``status.json``.

    Options that do not change the result are left out, so changing them does not force a
    recomputation.
    """
    values = options.to_dict()
    for key in ("n_workers", "verbose"):
        values.pop(key, None)
    return values


def validate_input(input_file: Path, options: OFOptions, *, scan_values: bool = True):
    """Open ``input_file`` and check it can be corrected with ``options``; return the reader.

    Raises ValueError naming the file (too few frames, NaN or inf, blank reference frames,
    options that do not fit its channels) before anything is written. ``scan_values=False``
    leaves out the scan of float input for NaN and inf, which reads every frame: a segment job
    relies on its recording's preparation, which scanned the same, unchanged file.
    """
    reader = open_recording(input_file)
    if reader.n_frames < MIN_FRAMES:
        reader.close()
        raise ValueError(
            f"{input_file}: has {reader.n_frames} frame(s); motion correction needs at least "
            f"{MIN_FRAMES}"
        )
    try:
        options.channel_sigma(reader.n_channels)
        channel_weights(options.weight, reader.n_channels)
        reference_indices = reference_frame_indices(reader.n_frames, options.reference_frames)
        if reader.dtype.kind == "f" and scan_values:
            # Scan float input for NaN/inf before anything is written.
            for t0 in range(0, reader.n_frames, options.chunk_frames):
                t1 = min(reader.n_frames, t0 + options.chunk_frames)
                check_finite(reader.read(t0, t1), input_file, t0)
        check_not_constant(reader, reference_indices, input_file)
    except ValueError as exc:
        reader.close()
        message = str(exc)
        raise ValueError(
            message if str(input_file) in message else f"{input_file}: {message}"
        ) from None
    return reader


def compensate_recording(
    options: OFOptions | dict | None = None,
    *,
    input_file: str | os.PathLike | None = None,
    output_path: str | os.PathLike | None = None,
    resume: bool = True,
    log=None,
) -> Path:
    """Motion-correct one recording against a reference built from it.

    Parameters
    ----------
    options : OFOptions or dict, optional
        Correction options (dicts are validated with ``OFOptions.from_dict``).
    input_file : path or MovieSource
        The recording: a movie file (see :func:`pyflowreg.io.open_movie`) or a
        :class:`~pyflowreg.io.recording.MovieSource` of several files.
    output_path : path
        Folder receiving ``compensated.hdf5`` (or .tif/.npy), ``idx.hdf``, optionally ``w.hdf5``,
        ``temporal_average.npy``, ``reference.npy`` and ``status.json``; created if missing.
    resume : bool, default True
        Skip the work when the folder already holds a complete, verified result for this input
        and these options; otherwise (or with False) recompute everything.
    log : callable(str), optional
        Receives progress messages.

    Returns
    -------
    Path of the output folder.

    Raises
    ------
    FileNotFoundError, ValueError
        For a missing or unusable input, or bad options, before any output is written.
    """
    if not isinstance(options, OFOptions):
        options = OFOptions.from_dict(options)
    if input_file is None or output_path is None:
        raise ValueError("compensate_recording needs input_file and output_path")
    input_file = as_recording(input_file)
    folder = Path(output_path)
    if log is None and options.verbose:
        def log(msg):
            print(msg, file=sys.stderr)
    log = log or (lambda msg: None)

    reader = validate_input(input_file, options)
    try:
        if resume and is_complete(folder, input_file, options):
            log(f"{input_file.name}: complete result found in {folder}, skipping")
            _refresh_input_stat(folder, input_file)
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        # Leftovers of a killed run are as large as the outputs; their writers are gone.
        cleanup_stale_temporaries(folder)
        # A stale status from an earlier run must not vouch for the files we are replacing.
        (folder / STATUS_FILE).unlink(missing_ok=True)
        (folder / QC_FILE).unlink(missing_ok=True)
        # The exact fingerprint for status.json: the whole file, hashed while we correct it.
        start_hashing(input_file)
        # Frames are split across worker threads, each running numba on one thread.
        threads = available_cpus() if options.n_workers is None else options.n_workers
        with CorrectionPool(threads) as pool:
            _correct(reader, input_file, folder, options, threads, log, pool)
    finally:
        reader.close()
    # Segments of an earlier split run of this folder are no longer what its files point at.
    shutil.rmtree(folder / SEGMENTS_DIR, ignore_errors=True)
    return folder


def _batch_segments(t0: int, t1: int, buffer_size: int) -> list[tuple[int, int]]:
    """Split frames [t0, t1) where a batch of ``buffer_size`` frames ends."""
    cuts = [t for t in range(t0 + 1, t1) if t % buffer_size == 0]
    edges = [t0, *cuts, t1]
    return list(zip(edges[:-1], edges[1:], strict=False))


class _FlowSequence:
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
    """

    def __init__(self, reader, reference, options, params, sigma, radius, pool):
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
        return raw, np.stack(filtered), windows


def _noise_status(options: OFOptions, reference) -> dict:
    """What was fitted of the noise and the transform used for the flow, per channel."""
    norm = reference.normalization
    channels = []
    for c, model in enumerate(reference.noise_models):
        applied = norm.shift is not None and bool(np.isfinite(norm.shift[c]))
        channels.append({
            **model.as_dict(),
            "stabilised": applied,
            # sqrt(x + shift) on the normalised, pre-filtered frames (clipped, see preprocess)
            "shift_normalised": round(float(norm.shift[c]), 5) if applied else None,
        })
    return {"enabled": options.stabilise_noise, "channels": channels}


def _refinement_status(flows: _FlowSequence) -> dict:
    if flows.refiner is None:
        return {"enabled": False}
    params = flows.refiner.params
    return {"enabled": True, "alpha": list(params.alpha), "iterations": params.iterations,
            "start_level": flows.refine_top_level, "final_level": params.min_level,
            "first_pass_final_level": flows.estimator.min_level}


@dataclasses.dataclass
class Prepared:
    """What a recording's correction is set up with: its reference and smoothness weight."""

    reference: Reference
    selection: AlphaSelection
    seconds: dict  # "reference", "alpha_selection": wall time of each step


@dataclasses.dataclass
class FramesResult:
    """What correcting a run of frames adds up to (summed over runs by :func:`join_results`)."""

    start: int
    stop: int
    average_sum: np.ndarray  # (H, W, C) float64, corrected frames summed
    window_counts: np.ndarray  # frames per temporal-filter window
    noise_px: list  # per chunk, median noise of the first estimates
    refinement: dict
    qc: RecordingQC | None


def prepare_correction(reader, input_file: Path, options: OFOptions, *, log, pool) -> Prepared:
    """Build the reference of a recording and choose its smoothness weight."""
    t_start = time.perf_counter()
    reference = build_reference(reader, options, log=log, pool=pool)
    t_reference = time.perf_counter() - t_start
    log(f"{input_file.name}: reference from {reference.frame_indices.size} frames, "
        f"{reference.passes} pass(es), {t_reference:.1f} s")
    # Judged on the full first pass, not on Stage 1's shortened one: on that one larger weights
    # gain less and the choice falls short (docs/method.md).
    selection = select_alpha(
        reader, reference, options.flow_parameters, options.channel_sigma(reader.n_channels),
        weight=options.weight, pool=pool, enabled=options.select_alpha,
        factors=REFINED_ALPHA_FACTORS if options.refinement else ALPHA_FACTORS,
    )
    t_selection = time.perf_counter() - t_start - t_reference
    log(f"{input_file.name}: smoothness alpha {selection.alpha[0]:g} ({selection.reason}, "
        f"{t_selection:.1f} s)")
    if selection.fell_back:
        log(f"WARNING: {input_file.name}: the noise fit failed, so the smoothness weight "
            f"alpha {selection.alpha[0]:g} took a fallback path ({selection.reason})")
    return Prepared(reference, selection,
                    {"reference": round(t_reference, 3), "alpha_selection": round(t_selection, 3)})


def open_writers(folder: Path, options: OFOptions, reader, n_frames: int, *,
                 names: dict | None = None) -> dict:
    """Writers of the corrected movie, the valid masks and (if asked) the flows.

    ``names`` maps "compensated", "idx", "w" to other file names inside ``folder``.
    """
    names = names or {}
    height, width = reader.frame_shape
    out_dtype = reader.dtype if options.output_dtype == "same" else np.dtype(options.output_dtype)
    writers = {}
    try:
        writers["compensated"] = open_movie_writer(
            folder / names["compensated"] if "compensated" in names
            else compensated_path(folder, options.output_format),
            (height, width), reader.n_channels, out_dtype, n_frames=n_frames,
        )
        if options.save_valid_idx:
            writers["idx"] = open_movie_writer(
                folder / names.get("idx", IDX_FILE), (height, width), 1, np.uint8,
                n_frames=n_frames,
            )
        if options.save_w:
            writers["w"] = open_movie_writer(
                folder / names.get("w", W_FILE), (height, width), 2, np.float32,
                n_frames=n_frames, dataset_names=("u", "v"),
            )
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return writers


def correct_frames(reader, input_file: Path, prepared: Prepared, options: OFOptions,
                   writers: dict, start: int, stop: int, *, log, pool) -> FramesResult:
    """Correct frames [start, stop) (``start`` begins a chunk) and write them to ``writers``.

    The flows, and so the corrected frames, equal those of a pass over the whole recording.
    Writers are closed on success and aborted on failure.
    """
    n_frames, (height, width), n_ch = reader.n_frames, reader.frame_shape, reader.n_channels
    reference = prepared.reference
    sigma = options.channel_sigma(n_ch)
    params = dataclasses.replace(options.flow_parameters, alpha=prepared.selection.alpha)
    try:
        average = np.zeros((height, width, n_ch), dtype=np.float64)
        flows = _FlowSequence(reader, reference, options, params, sigma, temporal_radius(sigma),
                              pool)
        flows.start_at(start)
        window_counts = np.zeros(len(temporal.DEFAULT_SCALES), dtype=np.int64)
        whole = start == 0 and stop == n_frames  # else a segment: the join draws the figures
        qc = RecordingQC(reference.image, reference.normalization, n_frames, start=start,
                         flow_parameters=options.flow_parameters,
                         prefetch_figures=whole) if options.qc else None
        progress = Progress(stop - start)

        def register_frame(item):
            raw_frame, w = item
            corrected, inside = warp_image(raw_frame, w[..., 0], w[..., 1], reference.image)
            return corrected, inside

        for t0 in range(start, stop, options.chunk_frames):
            t1 = min(stop, t0 + options.chunk_frames)
            raw, w_chunk, windows = flows.chunk(t0, t1)
            window_counts += np.bincount(windows, minlength=window_counts.size)
            corrected = np.empty((t1 - t0, height, width, n_ch), dtype=np.float32)
            valid = np.empty((t1 - t0, height, width, 1), dtype=np.uint8)
            items = list(zip(raw, w_chunk, strict=True))
            for i, (frame, inside) in enumerate(pool.map(register_frame, items)):
                corrected[i] = frame
                valid[i, ..., 0] = np.where(inside, 255, 0)
            average += corrected.sum(axis=0, dtype=np.float64)
            writers["compensated"].write(corrected)
            if "idx" in writers:
                writers["idx"].write(valid)
            if "w" in writers:
                writers["w"].write(w_chunk)
            if qc is not None:
                qc.add_chunk(np.stack(raw), corrected, w_chunk, valid[..., 0])
            log(f"{input_file.name}: {progress.line(t1 - start)}")
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return FramesResult(start, stop, average, window_counts, flows.noise_px,
                        _refinement_status(flows), qc)


def write_results(folder: Path, input_file: Path, options: OFOptions, prepared: Prepared,
                  result: FramesResult, n_frames: int, *, seconds: float, threads: int, log,
                  fingerprint: dict | None = None, extra: dict | None = None) -> None:
    """The temporal average, reference, QC and, last, ``status.json`` of a corrected recording."""
    reference, selection = prepared.reference, prepared.selection
    n_ch = reference.image.shape[2]
    average = result.average_sum / n_frames
    atomic_save_npy(folder / AVERAGE_FILE, average[..., 0] if n_ch == 1 else average)
    atomic_save_npy(
        folder / REFERENCE_FILE, reference.image[..., 0] if n_ch == 1 else reference.image
    )
    noise_status = _noise_status(options, reference)
    if result.qc is not None:
        result.qc.finish(folder, name=input_file.name, log=log,
                         settings={"alpha_selection": selection.as_dict(),
                                   "noise_model": noise_status})
    status = {
        "complete": True,
        "n_frames": n_frames,
        "frame_shape": list(reference.image.shape[:2]),
        "n_channels": n_ch,
        "input": fingerprint if fingerprint is not None else input_fingerprint(input_file),
        "options": comparable_options(options),
        "reference": {
            "frame_indices": [int(reference.frame_indices[0]), int(reference.frame_indices[-1])],
            "n_frames": int(reference.frame_indices.size),
            "passes": reference.passes,
            "recentring_px": reference.offsets_px,
        },
        "temporal_filter": {
            "enabled": options.temporal_filter,
            "flow_noise_px": round(float(np.median(result.noise_px)), 4) if result.noise_px
            else None,
            "window_sigmas_frames": list(temporal.DEFAULT_SCALES),
            "frames_per_window": result.window_counts.tolist(),
        },
        "noise_model": noise_status,
        "alpha_selection": selection.as_dict(),
        "refinement": result.refinement,
        "seconds": {**prepared.seconds, "total": round(seconds, 3)},
        "frames_per_second": round(n_frames / seconds, 3),
        "numba_threads": threads,
        "qc_file": QC_FILE if result.qc is not None else None,
        "version": __version__,
        "python": platform.python_version(),
        **(extra or {}),
    }
    with atomic_output(folder / STATUS_FILE) as tmp:
        Path(tmp).write_text(json.dumps(status, indent=2))
    log(f"{input_file.name}: done, {n_frames} frames in {seconds:.1f} s "
        f"({n_frames / seconds:.1f} frames/s)")


def _correct(
    reader, input_file: Path, folder: Path, options: OFOptions, threads: int, log,
    pool: FramePool,
) -> None:
    t_start = time.perf_counter()
    prepared = prepare_correction(reader, input_file, options, log=log, pool=pool)
    writers = open_writers(folder, options, reader, reader.n_frames)
    result = correct_frames(reader, input_file, prepared, options, writers, 0, reader.n_frames,
                            log=log, pool=pool)
    write_results(folder, input_file, options, prepared, result, reader.n_frames,
                  seconds=time.perf_counter() - t_start, threads=threads, log=log)
