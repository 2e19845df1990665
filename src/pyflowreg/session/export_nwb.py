"""Session export to NWB: ``<final_results>/session.nwb``, and the session facts both exports share.

:func:`export_nwb` writes one NWB file (pynwb, HDF5) holding, in the processing module
``ophys``:

- per recording kept in the session, its aligned video (Stage 3, the center's grid, channel 1)
  as the ``TwoPhotonSeries`` ``aligned_<stem>``, written chunk by chunk (gzip), and the rigid
  part of its Stage 1 correction, the ``TimeSeries`` ``stage1_rigid_shift_<stem>`` (pixels);
- the images ``session_images``: the session mask, the coverage map, the center's temporal
  average and every recording's field to the center (u and v);
- the tables ``recording_qc`` (one row per recording: ``qc/session.json`` and the scalar
  metrics of its ``qc.json``) and ``session_qc`` (the session-wide numbers of
  ``qc/session.json``).

Image arrays follow the NWB schema's axis order, (frame, x, y): every frame and image is stored
transposed, (W, H), and ``dimension`` holds [W, H].

Metadata come from ``config.metadata``; an NWB input's own metadata win (see
:func:`session_metadata`). Nothing is invented: what is known nowhere is left out, and where the
schema requires a value that is not known, ``"unknown"`` (text) or NaN (wavelengths) is written.
A start time (``metadata.session_start_time`` or an NWB input's) and a frame rate (or an NWB
input's timestamps) are required; without them :func:`check_nwb_metadata` refuses before any
work. ``docs/exports.md`` describes the file.
"""

from __future__ import annotations

import json
import math
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pyflowreg import __version__
from pyflowreg.io import atomic_output, completed_frame_count, open_movie
from pyflowreg.io.recording import MovieSource, source_files
from pyflowreg.motion_correction.qc import QC_FILE
from pyflowreg.session.config import ConfigError, SessionConfig
from pyflowreg.session.qc import COVERAGE_FILE, SESSION_QC_FILE, excluded_recordings, qc_dir
from pyflowreg.session.stage2_between_avgs import W_FILE, MissingStageOutput
from pyflowreg.session.stage3_valid_mask import ALIGNED_SUFFIX, FINAL_STEM

NWB_FILE = "session.nwb"
NWB_SUFFIX = ".nwb"
CHANNEL = 0  # the exported (functional) channel, 0-based
UNKNOWN = "unknown"
# HDF5 chunks of whole frames, about 256 KiB (one frame when larger): inside the 10 KiB-1 MiB
# HDF5 recommends, and the write buffer (one chunk) stays small.
CHUNK_BYTES = 1 << 18
GZIP_LEVEL = 4
# Session-wide keys an NWB input states; the first input (in recording order) stating one wins
# over the config. identifier is left out: it names one file, and the export is another file.
SESSION_KEYS = (
    "session_description", "experimenter", "institution", "lab", "experiment_description",
    "subject", "indicator", "excitation_lambda", "emission_lambda", "location", "device",
)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ what the session holds
@dataclass
class ExportedRecording:
    """One recording of the session export: its name, input file and aligned video."""

    stem: str
    input_file: Path | MovieSource
    video: Path
    n_frames: int


def session_mask(config: SessionConfig) -> np.ndarray:
    """The session mask ``final_valid`` of ``final_valid_idx.npz``, (H, W) bool."""
    path = config.final_results_path / f"{FINAL_STEM}.npz"
    if not path.is_file():
        raise MissingStageOutput(f"session mask {path} is missing; run stage 3 first")
    with np.load(path) as bundle:
        return np.asarray(bundle["final_valid"], dtype=bool)


