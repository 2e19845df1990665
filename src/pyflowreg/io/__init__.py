"""Readers and writers for movies (TIFF, HDF5, NPY; NWB and Zarr read) in (T, H, W, C) layout."""

from ._atomic import (
    AtomicOutput,
    atomic_output,
    atomic_save_npy,
    atomic_save_npz,
    cleanup_stale_temporaries,
    is_temporary_path,
    temporary_path_for,
    write_array,
)
from ._dtypes import cast_frames, is_supported_dtype, movie_dtype
from .base import MovieReader, MovieWriter
from .hdf5 import (
    HDF5MovieReader,
    HDF5MovieWriter,
    missing_virtual_sources,
    read_hdf5_frame_count,
    write_virtual_movie,
)
from .npy import NPYMovieReader, NPYMovieWriter
from .nwb import NWBMovieReader, nwb_session_metadata
from .readers import (
    READER_SUFFIXES,
    completed_frame_count,
    movie_format,
    open_movie,
    validate_movie,
)
from .scanimage import deinterleave_pages, scanimage_layout
from .tiff import BIGTIFF_THRESHOLD_BYTES, TIFFMovieReader, TIFFMovieWriter
from .validation import check_finite, check_not_constant
from .writers import WRITER_SUFFIXES, open_movie_writer
from .zarr_store import ZarrMovieReader

__all__ = [
    "AtomicOutput",
    "BIGTIFF_THRESHOLD_BYTES",
    "HDF5MovieReader",
    "HDF5MovieWriter",
    "MovieReader",
    "MovieWriter",
    "NPYMovieReader",
    "NPYMovieWriter",
    "NWBMovieReader",
    "READER_SUFFIXES",
    "TIFFMovieReader",
    "TIFFMovieWriter",
    "WRITER_SUFFIXES",
    "ZarrMovieReader",
    "atomic_output",
    "atomic_save_npy",
    "atomic_save_npz",
    "cast_frames",
    "check_finite",
    "check_not_constant",
    "cleanup_stale_temporaries",
    "completed_frame_count",
    "deinterleave_pages",
    "is_supported_dtype",
    "is_temporary_path",
    "movie_dtype",
    "movie_format",
    "nwb_session_metadata",
    "open_movie",
    "open_movie_writer",
    "missing_virtual_sources",
    "read_hdf5_frame_count",
    "write_virtual_movie",
    "scanimage_layout",
    "temporary_path_for",
    "validate_movie",
    "write_array",
]
