"""NWB movies: lazy reader of ``TwoPhotonSeries`` data and the session metadata a file states.

NWB files (Neurodata Without Borders, HDF5 backend) are read with h5py. pynwb is not imported:
its import alone takes 1-2 s, paid by every job that opens a movie.

Which series
------------
Every group whose ``neurodata_type`` attribute is ``TwoPhotonSeries``, anywhere in the file
(usually ``/acquisition/<name>``, also ``/processing/<module>/<name>``), is a candidate; its
``data`` dataset is the movie. With one candidate it is read; with several, ``series=`` (the
session's ``nwb_series``) selects one by short name (``'TwoPhotonSeries'``) or by full path in
the file (``'/acquisition/TwoPhotonSeries'``). Series whose frames live in external files
(``external_file`` set, ``data`` empty) are refused.

Axes
----
The NWB schema names the dimensions of ``data`` (frame, x, y) or (frame, x, y, z), x being
the width: a frame is stored as (W, H), the transpose of the (H, W) image array. NWB's own
conversion tools (neuroconv and roiextractors, which write most ophys data on DANDI) store and
read it so, and the export of :mod:`pyflowreg.session.export_nwb` writes it so; this reader
follows the schema: axis 1 is W, axis 2 is H. A file whose writer stored (rows, columns)
instead is read transposed; its frames still register, in a transposed grid. A 4-D
(frame, x, y, z) series needs ``plane=`` unless it has a single plane. One series is one
channel (C = 1).

Pixel values are returned as stored: the ``conversion`` and ``offset`` attributes of ``data``
(scaling to physical units) are not applied.
"""

from __future__ import annotations

import math
import os
from typing import Any

import h5py
import numpy as np

from ._axes import AxisPlan, plan_axes
from ._dtypes import movie_dtype
from .base import MovieReader, require_existing_file

__all__ = ["NWBMovieReader", "nwb_session_metadata"]

_SERIES_TYPE = "TwoPhotonSeries"
_SERIES_AXES = {3: "TXY", 4: "TXYZ"}  # the schema's (frame, x, y[, z]), x the width
_FILE_FIELDS = ("session_description", "identifier", "session_start_time")
_GENERAL_FIELDS = ("institution", "lab", "experiment_description")
_SUBJECT_FIELDS = ("subject_id", "species", "sex", "age", "strain", "description")
_PLANE_FIELDS = ("indicator", "excitation_lambda", "location")


def _type_of(obj: h5py.HLObject) -> str | None:
    value = obj.attrs.get("neurodata_type")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _short_name(group: h5py.Group) -> str:
    return group.name.rsplit("/", 1)[-1]


def _value(obj: Any) -> Any:
    """A dataset's value as str, number or list of them; None when absent or unknown (NaN)."""
    if not isinstance(obj, h5py.Dataset):
        return None
    if h5py.check_string_dtype(obj.dtype) is not None:
        value = obj.asstr()[()]
        return value if isinstance(value, str) else [str(v) for v in np.ravel(value)]
    value = obj[()]
    if np.ndim(value) == 0:
        scalar = np.asarray(value).item()
        # NaN is the schema's placeholder for a quantity that was not recorded
        if isinstance(scalar, float) and math.isnan(scalar):
            return None
        return scalar
    return np.asarray(value).tolist()


def _link_target_name(group: h5py.Group, key: str) -> str | None:
    """Short name of the object a (soft or external) link ``key`` of ``group`` points to.

    Objects opened through a soft link report the link's own path as ``.name``, so the
    target is taken from the link itself.
    """
    link = group.get(key, getlink=True)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        return link.path.rstrip("/").rsplit("/", 1)[-1] or None
    target = group.get(key)
    return None if target is None else _short_name(target)


def _series_groups(f: h5py.File) -> list[h5py.Group]:
    found: list[h5py.Group] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Group) and _type_of(obj) == _SERIES_TYPE:
            found.append(obj)

    f.visititems(visit)
    return found


def _other_series(f: h5py.File) -> list[str]:
    """``'<type> <path>'`` of every other time-series group, for the no-series error."""
    found: list[str] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        kind = _type_of(obj)
        if isinstance(obj, h5py.Group) and kind and kind.endswith("Series"):
            found.append(f"{kind} /{name}")

    f.visititems(visit)
    return found


