"""Abstract movie reader and writer shared by all file formats.

In memory a movie is always an array of shape (T, H, W, C): frames, image rows (pixels),
image columns (pixels) and channels (C >= 1).
"""

from __future__ import annotations

import operator
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._atomic import AtomicOutput, naming_output
from ._dtypes import cast_frames, movie_dtype
from .validation import check_frame_shape, check_movie_shape

__all__ = ["MovieReader", "MovieWriter", "require_existing_file"]


def require_existing_file(
    path: str | os.PathLike[str], *, directory_store: bool = False
) -> Path:
    """Return ``path`` as a Path, raising FileNotFoundError/ValueError if unusable.

    Parameters
    ----------
    path : path-like
        Movie file.
    directory_store : bool, default False
        Accept a directory too (formats stored as a folder, such as Zarr); the reader then
        checks what it finds there.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"movie file not found: {p}")
    if p.is_dir() and not directory_store:
        raise ValueError(f"movie path is a directory, not a file: {p}")
    return p


class MovieReader(ABC):
    """Random access to the frames of one movie file as (T, H, W, C) arrays.

    Subclasses open the file in ``__init__`` and then call :meth:`_set_geometry`, which
    validates the movie (at least one frame, frames of at least 2x2 pixels, a supported
    dtype) so that problems surface when the file is opened, not halfway through
    processing. Readers are context managers; use them in ``with`` blocks or call
    :meth:`close`.
    """

    #: File suffixes (lower case) handled by the reader.
    suffixes: tuple[str, ...] = ()
    #: True for formats stored as a folder (Zarr): the path may then be a directory.
    directory_store: bool = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = require_existing_file(path, directory_store=self.directory_store)
        self._shape: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._dtype = np.dtype(np.float32)
        self._closed = False

    # -- to be provided by subclasses -----------------------------------------------
    @abstractmethod
    def _read(self, t0: int, t1: int) -> np.ndarray:
        """Return frames t0..t1-1 as (t1 - t0, H, W, C) in any dtype/byte order."""

    @abstractmethod
    def _close(self) -> None:
        """Release file handles."""

    def _set_geometry(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> None:
        """Validate and record the movie shape (T, H, W, C) and stored dtype."""
        self._dtype = movie_dtype(dtype, path=self._path)
        self._shape = check_movie_shape(tuple(shape), path=self._path)  # type: ignore[arg-type]

    # -- geometry --------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """Path of the movie file (or store folder)."""
        return self._path

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Movie shape (T, H, W, C): frames, rows, columns, channels."""
        return self._shape

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return self._shape[0]

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Frame size (H, W) in pixels."""
        return self._shape[1], self._shape[2]

    @property
    def n_channels(self) -> int:
        """Number of channels C."""
        return self._shape[3]

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the arrays returned by :meth:`read` (the file's pixel type, native
        byte order; float16 files are returned as float32)."""
        return self._dtype

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        return self.n_frames

    # -- reading ---------------------------------------------------------------------
    def read(self, t0: int = 0, t1: int | None = None) -> np.ndarray:
        """Read frames ``t0 <= t < t1``.

        Parameters
        ----------
        t0 : int, default 0
            First frame (inclusive), ``0 <= t0 <= t1``.
        t1 : int, optional
            End frame (exclusive), at most :attr:`n_frames`; default: the last frame.

        Returns
        -------
        numpy.ndarray
            C-contiguous array of shape (t1 - t0, H, W, C) and dtype :attr:`dtype`,
            independent of the file (a copy, never a view into a memory map).

        Raises
        ------
        IndexError
            If the range is outside ``0 .. n_frames``.
        ValueError
            If the reader is closed or the file data cannot be decoded.
        """
        self._check_open()
        t0 = operator.index(t0)
        t1 = self.n_frames if t1 is None else operator.index(t1)
        if not 0 <= t0 <= t1 <= self.n_frames:
            raise IndexError(
                f"{self._path}: frame range [{t0}, {t1}) outside the movie's {self.n_frames} frames"
            )
        _, h, w, c = self._shape
        if t0 == t1:
            return np.empty((0, h, w, c), dtype=self._dtype)
        block = self._read(t0, t1)
        if block.shape != (t1 - t0, h, w, c):
            raise ValueError(
                f"{self._path}: frames {t0}..{t1 - 1} decoded to shape {block.shape}, "
                f"expected {(t1 - t0, h, w, c)}; the file may be corrupt"
            )
        if block.dtype != self._dtype:
            block = block.astype(self._dtype)
        return np.ascontiguousarray(block)

    def read_frame(self, t: int) -> np.ndarray:
        """Read one frame as an (H, W, C) array; negative ``t`` counts from the end."""
        t = operator.index(t)
        if t < 0:
            t += self.n_frames
        if not 0 <= t < self.n_frames:
            raise IndexError(f"{self._path}: frame {t} outside the movie's {self.n_frames} frames")
        return self.read(t, t + 1)[0]

    def batch_bounds(
        self, batch_size: int, *, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, int]]:
        """Yield ``(t0, t1)`` frame ranges of at most ``batch_size`` frames covering
        ``start .. stop`` (default: the whole movie)."""
        batch_size = operator.index(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        stop = self.n_frames if stop is None else min(operator.index(stop), self.n_frames)
        for t0 in range(operator.index(start), stop, batch_size):
            yield t0, min(t0 + batch_size, stop)

    def iter_batches(
        self, batch_size: int, *, start: int = 0, stop: int | None = None
    ) -> Iterator[np.ndarray]:
        """Yield consecutive (n, H, W, C) batches of at most ``batch_size`` frames.

        Only one batch is held in memory at a time. Use :meth:`batch_bounds` when the
        frame index of each batch is needed as well.
        """
        for t0, t1 in self.batch_bounds(batch_size, start=start, stop=stop):
            yield self.read(t0, t1)

    # -- lifetime --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"reader for {self._path} is closed")

    def close(self) -> None:
        """Close the file. Further reads raise ValueError; closing twice is fine."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> MovieReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"shape={self._shape}, dtype={self._dtype}"
        return f"{type(self).__name__}({str(self._path)!r}, {state})"


class MovieWriter(ABC):
    """Crash-safe streaming writer of (T, H, W, C) movies.

    Data go to a temporary file beside :attr:`path` (see
    :class:`~pyflowreg.io.AtomicOutput`); :meth:`close` finalises it and renames it onto
    :attr:`path`, :meth:`abort` deletes it. Used as a context manager, the file is
    committed on normal exit and discarded when the block raises. All arguments are
    checked before anything is created on disk.

    Parameters
    ----------
    path : path-like
        Final output file; its directory must exist.
    frame_shape : (int, int)
        Frame size (H, W) in pixels, each at least 2.
    n_channels : int
        Number of channels C >= 1.
    dtype : dtype-like
        Storage pixel type (integers, float32, float64; float16 is stored as float32).
        Frames of other types are converted with :func:`~pyflowreg.io.cast_frames`
        (rounded and clipped for integer outputs).
    n_frames : int, optional
        Number of frames that will be written, if known. Closing after writing a
        different number raises ValueError and discards the file.
    """

    suffixes: tuple[str, ...] = ()

    def __init__(
        self,
        path: str | os.PathLike[str],
        frame_shape: tuple[int, int],
        n_channels: int,
        dtype: npt.DTypeLike,
        *,
        n_frames: int | None = None,
    ) -> None:
        self._path = Path(path)
        if self.suffixes and self._path.suffix.lower() not in self.suffixes:
            raise ValueError(
                f"{self._path}: {type(self).__name__} needs a file suffix in {self.suffixes}"
            )
        self._frame_shape = check_frame_shape(frame_shape, path=self._path)
        n_channels = operator.index(n_channels)
        if n_channels < 1:
            raise ValueError(f"{self._path}: n_channels must be >= 1, got {n_channels}")
        self._n_channels = n_channels
        self._dtype = movie_dtype(dtype, path=self._path)
        if n_frames is not None:
            n_frames = operator.index(n_frames)
            if n_frames < 1:
                raise ValueError(f"{self._path}: n_frames must be >= 1 or None, got {n_frames}")
        self._n_frames = n_frames
        self._written = 0
        self._output: AtomicOutput | None = None

    def _start(self) -> None:
        """Create the temporary file; subclasses call this at the end of ``__init__``."""
        self._output = AtomicOutput(self._path)
        try:
            self._open(self._output.temp_path)
        except BaseException:
            self._output.abort()
            raise

    # -- to be provided by subclasses -----------------------------------------------
    @abstractmethod
    def _open(self, temp_path: Path) -> None:
        """Create the (temporary) output file."""

    @abstractmethod
    def _append(self, frames: np.ndarray) -> None:
        """Append (n, H, W, C) frames already in the storage dtype."""

    @abstractmethod
    def _finish(self) -> None:
        """Write trailing metadata and close the temporary file (success path)."""

    @abstractmethod
    def _discard(self) -> None:
        """Close the temporary file without finalising it (failure path)."""

    # -- properties ------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """Final output path (exists only after a successful :meth:`close`)."""
        return self._path

    @property
    def temp_path(self) -> Path | None:
        """Temporary file being written, or None before start."""
        return None if self._output is None else self._output.temp_path

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Frame size (H, W) in pixels."""
        return self._frame_shape

    @property
    def n_channels(self) -> int:
        """Number of channels C."""
        return self._n_channels

    @property
    def dtype(self) -> np.dtype:
        """Storage pixel dtype."""
        return self._dtype

    @property
    def n_frames(self) -> int | None:
        """Announced total number of frames (None if open-ended)."""
        return self._n_frames

    @property
    def frames_written(self) -> int:
        """Number of frames written so far."""
        return self._written

    @property
    def closed(self) -> bool:
        """True once the file was committed or discarded."""
        return self._output is None or self._output.state != "pending"

    # -- writing ---------------------------------------------------------------------
    def _as_batch(self, frames: Any) -> np.ndarray:
        arr = np.asarray(frames)
        h, w = self._frame_shape
        c = self._n_channels
        if arr.ndim == 3 and c == 1:
            arr = arr[..., np.newaxis]
        if arr.ndim != 4 or arr.shape[1:] != (h, w, c):
            raise ValueError(
                f"{self._path}: expected frames of shape (n, {h}, {w}, {c}), got {arr.shape}"
            )
        return cast_frames(arr, self._dtype, path=self._path)

    def write(self, frames: npt.ArrayLike) -> None:
        """Append frames.

        Parameters
        ----------
        frames : array_like
            (n, H, W, C) frames; (n, H, W) is accepted for single-channel movies.
        """
        if self.closed:
            raise ValueError(f"writer for {self._path} is closed")
        batch = self._as_batch(frames)
        n = batch.shape[0]
        if n == 0:
            return
        if self._n_frames is not None and self._written + n > self._n_frames:
            raise ValueError(
                f"{self._path}: writing {n} frames would exceed the announced "
                f"n_frames={self._n_frames} ({self._written} already written)"
            )
        try:
            self._append(batch)
        except OSError as exc:
            raise naming_output(exc, self._path) from exc
        self._written += n

    def close(self) -> Path:
        """Finalise the file and move it to :attr:`path` (idempotent).

        Raises
        ------
        ValueError
            If no frames, or fewer than the announced ``n_frames``, were written; the
            temporary file is discarded in that case.
        """
        if self._output is None or self._output.state == "committed":
            return self._path
        if self._output.state == "aborted":
            raise ValueError(f"writer for {self._path} was aborted")
        if self._written == 0 or (self._n_frames is not None and self._written != self._n_frames):
            expected = "at least 1" if self._n_frames is None else str(self._n_frames)
            self.abort()
            raise ValueError(
                f"{self._path}: only {self._written} frames were written, expected "
                f"{expected}; output discarded"
            )
        try:
            self._finish()
        except OSError as exc:
            self.abort()
            raise naming_output(exc, self._path) from exc
        except BaseException:
            self.abort()
            raise
        return self._output.commit()

    def abort(self) -> None:
        """Discard the output; any previous file at :attr:`path` stays untouched."""
        if self._output is None or self._output.state != "pending":
            return
        try:
            self._discard()
        finally:
            self._output.abort()

    def __enter__(self) -> MovieWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self._path)!r}, frame_shape={self._frame_shape}, "
            f"n_channels={self._n_channels}, dtype={self._dtype}, written={self._written})"
        )