def exported_recordings(config: SessionConfig,
                        recordings: list[Path | MovieSource] | None = None
                        ) -> list[ExportedRecording]:
    """The recordings both exports hold: those of the session in recording order, without the
    ones ``exclude_misaligned`` left out of the session mask (``qc/session.json``).
    ``recordings`` are the session's (default ``config.discover_input_files()``).

    Raises
    ------
    MissingStageOutput
        If a kept recording's aligned video is missing or incomplete.
    """
    final = config.final_results_path
    suffix = ALIGNED_SUFFIX[config.align_output_format.upper()]
    excluded = set(excluded_recordings(final))
    kept = []
    for path in config.discover_input_files() if recordings is None else recordings:
        if path.stem in excluded:
            continue
        video = final / f"aligned_{path.stem}{suffix}"
        n_frames = completed_frame_count(video)
        if n_frames is None:
            raise MissingStageOutput(
                f"recording {path.stem}: aligned video {video} is missing or incomplete; run "
                "stage 3 first"
            )
        kept.append(ExportedRecording(path.stem, path, video, n_frames))
    if not kept:
        raise ValueError(f"{final}: every recording is excluded from the session; nothing to "
                         "export")
    return kept


# ------------------------------------------------------------------ metadata and timing
def nwb_input(recording: Path | MovieSource) -> Path | None:
    """The NWB file a recording is, or None: its metadata and frame times then win.

    A recording of several files takes its session facts and frame rate from the config.
    """
    files = source_files(recording)
    if len(files) == 1 and Path(files[0]).suffix.lower() == NWB_SUFFIX:
        return Path(files[0])
    return None


def input_metadata(config: SessionConfig, recording: Path | MovieSource) -> dict[str, Any]:
    """What a recording's NWB input states (``pyflowreg.io.nwb_session_metadata``); ``{}`` for
    other inputs."""
    path = nwb_input(recording)
    if path is None:
        return {}
    from pyflowreg.io import nwb_session_metadata  # the NWB reader loads only for NWB inputs

    return nwb_session_metadata(path, series=config.nwb_series)


