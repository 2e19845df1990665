"""Session Stage 1: motion-correct every recording against a reference built from itself.

Each recording gets ``<output_root>/<stem>/`` with ``compensated.hdf5``, ``idx.hdf``,
``temporal_average.npy``, ``reference.npy`` and ``status.json`` (see
:func:`pyflowreg.motion_correction.compensate_recording`). All recordings are checked (readable,
enough frames, one frame size and channel count) before any output is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyflowreg.io import atomic_save_npy, atomic_save_npz, check_not_constant
from pyflowreg.io.recording import open_recording
from pyflowreg.motion_correction.compensate import compensate_recording, is_complete
from pyflowreg.motion_correction.reference import reference_frame_indices
from pyflowreg.motion_correction.segments import (
    SegmentsIncomplete,
    compensate_recording_in_segments,
    compensate_segment,
    join_segments,
    prepare_segments,
    segment_bounds,
)
from pyflowreg.session.config import ConfigError, SessionConfig, get_array_task_id

__all__ = [
    "atomic_save_npy",
    "atomic_save_npz",
    "check_recordings",
    "compensate_session_recording",
    "discover_input_files",
    "get_array_task_id",
    "run_stage1",
    "run_stage1_array",
    "stage1_tasks",
]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def discover_input_files(config: SessionConfig) -> list[Path]:
    """The session's recordings, sorted by name (see ``SessionConfig.discover_input_files``)."""
    return config.discover_input_files()


def check_recordings(
    files: list[Path], *, options=None, skip_unreadable: bool = False
) -> tuple[tuple[int, int], int]:
    """Open every recording and check they share frame size and channel count.

    Parameters
    ----------
    files : list of Path
        The session's recordings.
    options : OFOptions, optional
        With options, also check that each recording's reference frames are not one constant
        value (flow against a blank reference is undefined).
    skip_unreadable : bool, default False
        Leave recordings that cannot be opened or are too short to their own Stage 1 job
        (which fails naming them) and only compare the others; the workflow uses this so one
        bad recording does not stop the rest under ``--keep-going``.

    Returns
    -------
    ((H, W), C) of the (readable) recordings, or ``((0, 0), 0)`` if none could be read.

    Raises
    ------
    ValueError
        Naming the odd recording and what is wrong with it.
    """
    geometry = {}
    for path in files:
        try:
            with open_recording(path) as reader:
                if reader.n_frames < 2:
                    raise ValueError(
                        f"{path}: has {reader.n_frames} frame(s); motion correction needs at "
                        "least 2"
                    )
                if options is not None:
                    indices = reference_frame_indices(reader.n_frames, options.reference_frames)
                    check_not_constant(reader, indices, path)
                geometry[path] = (reader.frame_shape, reader.n_channels)
        except (ValueError, OSError):
            if not skip_unreadable:
                raise
    if not geometry:
        return (0, 0), 0
    first, (shape, n_ch) = next(iter(geometry.items()))
    for path, (other_shape, other_ch) in geometry.items():
        if other_shape != shape or other_ch != n_ch:
            raise ValueError(
                f"recordings differ in frame size or channels: {first.name} has {shape} x {n_ch} "
                f"channel(s), {path.name} has {other_shape} x {other_ch}; a session needs one "
                "field of view size"
            )
    return shape, n_ch


def compensate_session_recording(config: SessionConfig, recording: Path, *, log=None) -> Path:
    """Stage 1 for one recording of the session; returns its output folder.

    With ``config.segment_frames`` the recording runs as its segments, one after the other
    (the same outputs; the workflow and array jobs run the segments as separate jobs).
    """
    if config.segment_frames:
        return compensate_recording_in_segments(
            config.stage1_options(), input_file=recording,
            output_path=config.output_folder(recording), segment_frames=config.segment_frames,
            resume=config.resume, log=log,
        )
    return compensate_recording(
        config.stage1_options(),
        input_file=recording,
        output_path=config.output_folder(recording),
        resume=config.resume,
        log=log,
    )


