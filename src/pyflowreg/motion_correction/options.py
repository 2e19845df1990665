"""Options of motion correction for one recording (``OFOptions``), validated, from dict or JSON.

Every field has the default users of Flow-Registration know (see ``algorithm_notes.md``), so a
session config can override any subset through ``flow_options``. Unknown keys and values of the
wrong type or range are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from pyflowreg.core.optical_flow import FlowParameters

# preset -> (final pyramid level, SOR sweeps per level, reference frames, refinement pass).
# Coarse-to-fine warm starts make 10-20 sweeps as accurate as 50 from level 1 up, and the time
# saved buys a finer final level and the refinement pass. Below level 1 the photon noise of
# 2-photon frames outweighs the detail gained (full resolution measures no better, often worse),
# and with the refinement more sweeps are worse at high photon counts, so quality differs from
# balanced by a reference averaged over twice the frames (docs/method.md).
QUALITY_PRESETS = {"quality": (1, 10, 200, True), "balanced": (1, 10, 100, True),
                   "fast": (3, 20, 100, False)}
DEFAULT_REFERENCE_MAX_FRAMES = 100  # with quality_setting "custom"
OUTPUT_FORMATS = ("HDF5", "TIFF", "NPY")
OUTPUT_DTYPES = ("float32", "float64", "same", "uint16", "int16", "uint8")
CHANNEL_NORMALIZATIONS = ("joint", "separate")
DEFAULT_REFERENCE_FRAMES = (50, 500)  # 0-based [start, stop) window, clipped to the recording


# Solver defaults live in one place, the core's FlowParameters.
_SOLVER_DEFAULTS = FlowParameters()


@dataclass(eq=False)
class OFOptions:
    """Motion-correction options of one recording.

    Parameters
    ----------
    quality_setting : {"quality", "balanced", "fast", "custom"}, default "quality"
        Preset of ``min_level``, ``iterations``, ``reference_max_frames`` and ``refine``: quality
        1, 10, 200 and on; balanced 1, 10, 100 and on; fast 3, 20, 100 and off. "custom" uses
        ``min_level`` as given.
    min_level : int or None, default None
        Finest pyramid level solved; None takes it from ``quality_setting``.
    alpha : float or (alpha_x, alpha_y), default (1.5, 1.5)
        Smoothness weight of the flow (dimensionless).
    sigma : [sx, sy, st] or one such triple per channel, default [1, 1, 0.1]
        Gaussian pre-filter: spatial sigmas in pixels (x, y) and temporal sigma in frames.
    iterations : int or None, default None
        SOR sweeps per pyramid level; None takes it from ``quality_setting`` (50 for custom).
    levels, eta, update_lag, a_data, a_smooth, const_assumption
        Solver parameters, see :func:`pyflowreg.core.optical_flow.get_displacement`.
    weight : list of floats or None, default None
        Data-term weight per channel (normalised to sum 1; None: equal).
    channel_normalization : {"joint", "separate"}, default "joint"
        Scale all channels to [0, 1] with one min/max, or each channel with its own.
    buffer_size : int, default 400
        Frames per batch; the mean flow of a batch initialises the next one.
    reference_frames : [start, stop] or list of frame indices, default [50, 500]
        0-based frames averaged into the reference. A window is clipped to the recording (and
        shifted towards its start when the recording is short); no frame is ever repeated.
    reference_max_frames : int or None, default None
        At most this many of the reference frames are used, evenly spaced over them: averaging
        more adds little, while registering them is what the reference costs. None takes it
        from ``quality_setting`` (100 for custom).
    reference_passes : int, default 3
        Maximum refinement passes of the reference (register to the mean, average, repeat).
    reference_tolerance : float, default 0.05
        Stop refining when the reference moved less than this (pixels, mean over the image).
    output_format : {"HDF5", "TIFF", "NPY"}, default "HDF5"
    output_dtype : {"float32", "float64", "same", "uint16", "int16", "uint8"}, default "float32"
        "same" keeps the input dtype (rounded and clipped for integers).
    save_w : bool, default False
        Also write ``w.hdf5`` with datasets ``u`` and ``v`` (T, H, W) float32, pixels.
    temporal_filter : bool, default True
        Average the non-rigid part of each frame's flow with its neighbours' over a window
        (0-6 frames sigma) chosen per frame, widest where the motion changes no faster than
        the estimation noise explains (see :mod:`pyflowreg.core.temporal`). The rigid part and
        each frame's own warp are kept.
    stabilise_noise : bool, default True
        Fit the recording's Poisson-Gaussian noise model and estimate the flow on frames passed
        through the transform that makes their noise uniform (``sqrt(x + shift)``, see
        :mod:`pyflowreg.core.noise`). Skipped, and recorded as such in ``status.json``, when
        the data do not follow the model (processed or clipped data) or the variance hardly
        grows with brightness (read noise dominating).
    select_alpha : bool, default True
        Choose the smoothness weight per recording among ``alpha`` x (1, 2, 4), and x (1, 2, 4,
        8, 16, 32) when ``refine`` is on, by cross-validation on split frames (see
        :mod:`pyflowreg.motion_correction.alpha_selection`); ``alpha`` itself is kept unless a
        larger weight fits held-out noise significantly better, and for recordings of fewer
        than 100 frames. Where no photon-noise model fits, the split follows the measured noise
        variances and the choice is reported as a fallback. The choice, its path and the
        scores are in ``status.json`` and ``qc.json`` (``alpha_selection``).
    calibrate_gain : bool, default True
        Undo the shrinkage of wide non-rigid deformation: Stage 1 multiplies the wide band of
        every flow by a gain measured on simulated frames of the recording (see
        :mod:`pyflowreg.motion_correction.band_gain`; 1 for recordings of fewer than 100
        frames). The gain and what it was measured from are in ``status.json`` and
        ``qc.json`` (``band_gain``).
    refine : bool or None, default None
        Estimate every flow a second time, starting from its temporally filtered first
        estimate and regularised towards it (see
        :func:`pyflowreg.core.optical_flow.refinement_parameters`), then filter again. None
        takes it from ``quality_setting`` (off for fast, on otherwise). Needs
        ``temporal_filter``.
    save_valid_idx : bool, default True
        Write ``idx.hdf`` with per-frame valid masks (T, H, W) uint8 0/255 (dataset ``ch1``).
    n_workers : int or None, default None
        numba threads for this recording (None: all CPUs available to the process).
    chunk_frames : int, default 32
        Frames read, corrected and written at a time; bounds memory independently of
        ``buffer_size``.
    verbose : bool, default False
        Print progress to stderr.
    qc : bool, default True
        Compute quality-control metrics during the pass and write ``qc.json`` and PNG figures
        (see :mod:`pyflowreg.motion_correction.qc`).
    """

    quality_setting: str = "quality"
    min_level: int | None = None
    alpha: Any = _SOLVER_DEFAULTS.alpha
    sigma: Any = (1.0, 1.0, 0.1)
    levels: int = _SOLVER_DEFAULTS.levels
    eta: float = _SOLVER_DEFAULTS.eta
    iterations: int | None = None
    update_lag: int = _SOLVER_DEFAULTS.update_lag
    a_data: float = _SOLVER_DEFAULTS.a_data
    a_smooth: float = _SOLVER_DEFAULTS.a_smooth
    const_assumption: str = _SOLVER_DEFAULTS.const_assumption
    weight: Any = None
    channel_normalization: str = "joint"
    buffer_size: int = 400
    reference_frames: Any = DEFAULT_REFERENCE_FRAMES
    reference_max_frames: int | None = None
    reference_passes: int = 3
    reference_tolerance: float = 0.05
    output_format: str = "HDF5"
    output_dtype: str = "float32"
    save_w: bool = False
    temporal_filter: bool = True
    stabilise_noise: bool = True
    select_alpha: bool = True
    calibrate_gain: bool = True
    refine: bool | None = None
    save_valid_idx: bool = True
    n_workers: int | None = None
    chunk_frames: int = 32
    verbose: bool = False
    qc: bool = True
    _flow: FlowParameters = field(init=False, repr=False, compare=False)
    _reference_max_frames: int = field(init=False, repr=False, compare=False)
    _refine: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.quality_setting not in (*QUALITY_PRESETS, "custom"):
            raise ValueError(
                f"quality_setting must be one of {(*QUALITY_PRESETS, 'custom')}, "
                f"got {self.quality_setting!r}"
            )
        if self.min_level is None and self.quality_setting == "custom":
            raise ValueError("quality_setting 'custom' needs min_level")
        preset_level, preset_iterations, preset_reference, preset_refine = QUALITY_PRESETS.get(
            self.quality_setting,
            (None, _SOLVER_DEFAULTS.iterations, DEFAULT_REFERENCE_MAX_FRAMES, True),
        )
        if self.reference_max_frames is not None:
            _positive_int(self.reference_max_frames, "reference_max_frames")
        self._reference_max_frames = (
            preset_reference if self.reference_max_frames is None else self.reference_max_frames
        )
        if self.refine is not None and not isinstance(self.refine, bool):
            raise ValueError(f"refine must be true, false or null, got {self.refine!r}")
        self._refine = preset_refine if self.refine is None else self.refine
        min_level = preset_level if self.min_level is None else self.min_level
        iterations = preset_iterations if self.iterations is None else self.iterations
        for name in ("buffer_size", "reference_passes", "chunk_frames"):
            _positive_int(getattr(self, name), name)
        if self.n_workers is not None:
            _positive_int(self.n_workers, "n_workers")
        if not (isinstance(self.reference_tolerance, int | float)
                and self.reference_tolerance > 0):
            raise ValueError(
                f"reference_tolerance must be a positive number, got {self.reference_tolerance!r}"
            )
        for name, allowed in (
            ("output_format", OUTPUT_FORMATS),
            ("output_dtype", OUTPUT_DTYPES),
            ("channel_normalization", CHANNEL_NORMALIZATIONS),
        ):
            value = getattr(self, name)
            if name == "output_format" and isinstance(value, str):
                value = value.upper()
                self.output_format = value
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name in ("save_w", "temporal_filter", "stabilise_noise", "select_alpha",
                     "calibrate_gain", "save_valid_idx", "verbose", "qc"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        self.sigma = _sigma_array(self.sigma)
        if self.weight is not None:
            try:
                weight = np.atleast_1d(np.asarray(self.weight, dtype=np.float64))
            except (TypeError, ValueError):
                weight = np.array([np.nan])
            if weight.ndim != 1 or not np.isfinite(weight).all() or (weight < 0).any() \
                    or weight.sum() <= 0:
                raise ValueError(
                    "weight must be a list of non-negative numbers (one per channel) with a "
                    f"positive sum, got {self.weight!r}"
                )
            self.weight = weight.tolist()
        self._check_reference_frames()
        self._flow = FlowParameters(
            alpha=self.alpha, levels=self.levels, min_level=min_level, eta=self.eta,
            iterations=iterations, update_lag=self.update_lag, a_data=self.a_data,
            a_smooth=self.a_smooth, const_assumption=self.const_assumption,
        )
        self.alpha = self._flow.alpha

    def _check_reference_frames(self) -> None:
        frames = self.reference_frames
        if not isinstance(frames, list | tuple) or len(frames) == 0 or not all(
            isinstance(i, int | np.integer) and not isinstance(i, bool) and i >= 0 for i in frames
        ):
            raise ValueError(
                "reference_frames must be [start, stop] or a list of non-negative frame indices, "
                f"got {frames!r}"
            )
        if len(frames) == 2 and frames[0] >= frames[1]:
            raise ValueError(f"reference_frames window [start, stop) is empty: {list(frames)}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OFOptions):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    @property
    def refinement(self) -> bool:
        """Whether the refinement pass runs (preset or explicit; needs the temporal filter)."""
        return self._refine and self.temporal_filter

    @property
    def max_reference_frames(self) -> int:
        """How many reference frames at most these options use (preset or explicit)."""
        return self._reference_max_frames

    @property
    def flow_parameters(self) -> FlowParameters:
        """The solver parameters these options imply."""
        return self._flow

    def channel_sigma(self, n_channels: int) -> np.ndarray:
        """Pre-filter sigmas (C, 3): [sx, sy, st] per channel."""
        if self.sigma.shape[0] == 1:
            return np.repeat(self.sigma, n_channels, axis=0)
        if self.sigma.shape[0] != n_channels:
            raise ValueError(
                f"sigma has {self.sigma.shape[0]} rows but the recording has {n_channels} channels"
            )
        return self.sigma

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict of the options (round-trips through ``from_dict``)."""
        out = {}
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> OFOptions:
        """Options from a dict; unknown keys raise ValueError naming them."""
        values = dict(values or {})
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            close = [m for key in unknown for m in difflib.get_close_matches(key, known, n=1)]
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
                f"unknown flow option(s) {unknown}{hint}; known options: {sorted(known)}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> OFOptions:
        """Options from a JSON file holding one object."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: options file not found") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of options")
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> OFOptions:
        """Copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _sigma_array(sigma: Any) -> np.ndarray:
    try:
        arr = np.array(sigma, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"sigma must be [sx, sy, st] or one triple per channel, got {sigma!r}"
        ) from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3 or not all(
        math.isfinite(s) and s >= 0 for s in arr.ravel()
    ):
        raise ValueError(
            f"sigma must be [sx, sy, st] (>= 0) or one such triple per channel, got {sigma!r}"
        )
    return arr
