"""Motion correction of one recording, streamed in chunks and crash-safe.

``compensate_recording`` validates the input, builds the reference, then reads, corrects and
writes the recording ``chunk_frames`` at a time, so memory does not depend on its length. Every
output goes to a temporary file that is renamed into place only when complete, and
``status.json`` is written last: a folder without a complete ``status.json`` is never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

from pyflowreg import __version__
from pyflowreg.core.optical_flow import FlowEstimator, channel_weights
from pyflowreg.core.threads import available_cpus, set_numba_threads
from pyflowreg.core.warping import warp_image
from pyflowreg.io import (
    atomic_output,
    atomic_save_npy,
    check_finite,
    check_not_constant,
    cleanup_stale_temporaries,
    completed_frame_count,
    open_movie,
    open_movie_writer,
)
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.motion_correction.preprocess import temporal_radius
from pyflowreg.motion_correction.reference import (
    build_reference,
    read_filtered,
    reference_frame_indices,
)

STATUS_FILE = "status.json"
IDX_FILE = "idx.hdf"
W_FILE = "w.hdf5"
AVERAGE_FILE = "temporal_average.npy"
REFERENCE_FILE = "reference.npy"
COMPENSATED_STEM = "compensated"
OUTPUT_SUFFIX = {"HDF5": ".hdf5", "TIFF": ".tif", "NPY": ".npy"}
MIN_FRAMES = 2


def compensated_path(folder: Path, output_format: str = "HDF5") -> Path:
    """Where the corrected movie of a recording lives."""
    return Path(folder) / f"{COMPENSATED_STEM}{OUTPUT_SUFFIX[output_format]}"


FINGERPRINT_BLOCK = 4 << 20  # bytes hashed at the start, middle and end of the input


def input_fingerprint(path: Path) -> dict:
    """Name, size and a hash of three 4 MiB blocks of the input, to notice a changed recording.

    Independent of the folder and of modification times, so a session moved or copied to
    another disk resumes instead of starting over; any rewrite of the movie changes the hash.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - FINGERPRINT_BLOCK // 2),
                              max(0, size - FINGERPRINT_BLOCK)}):
            f.seek(offset)
            digest.update(f.read(FINGERPRINT_BLOCK))
    return {"name": path.name, "size": size, "sample_sha1": digest.hexdigest()}


def is_complete(folder: Path, input_file: Path, options: OFOptions) -> bool:
    """True when ``folder`` holds a finished, verified correction of ``input_file``.

    Checks the status file, that the input has not changed since, that the options match and
    that every output exists with the input's frame count.
    """
    folder = Path(folder)
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not status.get("complete") or status.get("input") != input_fingerprint(input_file):
        return False
    if status.get("options") != _comparable_options(options):
        return False
    n_frames = status.get("n_frames")
    outputs = [compensated_path(folder, options.output_format)]
    if options.save_valid_idx:
        outputs.append(folder / IDX_FILE)
    if options.save_w:
        outputs.append(folder / W_FILE)
    if any(completed_frame_count(p) != n_frames for p in outputs):
        return False
    return (folder / AVERAGE_FILE).is_file()


def _comparable_options(options: OFOptions) -> dict:
    # Options that do not change the result are left out, so changing them does not force a
    # recomputation.
    values = options.to_dict()
    for key in ("n_workers", "verbose"):
        values.pop(key, None)
    return values


def _validate_input(input_file: Path, options: OFOptions):
    reader = open_movie(input_file)
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
        if reader.dtype.kind == "f":
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
    input_file : path
        The recording (TIFF, HDF5 or NPY; frames (T, H, W[, C])).
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
    input_file = Path(input_file)
    folder = Path(output_path)
    if log is None and options.verbose:
        def log(msg):
            print(msg, file=sys.stderr)
    log = log or (lambda msg: None)

    reader = _validate_input(input_file, options)
    try:
        if resume and is_complete(folder, input_file, options):
            log(f"{input_file.name}: complete result found in {folder}, skipping")
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        # Leftovers of a killed run are as large as the outputs; their writers are gone.
        cleanup_stale_temporaries(folder)
        # A stale status from an earlier run must not vouch for the files we are replacing.
        (folder / STATUS_FILE).unlink(missing_ok=True)
        # Frames are split across worker threads, each running numba on one thread.
        threads = available_cpus() if options.n_workers is None else options.n_workers
        caller_threads = numba.get_num_threads()
        set_numba_threads(1)
        try:
            with FramePool(threads) as pool:
                _correct(reader, input_file, folder, options, threads, log, pool)
        finally:
            numba.set_num_threads(caller_threads)
    finally:
        reader.close()
    return folder


def _batch_segments(t0: int, t1: int, buffer_size: int) -> list[tuple[int, int]]:
    """Split frames [t0, t1) where a batch of ``buffer_size`` frames ends."""
    cuts = [t for t in range(t0 + 1, t1) if t % buffer_size == 0]
    edges = [t0, *cuts, t1]
    return list(zip(edges[:-1], edges[1:], strict=False))