def session_metadata(config: SessionConfig,
                     recordings: list[Path | MovieSource] | None = None,
                     *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Session metadata: ``config.metadata`` with the NWB inputs' own metadata winning.

    For each key of ``SESSION_KEYS`` the first NWB input (in recording order) that states it
    wins over the config (a stated ``subject`` replaces the config's whole); inputs that state
    another value are logged. ``session_start_time`` is the earliest an NWB input states, else
    the config's. ``identifier`` and ``imaging_rate`` come from the config only (the frame
    rate of an NWB input is taken per recording, see :func:`recording_timing`).

    Returns
    -------
    dict
        Only keys stated somewhere, plus ``sources``: for each key, ``"config"`` or the file
        name it came from.
    """
    log = log or _stderr
    recordings = config.discover_input_files() if recordings is None else recordings
    merged = {key: value for key, value in dict(config.metadata or {}).items()}
    sources = {key: "config" for key in merged}
    taken: dict[str, str] = {}
    starts: list[tuple[datetime, str, str]] = []
    for path in recordings:
        stated = input_metadata(config, path)
        for key in SESSION_KEYS:
            if key not in stated:
                continue
            if key in taken:
                if stated[key] != merged[key]:
                    log(f"NWB export: {path.name} states {key} {stated[key]!r}, {taken[key]} "
                        f"states {merged[key]!r}; {taken[key]}'s is kept")
                continue
            merged[key], sources[key], taken[key] = stated[key], path.name, path.name
        if "session_start_time" in stated:
            text = str(stated["session_start_time"])
            starts.append((parse_start_time(text, path.name), text, path.name))
    if starts:
        _, merged["session_start_time"], sources["session_start_time"] = min(starts)
    merged["sources"] = sources
    return merged


def parse_start_time(text: str, source: str = "metadata.session_start_time") -> datetime:
    """An ISO 8601 date and time with time zone as a datetime; ConfigError otherwise."""
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(
            f"{source}: {text!r} is not an ISO 8601 date and time, e.g. "
            "2026-03-01T10:00:00+01:00"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(
            f"{source}: {text!r} has no time zone; give its UTC offset, e.g. "
            f"{value.isoformat()}+01:00 (flowreg-session does not guess it)"
        )
    return value


@dataclass
class RecordingTiming:
    """When a recording's frames were taken, in seconds from its own start time.

    Exactly one of ``rate`` and ``timestamps`` is set. ``start`` is the session start time the
    recording's times count from (an NWB input's own), None where only the config's applies.
    """

    rate: float | None = None
    starting_time: float = 0.0
    timestamps: np.ndarray | None = None
    start: datetime | None = None
    source: str = "config"
    known_start: bool = False


def recording_timing(config: SessionConfig, recording: Path | MovieSource
                     ) -> RecordingTiming | None:
    """A recording's frame times: an NWB input's rate (or timestamps) and start, else
    ``metadata.imaging_rate`` with the first frame at 0 s; None when neither is known."""
    nwb_file = nwb_input(recording)
    if nwb_file is not None:
        from pyflowreg.io import NWBMovieReader  # the NWB reader loads only for NWB inputs

        stated = input_metadata(config, recording)
        start = stated.get("session_start_time")
        start = parse_start_time(start, recording.name) if start is not None else None
        with NWBMovieReader(nwb_file, series=config.nwb_series) as reader:
            rate, first = reader.rate, reader.starting_time
            stamps = None if rate else reader.timestamps()
        if rate:
            return RecordingTiming(rate=float(rate), starting_time=float(first or 0.0),
                                   start=start, source=recording.name, known_start=True)
        if stamps is not None:
            return RecordingTiming(timestamps=np.asarray(stamps, dtype=np.float64),
                                   start=start, source=recording.name, known_start=True)
    rate = (config.metadata or {}).get("imaging_rate")
    if rate is None:
        return None
    return RecordingTiming(rate=float(rate))


def check_nwb_metadata(config: SessionConfig,
                       recordings: list[Path | MovieSource] | None = None,
                       *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Refuse (ConfigError) unless the NWB export has what the format requires.

    An NWB file must state when the session started and when each frame was taken: either
    ``metadata.session_start_time`` or an NWB input stating its own, and for every recording
    ``metadata.imaging_rate`` or its NWB input's rate or timestamps. flowreg-session guesses
    neither. Reads file headers only.

    Parameters
    ----------
    config : SessionConfig
    recordings : list of Path, optional
        The session's recordings (default ``config.discover_input_files()``).
    log : callable(str), optional
        Receives the conflicts between NWB inputs (default: discarded).

    Returns
    -------
    dict
        The merged metadata with their ``sources`` (:func:`session_metadata`).
    """
    recordings = config.discover_input_files() if recordings is None else recordings
    metadata = session_metadata(config, recordings, log=log or (lambda message: None))
    if "session_start_time" not in metadata:
        raise ConfigError(
            "metadata.session_start_time is required for the NWB export (an NWB file states "
            "when its session started, and flowreg-session does not guess it): add it to the "
            "config, e.g. metadata: {session_start_time: '2026-03-01T10:00:00+01:00'}"
        )
    parse_start_time(metadata["session_start_time"], _start_source(metadata["sources"]))
    untimed = [p.name for p in recordings if recording_timing(config, p) is None]
    if untimed:
        raise ConfigError(
            f"metadata.imaging_rate is required for the NWB export: the frame times of "
            f"{untimed} are not known (an NWB series needs a rate or timestamps): add the frame "
            "rate in Hz to the config, e.g. metadata: {imaging_rate: 30.0}"
        )
    return metadata


