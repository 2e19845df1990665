"""Session export for suite2p: ``<final_results>/suite2p/plane0/data.bin`` and ``ops.npy``.

:func:`export_suite2p` concatenates the aligned videos of the recordings kept in the session
(Stage 3, the center's grid; in recording order), cropped to the bounding box of the session
mask, channel 1 only, into suite2p's registered-movie binary: int16, C order, (nframes, Ly, Lx).
``ops.npy`` holds what suite2p 0.14's ``run_plane(ops)`` needs to detect and extract ROIs
without registering again (``do_registration = 0``), the same dict serves as the ``db`` of
suite2p 1.x's ``run_plane(db, settings)``, and ``frames_per_file`` splits the traces per
recording.

Scaling to int16 is a gain without offset: ``data.bin = round(video * scale)`` with
``scale = 32767 / max |video|`` over everything exported, so the largest magnitude maps to
32767, nothing is clipped and zero stays zero. Ratios such as dF/F and suite2p's neuropil
subtraction ``F - 0.7 Fneu`` are therefore the same as on the float videos; an offset would
change them. ``ops["flowreg_int16_scale"]`` holds the gain (``ops["flowreg_int16_offset"]`` is
0): ``video ~= data.bin / scale``, to within ``0.5 / scale``.

The videos are read twice, chunk by chunk (once for the largest magnitude, once to write), so
memory does not grow with the number of frames. ``data.bin`` and ``ops.npy`` are written under
temporary names; ``ops.npy`` is renamed into place last and marks a complete export (a previous
``ops.npy`` is removed before the new ``data.bin`` takes its name).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyflowreg import __version__
from pyflowreg.io import AtomicOutput, open_movie, write_array
from pyflowreg.session.config import SessionConfig
from pyflowreg.session.export_nwb import (
    CHANNEL,
    NWB_FILE,
    ExportedRecording,
    exported_recordings,
    recording_timing,
    session_mask,
)

SUITE2P_FOLDER = "suite2p"
PLANE_FOLDER = "plane0"
BINARY_FILE = "data.bin"
OPS_FILE = "ops.npy"
INT16_PEAK = 2**15 - 1
SUITE2P_MIN_FRAMES = 50  # suite2p 0.14's run_plane refuses fewer frames


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plane_folder(config: SessionConfig) -> Path:
    """``<final_results>/suite2p/plane0``, the folder of the suite2p export."""
    return config.final_results_path / SUITE2P_FOLDER / PLANE_FOLDER


def export_targets(config: SessionConfig) -> list[Path]:
    """The files the exports of ``config.export`` write: ``session.nwb``; ``data.bin`` and
    ``ops.npy``.

    Examples
    --------
    >>> config = SessionConfig(root="/data/mouse42", export=["suite2p", "nwb"])
    >>> [str(p) for p in export_targets(config)]  # doctest: +NORMALIZE_WHITESPACE
    ['/data/mouse42/final_results/session.nwb',
     '/data/mouse42/final_results/suite2p/plane0/data.bin',
     '/data/mouse42/final_results/suite2p/plane0/ops.npy']
    """
    targets = []
    if "nwb" in config.export:
        targets.append(config.final_results_path / NWB_FILE)
    if "suite2p" in config.export:
        targets += [plane_folder(config) / BINARY_FILE, plane_folder(config) / OPS_FILE]
    return targets


def mask_crop(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` of a boolean mask, 0-based, ends exclusive.

    Examples
    --------
    >>> mask = np.zeros((5, 6), bool)
    >>> mask[1:3, 2:5] = True
    >>> mask_crop(mask)
    (1, 3, 2, 5)
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("the session mask is empty: no pixel is valid in every recording, "
                         "nothing to export")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def int16_scale(peak: float) -> float:
    """Gain mapping magnitudes up to ``peak`` onto int16 without clipping (1 for all-zero data).

    Examples
    --------
    >>> int16_scale(65535.0) * 65535.0
    32767.0
    """
    if not math.isfinite(peak):
        raise ValueError(f"the aligned videos hold non-finite values (largest magnitude {peak})")
    return INT16_PEAK / peak if peak > 0 else 1.0


def _crop_batches(recording: ExportedRecording, crop, chunk_frames: int, shape):
    """Channel-1 frames of the recording's aligned video cropped, (n, Ly, Lx), chunk by chunk."""
    y0, y1, x0, x1 = crop
    with open_movie(recording.video) as reader:
        if reader.frame_shape != shape:
            raise ValueError(
                f"{recording.video}: frames of {reader.frame_shape} pixels, the session mask "
                f"has {shape}; rerun stage 3"
            )
        for batch in reader.iter_batches(chunk_frames):
            yield batch[:, y0:y1, x0:x1, CHANNEL]


