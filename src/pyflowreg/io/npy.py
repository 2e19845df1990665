"""NumPy ``.npy`` movies: memory-mapped reader and crash-safe streaming writer.

Accepted array shapes: (T, H, W), (T, H, W, C), or (H, W) for a single frame. The
writer always produces (T, H, W, C) C-order arrays. It reserves a fixed 128-byte
version-1.0 header, streams the frames after it and rewrites the header with the final
frame count on close, so the number of frames need not be known in advance.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ._atomic import write_array
from ._axes import AxisPlan, plan_axes
from ._dtypes import movie_dtype
from ._rawfile import ContiguousFileArray
from .base import MovieReader, MovieWriter

__all__ = ["NPYMovieReader", "NPYMovieWriter"]

_HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + padded dict


def _read_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(fh)
            if version in ((2, 0), (3, 0)):
                return np.lib.format.read_array_header_2_0(fh)
        except (ValueError, OSError, SyntaxError, EOFError) as exc:
            raise ValueError(f"{path}: not a valid .npy file ({exc})") from exc
    raise ValueError(f"{path}: unsupported .npy format version {version}")


class NPYMovieReader(MovieReader):
    """Read a ``.npy`` movie through a read-only memory map.

    Parameters
    ----------
    path : path-like
        ``.npy`` file holding a (T, H, W), (T, H, W, C) or (H, W) array.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Not a valid/complete ``.npy`` file, wrong number of dimensions, unsupported
        dtype, no frames, or frames smaller than 2x2 pixels.
    """

    suffixes = (".npy",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._mm: np.ndarray | None = None
        try:
            self._open()
        except BaseException:
            self._closed = True
            self._close()
            raise

    def _open(self) -> None:
        where = self._path
        shape, _fortran, dtype = _read_header(where)
        movie_dtype(dtype, path=where)  # reject object/complex/... arrays first
        axes = {2: "YX", 3: "TYX", 4: "TYXC"}.get(len(shape))
        if axes is None:
            raise ValueError(
                f"{where}: array of shape {shape} is not a movie; expected (T, H, W), "
                "(T, H, W, C) or (H, W)"
            )
        self._plan: AxisPlan = plan_axes(axes, shape, path=where)
        # check dtype and geometry before mapping (also rejects object arrays and 0 frames)
        self._set_geometry(self._plan.shape, dtype)
        try:
            mm = np.load(where, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{where}: cannot map .npy data, file truncated? ({exc})") from exc
        if mm.flags.c_contiguous:
            # Positioned reads instead of the map: see ContiguousFileArray.
            self._mm = ContiguousFileArray(where, mm.offset, mm.dtype, mm.shape)
            del mm
        else:
            self._mm = mm

    def _read(self, t0: int, t1: int) -> np.ndarray:
        return np.array(self._plan.apply(self._mm, t0, t1))

    def _close(self) -> None:
        if isinstance(self._mm, ContiguousFileArray):
            self._mm.close()
        self._mm = None


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    text = repr(header).encode("latin1")
    magic = np.lib.format.magic(1, 0)
    room = _HEADER_BYTES - len(magic) - 2
    if len(text) + 1 > room:
        raise ValueError(f"array shape {shape} too large for the reserved .npy header")
    text = text + b" " * (room - len(text) - 1) + b"\n"
    return magic + room.to_bytes(2, "little") + text


class NPYMovieWriter(MovieWriter):
    """Stream (T, H, W, C) frames into a ``.npy`` file, crash-safely.

    Parameters
    ----------
    path : path-like
        Output ``.npy`` file.
    frame_shape : (int, int)
        Frame size (H, W) in pixels.
    n_channels : int
        Number of channels C (the array is always 4-D, also for C = 1).
    dtype : dtype-like
        Storage pixel type (see :class:`~pyflowreg.io.MovieWriter`).
    n_frames : int, optional
        Total frames, if known (checked on close).
    compression, attrs, dataset_names : None
        Not supported by the format; only None/empty is accepted (uniform signature).
    """

    suffixes = (".npy",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        frame_shape: tuple[int, int],
        n_channels: int,
        dtype: npt.DTypeLike,
        *,
        n_frames: int | None = None,
        compression: None = None,
        attrs: Mapping[str, Any] | None = None,
        dataset_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(path, frame_shape, n_channels, dtype, n_frames=n_frames)
        if compression is not None:
            raise ValueError(f"{self._path}: .npy output cannot be compressed")
        if attrs:
            raise ValueError(f"{self._path}: .npy files cannot store attributes {sorted(attrs)}")
        if dataset_names is not None:
            raise ValueError(f"{self._path}: .npy files cannot store channel (dataset) names")
        self._fh: IO[bytes] | None = None
        self._start()

    def _shape_for(self, n: int) -> tuple[int, int, int, int]:
        h, w = self._frame_shape
        return (n, h, w, self._n_channels)

    def _open(self, temp_path: Path) -> None:
        self._fh = open(temp_path, "wb")  # closed in _finish / _discard
        self._fh.write(_npy_header(self._dtype, self._shape_for(0)))

    def _append(self, frames: np.ndarray) -> None:
        assert self._fh is not None
        write_array(self._fh, np.asarray(frames, dtype=self._dtype))

    def _finish(self) -> None:
        assert self._fh is not None
        fh, self._fh = self._fh, None
        with fh:
            fh.seek(0)
            fh.write(_npy_header(self._dtype, self._shape_for(self._written)))
            fh.flush()

    def _discard(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()