# ------------------------------------------------------------------ the export
def export_nwb(config: SessionConfig, *, chunk_frames: int | None = None,
               log: Callable[[str], None] | None = None) -> Path:
    """Write the session as ``<final_results>/session.nwb``.

    Parameters
    ----------
    config : SessionConfig
        A session after Stage 3 (its aligned videos, ``final_valid_idx.npz`` and ``qc/``).
    chunk_frames : int, optional
        Most frames read from an aligned video at a time (default
        ``config.align_chunk_size``); fewer when an HDF5 chunk of ``CHUNK_BYTES`` holds fewer.
        Memory does not grow with the number of frames.
    log : callable(str), optional
        Receives what was taken from where and what is not known (default: stderr).

    Returns
    -------
    Path
        The NWB file. It is written under a temporary name and renamed when complete.

    Raises
    ------
    ConfigError
        Start time or frame rate unknown (see :func:`check_nwb_metadata`).
    MissingStageOutput
        Stage 3 outputs are missing.
    """
    import pynwb  # imported here: it takes a second or more, and most jobs never write NWB
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import DynamicTable
    from pynwb.base import Images
    from pynwb.file import Subject
    from pynwb.image import GrayscaleImage
    from pynwb.ophys import ImagingPlane, OpticalChannel, TwoPhotonSeries

    log = log or _stderr
    config.validate()
    chunk_frames = int(chunk_frames or config.align_chunk_size)
    files = config.discover_input_files()
    metadata = check_nwb_metadata(config, files, log=log)
    sources = metadata.pop("sources")
    recordings = exported_recordings(config, files)
    final = config.final_results_path
    mask = session_mask(config)
    report = _read_json(qc_dir(final) / SESSION_QC_FILE)
    start = parse_start_time(metadata["session_start_time"], _start_source(sources))
    for key in sorted(sources):
        if sources[key] != "config":
            log(f"NWB export: {key} from {sources[key]}")
    stems = [r.stem for r in recordings]

    nwbfile = pynwb.NWBFile(
        session_description=metadata.get(
            "session_description",
            f"Recordings {', '.join(stems)} of one field of view, motion-corrected and aligned "
            "to the center recording by flowreg-session.",
        ),
        identifier=metadata.get("identifier", str(uuid.uuid4())),
        session_start_time=start,
        source_script=f"flowreg-session {__version__} (pyflowreg.session.export_nwb)",
        source_script_file_name="export_nwb.py",
        **{key: metadata[key] for key in
           ("experimenter", "institution", "lab", "experiment_description") if key in metadata},
    )
    if "subject" in metadata:
        nwbfile.subject = Subject(**dict(metadata["subject"]))
    device = nwbfile.create_device(
        name="Microscope",
        **({"description": metadata["device"]} if "device" in metadata else {}),
    )
    plane = ImagingPlane(
        name="ImagingPlane",
        optical_channel=OpticalChannel(
            name="OpticalChannel",
            description=f"channel {CHANNEL + 1} of the recordings (the channel exported)",
            emission_lambda=_wavelength(metadata, "emission_lambda", log),
        ),
        description=(f"Field of view of the center recording {report.get('center', '')}: every "
                     "series and image is in its grid"),
        device=device,
        excitation_lambda=_wavelength(metadata, "excitation_lambda", log),
        indicator=str(metadata.get("indicator", UNKNOWN)),
        location=str(metadata.get("location", UNKNOWN)),
    )
    nwbfile.add_imaging_plane(plane)
    for key in ("indicator", "location"):
        if key not in metadata:
            log(f"NWB export: {key} not known; the imaging plane states '{UNKNOWN}' (the schema "
                "requires it)")
    ophys = nwbfile.create_processing_module(
        name="ophys",
        description=(f"Motion correction (Stage 1) and alignment to the center recording "
                     f"(Stages 2 and 3) by flowreg-session {__version__}"),
    )

    for recording in recordings:
        timing = recording_timing(config, recording.input_file)
        times = _series_times(timing, recording.n_frames, start, recording.stem)
        if not timing.known_start:
            log(f"NWB export: {recording.stem}: start relative to the session not known; its "
                "series starts at 0 s")
        series = TwoPhotonSeries(
            name=f"aligned_{recording.stem}",
            imaging_plane=plane,
            data=_video_data(recording, chunk_frames, H5DataIO, log),
            unit="a.u.",
            dimension=[mask.shape[1], mask.shape[0]],
            description=(
                f"Recording {recording.stem} ({recording.input_file.name}) after motion "
                "correction, warped into the center recording's grid (Stage 3: "
                f"{recording.video.name}); channel {CHANNEL + 1}; intensities in the input's "
                "units; axes (frame, x, y)"
            ),
            comments=(
                "Frame times from " + timing.source + (
                    "" if timing.known_start else
                    "; the recording's start relative to the session start is not known, so "
                    "its first frame is at 0 s")
            ),
            **times,
        )
        ophys.add(series)
        rigid = _stage1_rigid(config, recording, log)
        if rigid is not None:
            ophys.add(pynwb.TimeSeries(
                name=f"stage1_rigid_shift_{recording.stem}",
                data=rigid,
                unit="pixels",
                description=(
                    f"Rigid part of the flow that corrected each frame of {recording.stem} in "
                    "Stage 1: mean u (x, along columns) and v (y, along rows) over the frame, in "
                    "the recording's own grid, before the alignment to the center (qc.json "
                    "per_frame.rigid_u, rigid_v; NaN where a frame had none)"
                ),
                comments="columns: u (x), v (y)",
                **({"timestamps": series} if timing.timestamps is not None else
                   {"rate": series.rate, "starting_time": series.starting_time}),
            ))

    ophys.add(_session_images(config, files, mask, report, Images, GrayscaleImage))
    ophys.add(_recording_table(config, files, report, DynamicTable))
    ophys.add(_session_table(report, mask, DynamicTable))

    path = final / NWB_FILE
    with atomic_output(path) as tmp, pynwb.NWBHDF5IO(tmp, mode="w") as io:
        io.write(nwbfile)
    log(f"NWB export: {path} ({len(recordings)} recordings, "
        f"{sum(r.n_frames for r in recordings)} frames)")
    return path


