"""Mapping of labelled file axes onto the in-memory (T, H, W, C) frame layout.

Files label their dimensions with one letter each (tifffile convention):

=======  ===============================================================
letter   meaning
=======  ===============================================================
``Y X``  image rows (H) and columns (W); both required
``T``    time; ``I`` (image sequence) and ``Q`` (unknown) are also time
``Z``    depth; treated as time when it is the only stacked axis (plain
         z-stack-like page sequences), otherwise a ``plane=`` must be chosen
``C S``  channels / samples per pixel -> C
=======  ===============================================================

Axes of length 1 are dropped, so e.g. ``'TZCYX'`` with Z=1 and C=1 is just a time series.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AxisPlan", "plan_axes", "parse_axis_labels"]

_TIME = "TIQ"
_CHANNEL = "CS"
_KNOWN = "YX" + _TIME + _CHANNEL + "Z"


def parse_axis_labels(value: Any) -> str:
    """Normalise an axis-label attribute to an upper-case string.

    Accepts a string (``'TYX'``), bytes (``b'TYX'``) or a sequence of one-letter labels
    (``['t', 'z', 'y', 'x', 'c']`` as written by e.g. SIMA's ``DIMENSION_LABELS``).
    """
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace").upper()
    if isinstance(value, str):
        return value.upper()
    parts = []
    for item in np.asarray(value).ravel().tolist():
        parts.append(
            item.decode("ascii", errors="replace") if isinstance(item, bytes) else str(item)
        )
    return "".join(parts).upper()


@dataclass(frozen=True)
class AxisPlan:
    """How to cut (T, H, W, C) blocks out of an array with labelled axes.

    Attributes
    ----------
    axes : str
        One upper-case letter per dimension of the stored array.
    raw_shape : tuple of int
        Shape of the stored array.
    time_axis, channel_axis : int or None
        Dimension holding time / channels (None: a single frame / single channel).
    y_axis, x_axis : int
        Dimensions holding image rows and columns.
    plane_axis, plane : int or None
        Depth dimension and the selected plane index, when a plane was selected.
    """

    axes: str
    raw_shape: tuple[int, ...]
    time_axis: int | None
    channel_axis: int | None
    y_axis: int
    x_axis: int
    plane_axis: int | None = None
    plane: int | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return 1 if self.time_axis is None else int(self.raw_shape[self.time_axis])

    @property
    def n_channels(self) -> int:
        """Number of channels C."""
        return 1 if self.channel_axis is None else int(self.raw_shape[self.channel_axis])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Movie shape (T, H, W, C)."""
        return (
            self.n_frames,
            int(self.raw_shape[self.y_axis]),
            int(self.raw_shape[self.x_axis]),
            self.n_channels,
        )

    def index(self, t0: int, t1: int) -> tuple[int | slice, ...]:
        """Index tuple into the stored array selecting frames ``t0 <= t < t1``."""
        idx: list[int | slice] = []
        for dim in range(len(self.raw_shape)):
            if dim == self.time_axis:
                idx.append(slice(t0, t1))
            elif dim == self.plane_axis:
                idx.append(int(self.plane))  # type: ignore[arg-type]
            elif dim in (self.channel_axis, self.y_axis, self.x_axis):
                idx.append(slice(None))
            else:  # singleton axis
                idx.append(0)
        return tuple(idx)

    def apply(self, raw: Any, t0: int, t1: int) -> np.ndarray:
        """Read frames ``t0 <= t < t1`` from ``raw`` as a (t1 - t0, H, W, C) array.

        ``raw`` is anything indexable with a tuple of ints and slices (numpy array,
        memmap, h5py dataset, lazy page reader). A single-frame movie (no time axis)
        only accepts ``t0, t1 = 0, 1``.
        """
        idx = self.index(t0, t1)
        block = np.asarray(raw[idx])
        kept = [d for d, i in enumerate(idx) if isinstance(i, slice)]
        order = [
            d for d in (self.time_axis, self.y_axis, self.x_axis, self.channel_axis) if d in kept
        ]
        block = np.transpose(block, [kept.index(d) for d in order])
        if self.time_axis is None:
            block = block[np.newaxis]
        if self.channel_axis is None:
            block = block[..., np.newaxis]
        return block


def plan_axes(
    axes: str,
    shape: tuple[int, ...],
    *,
    path: str | os.PathLike[str],
    plane: int | None = None,
) -> AxisPlan:
    """Work out how a labelled array maps to (T, H, W, C).

    Parameters
    ----------
    axes : str
        One letter per dimension (see module docstring), case-insensitive.
    shape : tuple of int
        Shape of the stored array.
    path : path-like
        File the array belongs to (named in error messages).
    plane : int, optional
        Index along the ``Z`` axis to select for volumetric recordings.

    Returns
    -------
    AxisPlan

    Raises
    ------
    ValueError
        Unknown, duplicate or missing axes, several non-singleton channel or time axes,
        a volume without ``plane=``, or an out-of-range ``plane``.
    """
    where = os.fspath(path)
    axes = axes.upper()
    shape = tuple(int(n) for n in shape)
    if len(axes) != len(shape):
        raise ValueError(f"{where}: axis labels {axes!r} do not match the array shape {shape}")
    if len(set(axes)) != len(axes):
        raise ValueError(
            f"{where}: ambiguous axis labels {axes!r} for shape {shape} (repeated letters); "
            "cannot tell time from channels"
        )
    for req in "YX":
        if req not in axes:
            raise ValueError(f"{where}: axis labels {axes!r} lack the image axis {req!r}")

    def big(letters: str) -> list[int]:
        # axes of length 0 count: they make the movie empty, which validation reports
        return [d for d, a in enumerate(axes) if a in letters and shape[d] != 1]

    unknown = [axes[d] for d, a in enumerate(axes) if a not in _KNOWN and shape[d] != 1]
    if unknown:
        raise ValueError(
            f"{where}: unsupported axis {unknown[0]!r} in {axes!r} (shape {shape}); only "
            "time (T/I/Q), depth (Z), channel (C/S), Y and X are understood"
        )
    channel = big(_CHANNEL)
    if len(channel) > 1:
        raise ValueError(f"{where}: several channel axes in {axes!r} (shape {shape})")
    time = big(_TIME)
    z = axes.find("Z")
    plane_axis = None
    if plane is not None:
        if z < 0:
            raise ValueError(f"{where}: plane={plane} given but the data {axes!r} has no Z axis")
        if not 0 <= plane < shape[z]:
            raise ValueError(
                f"{where}: plane={plane} out of range; the volume has {shape[z]} planes"
            )
        plane_axis = z
    elif z >= 0 and shape[z] != 1:
        if time:
            raise ValueError(
                f"{where}: {len(shape)}-D volumetric data {axes!r} of shape {shape} with "
                f"{shape[z]} z-planes is not supported as a movie; pass plane=<index> to "
                "select one z-plane"
            )
        time = [z]
    if len(time) > 1:
        raise ValueError(f"{where}: several time-like axes in {axes!r} (shape {shape})")
    return AxisPlan(
        axes=axes,
        raw_shape=shape,
        time_axis=time[0] if time else None,
        channel_axis=channel[0] if channel else None,
        y_axis=axes.index("Y"),
        x_axis=axes.index("X"),
        plane_axis=plane_axis,
        plane=plane,
    )