def stage1_tasks(config: SessionConfig, files: list[Path] | None = None
                 ) -> list[tuple[Path, int | None]]:
    """The Stage 1 array tasks in order: (recording, segment), segment None when unsplit.

    Without ``segment_frames`` there is one task per recording; with it, one per segment of
    each recording (frame counts are read from the headers).
    """
    files = config.discover_input_files() if files is None else files
    if not config.segment_frames:
        return [(path, None) for path in files]
    tasks = []
    for path in files:
        with open_recording(path) as reader:
            n_frames = reader.n_frames
        tasks.extend((path, k) for k in range(len(segment_bounds(n_frames,
                                                                 config.segment_frames))))
    return tasks


def _run_segment_task(config: SessionConfig, recording: Path, segment: int, log) -> Path:
    """One segment of an array job: prepare if no task did yet, correct, join if last."""
    options, folder = config.stage1_options(), config.output_folder(recording)
    if config.resume and is_complete(folder, recording, options):
        log(f"{recording.name}: complete result found in {folder}, skipping")
        return folder
    # Every task of a recording may find the preparation missing and build it: it is
    # deterministic and written atomically, so concurrent builds agree and no task waits on
    # a lock that a killed task would leave behind.
    prepare_segments(options, input_file=recording, output_path=folder,
                     segment_frames=config.segment_frames, resume=True, log=log)
    compensate_segment(options, input_file=recording, output_path=folder, segment=segment,
                       resume=config.resume, log=log)
    try:
        join_segments(options, input_file=recording, output_path=folder, log=log)
    except SegmentsIncomplete as exc:
        log(f"{recording.name}: segment {segment} done; the join waits for the others ({exc})")
    return folder


def run_stage1(config: SessionConfig, *, log=_stderr) -> list[Path]:
    """Motion-correct every recording of the session in this process.

    Returns the output folders in recording order. Recordings with complete, verified outputs
    are skipped when ``config.resume`` is true. With ``config.scheduler == "array"`` only the
    recording of this array task is corrected (:func:`run_stage1_array`) and its folder is the
    one returned.
    """
    config.validate()  # fields may have been assigned after construction
    if config.scheduler == "array":
        return [run_stage1_array(config, log=log)]
    files = config.discover_input_files()
    check_recordings(files, options=config.stage1_options())
    config.resolve_center(files)  # a bad center is reported before hours of Stage 1
    return [compensate_session_recording(config, path, log=log) for path in files]


def run_stage1_array(
    config: SessionConfig, task_id: int | None = None, *, log=_stderr
) -> Path:
    """Stage 1 for the one recording of this array task (1-based task id).

    With ``config.segment_frames`` a task is one segment of one recording (see
    :func:`stage1_tasks`): the task prepares the recording if no other did yet, corrects its
    segment and, when it finds every segment of the recording complete, joins them.

    ``task_id`` defaults to :func:`~pyflowreg.session.config.get_array_task_id`
    (``SLURM_ARRAY_TASK_ID``, ``SGE_TASK_ID``, ``PBS_ARRAY_INDEX``/``PBS_ARRAYID``).

    Like the workflow, every task first checks the whole session (headers only): recordings of
    different frame size or channel count and a bad ``center`` stop every task before any output
    is written, while a recording that cannot be read fails only its own task, so the other
    tasks of the array still finish.
    """
    config.validate()
    if task_id is None:
        task_id = get_array_task_id()
        if task_id is None:
            raise ConfigError(
                "no array task id: none of SLURM_ARRAY_TASK_ID, SGE_TASK_ID, PBS_ARRAY_INDEX, "
                "PBS_ARRAYID is set"
            )
    files = config.discover_input_files()
    check_recordings(files, skip_unreadable=True)
    config.resolve_center(files)
    tasks = stage1_tasks(config, files)
    if not 1 <= task_id <= len(tasks):
        what = "segments" if config.segment_frames else "recordings"
        raise ConfigError(
            f"array task id {task_id} is outside 1..{len(tasks)} (the session has "
            f"{len(tasks)} {what})"
        )
    recording, segment = tasks[task_id - 1]
    if segment is None:
        return compensate_session_recording(config, recording, log=log)
    return _run_segment_task(config, recording, segment, log)