def export_suite2p(config: SessionConfig, *, chunk_frames: int | None = None,
                   log: Callable[[str], None] | None = None) -> Path:
    """Write the session as a suite2p plane: ``<final_results>/suite2p/plane0/``.

    Parameters
    ----------
    config : SessionConfig
        A session after Stage 3 (its aligned videos and ``final_valid_idx.npz``).
    chunk_frames : int, optional
        Frames read at a time (default ``config.align_chunk_size``); memory does not grow
        with the number of frames.
    log : callable(str), optional
        Receives the summary and what is not known (default: stderr).

    Returns
    -------
    Path
        ``ops.npy``, written last; ``data.bin`` is next to it.

    Raises
    ------
    MissingStageOutput
        Stage 3 outputs are missing.
    ValueError
        Empty session mask, or non-finite values in an aligned video.

    Notes
    -----
    ``ops.npy`` (``np.load(path, allow_pickle=True).item()``) holds ``Ly``, ``Lx``,
    ``nframes``, ``frames_per_file`` (one entry per recording, in ``filelist`` order),
    ``frames_per_folder``, ``nchannels``, ``nplanes``, ``functional_chan``, ``meanImg`` (mean
    of ``data.bin``), ``yrange``/``xrange`` (the whole crop), ``fs`` when the frame rate is
    known, ``filelist``, ``reg_file``, ``ops_path``, ``save_path``, ``save_path0``,
    ``save_folder``, ``data_path``, ``do_registration = 0``, ``keep_movie_raw = False``, and
    ``flowreg_recordings``, ``flowreg_crop`` (y0, y1, x0, x1 in the center's grid, ends
    exclusive), ``flowreg_valid_mask`` (the session mask inside the crop),
    ``flowreg_int16_scale``, ``flowreg_int16_offset``, ``flowreg_channel`` and
    ``flowreg_version``.
    """
    log = log or _stderr
    config.validate()
    chunk_frames = int(chunk_frames or config.align_chunk_size)
    recordings = exported_recordings(config)
    mask = session_mask(config)
    crop = y0, y1, x0, x1 = mask_crop(mask)
    ly, lx = y1 - y0, x1 - x0

    peak = 0.0
    for recording in recordings:
        for batch in _crop_batches(recording, crop, chunk_frames, mask.shape):
            largest = float(np.abs(batch).max())
            if not math.isfinite(largest):
                raise ValueError(f"{recording.video}: holds non-finite values; cannot scale "
                                 "to int16")
            peak = max(peak, largest)
    scale = int16_scale(peak)

    plane = plane_folder(config)
    plane.mkdir(parents=True, exist_ok=True)
    reg_file, ops_path = plane / BINARY_FILE, plane / OPS_FILE
    binary = AtomicOutput(reg_file)
    ops_output: AtomicOutput | None = None
    try:
        total = np.zeros((ly, lx), dtype=np.float64)
        frames_per_file = []
        with open(binary.temp_path, "wb") as fh:
            for recording in recordings:
                n = 0
                for batch in _crop_batches(recording, crop, chunk_frames, mask.shape):
                    # float64: a float32 product can round across .5 near the peak
                    values = np.rint(batch.astype(np.float64) * scale)
                    np.clip(values, -INT16_PEAK, INT16_PEAK, out=values)  # rounding only
                    values = values.astype(np.int16)
                    write_array(fh, values)
                    total += values.sum(axis=0, dtype=np.float64)
                    n += len(values)
                if n != recording.n_frames:
                    raise ValueError(f"{recording.video}: read {n} of {recording.n_frames} frames")
                frames_per_file.append(n)
        nframes = int(sum(frames_per_file))
        ops = _ops(config, recordings, frames_per_file, total / nframes, mask, crop, scale,
                   reg_file, ops_path, log)
        ops_output = AtomicOutput(ops_path)
        with open(ops_output.temp_path, "wb") as fh:
            np.save(fh, ops, allow_pickle=True)
        # ops.npy marks a complete export: the old one goes before data.bin changes.
        ops_path.unlink(missing_ok=True)
        binary.commit()
        ops_output.commit()
    except BaseException:
        binary.abort()
        if ops_output is not None:
            ops_output.abort()
        raise
    log(f"suite2p export: {reg_file} ({nframes} frames of {ly} x {lx} px from "
        f"{len(recordings)} recordings, int16 = round(video x {scale:.6g}))")
    if nframes < SUITE2P_MIN_FRAMES:
        log(f"suite2p export: {nframes} frames; suite2p 0.14's run_plane needs at least "
            f"{SUITE2P_MIN_FRAMES}")
    return ops_path


