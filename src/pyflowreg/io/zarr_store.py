"""Zarr movies: lazy reader of ``.zarr`` stores (folders), Zarr formats 2 and 3.

Which array
-----------
1. OME-Zarr images: a group with ``multiscales`` metadata (NGFF 0.4: group attribute
   ``multiscales``; NGFF 0.5: ``ome.multiscales``). The first dataset of the first multiscale
   is read: the full resolution; the other levels of the pyramid are not used. When the root
   group holds no image itself, an image group directly below it is taken (the
   bioformats2raw layout ``<store>/0``), if there is exactly one.
2. An array at the root of the store.
3. Otherwise the unique numeric 3-D, 4-D or 5-D array anywhere in the group; several ->
   ValueError listing them.

Axes
----
OME-Zarr names its axes in ``multiscales[0].axes``: ``t`` (type ``time``) -> T, ``c`` (type
``channel``) -> C, ``z`` -> Z, ``y`` -> H, ``x`` -> W. Like every other input, a Z axis of more
than one plane needs ``plane=`` when there is also a time axis, and is the frame axis when
there is none (a z-stack). NGFF 0.1/0.2 images, which have no ``axes``, are 5-D (t, c, z, y, x).

Other arrays take their axes from an attribute ``axis_order``, ``axes`` or
``DIMENSION_LABELS`` (as HDF5 datasets, e.g. ``'TYX'``, ``'TCYX'``); else from the Zarr 3
``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS`` when every name is a known axis
(``t``/``time``, ``c``/``channel``, ``z``, ``y``, ``x``); else 3-D arrays are (T, H, W) and 4-D
arrays (T, H, W, C); a 2-D array is one (H, W) frame.

Frames are read through Zarr's slicing, which decodes only the chunks holding the requested
frames. ``zarr`` is imported when the first store is opened, not with :mod:`pyflowreg.io`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._axes import AxisPlan, parse_axis_labels, plan_axes
from ._dtypes import movie_dtype
from .base import MovieReader

__all__ = ["ZarrMovieReader"]

_AXIS_NAMES = {
    "t": "T",
    "time": "T",
    "c": "C",
    "channel": "C",
    "z": "Z",
    "y": "Y",
    "x": "X",
}
_AXIS_TYPES = {"time": "T", "channel": "C"}
_LABEL_ATTRS = ("axis_order", "axes", "DIMENSION_LABELS")
_DEFAULT_AXES = {2: "YX", 3: "TYX", 4: "TYXC"}
# zarr raises these (JSON, metadata, codec and store errors) on unreadable stores
_ZARR_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)


def _axis_letter(name: Any, kind: Any = None) -> str | None:
    """One-letter label of a named axis (see the module docstring); None if unknown."""
    if not isinstance(name, str):
        return None
    letter = _AXIS_NAMES.get(name.lower())
    if letter is None and isinstance(kind, str):
        letter = _AXIS_TYPES.get(kind.lower())
    return letter


def _multiscales(attrs: Mapping[str, Any]) -> Any:
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        return ome["multiscales"]
    return attrs.get("multiscales")


def _is_numeric(array: Any) -> bool:
    dtype = np.dtype(array.dtype)
    return dtype.kind in "uifcb" and dtype.fields is None


def _walk_arrays(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(path, array)`` of every array in ``group`` and its sub-groups, sorted by path.

    Uses ``arrays()``/``groups()``, which zarr 2 and 3 both provide.
    """
    found = [(f"{prefix}{name}", array) for name, array in group.arrays()]
    for name, sub in group.groups():
        found += _walk_arrays(sub, f"{prefix}{name}/")
    return sorted(found, key=lambda item: item[0])


