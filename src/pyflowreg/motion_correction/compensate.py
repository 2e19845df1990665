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
from pyflowreg.core.optical_flow import channel_weights
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
from pyflowreg.motion_correction.band_gain import BandGain, calibrate_band_gain
from pyflowreg.motion_correction.flow_sequence import FlowSequence
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import CorrectionPool, FramePool
from pyflowreg.motion_correction.preprocess import temporal_radius
from pyflowreg.motion_correction.progress import Progress
from pyflowreg.motion_correction.qc import QC_FILE, RecordingQC, is_qc_complete
from pyflowreg.motion_correction.reference import (
    Reference,
    build_reference,
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


def _refinement_status(flows: FlowSequence) -> dict:
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
    band_gain: BandGain
    seconds: dict  # "reference", "alpha_selection", "band_gain": wall time of each step


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
    sigma = options.channel_sigma(reader.n_channels)
    selection = select_alpha(
        reader, reference, options.flow_parameters, sigma,
        weight=options.weight, pool=pool, enabled=options.select_alpha,
        factors=REFINED_ALPHA_FACTORS if options.refinement else ALPHA_FACTORS,
    )
    t_selection = time.perf_counter() - t_start - t_reference
    log(f"{input_file.name}: smoothness alpha {selection.alpha[0]:g} ({selection.reason}, "
        f"{t_selection:.1f} s)")
    if selection.fell_back:
        log(f"WARNING: {input_file.name}: the noise fit failed, so the smoothness weight "
            f"alpha {selection.alpha[0]:g} took a fallback path ({selection.reason})")
    t_band = time.perf_counter()
    band_gain = calibrate_band_gain(
        reader, reference, options,
        dataclasses.replace(options.flow_parameters, alpha=selection.alpha), sigma, pool=pool,
        enabled=options.calibrate_gain,
    )
    t_band = time.perf_counter() - t_band
    log(f"{input_file.name}: wide-band gain {band_gain.gain:.3f} ({band_gain.reason}, "
        f"{t_band:.1f} s)")
    return Prepared(reference, selection, band_gain,
                    {"reference": round(t_reference, 3), "alpha_selection": round(t_selection, 3),
                     "band_gain": round(t_band, 3)})


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
        flows = FlowSequence(reader, reference, options, params, sigma, temporal_radius(sigma),
                             pool, wide_band_gain=prepared.band_gain.gain)
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
                                   "band_gain": prepared.band_gain.as_dict(),
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
        "band_gain": prepared.band_gain.as_dict(),
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
