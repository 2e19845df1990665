"""Choose a crash-safe movie writer by file suffix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy.typing as npt

from .base import MovieWriter
from .hdf5 import HDF5MovieWriter
from .npy import NPYMovieWriter
from .tiff import TIFFMovieWriter

__all__ = ["WRITER_SUFFIXES", "open_movie_writer"]

_WRITERS: dict[str, type[MovieWriter]] = {
    ".tif": TIFFMovieWriter,
    ".tiff": TIFFMovieWriter,
    ".h5": HDF5MovieWriter,
    ".hdf5": HDF5MovieWriter,
    ".hdf": HDF5MovieWriter,
    ".npy": NPYMovieWriter,
}
#: File suffixes :func:`open_movie_writer` understands (case-insensitive).
WRITER_SUFFIXES = tuple(_WRITERS)


def open_movie_writer(
    path: str | os.PathLike[str],
    frame_shape: tuple[int, int],
    n_channels: int,
    dtype: npt.DTypeLike,
    **kwargs: Any,
) -> MovieWriter:
    """Create the writer matching the suffix of ``path``.

    Parameters
    ----------
    path : path-like
        Output file: ``.h5``/``.hdf5``/``.hdf`` -> :class:`HDF5MovieWriter`,
        ``.tif``/``.tiff`` -> :class:`TIFFMovieWriter`, ``.npy`` -> :class:`NPYMovieWriter`.
    frame_shape : (int, int)
        Frame size (H, W) in pixels.
    n_channels : int
        Number of channels C.
    dtype : dtype-like
        Storage pixel type.
    **kwargs
        Passed on: ``n_frames``, ``compression``, ``attrs``, ``dataset_names`` (all
        writers; only some values are valid per format) and ``bigtiff`` (TIFF only).

    Returns
    -------
    MovieWriter
        A context manager: the file appears at ``path`` only after a successful close.

    Raises
    ------
    ValueError
        Unsupported suffix or invalid arguments (raised before any file is created).
    FileNotFoundError
        If the output directory does not exist.
    """
    p = Path(path)
    cls = _WRITERS.get(p.suffix.lower())
    if cls is None:
        raise ValueError(
            f"{p}: unsupported output file type {p.suffix!r}; supported: "
            + ", ".join(WRITER_SUFFIXES)
        )
    return cls(p, frame_shape, n_channels, dtype, **kwargs)
