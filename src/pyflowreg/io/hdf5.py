"""HDF5 movies: lazy reader, crash-safe streaming writer and a completeness check.

Reader: which dataset is the movie
----------------------------------
1. ``dataset=`` given: that dataset, or, if it names a group, the channel datasets
   inside it (as in 2.).
2. Otherwise channel datasets: those listed in a ``channel_datasets`` group attribute
   (written by :class:`HDF5MovieWriter`), else datasets named ``ch1``, ``ch2``, ...
   (case-insensitive) sorted numerically; in the root group or in exactly one
   sub-group. Each is one (T, H, W) channel; all must have the same shape and dtype.
3. Otherwise the unique numeric 3-D, 4-D or 5-D dataset anywhere in the file; when there
   are several, a unique one named ``mov``, ``movie``, ``data``, ``imaging``, ``frames``,
   ``images`` or ``stack`` (in this order of preference). Still ambiguous -> ValueError
   listing the candidates.

Axis order is taken from a dataset attribute ``axis_order`` or ``axes`` (e.g. ``'TYX'``,
``'TYXC'``, ``'TCYX'``, ``'YXT'``) or ``DIMENSION_LABELS`` (e.g. ``['t','z','y','x','c']``);
without one, 3-D data are (T, H, W) and 4-D data (T, H, W, C). 5-D volumes (with Z)
need ``plane=``. Note that arrays written from MATLAB appear with reversed axes in
h5py; label them (e.g. ``axis_order='TXY'``) if they are not already (T, H, W).

Writer: file layout
-------------------
``ch1`` .. ``chC`` (or custom ``dataset_names``, listed in the root attribute
``channel_datasets``): one dataset per channel, shape (T, H, W), chunks (1, H, W), optional
gzip compression, resizable along T (``maxshape=(None, H, W)``) when the frame count is
not announced. Attributes: ``axis_order='TYX'`` on every channel dataset and on the root;
root ``n_channels``, ``n_frames``, ``frame_shape`` and ``complete`` (uint8 0/1: MATLAB
reads it as a number, unlike h5py's enum booleans). ``complete=1`` is set only when the
writer closes successfully; the file is then renamed into place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from ._atomic import atomic_output
from ._axes import AxisPlan, parse_axis_labels, plan_axes
from ._dtypes import movie_dtype
from .base import MovieReader, MovieWriter

__all__ = ["HDF5MovieReader", "HDF5MovieWriter", "read_hdf5_frame_count", "PREFERRED_DATASET_NAMES"]

#: Dataset names preferred, in order, when a file holds several candidate movies.
PREFERRED_DATASET_NAMES = ("mov", "movie", "data", "imaging", "frames", "images", "stack")

_CHANNEL_RE = re.compile(r"^ch(\d+)$", re.IGNORECASE)
_RESERVED_ATTRS = frozenset(
    {"axis_order", "n_channels", "n_frames", "complete", "frame_shape", "channel_datasets"}
)


def _is_numeric(ds: h5py.Dataset) -> bool:
    return ds.dtype.kind in "uifcb" and ds.dtype.fields is None


def _channel_datasets(group: h5py.Group) -> list[h5py.Dataset]:
    """Channel datasets of a group, in channel order (empty list if none).

    A ``channel_datasets`` attribute (list of names, written by :class:`HDF5MovieWriter`)
    takes precedence; otherwise datasets named ``ch<k>`` sorted by k.

    Raises
    ------
    ValueError
        If ``channel_datasets`` names a missing or non-dataset member.
    """
    if "channel_datasets" in group.attrs:
        names = parse_name_list(group.attrs["channel_datasets"])
        missing = [n for n in names if not isinstance(group.get(n), h5py.Dataset)]
        if missing:
            raise ValueError(
                f"{group.file.filename}: channel_datasets attribute of {group.name} lists "
                f"missing datasets {missing}"
            )
        return [group[n] for n in names]
    found = []
    for name, obj in group.items():
        m = _CHANNEL_RE.match(name)
        if m and isinstance(obj, h5py.Dataset):
            found.append((int(m.group(1)), obj))
    return [ds for _, ds in sorted(found, key=lambda item: item[0])]


def parse_name_list(value: Any) -> list[str]:
    """Decode an HDF5 string / string-array attribute into a list of str."""
    items = np.atleast_1d(np.asarray(value, dtype=object)).ravel().tolist()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in items]


def _dataset_axes(ds: h5py.Dataset, default: str | None) -> str | None:
    for key in ("axis_order", "axes", "DIMENSION_LABELS"):
        if key in ds.attrs:
            return parse_axis_labels(ds.attrs[key])
    return default


def _default_axes(ndim: int) -> str | None:
    return {2: "YX", 3: "TYX", 4: "TYXC"}.get(ndim)


class HDF5MovieReader(MovieReader):
    """Read an HDF5 movie lazily, slice by slice, as (T, H, W, C) frames.

    See the module docstring for how the movie dataset and its axes are found.

    Parameters
    ----------
    path : path-like
        ``.h5``/``.hdf5``/``.hdf`` file.
    dataset : str, optional
        Path of the movie dataset (or of a group holding ``ch1``.. datasets).
    plane : int, optional
        z-plane to read from 5-D (T, Z, Y, X, C) volumes.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Not an HDF5 file, no/ambiguous movie dataset, inconsistent channel datasets,
        unknown axes, a file marked incomplete (``complete=0``), unsupported dtype,
        no frames or frames smaller than 2x2 pixels.
    """

    suffixes = (".h5", ".hdf5", ".hdf")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dataset: str | None = None,
        plane: int | None = None,
    ) -> None:
        super().__init__(path)
        self._file: h5py.File | None = None
        self._datasets: list[h5py.Dataset] = []
        self._plans: list[AxisPlan] = []
        try:
            self._open(dataset, plane)
        except BaseException:
            self._closed = True
            self._close()
            raise

    @property
    def dataset_names(self) -> list[str]:
        """HDF5 paths of the dataset(s) read (one per channel for ``ch1``.. layouts)."""
        return [ds.name for ds in self._datasets]

    @property
    def metadata(self) -> dict[str, Any]:
        """Attributes of the root group (e.g. those written by :class:`HDF5MovieWriter`)."""
        self._check_open()
        assert self._file is not None
        return dict(self._file.attrs)

    def _open(self, dataset: str | None, plane: int | None) -> None:
        where = self._path
        try:
            self._file = f = h5py.File(where, "r")
        except OSError as exc:
            raise ValueError(f"{where}: not a readable HDF5 file ({exc})") from exc
        if "complete" in f.attrs and not bool(np.asarray(f.attrs["complete"]).all()):
            raise ValueError(
                f"{where}: file is marked incomplete (complete=0); it was not finished"
            )
        missing = missing_virtual_sources(f)
        if missing:
            raise ValueError(
                f"{where}: is a virtual dataset over other files and {', '.join(missing)} "
                "is missing; move or copy the folder as a whole"
            )

        channels: list[h5py.Dataset] = []
        single: h5py.Dataset | None = None
        if dataset is not None:
            obj = f.get(dataset)
            if obj is None:
                raise ValueError(f"{where}: no dataset or group {dataset!r} in the file")
            if isinstance(obj, h5py.Group):
                channels = _channel_datasets(obj)
                if not channels:
                    raise ValueError(f"{where}: group {dataset!r} has no ch1, ch2, ... datasets")
            else:
                single = obj
        else:
            channels = self._find_channel_group(f)
            if not channels:
                single = self._find_single(f)

        if channels:
            self._setup_channels(channels, plane)
        else:
            assert single is not None
            self._setup_single(single, plane)

    def _find_channel_group(self, f: h5py.File) -> list[h5py.Dataset]:
        found = _channel_datasets(f)
        if found:
            return found
        groups: list[tuple[str, list[h5py.Dataset]]] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group):
                chans = _channel_datasets(obj)
                if chans:
                    groups.append((name, chans))

        f.visititems(visit)
        if len(groups) > 1:
            names = ", ".join("/" + g for g, _ in groups)
            raise ValueError(
                f"{self._path}: ambiguous movie: several groups hold ch1.. datasets ({names}); "
                "pass dataset=<group>"
            )
        return groups[0][1] if groups else []

    def _find_single(self, f: h5py.File) -> h5py.Dataset:
        candidates: list[h5py.Dataset] = []
        everything: list[str] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                everything.append(f"/{name} {obj.shape} {obj.dtype}")
                if obj.ndim in (3, 4, 5) and _is_numeric(obj):
                    candidates.append(obj)

        f.visititems(visit)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            listing = "; ".join(everything) if everything else "the file has no datasets"
            raise ValueError(f"{self._path}: no 3-D/4-D numeric movie dataset found ({listing})")
        for name in PREFERRED_DATASET_NAMES:
            named = [ds for ds in candidates if ds.name.rsplit("/", 1)[-1].lower() == name]
            if len(named) == 1:
                return named[0]
            if len(named) > 1:
                break
        listing = ", ".join(f"{ds.name} {ds.shape}" for ds in candidates)
        raise ValueError(
            f"{self._path}: ambiguous movie: several candidate datasets ({listing}); "
            "pass dataset=<name>"
        )

    def _plan_for(self, ds: h5py.Dataset, plane: int | None, *, channel: bool) -> AxisPlan:
        default = "TYX" if channel else _default_axes(ds.ndim)
        axes = _dataset_axes(ds, default)
        if axes is None:
            raise ValueError(
                f"{self._path}: dataset {ds.name} has {ds.ndim} dimensions {ds.shape} but no "
                "axis_order/axes/DIMENSION_LABELS attribute to interpret them"
            )
        return plan_axes(axes, ds.shape, path=f"{self._path}:{ds.name}", plane=plane)

    def _setup_single(self, ds: h5py.Dataset, plane: int | None) -> None:
        if not _is_numeric(ds):
            raise ValueError(f"{self._path}: dataset {ds.name} is not numeric ({ds.dtype})")
        movie_dtype(ds.dtype, path=self._path)
        plan = self._plan_for(ds, plane, channel=False)
        self._datasets, self._plans = [ds], [plan]
        self._set_geometry(plan.shape, ds.dtype)

    def _setup_channels(self, dsets: list[h5py.Dataset], plane: int | None) -> None:
        shapes = {ds.shape for ds in dsets}
        if len(shapes) > 1:
            listing = ", ".join(f"{ds.name} {ds.shape}" for ds in dsets)
            raise ValueError(f"{self._path}: inconsistent channel shapes: {listing}")
        dtypes = {ds.dtype for ds in dsets}
        if len(dtypes) > 1:
            listing = ", ".join(f"{ds.name} {ds.dtype}" for ds in dsets)
            raise ValueError(f"{self._path}: inconsistent channel dtypes: {listing}")
        plans = [self._plan_for(ds, plane, channel=True) for ds in dsets]
        if len({p.shape for p in plans}) > 1 or any(p.n_channels != 1 for p in plans):
            raise ValueError(
                f"{self._path}: inconsistent channel layouts (each ch<i> must be one (T, H, W) "
                "channel with the same axis_order)"
            )
        t, h, w, _ = plans[0].shape
        self._datasets, self._plans = dsets, plans
        self._set_geometry((t, h, w, len(dsets)), dsets[0].dtype)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        try:
            if len(self._datasets) == 1:
                return self._plans[0].apply(self._datasets[0], t0, t1)
            _, h, w, c = self._shape
            out = np.empty((t1 - t0, h, w, c), dtype=self._datasets[0].dtype)
            for k, (ds, plan) in enumerate(zip(self._datasets, self._plans, strict=True)):
                out[..., k] = plan.apply(ds, t0, t1)[..., 0]
            return out
        except OSError as exc:  # HDF5 errors on damaged chunks surface here
            raise ValueError(f"{self._path}: cannot read frames {t0}..{t1 - 1} ({exc})") from exc

    def _close(self) -> None:
        self._datasets = []
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


class HDF5MovieWriter(MovieWriter):
    """Stream (T, H, W, C) frames into an HDF5 file with one dataset per channel.

    See the module docstring for the layout. The file is written under a temporary name
    and renamed onto ``path`` by :meth:`close` (or on leaving a ``with`` block without an
    exception), after ``complete=1`` and ``n_frames`` have been set.

    Parameters
    ----------
    path : path-like
        Output ``.h5``/``.hdf5``/``.hdf`` file.
    frame_shape : (int, int)
        Frame size (H, W) in pixels.
    n_channels : int
        Number of channels C (datasets ``ch1`` .. ``chC``).
    dtype : dtype-like
        Storage pixel type (see :class:`~pyflowreg.io.MovieWriter`).
    n_frames : int, optional
        Total frames, if known: datasets get this fixed size. Otherwise they are
        resizable and grow with each :meth:`write`.
    compression : None, 'gzip' or int, optional
        None (default, fastest), ``'gzip'`` (level 4) or a gzip level 0-9. gzip is
        readable by MATLAB's ``h5read``.
    attrs : mapping, optional
        Extra root attributes: numbers, strings, or arrays of them. Booleans are stored
        as uint8 0/1 and strings as variable-length UTF-8, both readable by MATLAB.
    dataset_names : sequence of str, optional
        Dataset name per channel instead of ``ch1`` .. ``chC`` (e.g. ``("u", "v")`` for
        flow fields). The names are recorded in the root attribute ``channel_datasets``,
        which :class:`HDF5MovieReader` and :func:`read_hdf5_frame_count` follow.
    """

    suffixes = (".h5", ".hdf5", ".hdf")

    def __init__(
        self,
        path: str | os.PathLike[str],
        frame_shape: tuple[int, int],
        n_channels: int,
        dtype: npt.DTypeLike,
        *,
        n_frames: int | None = None,
        compression: str | int | None = None,
        attrs: Mapping[str, Any] | None = None,
        dataset_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(path, frame_shape, n_channels, dtype, n_frames=n_frames)
        if dataset_names is None:
            dataset_names = [f"ch{c + 1}" for c in range(self._n_channels)]
        names = [str(n) for n in dataset_names] if not isinstance(dataset_names, str) else []
        if (
            len(names) != self._n_channels
            or len(set(names)) != len(names)
            or any(not n or "/" in n or n in (".", "..") for n in names)
        ):
            raise ValueError(
                f"{self._path}: dataset_names must be {self._n_channels} distinct names without "
                f"'/', got {dataset_names!r}"
            )
        self._names = names
        if compression is None:
            self._compression: dict[str, Any] = {}
        elif compression == "gzip":
            self._compression = {"compression": "gzip", "compression_opts": 4}
        elif (
            isinstance(compression, int)
            and not isinstance(compression, bool)
            and 0 <= compression <= 9
        ):
            self._compression = {"compression": "gzip", "compression_opts": compression}
        else:
            raise ValueError(
                f"{self._path}: compression must be None, 'gzip' or a gzip level 0-9, got "
                f"{compression!r}"
            )
        attrs = dict(attrs or {})
        clash = _RESERVED_ATTRS & set(attrs)
        if clash:
            raise ValueError(f"{self._path}: attrs may not set reserved keys {sorted(clash)}")
        self._attrs = {key: self._attr_value(key, value) for key, value in attrs.items()}
        self._file: h5py.File | None = None
        self._dsets: list[h5py.Dataset] = []
        self._start()

    def _attr_value(self, key: str, value: Any) -> np.ndarray:
        """Convert an attribute to a MATLAB-friendly array (bool -> uint8, str -> UTF-8)."""
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self._path}: attribute {key!r} is not array-like ({exc})") from exc
        if arr.dtype.kind == "b":
            return arr.astype(np.uint8)
        if arr.dtype.kind in "US" or (
            arr.dtype.kind == "O" and all(isinstance(v, (str, bytes)) for v in arr.ravel())
        ):
            strings = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()]
            out = np.array(strings, dtype=h5py.string_dtype()).reshape(arr.shape)
            return out
        if arr.dtype.kind not in "uif" or arr.dtype.fields is not None:
            raise ValueError(
                f"{self._path}: attribute {key!r} has unsupported type {type(value).__name__} "
                "(use numbers, booleans, strings or arrays of them)"
            )
        return arr

    def _open(self, temp_path: Path) -> None:
        h, w = self._frame_shape
        f = h5py.File(temp_path, "w")
        self._file = f
        try:
            f.attrs["axis_order"] = "TYX"
            f.attrs["n_channels"] = np.int64(self._n_channels)
            f.attrs["frame_shape"] = np.asarray(self._frame_shape, dtype=np.int64)
            f.attrs["n_frames"] = np.int64(0)
            f.attrs["complete"] = np.uint8(0)
            f.attrs.create(
                "channel_datasets", np.array(self._names, dtype=object), dtype=h5py.string_dtype()
            )
            for key, value in self._attrs.items():
                if value.dtype.kind == "O":
                    f.attrs.create(key, value, dtype=h5py.string_dtype())
                else:
                    f.attrs[key] = value
            n0 = self._n_frames if self._n_frames is not None else 0
            maxshape = (self._n_frames, h, w) if self._n_frames is not None else (None, h, w)
            for name in self._names:
                ds = f.create_dataset(
                    name,
                    shape=(n0, h, w),
                    maxshape=maxshape,
                    dtype=self._dtype,
                    chunks=(1, h, w),
                    **self._compression,
                )
                ds.attrs["axis_order"] = "TYX"
                self._dsets.append(ds)
        except BaseException:
            f.close()
            self._file = None
            raise

    def _append(self, frames: np.ndarray) -> None:
        t0 = self._written
        t1 = t0 + frames.shape[0]
        for c, ds in enumerate(self._dsets):
            if self._n_frames is None:
                ds.resize(t1, axis=0)
            ds[t0:t1] = frames[..., c]

    def _finish(self) -> None:
        assert self._file is not None
        self._file.attrs["n_frames"] = np.int64(self._written)
        self._file.attrs["complete"] = np.uint8(1)
        self._file.flush()
        self._file.close()
        self._file = None
        self._dsets = []

    def _discard(self) -> None:
        self._dsets = []
        if self._file is not None:
            f, self._file = self._file, None
            try:
                f.close()
            except (OSError, RuntimeError, ValueError):
                pass


def missing_virtual_sources(f: h5py.File) -> list[str]:
    """Source files of ``f``'s virtual datasets that do not exist (HDF5 would read fill values).

    Relative source names resolve against the folder of ``f``, as HDF5 resolves them.
    """
    folder = Path(f.filename).parent
    missing: set[str] = set()

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.is_virtual:
            for source in obj.virtual_sources():
                if source.file_name != "." and not (folder / source.file_name).is_file():
                    missing.add(source.file_name)

    f.visititems(visit)
    return sorted(missing)


def _copy_attrs(values: dict, attrs: h5py.AttributeManager) -> None:
    for key, value in values.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            attrs.create(key, value, dtype=h5py.string_dtype())
        else:
            attrs[key] = value


def write_virtual_movie(path: str | os.PathLike[str], parts: list[str | os.PathLike[str]]) -> int:
    """Write ``path`` as one movie made of the complete HDF5 movies ``parts``, without copying.

    Every dataset of the parts (``ch1``.., ``u``/``v``) becomes a virtual dataset that maps
    consecutive frame ranges onto the parts, by paths relative to ``path``'s folder (so the
    folder can be moved as a whole). Root attributes are those of the first part, with the
    total ``n_frames``. Written atomically; returns the frame count.
    """
    path = Path(path)
    counts = []
    for part in parts:
        n = read_hdf5_frame_count(part)
        if n is None:
            raise ValueError(f"{part}: not a complete HDF5 movie, cannot join it into {path}")
        counts.append(n)
    total = int(sum(counts))
    with h5py.File(parts[0], "r") as first:
        attrs = dict(first.attrs)
        layouts = {name: (first[name].shape[1:], first[name].dtype, dict(first[name].attrs))
                   for name in first if isinstance(first[name], h5py.Dataset)}
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for name, (frame_shape, dtype, ds_attrs) in layouts.items():
            layout = h5py.VirtualLayout(shape=(total, *frame_shape), dtype=dtype)
            t0 = 0
            for part, n in zip(parts, counts, strict=True):
                source = os.path.relpath(Path(part).resolve(), path.resolve().parent)
                layout[t0 : t0 + n] = h5py.VirtualSource(source, name, shape=(n, *frame_shape))
                t0 += n
            ds = f.create_virtual_dataset(name, layout)
            _copy_attrs(ds_attrs, ds.attrs)
        _copy_attrs(attrs, f.attrs)
        f.attrs["n_frames"] = np.int64(total)
        f.attrs["complete"] = np.uint8(1)
    return total


def read_hdf5_frame_count(path: str | os.PathLike[str]) -> int | None:
    """Number of frames in a finished HDF5 movie, for resume logic.

    Parameters
    ----------
    path : path-like
        HDF5 file written by :class:`HDF5MovieWriter`.

    Returns
    -------
    int or None
        The root attribute ``n_frames`` when the file exists, opens, is marked
        ``complete`` and its ``ch1``.. datasets hold at least that many frames;
        None otherwise (missing, unreadable, truncated or unfinished file).
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with h5py.File(p, "r") as f:
            if not bool(f.attrs.get("complete", 0)) or "n_frames" not in f.attrs:
                return None
            n = int(f.attrs["n_frames"])
            channels = _channel_datasets(f)
            if not channels or any(ds.ndim != 3 or ds.shape[0] < n for ds in channels):
                return None
            if missing_virtual_sources(f):
                return None
            return n
    except (OSError, KeyError, ValueError, TypeError):
        return None