def _ops(config, recordings, frames_per_file, mean, mask, crop, scale, reg_file, ops_path,
         log) -> dict:
    y0, y1, x0, x1 = crop
    final = config.final_results_path
    ops = {
        "Ly": y1 - y0,
        "Lx": x1 - x0,
        "nframes": int(sum(frames_per_file)),
        "frames_per_file": np.asarray(frames_per_file, dtype=np.int64),
        # every aligned video lies in one folder, final_results
        "frames_per_folder": np.asarray([sum(frames_per_file)], dtype=np.int64),
        "nchannels": 1,
        "nplanes": 1,
        "functional_chan": 1,
        "meanImg": mean.astype(np.float32),
        "yrange": np.asarray([0, y1 - y0], dtype=np.int64),
        "xrange": np.asarray([0, x1 - x0], dtype=np.int64),
        "filelist": [str(r.video) for r in recordings],
        "reg_file": str(reg_file),
        "ops_path": str(ops_path),
        "save_path": str(reg_file.parent),
        "save_path0": str(final),
        "save_folder": SUITE2P_FOLDER,
        "data_path": [str(final)],
        "do_registration": 0,
        "keep_movie_raw": False,
        "flowreg_recordings": [r.stem for r in recordings],
        "flowreg_crop": np.asarray(crop, dtype=np.int64),
        "flowreg_valid_mask": np.asarray(mask[y0:y1, x0:x1], dtype=bool),
        "flowreg_int16_scale": float(scale),
        "flowreg_int16_offset": 0.0,
        "flowreg_channel": CHANNEL,
        "flowreg_version": __version__,
    }
    fs = _session_rate(config, recordings, log)
    if fs is not None:
        ops["fs"] = fs
    return ops


def _session_rate(config: SessionConfig, recordings: list[ExportedRecording], log) -> float | None:
    """The one frame rate of every exported recording, or None (logged) when not known."""
    rates = set()
    for recording in recordings:
        timing = recording_timing(config, recording.input_file)
        if timing is None or timing.rate is None:
            log(f"suite2p export: frame rate of {recording.stem} not known (set "
                "metadata.imaging_rate); ops.npy has no 'fs', suite2p uses its default")
            return None
        rates.add(round(timing.rate, 9))
    if len(rates) > 1:
        log(f"suite2p export: the recordings have different frame rates {sorted(rates)}; "
            "ops.npy has no 'fs', suite2p uses its default")
        return None
    return rates.pop()
