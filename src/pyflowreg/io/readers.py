"""Open any supported movie file by its suffix, and check movies before processing."""

from __future__ import annotations

import os
from pathlib import Path

from .base import MovieReader, require_existing_file
from .hdf5 import HDF5MovieReader, read_hdf5_frame_count
from .npy import NPYMovieReader
from .nwb import NWBMovieReader
from .tiff import TIFFMovieReader
from .zarr_store import ZarrMovieReader

__all__ = [
    "READER_SUFFIXES",
    "completed_frame_count",
    "movie_format",
    "open_movie",
    "validate_movie",
]

_FORMATS: dict[str, str] = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".npy": "npy",
    ".nwb": "nwb",
    ".zarr": "zarr",
}
#: File suffixes :func:`open_movie` understands (case-insensitive).
READER_SUFFIXES = tuple(_FORMATS)


def movie_format(path: str | os.PathLike[str]) -> str:
    """Return ``'tiff'``, ``'hdf5'``, ``'npy'``, ``'nwb'`` or ``'zarr'`` for a movie path by suffix.

    Raises
    ------
    ValueError
        For any other suffix.
    """
    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{p}: unsupported movie file type {p.suffix!r}; supported: "
            + ", ".join(READER_SUFFIXES)
        )
    return fmt


def open_movie(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    plane: int | None = None,
    series: str | None = None,
) -> MovieReader:
    """Open a movie for reading as (T, H, W, C) frames.

    The file is checked when opened (exists, right format, readable structure, at least
    one frame, frames of at least 2x2 pixels, supported dtype), so errors surface before
    a caller writes any output.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff``, ``.h5``/``.hdf5``/``.hdf``, ``.npy`` or ``.nwb`` file, or
        ``.zarr`` store folder.
    dataset : str, optional
        HDF5 only: dataset (or group of ``ch1``.. datasets) holding the movie.
    plane : int, optional
        TIFF/HDF5/NWB/Zarr only: z-plane to read from volumetric recordings.
    series : str, optional
        NWB only: TwoPhotonSeries to read (short name or full path) when the file holds
        several.

    Returns
    -------
    MovieReader
        Reader with ``shape``, ``n_frames``, ``frame_shape``, ``n_channels``, ``dtype``,
        ``read(t0, t1)``, ``read_frame(t)``, ``iter_batches(n)``; a context manager.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Unsupported suffix, unreadable/corrupt/truncated file, ambiguous or invalid
        movie, or options that do not apply to the format.
    """
    # Directories are judged by each reader: Zarr stores are folders, a .nwb folder is a
    # Zarr-backed NWB file (the NWB reader says so), any other folder is refused.
    p = require_existing_file(path, directory_store=True)
    fmt = movie_format(p)
    if series is not None and fmt != "nwb":
        raise ValueError(f"{p}: series= only applies to NWB files")
    if fmt == "hdf5":
        return HDF5MovieReader(p, dataset=dataset, plane=plane)
    if dataset is not None:
        raise ValueError(f"{p}: dataset= only applies to HDF5 files")
    if fmt == "tiff":
        return TIFFMovieReader(p, plane=plane)
    if fmt == "nwb":
        return NWBMovieReader(p, series=series, plane=plane)
    if fmt == "zarr":
        return ZarrMovieReader(p, plane=plane)
    if plane is not None:
        raise ValueError(f"{p}: plane= does not apply to .npy files")
    return NPYMovieReader(p)


def validate_movie(
    path: str | os.PathLike[str],
    *,
    min_frames: int = 1,
    dataset: str | None = None,
    plane: int | None = None,
    series: str | None = None,
) -> tuple[int, int, int, int]:
    """Open a movie, check it, close it and return its shape (T, H, W, C).

    Pixel values are not scanned (use :func:`~pyflowreg.io.check_finite` per batch).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`open_movie`; ValueError also if it has fewer than ``min_frames``.
    """
    with open_movie(path, dataset=dataset, plane=plane, series=series) as reader:
        if reader.n_frames < min_frames:
            raise ValueError(
                f"{reader.path}: movie has {reader.n_frames} frames, at least {min_frames} "
                "are required"
            )
        return reader.shape


def completed_frame_count(path: str | os.PathLike[str]) -> int | None:
    """Number of frames of a finished output movie, or None if it is not usable.

    For HDF5 this trusts only files marked ``complete`` (:func:`read_hdf5_frame_count`).
    TIFF and NPY outputs are written atomically, so an existing file that opens and
    validates is complete; so is an NWB file or a Zarr store (inputs, never written here)
    that opens. Temporaries of unfinished writers have different names and are never
    considered.
    """
    p = Path(path)
    try:
        fmt = movie_format(p)
    except ValueError:
        return None
    if not (p.is_dir() if fmt == "zarr" else p.is_file()):
        return None
    if fmt == "hdf5":
        return read_hdf5_frame_count(p)
    try:
        with open_movie(p) as reader:
            return reader.n_frames
    except (ValueError, OSError):
        return None