def _start_source(sources: dict) -> str:
    source = sources["session_start_time"]
    return "metadata.session_start_time" if source == "config" else f"{source}: session_start_time"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MissingStageOutput(f"{path} is missing; run stage 3 first") from None


def _wavelength(metadata: dict, key: str, log) -> float:
    value = metadata.get(key)
    if isinstance(value, list | tuple):
        log(f"NWB export: {key} states several values {value}; written as NaN (not known which "
            "is the exported channel's)")
        return math.nan
    if value is None:
        log(f"NWB export: {key} not known; written as NaN (the schema requires it)")
        return math.nan
    return float(value)


def _series_times(timing: RecordingTiming, n_frames: int, start: datetime, stem: str) -> dict:
    """``rate`` and ``starting_time``, or ``timestamps``, relative to the file's start."""
    shift = (timing.start - start).total_seconds() if timing.start is not None else 0.0
    if timing.timestamps is not None:
        if len(timing.timestamps) != n_frames:
            raise ValueError(
                f"recording {stem}: {len(timing.timestamps)} timestamps for {n_frames} frames"
            )
        return {"timestamps": timing.timestamps + shift}
    return {"rate": float(timing.rate), "starting_time": float(timing.starting_time + shift)}


def _blocks(video: Path, frames: int, log) -> Iterator[np.ndarray]:
    """Blocks of ``frames`` frames of the video's exported channel, transposed to (x, y)."""
    with open_movie(video) as reader:
        if reader.n_channels > 1:
            log(f"NWB export: {video.name} has {reader.n_channels} channels; channel "
                f"{CHANNEL + 1} is exported")
        for batch in reader.iter_batches(frames):
            yield np.ascontiguousarray(batch[..., CHANNEL].transpose(0, 2, 1))


