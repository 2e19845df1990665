"""One recording's correction split into segments that run as separate jobs.

A long recording is corrected in three steps, each of which can run on another node:

1. :func:`prepare_segments` builds the reference, fits the noise model and chooses the
   smoothness weight once, into ``segments/prepared.pkl``;
2. :func:`compensate_segment` corrects frames ``[k S, (k + 1) S)`` (S = ``segment_frames``)
   into ``segments/seg_<k>.hdf5`` (and ``_idx.hdf``, ``_w.hdf5``), reading the frames around
   its borders that the temporal filter and the refinement look at, so its flows and frames
   equal those of a run over the whole recording;
3. :func:`join_segments` writes the outputs of an unsplit run: ``compensated.hdf5``,
   ``idx.hdf`` (and ``w.hdf5``) as HDF5 virtual datasets over the segment files (no second
   copy of the movie on disk), the temporal average, QC and ``status.json``.

Every file is written under a temporary name and renamed when complete; a segment's
``seg_<k>.json`` is written last and names the preparation it belongs to, so a killed segment
is redone alone and a new preparation (other input or options) invalidates every segment.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import uuid
from pathlib import Path

import numpy as np

from pyflowreg import __version__
from pyflowreg.core.threads import available_cpus
from pyflowreg.io import (
    atomic_output,
    completed_frame_count,
    is_temporary_path,
    write_virtual_movie,
)
from pyflowreg.io.fingerprint import fingerprint_matches, input_fingerprint, start_hashing
from pyflowreg.io.recording import as_recording
from pyflowreg.motion_correction.compensate import (
    IDX_FILE,
    QC_FILE,
    SEGMENTS_DIR,
    STATUS_FILE,
    W_FILE,
    FramesResult,
    comparable_options,
    compensated_path,
    correct_frames,
    is_complete,
    open_writers,
    prepare_correction,
    validate_input,
    write_results,
)
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.parallel import CorrectionPool
from pyflowreg.motion_correction.qc import RecordingQC

PREPARED_FILE = "prepared.pkl"
JOIN_METHOD = "virtual"  # HDF5 virtual datasets over the segment files


class SegmentsIncomplete(ValueError):
    """The join was asked for while segments of the recording are still missing."""


def segment_bounds(n_frames: int, segment_frames: int) -> list[tuple[int, int]]:
    """Frame ranges [start, stop) of the ``ceil(n_frames / segment_frames)`` segments."""
    return [(t0, min(n_frames, t0 + segment_frames)) for t0 in range(0, n_frames, segment_frames)]


def check_segment_frames(segment_frames: int, options: OFOptions) -> None:
    """A segment must begin where a run over the whole recording begins a chunk."""
    if segment_frames < 1 or segment_frames % options.chunk_frames:
        lower = max(1, segment_frames // options.chunk_frames) * options.chunk_frames
        raise ValueError(
            f"segment_frames {segment_frames} is not a multiple of chunk_frames "
            f"({options.chunk_frames}): segments start where an unsplit run starts a chunk, so "
            f"that their results are the same (try {lower} or "
            f"{lower + options.chunk_frames})"
        )


def segments_folder(output_path: str | os.PathLike) -> Path:
    return Path(output_path) / SEGMENTS_DIR


def segment_names(index: int | str) -> dict[str, str]:
    """File names of segment ``index`` inside the segments folder.

    A string stands for the 4-digit index itself (the workflow passes ``"{seg}"``).
    """
    stem = f"seg_{index}" if isinstance(index, str) else f"seg_{index:04d}"
    return {"compensated": f"{stem}.hdf5", "idx": f"{stem}_idx.hdf", "w": f"{stem}_w.hdf5",
            "sums": f"{stem}.npz", "status": f"{stem}.json"}


def _options(options) -> OFOptions:
    options = options if isinstance(options, OFOptions) else OFOptions.from_dict(options)
    if options.output_format != "HDF5":
        raise ValueError(
            f"segment_frames needs output_format HDF5 (got {options.output_format}): the "
            "segments are joined into HDF5 virtual datasets"
        )
    return options


def _logger(log):
    return log or (lambda message: None)


def _run_threads(options: OFOptions) -> int:
    return available_cpus() if options.n_workers is None else options.n_workers


def _remove_temporaries(folder: Path, prefix: str) -> None:
    """Delete what a killed writer of files named ``prefix*`` left behind.

    Only the one job that writes these names removes them, so this is safe on a folder that
    other nodes write at the same time (a check of process ids would not be: they are
    per host).
    """
    for path in folder.glob(f".{prefix}*"):
        if is_temporary_path(path):
            path.unlink(missing_ok=True)


def _load_prepared(folder: Path) -> dict | None:
    try:
        with open(segments_folder(folder) / PREPARED_FILE, "rb") as f:
            state = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return state if isinstance(state, dict) and state.get("version") == __version__ else None


def _prepared_matches(state: dict | None, input_file: Path, options: OFOptions,
                      segment_frames: int | None = None) -> bool:
    if state is None or state.get("options") != comparable_options(options):
        return False
    if segment_frames is not None and state.get("segment_frames") != segment_frames:
        return False
    return fingerprint_matches(state.get("input"), input_file)


def prepare_segments(options: OFOptions | dict | None = None, *, input_file, output_path,
                     segment_frames: int, resume: bool = True, log=None) -> Path:
    """Step 1: reference, noise model and smoothness weight of a recording, for its segments.

    Returns the path of ``segments/prepared.pkl``. With ``resume``, a preparation of the same
    input, options and ``segment_frames`` is kept (and with it the segments done so far).
    """
    options = _options(options)
    check_segment_frames(segment_frames, options)
    input_file, folder, log = as_recording(input_file), Path(output_path), _logger(log)
    reader = validate_input(input_file, options)
    target = segments_folder(folder) / PREPARED_FILE
    try:
        if resume and _prepared_matches(_load_prepared(folder), input_file, options,
                                        segment_frames):
            log(f"{input_file.name}: prepared segments found in {target.parent}, kept")
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(target.parent, PREPARED_FILE)
        start_hashing(input_file)
        with CorrectionPool(_run_threads(options)) as pool:
            prepared = prepare_correction(reader, input_file, options, log=log, pool=pool)
        state = {
            "version": __version__,
            "id": uuid.uuid4().hex,  # segments name the preparation they were corrected with
            "options": comparable_options(options),
            "segment_frames": segment_frames,
            "segments": segment_bounds(reader.n_frames, segment_frames),
            "input": input_fingerprint(input_file),
            "prepared": prepared,
        }
    finally:
        reader.close()
    with atomic_output(target) as tmp, open(tmp, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    log(f"{input_file.name}: {len(state['segments'])} segment(s) of {segment_frames} frames")
    return target


def _require_prepared(folder: Path, input_file: Path, options: OFOptions) -> dict:
    state = _load_prepared(folder)
    if state is None:
        raise ValueError(f"{segments_folder(folder) / PREPARED_FILE}: missing or unreadable; "
                         "prepare the recording's segments first")
    if state["options"] != comparable_options(options):
        raise ValueError(f"{segments_folder(folder) / PREPARED_FILE}: was prepared with other "
                         "options; prepare the segments again")
    if not fingerprint_matches(state["input"], input_file):
        raise ValueError(f"{input_file}: changed since its segments were prepared; prepare "
                         "them again")
    return state


def _segment_complete(folder: Path, index: int, state: dict, options: OFOptions) -> bool:
    names = segment_names(index)
    seg_dir = segments_folder(folder)
    try:
        status = json.loads((seg_dir / names["status"]).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    start, stop = state["segments"][index]
    if not status.get("complete") or status.get("prepared_id") != state["id"] \
            or status.get("frames") != [start, stop]:
        return False
    outputs = ["compensated"] + (["idx"] if options.save_valid_idx else []) \
        + (["w"] if options.save_w else [])
    return all(completed_frame_count(seg_dir / names[key]) == stop - start for key in outputs) \
        and (seg_dir / names["sums"]).is_file()


def compensate_segment(options: OFOptions | dict | None = None, *, input_file, output_path,
                       segment: int, resume: bool = True, log=None) -> Path:
    """Step 2: correct segment ``segment`` (0-based) of a prepared recording.

    Returns the segments folder. With ``resume``, a complete segment of the current
    preparation is kept.
    """
    options = _options(options)
    input_file, folder, log = as_recording(input_file), Path(output_path), _logger(log)
    reader = validate_input(input_file, options, scan_values=False)
    try:
        state = _require_prepared(folder, input_file, options)
        if not 0 <= segment < len(state["segments"]):
            raise ValueError(f"{input_file}: segment {segment} is outside 0.."
                             f"{len(state['segments']) - 1}")
        seg_dir, names = segments_folder(folder), segment_names(segment)
        if resume and _segment_complete(folder, segment, state, options):
            log(f"{input_file.name}: segment {segment} complete, kept")
            return seg_dir
        (seg_dir / names["status"]).unlink(missing_ok=True)
        _remove_temporaries(seg_dir, Path(names["compensated"]).stem)
        start, stop = state["segments"][segment]
        t_start = time.perf_counter()
        log(f"{input_file.name}: segment {segment}, frames {start}..{stop - 1}")
        with CorrectionPool(_run_threads(options)) as pool:
            writers = open_writers(seg_dir, options, reader, stop - start, names=names)
            result = correct_frames(reader, input_file, state["prepared"], options, writers,
                                    start, stop, log=log, pool=pool)
    finally:
        reader.close()
    sums = {"average_sum": result.average_sum, "window_counts": result.window_counts,
            "noise_px": np.asarray(result.noise_px, dtype=np.float64)}
    if result.qc is not None:
        sums.update({f"qc_{key}": value for key, value in result.qc.state().items()})
    with atomic_output(seg_dir / names["sums"]) as tmp, open(tmp, "wb") as f:
        np.savez(f, **sums)
    status = {"complete": True, "prepared_id": state["id"], "frames": [start, stop],
              "refinement": result.refinement,
              "seconds": round(time.perf_counter() - t_start, 3), "version": __version__}
    with atomic_output(seg_dir / names["status"]) as tmp:
        Path(tmp).write_text(json.dumps(status, indent=2))
    return seg_dir


def join_segments(options: OFOptions | dict | None = None, *, input_file, output_path,
                  log=None) -> Path:
    """Step 3: the outputs of an unsplit run from the complete segments; returns the folder.

    The movies become HDF5 virtual datasets that read the segment files in place: joining
    costs no copy, and the folder stays valid as long as it is moved or copied whole (a
    reader names a missing segment file instead of returning its frames as zeros).
    """
    options = _options(options)
    input_file, folder, log = as_recording(input_file), Path(output_path), _logger(log)
    t_start = time.perf_counter()
    reader = validate_input(input_file, options, scan_values=False)
    try:
        state = _require_prepared(folder, input_file, options)
        n_frames, bounds = reader.n_frames, state["segments"]
    finally:
        reader.close()
    missing = [k for k in range(len(bounds)) if not _segment_complete(folder, k, state, options)]
    if missing:
        raise SegmentsIncomplete(f"{input_file}: segment(s) {missing} of {len(bounds)} are "
                                 "not complete; run them before the join")
    seg_dir = segments_folder(folder)
    # No clean-up of temporaries here: two array tasks may join the same recording at once
    # (on different hosts, where process ids say nothing), and what a killed join leaves is
    # small; the next unsplit run of the folder removes it.
    (folder / STATUS_FILE).unlink(missing_ok=True)
    (folder / QC_FILE).unlink(missing_ok=True)
    movies = {"compensated": compensated_path(folder, "HDF5")}
    if options.save_valid_idx:
        movies["idx"] = folder / IDX_FILE
    if options.save_w:
        movies["w"] = folder / W_FILE
    for key, path in movies.items():
        write_virtual_movie(path, [seg_dir / segment_names(k)[key] for k in range(len(bounds))])

    sums = [dict(np.load(seg_dir / segment_names(k)["sums"])) for k in range(len(bounds))]
    statuses = [json.loads((seg_dir / segment_names(k)["status"]).read_text())
                for k in range(len(bounds))]
    prepared = state["prepared"]
    qc = None
    if options.qc:
        qc = RecordingQC.merged(
            prepared.reference.image, prepared.reference.normalization, n_frames,
            [{key[3:]: value for key, value in s.items() if key.startswith("qc_")}
             for s in sums],
            flow_parameters=options.flow_parameters,
        )
    result = FramesResult(
        0, n_frames,
        average_sum=np.sum([s["average_sum"] for s in sums], axis=0),
        window_counts=np.sum([s["window_counts"] for s in sums], axis=0),
        noise_px=[float(x) for s in sums for x in s["noise_px"]],
        refinement=statuses[0]["refinement"], qc=qc,
    )
    segment_seconds = [status["seconds"] for status in statuses]
    seconds = sum(segment_seconds) + sum(prepared.seconds.values()) \
        + time.perf_counter() - t_start
    write_results(
        folder, input_file, options, prepared, result, n_frames, seconds=seconds,
        threads=_run_threads(options), log=log, fingerprint=state["input"],
        extra={"segments": {
            "segment_frames": state["segment_frames"],
            "count": len(bounds),
            "join": JOIN_METHOD,
            "files": f"{SEGMENTS_DIR}/seg_*",
            "seconds": segment_seconds,
        }},
    )
    return folder


def compensate_recording_in_segments(options: OFOptions | dict | None = None, *, input_file,
                                     output_path, segment_frames: int, resume: bool = True,
                                     log=None) -> Path:
    """All three steps in this process: a split run's outputs without a scheduler."""
    options = _options(options)
    input_file, folder = as_recording(input_file), Path(output_path)
    if resume and is_complete(folder, input_file, options):
        _logger(log)(f"{input_file.name}: complete result found in {folder}, skipping")
        return folder
    prepare_segments(options, input_file=input_file, output_path=folder,
                     segment_frames=segment_frames, resume=resume, log=log)
    for k in range(len(_load_prepared(folder)["segments"])):
        compensate_segment(options, input_file=input_file, output_path=folder, segment=k,
                           resume=resume, log=log)
    return join_segments(options, input_file=input_file, output_path=folder, log=log)