def _select_series(f: h5py.File, series: str | None) -> h5py.Group:
    """The TwoPhotonSeries group to read (see the module docstring)."""
    where = f.filename
    groups = _series_groups(f)
    if not groups:
        others = _other_series(f)
        held = f"; it holds {', '.join(others)}" if others else ""
        nwb = "" if _type_of(f) == "NWBFile" else " (and no NWBFile root: not an NWB file?)"
        raise ValueError(f"{where}: no TwoPhotonSeries in the file{nwb}{held}")
    listing = ", ".join(f"{g.name} ({_short_name(g)})" for g in groups)
    if series is None:
        if len(groups) == 1:
            return groups[0]
        raise ValueError(
            f"{where}: holds {len(groups)} TwoPhotonSeries: {listing}; set nwb_series "
            "(series=) to the short name or full path of the one to read"
        )
    wanted = "/" + series.strip("/")
    matches = [g for g in groups if g.name == wanted]
    if not matches:
        matches = [g for g in groups if _short_name(g) == series]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(
            f"{where}: series {series!r} names several TwoPhotonSeries "
            f"({', '.join(g.name for g in matches)}); give its full path"
        )
    raise ValueError(f"{where}: no TwoPhotonSeries named {series!r}; the file holds {listing}")


def _series_rate(group: h5py.Group) -> float | None:
    start = group.get("starting_time")
    if isinstance(start, h5py.Dataset) and "rate" in start.attrs:
        return float(start.attrs["rate"])
    return None