@cache
def _video_chunks_type():
    """The hdmf chunk iterator over an aligned video (defined once hdmf is imported)."""
    from hdmf.data_utils import AbstractDataChunkIterator, DataChunk

    class VideoChunks(AbstractDataChunkIterator):
        """An aligned video, one HDF5 chunk of frames at a time, each read when written."""

        def __init__(self, video: Path, shape: tuple[int, int, int], dtype, frames: int, log):
            self._shape, self._dtype, self._frames = shape, np.dtype(dtype), frames
            self._blocks = _blocks(video, frames, log)
            self._done = 0

        def __iter__(self):
            return self

        def __next__(self):
            block = next(self._blocks)
            t0, self._done = self._done, self._done + len(block)
            return DataChunk(data=block, selection=np.s_[t0:self._done, :, :])

        def recommended_chunk_shape(self):
            return (self._frames, *self._shape[1:])

        def recommended_data_shape(self):
            return self._shape

        @property
        def dtype(self):
            return self._dtype

        @property
        def maxshape(self):
            return self._shape

    return VideoChunks


def _video_data(recording: ExportedRecording, chunk_frames: int, H5DataIO, log):
    """The aligned video as a chunked, compressed dataset, (frame, x, y), read chunk by chunk
    while it is written."""
    with open_movie(recording.video) as reader:
        height, width = reader.frame_shape
        dtype = reader.dtype
    frames = max(1, min(recording.n_frames, chunk_frames,
                        CHUNK_BYTES // (height * width * dtype.itemsize)))
    shape = (recording.n_frames, width, height)
    chunks = _video_chunks_type()(recording.video, shape, dtype, frames, log)
    return H5DataIO(chunks, compression="gzip", compression_opts=GZIP_LEVEL,
                    chunks=(frames, width, height))


def _stage1_rigid(config: SessionConfig, recording: ExportedRecording, log) -> np.ndarray | None:
    """(T, 2) float32 per-frame rigid shift (u, v) from Stage 1's qc.json; None without one."""
    path = config.output_folder(recording.input_file) / QC_FILE
    try:
        per_frame = json.loads(path.read_text())["per_frame"]
    except (OSError, json.JSONDecodeError, KeyError):
        log(f"NWB export: {recording.stem}: no Stage 1 quality control ({path}); its per-frame "
            "rigid shift is left out")
        return None
    rigid = np.array([per_frame["rigid_u"], per_frame["rigid_v"]], dtype=np.float64).T
    if len(rigid) != recording.n_frames:
        raise ValueError(
            f"recording {recording.stem}: {path} covers {len(rigid)} frames, its aligned video "
            f"{recording.n_frames}; rerun stage 3"
        )
    return rigid.astype(np.float32)  # null (no valid pixel) became NaN above


def _session_images(config: SessionConfig, files: list[Path | MovieSource], mask: np.ndarray,
                    report: dict, Images, GrayscaleImage):
    final = config.final_results_path
    coverage_path = qc_dir(final) / COVERAGE_FILE
    if not coverage_path.is_file():
        raise MissingStageOutput(f"{coverage_path} is missing; run stage 3 first")
    with np.load(final / f"{FINAL_STEM}.npz") as bundle:
        reference = np.asarray(bundle["reference_average"], dtype=np.float32)
    images = [
        GrayscaleImage(
            name="session_mask", data=mask.astype(np.uint8).T,
            description=("1 where every recording kept in the session is valid "
                         f"({FINAL_STEM}.npz final_valid), in the center's grid; axes (x, y)"),
        ),
        GrayscaleImage(
            name="coverage", data=np.load(coverage_path).T,
            description=("Number of recordings valid at each pixel of the center's grid "
                         f"(qc/{COVERAGE_FILE}); axes (x, y)"),
        ),
        GrayscaleImage(
            name="reference_average",
            data=(reference[..., CHANNEL] if reference.ndim == 3 else reference).T,
            description=(f"Temporal average of the center recording {report.get('center', '')}"
                         f" (channel {CHANNEL + 1}), the reference of the alignment; axes (x, y)"),
        ),
    ]
    for path in files:
        w_path = config.output_folder(path) / W_FILE
        if not w_path.is_file():
            raise MissingStageOutput(f"recording {path.stem}: {w_path} is missing; run stage 2")
        with np.load(w_path) as w:
            for key, axis in (("u", "x, along columns"), ("v", "y, along rows")):
                images.append(GrayscaleImage(
                    name=f"w_to_reference_{key}_{path.stem}",
                    data=np.asarray(w[key], dtype=np.float32).T,
                    description=(
                        f"Stage 2 field of {path.stem} to the center, component {key} ({axis}), "
                        f"pixels ({W_FILE}); the center's pixel (x, y) samples the recording at "
                        "(x + u, y + v); axes (x, y)"
                    ),
                ))
    return Images(
        name="session_images",
        images=images,
        description=("Session mask, coverage map, the center's average and each recording's "
                     "field to the center, all in the center's grid, axes (x, y)"),
    )


def _recording_table(config: SessionConfig, files: list[Path | MovieSource], report: dict,
                     DynamicTable):
    """One row per recording: its session QC entry and its Stage 1 qc.json scalars."""
    rows = []
    for path in files:
        entry = dict(report.get("recordings", {}).get(path.stem, {}))
        row: dict[str, Any] = {"recording": path.stem}
        shift = entry.pop("rigid_shift_px", None) or [None, None]
        for key, value in entry.items():
            row[key] = value
        row["rigid_shift_u_px"], row["rigid_shift_v_px"] = shift
        try:
            stage1 = json.loads((config.output_folder(path) / QC_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            stage1 = {}
        for key, value in stage1.items():
            if isinstance(value, int | float | str | bool) or value is None:
                if key not in ("version",):
                    row[f"stage1_{key}"] = value
        if "outlier_frames" in stage1:
            row["stage1_n_outlier_frames"] = len(stage1["outlier_frames"])
        rows.append(row)
    return _table(
        "recording_qc", rows,
        "Quality control per recording: qc/session.json (alignment to the center, field-of-view "
        "cost) and, prefixed stage1_, the scalar metrics of the recording's Stage 1 qc.json; "
        "docs/quality-control.md defines every column. NaN or '' where not recorded.",
        DynamicTable,
    )


def _session_table(report: dict, mask: np.ndarray, DynamicTable):
    row = {key: value for key, value in report.items()
           if isinstance(value, int | float | str | bool) and key not in ("version",)}
    for key in ("misaligned", "excluded", "alpha_fallback"):
        row[key] = ", ".join(report.get(key, []))
    ys, xs = np.nonzero(mask)
    if len(ys):
        row.update(mask_y0=int(ys.min()), mask_y1=int(ys.max()) + 1, mask_x0=int(xs.min()),
                   mask_x1=int(xs.max()) + 1)
    return _table(
        "session_qc", [row],
        "Session-wide quality control (qc/session.json; docs/quality-control.md) and the "
        "bounding box of the session mask (mask_y0:mask_y1, mask_x0:mask_x1, rows and columns "
        "of the center's grid, end exclusive). misaligned, excluded and alpha_fallback list "
        "recording names, comma-separated.",
        DynamicTable,
    )


def _table(name: str, rows: list[dict], description: str, DynamicTable):
    """A DynamicTable of scalar columns; a column none of the rows knows is left out."""
    table = DynamicTable(name=name, description=description)
    keys = list(dict.fromkeys(key for row in rows for key in row))
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        known = [v for v in values if v is not None]
        if not known:
            continue
        if all(isinstance(v, bool) for v in known) and len(known) == len(values):
            columns[key] = [bool(v) for v in values]
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            columns[key] = [int(v) for v in values]
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in known):
            columns[key] = [math.nan if v is None else float(v) for v in values]
        else:
            columns[key] = ["" if v is None else str(v) for v in values]
    for key in columns:
        table.add_column(name=key, description=f"{key} (see the table's description)")
    for i in range(len(rows)):
        table.add_row({key: values[i] for key, values in columns.items()})
    return table