def _correct(
    reader, input_file: Path, folder: Path, options: OFOptions, threads: int, log,
    pool: FramePool,
) -> None:
    t_start = time.perf_counter()
    n_frames, (height, width), n_ch = reader.n_frames, reader.frame_shape, reader.n_channels
    sigma = options.channel_sigma(n_ch)
    radius = temporal_radius(sigma)
    reference = build_reference(reader, options, log=log, pool=pool)
    t_reference = time.perf_counter() - t_start
    log(f"{input_file.name}: reference from {reference.frame_indices.size} frames, "
        f"{reference.passes} pass(es), {t_reference:.1f} s")
    estimator = FlowEstimator(
        reference.filtered(sigma), options.flow_parameters, weight=options.weight
    )

    out_dtype = reader.dtype if options.output_dtype == "same" else np.dtype(options.output_dtype)
    writers = {}
    try:
        writers["compensated"] = open_movie_writer(
            compensated_path(folder, options.output_format), (height, width), n_ch, out_dtype,
            n_frames=n_frames,
        )
        if options.save_valid_idx:
            writers["idx"] = open_movie_writer(
                folder / IDX_FILE, (height, width), 1, np.uint8, n_frames=n_frames
            )
        if options.save_w:
            writers["w"] = open_movie_writer(
                folder / W_FILE, (height, width), 2, np.float32, n_frames=n_frames,
                dataset_names=("u", "v"),
            )
        average = np.zeros((height, width, n_ch), dtype=np.float64)
        batch_flow_sum = np.zeros((height, width, 2), dtype=np.float64)
        state = {"uv": None}

        def correct_frame(item):
            raw_frame, filtered_frame = item
            w = estimator.estimate(filtered_frame, uv=state["uv"])
            corrected, inside = warp_image(raw_frame, w[..., 0], w[..., 1], reference.image)
            return w, corrected, inside

        for t0 in range(0, n_frames, options.chunk_frames):
            t1 = min(n_frames, t0 + options.chunk_frames)
            raw, filtered = read_filtered(reader, t0, t1, reference.normalization, sigma, radius)
            corrected = np.empty((t1 - t0, height, width, n_ch), dtype=np.float32)
            valid = np.empty((t1 - t0, height, width, 1), dtype=np.uint8)
            flows = np.empty((t1 - t0, height, width, 2), dtype=np.float32) if options.save_w \
                else None
            for a, b in _batch_segments(t0, t1, options.buffer_size):
                if a > 0 and a % options.buffer_size == 0:
                    # The mean flow of the finished batch starts the next one.
                    state["uv"] = (batch_flow_sum / options.buffer_size).astype(np.float32)
                    batch_flow_sum[:] = 0.0
                items = [(raw[t - t0], filtered[t - t0]) for t in range(a, b)]
                for t, (w, frame, inside) in zip(range(a, b), pool.map(correct_frame, items),
                                                 strict=True):
                    batch_flow_sum += w  # summed in frame order: results do not depend on threads
                    corrected[t - t0] = frame
                    valid[t - t0, ..., 0] = np.where(inside, 255, 0)
                    if flows is not None:
                        flows[t - t0] = w
            average += corrected.sum(axis=0, dtype=np.float64)
            writers["compensated"].write(corrected)
            if "idx" in writers:
                writers["idx"].write(valid)
            if flows is not None:
                writers["w"].write(flows)
            log(f"{input_file.name}: {t1}/{n_frames} frames")
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    average /= n_frames
    atomic_save_npy(folder / AVERAGE_FILE, average[..., 0] if n_ch == 1 else average)
    atomic_save_npy(
        folder / REFERENCE_FILE, reference.image[..., 0] if n_ch == 1 else reference.image
    )
    elapsed = time.perf_counter() - t_start
    status = {
        "complete": True,
        "n_frames": n_frames,
        "frame_shape": [height, width],
        "n_channels": n_ch,
        "input": input_fingerprint(input_file),
        "options": _comparable_options(options),
        "reference": {
            "frame_indices": [int(reference.frame_indices[0]), int(reference.frame_indices[-1])],
            "n_frames": int(reference.frame_indices.size),
            "passes": reference.passes,
            "recentring_px": reference.offsets_px,
        },
        "seconds": {"reference": round(t_reference, 3), "total": round(elapsed, 3)},
        "frames_per_second": round(n_frames / elapsed, 3),
        "numba_threads": threads,
        "version": __version__,
        "python": platform.python_version(),
    }
    with atomic_output(folder / STATUS_FILE) as tmp:
        Path(tmp).write_text(json.dumps(status, indent=2))
    log(f"{input_file.name}: done, {n_frames} frames in {elapsed:.1f} s "
        f"({n_frames / elapsed:.1f} frames/s)")
