"""Session configuration: which recordings, where outputs go, and the registration parameters.

``SessionConfig`` is validated against ``session_config.schema.json`` (JSON Schema draft
2020-12), the same file the Snakemake workflow validates its config with. Unknown keys and wrong
types are errors naming the key.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pyflowreg.io import READER_SUFFIXES, is_temporary_path
from pyflowreg.io.recording import (
    MovieSource,
    bruker_source,
    check_disjoint,
    group_scanimage_files,
    is_bruker_folder,
    read_recordings_sheet,
)
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.segments import check_segment_frames
from pyflowreg.session.backend import check_backend_params, stage1_workers

SCHEMA_FILE = "session_config.schema.json"
ARRAY_TASK_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SGE_TASK_ID", "PBS_ARRAY_INDEX", "PBS_ARRAYID")


@cache
def session_schema() -> dict:
    """The JSON Schema of a session configuration."""
    text = resources.files("pyflowreg.session").joinpath(SCHEMA_FILE).read_text()
    return json.loads(text)


def schema_path() -> Path:
    """Path of the schema file (for tools such as Snakemake's ``validate``)."""
    return Path(str(resources.files("pyflowreg.session").joinpath(SCHEMA_FILE)))


class ConfigError(ValueError):
    """A session configuration that does not fit the schema or the data on disk."""


def validate_config_dict(values: dict, source: str = "config") -> None:
    """Raise ConfigError naming the offending key if ``values`` breaks the schema."""
    # Imported here: the jobs of the workflow import this module but never validate.
    import jsonschema

    validator = jsonschema.Draft202012Validator(session_schema())
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = errors[0]
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        inside = f" in '{where}'" if where else ""
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}{inside}{suggest_keys(unknown, known)}; "
            f"known keys: {known}"
        )
    if error.validator == "required":
        raise ConfigError(f"{source}: {error.message}")
    raise ConfigError(f"{source}: key '{where or '(top level)'}': {error.message}")