def _put(meta: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "" and value != []:
        meta[key] = value


def _metadata(f: h5py.File, group: h5py.Group | None) -> dict[str, Any]:
    """What ``f`` states about the session and, given ``group``, about that series."""
    meta: dict[str, Any] = {}
    for key in _FILE_FIELDS:
        _put(meta, key, _value(f.get(key)))
    general = f.get("general")
    if isinstance(general, h5py.Group):
        experimenter = _value(general.get("experimenter"))
        # NWB 2.0 files hold one experimenter as a scalar string
        _put(meta, "experimenter", [experimenter] if isinstance(experimenter, str)
             else experimenter)
        for key in _GENERAL_FIELDS:
            _put(meta, key, _value(general.get(key)))
        subject_group = general.get("subject")
        if isinstance(subject_group, h5py.Group):
            subject: dict[str, Any] = {}
            for key in _SUBJECT_FIELDS:
                _put(subject, key, _value(subject_group.get(key)))
            _put(meta, "subject", subject or None)
    if group is None:
        return meta
    meta["series"] = group.name
    plane = group.get("imaging_plane")
    plane = plane if isinstance(plane, h5py.Group) else None
    rate = _value(plane.get("imaging_rate")) if plane is not None else None
    _put(meta, "imaging_rate", rate if rate is not None else _series_rate(group))
    if plane is not None:
        for key in _PLANE_FIELDS:
            _put(meta, key, _value(plane.get(key)))
        channels = [plane.get(name) for name in plane]  # get: a dangling link gives None
        emission = [
            _value(channel.get("emission_lambda"))
            for channel in channels
            if isinstance(channel, h5py.Group) and _type_of(channel) == "OpticalChannel"
        ]
        emission = [value for value in emission if value is not None]
        _put(meta, "emission_lambda", emission[0] if len(emission) == 1 else emission)
    device = _link_target_name(group, "device") if "device" in group else None
    if device is None and plane is not None and "device" in plane:
        device = _link_target_name(plane, "device")
    _put(meta, "device", device)
    return meta


def _open_nwb(path: os.PathLike[str] | str) -> h5py.File:
    if os.path.isdir(path):
        raise ValueError(
            f"{os.fspath(path)}: is a folder, a Zarr-backed NWB file; only HDF5 NWB files are "
            "read (export it to HDF5, e.g. with hdmf-zarr's NWBZarrIO.export)"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{os.fspath(path)}: not a readable HDF5 NWB file ({exc})") from exc


def nwb_session_metadata(
    path: str | os.PathLike[str], *, series: str | None = None
) -> dict[str, Any]:
    """Session and imaging metadata an NWB file states, without reading any frames.

    Parameters
    ----------
    path : path-like
        HDF5 ``.nwb`` file.
    series : str, optional
        TwoPhotonSeries whose imaging metadata to return (short name or full path); needed
        when the file holds several.

    Returns
    -------
    dict
        Only keys the file holds (nothing is filled in): ``session_description``,
        ``identifier``, ``session_start_time`` (ISO 8601 string as stored), ``experimenter``
        (list of str), ``institution``, ``lab``, ``experiment_description``, ``subject`` (dict
        with ``subject_id``, ``species``, ``sex``, ``age``, ``strain``, ``description``);
        for the series: ``series`` (its path in the file), ``imaging_rate`` (Hz: the imaging
        plane's, else the series' sampling rate), ``indicator``, ``excitation_lambda``,
        ``location`` (from the ImagingPlane the series links to), ``emission_lambda`` (nm, of
        its OpticalChannel; a list when there are several) and ``device`` (name). Numbers
        stored as NaN (not recorded) are left out.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Not an HDF5 NWB file, no TwoPhotonSeries, several without ``series``, or an unknown
        ``series``.
    """
    path = require_existing_file(path, directory_store=True)  # folders: _open_nwb explains
    with _open_nwb(path) as f:
        return _metadata(f, _select_series(f, series))


class NWBMovieReader(MovieReader):
    """Read the ``data`` of a ``TwoPhotonSeries`` in an NWB file lazily as (T, H, W, 1) frames.

    See the module docstring for which series is read and how its axes map to (T, H, W, C).

    Parameters
    ----------
    path : path-like
        HDF5 ``.nwb`` file.
    series : str, optional
        Short name or full path (in the file) of the TwoPhotonSeries to read; needed when the
        file holds several.
    plane : int, optional
        z-plane to read from a 4-D (frame, x, y, z) series.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        A folder (Zarr-backed NWB) or not an HDF5 file, no TwoPhotonSeries, several without
        ``series``, an unknown ``series``, frames in external files, a volume without
        ``plane=``, unsupported dtype, no frames or frames smaller than 2x2 pixels.
    """

    suffixes = (".nwb",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        series: str | None = None,
        plane: int | None = None,
    ) -> None:
        if os.path.isdir(path):
            _open_nwb(path)  # raises, explaining what a .nwb folder is
        super().__init__(path)
        self._file: h5py.File | None = None
        self._group: h5py.Group | None = None
        self._data: h5py.Dataset | None = None
        try:
            self._open(series, plane)
        except BaseException:
            self._closed = True
            self._close()
            raise

    def _open(self, series: str | None, plane: int | None) -> None:
        where = self._path
        self._file = f = _open_nwb(where)
        group = self._group = _select_series(f, series)
        self._series_path: str = group.name
        data = group.get("data")
        external = _value(group.get("external_file"))
        if external and (not isinstance(data, h5py.Dataset) or data.size == 0):
            files = ", ".join(external) if isinstance(external, list) else str(external)
            raise ValueError(
                f"{where}: TwoPhotonSeries {group.name} keeps its frames in external files "
                f"({files}), which are not read; open those files instead"
            )
        if not isinstance(data, h5py.Dataset):
            raise ValueError(f"{where}: TwoPhotonSeries {group.name} has no data dataset")
        axes = _SERIES_AXES.get(data.ndim)
        if axes is None:
            raise ValueError(
                f"{where}: TwoPhotonSeries {group.name} data of shape {data.shape} is neither "
                "(frame, x, y) nor (frame, x, y, z)"
            )
        movie_dtype(data.dtype, path=where)
        self._plan: AxisPlan = plan_axes(
            axes, data.shape, path=f"{where}:{group.name}", plane=plane
        )
        self._data = data
        self._set_geometry(self._plan.shape, data.dtype)

    @property
    def series_name(self) -> str:
        """Short name of the TwoPhotonSeries read (e.g. ``'TwoPhotonSeries'``)."""
        return self._series_path.rsplit("/", 1)[-1]

    @property
    def series_path(self) -> str:
        """Path of the TwoPhotonSeries in the file (e.g. ``'/acquisition/TwoPhotonSeries'``)."""
        return self._series_path

    @property
    def rate(self) -> float | None:
        """Sampling rate in Hz (``starting_time`` attribute ``rate``); None with timestamps."""
        self._check_open()
        assert self._group is not None
        return _series_rate(self._group)

    @property
    def starting_time(self) -> float | None:
        """Time of the first frame in seconds, when the series is timed by a rate."""
        self._check_open()
        assert self._group is not None
        start = self._group.get("starting_time")
        return float(start[()]) if isinstance(start, h5py.Dataset) else None

    def timestamps(self) -> np.ndarray | None:
        """Frame times in seconds (float64), read on each call; None when timed by a rate."""
        self._check_open()
        assert self._group is not None
        stamps = self._group.get("timestamps")
        if not isinstance(stamps, h5py.Dataset):
            return None
        return np.asarray(stamps[()], dtype=np.float64)

    def session_metadata(self) -> dict[str, Any]:
        """:func:`nwb_session_metadata` of this file for the series read."""
        self._check_open()
        assert self._file is not None
        return _metadata(self._file, self._group)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        try:
            return self._plan.apply(self._data, t0, t1)
        except OSError as exc:  # HDF5 errors on damaged chunks surface here
            raise ValueError(f"{self._path}: cannot read frames {t0}..{t1 - 1} ({exc})") from exc

    def _close(self) -> None:
        self._data = None
        self._group = None
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
