"""Session Stage 1: motion-correct every recording against a reference built from itself.

Each recording gets ``<output_root>/<stem>/`` with ``compensated.hdf5``, ``idx.hdf``,
``temporal_average.npy``, ``reference.npy`` and ``status.json`` (see
:func:`pyflowreg.motion_correction.compensate_recording`). All recordings are checked (readable,
enough frames, one frame size and channel count) before any output is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyflowreg.io import atomic_save_npy, atomic_save_npz, open_movie
from pyflowreg.motion_correction.compensate import compensate_recording
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
]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def discover_input_files(config: SessionConfig) -> list[Path]:
    """The session's recordings, sorted by name (see ``SessionConfig.discover_input_files``)."""
    return config.discover_input_files()


def check_recordings(files: list[Path]) -> tuple[tuple[int, int], int]:
    """Open every recording and check they share frame size and channel count.

    Returns ((H, W), C). Raises ValueError naming the odd recording.
    """
    geometry = {}
    for path in files:
        with open_movie(path) as reader:
            if reader.n_frames < 2:
                raise ValueError(
                    f"{path}: has {reader.n_frames} frame(s); motion correction needs at least 2"
                )
            geometry[path] = (reader.frame_shape, reader.n_channels)
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
    """Stage 1 for one recording of the session; returns its output folder."""
    return compensate_recording(
        config.stage1_options(),
        input_file=recording,
        output_path=config.output_folder(recording),
        resume=config.resume,
        log=log,
    )


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
    check_recordings(files)
    config.resolve_center(files)  # a bad center is reported before hours of Stage 1
    return [compensate_session_recording(config, path, log=log) for path in files]


def run_stage1_array(
    config: SessionConfig, task_id: int | None = None, *, log=_stderr
) -> Path:
    """Stage 1 for the one recording of this array task (1-based task id).

    ``task_id`` defaults to :func:`~pyflowreg.session.config.get_array_task_id`
    (``SLURM_ARRAY_TASK_ID``, ``SGE_TASK_ID``, ``PBS_ARRAY_INDEX``/``PBS_ARRAYID``).
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
    if not 1 <= task_id <= len(files):
        raise ConfigError(
            f"array task id {task_id} is outside 1..{len(files)} (the session has {len(files)} "
            "recordings)"
        )
    return compensate_session_recording(config, files[task_id - 1], log=log)