def suggest_keys(unknown: list[str], known: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for misspelled keys with a close known key, else ``""``."""
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            hints.append(f"'{close[0]}' for '{key}'" if len(unknown) > 1 else f"'{close[0]}'")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


@dataclass
class SessionConfig:
    """Configuration of one multi-recording session.

    Parameters
    ----------
    root : str or Path
        Folder holding the recordings; relative output paths resolve against it.
    pattern : str, default "*.tif"
        Glob selecting the recordings in ``root`` (sorted by file name).
    recordings : list of str or str, optional
        Explicit recording file names (relative to ``root``) instead of ``pattern``, or the
        path of a recordings sheet (TSV with the header ``recording<TAB>path``; see
        :mod:`pyflowreg.io.recording`).
    nwb_series : str, optional
        NWB input: the ``TwoPhotonSeries`` to read where a file holds several.
    center : str, optional
        File name of the reference recording; default the lexicographic middle, the
        ``ceil(n / 2)``-th of n (1-based).
    output_root : str, default "compensated_outputs"
        Stage 1 outputs go to ``<output_root>/<stem>/``.
    final_results : str, default "final_results"
        Session results (mask bundle, aligned videos).
    resume : bool, default True
        Skip work whose verified outputs exist.
    scheduler : {"local", "array"}, default "local"
        "array": :func:`~pyflowreg.session.stage1_compensate.run_stage1` (and the CLI) correct
        only the recording of this array task, as ``run_stage1_array`` / ``--array-job`` do.
    flow_backend : {"flowreg"}, default "flowreg"
    backend_params : dict, default {}
        Backend settings; for "flowreg" ``n_workers`` and ``numba_threads`` (see
        :mod:`pyflowreg.session.backend`). Unknown entries are errors.
    cc_upsample : int, default 4
        Stage 2 phase-correlation upsampling (precision 1 / cc_upsample px).
    sigma_smooth : float, default 6.0
        Stage 2 Gaussian smoothing of the averages, pixels.
    alpha_between : float, default 25.0
        Stage 2 flow smoothness.
    iterations_between : int, default 100
        Stage 2 SOR sweeps per level.
    quality_setting : {"quality", "balanced", "fast"}, default "quality"
        Stage 1 preset (``flow_options["quality_setting"]`` wins if given).
    flow_options : dict, default {}
        Overrides of the Stage 1 :class:`~pyflowreg.motion_correction.OFOptions`.
    n_workers : int, optional
        numba threads per recording (default: all available CPUs).
    segment_frames : int, optional
        Split each recording's Stage 1 into segments of this many frames (a multiple of
        ``flow_options["chunk_frames"]``), each a job of its own; see
        :mod:`pyflowreg.motion_correction.segments`. Default: one job per recording.
    align_chunk_size : int, default 256
        Frames warped at a time for the aligned videos.
    align_output_format : {"TIFF", "HDF5"}, default "TIFF"
    exclude_misaligned : bool, default False
        Leave recordings whose ``alignment_ok`` is false (see :mod:`pyflowreg.session.qc`) out
        of the session mask and the aligned videos; ``qc/session.json`` lists them.
    export : list of str, default []
        Session exports after the session mask: ``"nwb"`` and/or ``"suite2p"``.
    metadata : dict, default {}
        Session metadata for the NWB export (see the config reference); NWB inputs' own
        metadata win.
    demo : dict, default {"enabled": False}
        Synthetic demo session settings (enabled, n_recordings, height, width, frames, seed),
        used by the Snakemake workflow to generate recordings into ``root``.
    """

    root: str | Path
    pattern: str = "*.tif"
    recordings: list[str] | str | None = None
    nwb_series: str | None = None
    center: str | None = None
    output_root: str | Path = "compensated_outputs"
    final_results: str | Path = "final_results"
    resume: bool = True
    scheduler: str = "local"
    flow_backend: str = "flowreg"
    backend_params: dict[str, Any] = field(default_factory=dict)
    cc_upsample: int = 4
    sigma_smooth: float = 6.0
    alpha_between: float = 25.0
    iterations_between: int = 100
    quality_setting: str = "quality"
    flow_options: dict[str, Any] = field(default_factory=dict)
    n_workers: int | None = None
    segment_frames: int | None = None
    align_chunk_size: int = 256
    align_output_format: str = "TIFF"
    exclude_misaligned: bool = False
    export: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    demo: dict[str, Any] = field(default_factory=lambda: {"enabled": False})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, source: str = "SessionConfig") -> None:
        """Check every field against the schema and the Stage 1 options; raise ConfigError."""
        values = self.to_dict()
        validate_config_dict(values, source)
        conflict = check_backend_params(self)
        if conflict:
            raise ConfigError(f"{source}: key 'backend_params': {conflict}")
        self.align_output_format = self.align_output_format.upper()
        try:
            options = self.stage1_options()
        except ValueError as exc:
            raise ConfigError(f"{source}: key 'flow_options': {exc}") from None
        if not options.save_valid_idx:
            raise ConfigError(
                f"{source}: key 'flow_options': save_valid_idx must stay true in a session "
                "(Stage 3 builds the session mask from idx.hdf)"
            )
        if options.output_format != "HDF5":
            raise ConfigError(
                f"{source}: key 'flow_options': output_format must be HDF5 in a session "
                "(Stages 2 and 3 read compensated.hdf5)"
            )
        if self.segment_frames is not None:
            try:
                check_segment_frames(self.segment_frames, options)
            except ValueError as exc:
                raise ConfigError(f"{source}: key 'segment_frames': {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (paths as strings) that ``SessionConfig(**d)`` accepts again."""
        values = asdict(self)
        for key in ("root", "output_root", "final_results"):
            values[key] = str(values[key])
        return values

    # -- construction from files -------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> SessionConfig:
        """Validate ``values`` with the schema (errors name the key and ``source``)."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of keys, got {type(values).__name__}")
        validate_config_dict(values, source)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("SessionConfig", source, 1)) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> SessionConfig:
        """Load from a TOML file."""
        path = Path(path)
        try:
            values = tomllib.loads(_read_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
        return cls.from_dict(values, str(path))

    @classmethod
    def from_yaml(cls, path: str | Path) -> SessionConfig:
        """Load from a YAML file."""
        path = Path(path)
        try:
            values = yaml.safe_load(_read_text(path))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({exc})") from None
        return cls.from_dict(values if values is not None else {}, str(path))

    @classmethod
    def from_file(cls, path: str | Path) -> SessionConfig:
        """Load from TOML (.toml) or YAML (.yml/.yaml), chosen by suffix."""
        suffix = Path(path).suffix.lower()
        if suffix == ".toml":
            return cls.from_toml(path)
        if suffix in (".yml", ".yaml"):
            return cls.from_yaml(path)
        raise ConfigError(f"{path}: unknown config format {suffix!r}; use .toml, .yml or .yaml")

    # -- paths and recordings -----------------------------------------------------------
    @property
    def root_path(self) -> Path:
        return Path(self.root).expanduser()

    def _resolve(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root_path / p

    @property
    def output_root_path(self) -> Path:
        """Folder of the per-recording Stage 1 outputs."""
        return self._resolve(self.output_root)

    @property
    def final_results_path(self) -> Path:
        """Folder of the session results."""
        return self._resolve(self.final_results)

    def discover_input_files(self) -> list[Path | MovieSource]:
        """The session's recordings, sorted by name.

        A recording is a movie file (a plain Path), or a
        :class:`~pyflowreg.io.recording.MovieSource` where it is more: several files (a
        recordings sheet, ScanImage split files, a Bruker folder) or an NWB file read with
        ``nwb_series``. Without a sheet, ``pattern`` selects files and folders in ``root``:
        movie files, ``.zarr`` stores and Bruker PrairieView folders; ScanImage split files of
        one acquisition are grouped into one recording named after their base name.

        Raises
        ------
        FileNotFoundError
            If ``root``, the sheet or a listed file does not exist, or nothing matches.
        ConfigError
            Two recordings with one name, or one file in two recordings.
        ValueError
            A malformed sheet, or numbered files with a gap or out of order.
        """
        root = self.root_path
        if not root.is_dir():
            raise FileNotFoundError(f"root folder {root} does not exist")
        try:
            recordings = self._find_recordings(root)
        except ValueError as exc:  # a sheet, a Bruker XML or the files' numbering
            raise ConfigError(str(exc)) from None
        recordings = sorted(recordings, key=_sort_name)
        stems = [r.stem for r in recordings]
        duplicates = sorted({s for s in stems if stems.count(s) > 1})
        if duplicates:
            clashes = "; ".join(
                " and ".join(r.name for r in recordings if r.stem == stem) for stem in duplicates
            )
            raise ConfigError(
                f"{clashes} in {root} share a file stem; their output folders "
                f"<output_root>/{duplicates[0]}/ would collide (keep one, or select one with "
                "'pattern' or 'recordings')"
            )
        try:
            check_disjoint(recordings)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return recordings

    def _find_recordings(self, root: Path) -> list[Path | MovieSource]:
        if isinstance(self.recordings, str):
            return [_simplest(source) for source in read_recordings_sheet(
                self._resolve(self.recordings), root, series=self.nwb_series)]
        if self.recordings:
            entries = [root / name for name in self.recordings]
            missing = [str(p) for p in entries if not p.exists()]
            if missing:
                raise FileNotFoundError(f"recordings not found: {missing}")
            return self._recordings_of(entries)
        entries = [p for p in root.glob(self.pattern) if _is_recording_entry(p)]
        if not entries:
            raise FileNotFoundError(f"no recordings match pattern {self.pattern!r} in {root}")
        return self._recordings_of(entries)

    def _recordings_of(self, entries: list[Path]) -> list[Path | MovieSource]:
        """Files, stores and folders as recordings: Bruker folders and ScanImage split files
        become one recording each; NWB files carry ``nwb_series``."""
        recordings: list[Path | MovieSource] = []
        files = []
        for entry in entries:
            if entry.is_dir() and not entry.name.lower().endswith(".zarr"):
                if not is_bruker_folder(entry):
                    raise ConfigError(f"{entry}: a folder is a recording only as a Bruker "
                                      "PrairieView folder (with its .xml) or a .zarr store")
                recordings.append(bruker_source(entry))
            elif self.nwb_series is not None and entry.suffix.lower() == ".nwb":
                recordings.append(MovieSource.single(entry, series=self.nwb_series))
            else:
                files.append(entry)
        return recordings + group_scanimage_files(files)

    def recording(self, stem: str) -> Path | MovieSource:
        """The recording named ``stem`` (its output folder's name).

        Raises
        ------
        ConfigError
            When no recording of the session has that name.
        """
        recordings = self.discover_input_files()
        for recording in recordings:
            if recording.stem == stem:
                return recording
        raise ConfigError(f"no recording named {stem!r}; the recordings are "
                          f"{[r.stem for r in recordings]}")

    def resolve_center(self, files: list[Path] | None = None) -> tuple[int, Path]:
        """0-based index and path of the center (reference) recording."""
        files = self.discover_input_files() if files is None else files
        if self.center is None:
            index = math.ceil(len(files) / 2) - 1
            return index, files[index]
        for i, p in enumerate(files):
            if self.center in (p.name, p.stem, str(p)):
                return i, p
        raise ConfigError(
            f"center {self.center!r} matches no recording; the recordings are "
            f"{[p.name for p in files]}"
        )

    def output_folder(self, recording: Path) -> Path:
        """Stage 1 output folder of a recording."""
        stem = recording.stem if isinstance(recording, MovieSource) else Path(recording).stem
        return self.output_root_path / stem

    def stage1_options(self) -> OFOptions:
        """Stage 1 options: quality_setting and n_workers, overridden by ``flow_options``."""
        values = {"quality_setting": self.quality_setting, "n_workers": stage1_workers(self)}
        values.update(self.flow_options or {})
        return OFOptions.from_dict(values)


def _is_recording_entry(path: Path) -> bool:
    """What ``pattern`` may select: a movie file, a .zarr store or a Bruker folder."""
    if is_temporary_path(path):
        return False
    if path.is_dir():
        return path.name.lower().endswith(".zarr") or is_bruker_folder(path)
    return path.is_file() and path.suffix.lower() in READER_SUFFIXES


def _simplest(source: MovieSource) -> Path | MovieSource:
    # A single file named like its recording and read without options is just its path, the
    # form the rest of the session (and status files written before sheets) know it by.
    if source.is_single_file:
        path = source.parts[0][0]
        if path.stem == source.stem and (source.series is None or path.suffix.lower() != ".nwb"):
            return path
    return source


def _sort_name(recording: Path | MovieSource) -> str:
    return recording.stem if isinstance(recording, MovieSource) else recording.name


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None


def job_recording(values: dict[str, Any], stem: str, movie: str | list[str]) -> Path | MovieSource:
    """The recording a workflow job corrects, from the job's config, wildcard and input.

    A plain movie file named like its recording is its own input; anything else (several
    files, a store, an NWB series) is looked up in the session, which costs one discovery.
    """
    if isinstance(movie, str) and Path(movie).stem == stem and not (
            values.get("nwb_series") and Path(movie).suffix.lower() == ".nwb"):
        return Path(movie)
    return SessionConfig.from_dict(dict(values), source="workflow config").recording(stem)


def get_array_task_id() -> int | None:
    """1-based array task id from SLURM, Grid Engine or PBS/Torque, or None outside an array.

    Reads ``SLURM_ARRAY_TASK_ID``, ``SGE_TASK_ID``, ``PBS_ARRAY_INDEX`` (PBS Pro) and
    ``PBS_ARRAYID`` (Torque) in that order; Grid Engine's "undefined" counts as absent.
    """
    for name in ARRAY_TASK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if not value or value.lower() == "undefined":
            continue
        try:
            task_id = int(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an integer task id") from None
        if task_id < 1:
            raise ValueError(f"{name}={task_id}: array task ids are 1-based")
        return task_id
    return None


def schema_markdown_table() -> str:
    """The config reference as a Markdown table, generated from the schema (config/README.md)."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def add(name: str, spec: dict) -> None:
        kind = spec.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        if "enum" in spec:
            kind = " / ".join(dict.fromkeys(str(v) for v in spec["enum"]))
        bounds = [f"{label} {spec[k]}" for k, label in (
            ("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
        ) if k in spec]
        if bounds:
            kind += f" ({', '.join(bounds)})"
        default = json.dumps(spec["default"]) if "default" in spec else "required"
        rows.append(f"| `{name}` | {kind} | `{default}` | {spec.get('description', '')} |")
        for sub_name, sub_spec in spec.get("properties", {}).items():
            add(f"{name}.{sub_name}", sub_spec)

    for name, spec in session_schema()["properties"].items():
        add(name, spec)
    return "\n".join(rows) + "\n"