class ZarrMovieReader(MovieReader):
    """Read a movie from a Zarr store lazily as (T, H, W, C) frames.

    See the module docstring for which array is read and how its axes map to (T, H, W, C).

    Parameters
    ----------
    path : path-like
        ``.zarr`` store folder (Zarr format 2 or 3), or the folder of one array inside it.
    plane : int, optional
        z-plane to read from volumetric recordings (a Z axis besides time).

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        Not a folder or not a readable Zarr store, malformed OME-Zarr metadata, no or several
        candidate arrays, unknown axes, a volume without ``plane=``, unsupported dtype, no
        frames or frames smaller than 2x2 pixels.
    """

    suffixes = (".zarr",)
    directory_store = True

    def __init__(self, path: str | os.PathLike[str], *, plane: int | None = None) -> None:
        super().__init__(path)
        self._array: Any = None
        self._array_path = ""
        self._ome = False
        try:
            self._open(plane)
        except BaseException:
            self._closed = True
            self._close()
            raise

    @property
    def array_path(self) -> str:
        """Path of the array read inside the store (``''`` for an array at the root)."""
        return self._array_path

    @property
    def is_ome_zarr(self) -> bool:
        """True when the array is the full-resolution level of an OME-Zarr image."""
        return self._ome

    def _where(self) -> str:
        return f"{self._path}/{self._array_path}" if self._array_path else str(self._path)

    def _open(self, plane: int | None) -> None:
        import zarr  # importing zarr takes ~0.4 s: only jobs that read Zarr pay for it

        where = self._path
        if not where.is_dir():
            raise ValueError(f"{where}: a Zarr store is a folder; this is a file")
        try:
            node = zarr.open(store=os.fspath(where), mode="r")
        except _ZARR_ERRORS as exc:
            raise ValueError(f"{where}: not a readable Zarr store ({exc})") from exc
        if isinstance(node, zarr.Array):
            self._array = node
            axes = self._labels(node)
        else:
            axes = self._find_in_group(node, zarr)
        array = self._array
        if not _is_numeric(array):
            raise ValueError(f"{self._where()}: array is not numeric ({array.dtype})")
        movie_dtype(array.dtype, path=self._where())
        self._plan: AxisPlan = plan_axes(axes, array.shape, path=self._where(), plane=plane)
        self._set_geometry(self._plan.shape, array.dtype)

    def _find_in_group(self, group: Any, zarr: Any) -> str:
        """Select the movie array of a group (setting ``_array``) and return its axes."""
        if _multiscales(dict(group.attrs)) is not None:
            return self._ome_array("", group, zarr)
        images = sorted(
            (name, sub)
            for name, sub in group.groups()
            if _multiscales(dict(sub.attrs)) is not None
        )
        if len(images) > 1:
            names = ", ".join(name for name, _ in images)
            raise ValueError(
                f"{self._path}: holds several OME-Zarr images ({names}); read one with "
                f"ZarrMovieReader('{self._path}/<name>')"
            )
        if images:
            return self._ome_array(*images[0], zarr)
        candidates = [
            (name, array)
            for name, array in _walk_arrays(group)
            if array.ndim in (3, 4, 5) and _is_numeric(array)
        ]
        if len(candidates) != 1:
            if candidates:
                listing = ", ".join(f"{name} {array.shape}" for name, array in candidates)
                problem = (
                    f"several candidate arrays ({listing}); store one movie per .zarr store "
                    f"or read one with ZarrMovieReader('{self._path}/<name>')"
                )
            else:
                arrays = _walk_arrays(group)
                listing = ", ".join(f"{name} {a.shape} {a.dtype}" for name, a in arrays)
                problem = "no numeric 3-D to 5-D movie array (" + (
                    listing or "the store holds no arrays"
                ) + ")"
            raise ValueError(f"{self._path}: {problem}")
        self._array_path, self._array = candidates[0]
        return self._labels(self._array)

    def _ome_array(self, image_path: str, image: Any, zarr: Any) -> str:
        """Select the full-resolution array of an OME-Zarr image and return its axes."""
        where = f"{self._path}/{image_path}" if image_path else str(self._path)
        multiscales = _multiscales(dict(image.attrs))
        try:
            first = multiscales[0]
            dataset_path = str(first["datasets"][0]["path"])
        except (IndexError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{where}: malformed OME-Zarr metadata: multiscales[0].datasets[0].path is "
                f"missing ({exc!r})"
            ) from exc
        try:
            array = image[dataset_path]
        except _ZARR_ERRORS as exc:
            raise ValueError(
                f"{where}: OME-Zarr level {dataset_path!r} cannot be opened ({exc})"
            ) from exc
        if not isinstance(array, zarr.Array):
            raise ValueError(f"{where}: OME-Zarr level {dataset_path!r} is not an array")
        self._array = array
        self._array_path = f"{image_path}/{dataset_path}" if image_path else dataset_path
        self._ome = True
        axes = first.get("axes")
        if axes is None:
            if array.ndim == 5:  # NGFF 0.1/0.2 fix the axes to (t, c, z, y, x)
                return "TCZYX"
            raise ValueError(
                f"{where}: OME-Zarr multiscale has no axes and its {array.ndim}-D array is "
                "not the 5-D (t, c, z, y, x) of NGFF 0.1/0.2"
            )
        if isinstance(axes, str) or not isinstance(axes, Sequence):
            raise ValueError(f"{where}: malformed OME-Zarr axes {axes!r}; expected a list")
        letters = []
        for axis in axes:
            # NGFF 0.4 on: {"name": ..., "type": ...}; NGFF 0.3: plain names
            if isinstance(axis, Mapping):
                name, kind = axis.get("name"), axis.get("type")
            else:
                name, kind = axis, None
            letter = _axis_letter(name, kind)
            if letter is None:
                raise ValueError(
                    f"{where}: OME-Zarr axis {name!r} (type {kind!r}) is not understood; "
                    "expected t, c, z, y, x"
                )
            letters.append(letter)
        return "".join(letters)

    def _labels(self, array: Any) -> str:
        """Axis labels of a plain array (see the module docstring)."""
        attrs = dict(array.attrs)
        for key in _LABEL_ATTRS:
            if key in attrs:
                return parse_axis_labels(attrs[key])
        metadata = getattr(array, "metadata", None)
        names = getattr(metadata, "dimension_names", None) or attrs.get("_ARRAY_DIMENSIONS")
        if names and len(names) == array.ndim:
            letters = [_axis_letter(name) for name in names]
            if all(letters):
                return "".join(letters)  # type: ignore[arg-type]
        axes = _DEFAULT_AXES.get(array.ndim)
        if axes is None:
            raise ValueError(
                f"{self._where()}: array has {array.ndim} dimensions {array.shape} but no "
                "axis_order/axes attribute to interpret them"
            )
        return axes

    def _read(self, t0: int, t1: int) -> np.ndarray:
        try:
            return self._plan.apply(self._array, t0, t1)
        except _ZARR_ERRORS as exc:  # missing store, corrupt chunk, failing codec
            raise ValueError(
                f"{self._where()}: cannot read frames {t0}..{t1 - 1} ({exc})"
            ) from exc

    def _close(self) -> None:
        self._array = None
