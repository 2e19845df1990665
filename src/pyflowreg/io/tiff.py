"""TIFF movies: lazy reader for multi-page/BigTIFF/ImageJ/ScanImage files and a
streaming, crash-safe writer.

Reading
-------
The first image series found by tifffile is mapped to (T, H, W, C) with
:func:`~pyflowreg.io._axes.plan_axes` (e.g. ``'YX'`` -> one frame, ``'TYX'``/``'IYX'``/
``'QYX'``/``'ZYX'`` -> pages are frames, ``'TCYX'``, ``'CTYX'``, ``'TYXS'``, ImageJ
hyperstacks ``'TZCYX'`` with ``plane=``). ScanImage files are de-interleaved using their
saved-channel metadata (see :mod:`pyflowreg.io.scanimage`). Nothing is loaded up front:
uncompressed contiguous series are memory-mapped, all other files are decoded page by
page, so any frame range of a multi-gigabyte file is read with memory proportional to
the range only.

Truncated or corrupt files are rejected when opened: tifffile's complaints about broken
page chains are turned into errors, and the image data of the series must lie within the
file.

Writing (file layout)
---------------------
:class:`TIFFMovieWriter` appends all frames to **one contiguous, uncompressed series**
with tifffile's JSON ``ImageDescription`` (``{"shape": [...], "axes": ...}``):

* one channel: one page per frame, series axes ``'TYX'``; ``tifffile.imread`` returns
  (T, H, W);
* C channels: C consecutive pages per frame (channel-interleaved, like ScanImage),
  series axes ``'TCYX'``; ``tifffile.imread`` returns (T, C, H, W).

Every page is a plain grey-scale (``minisblack``) image, so ImageJ/Fiji and MATLAB's
``Tiff`` class can read them page by page. :class:`TIFFMovieReader` turns both layouts
back into (T, H, W, C) exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tifffile

from ._axes import plan_axes
from ._dtypes import movie_dtype
from ._rawfile import ContiguousFileArray
from .base import MovieReader, MovieWriter
from .scanimage import ScanImageLayout, parse_scanimage_text, scanimage_layout
from .validation import check_frame_shape

__all__ = ["TIFFMovieReader", "TIFFMovieWriter", "BIGTIFF_THRESHOLD_BYTES"]

#: Writers switch to BigTIFF automatically above this expected file size (bytes).
BIGTIFF_THRESHOLD_BYTES = int(3.5e9)
_CLASSIC_TIFF_LIMIT = 2**32 - 2**25  # leave room for IFDs and tags

_TIFF_ERRORS: tuple[type[BaseException], ...] = (
    tifffile.TiffFileError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    struct.error,
    OSError,
    EOFError,
    zlib.error,
    RuntimeError,
)
# tifffile log messages that mean the file structure is broken (typically truncated).
_FATAL_LOG_PATTERNS = (
    "invalid page offset",
    "corrupted tag list",
    "corrupted ifd",
    "failed to reshape",
    "suspicious number of tags",
)


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_log() -> Iterator[list[str]]:
    """Collect tifffile's warning/error log messages emitted inside the block."""
    logger = logging.getLogger("tifffile")
    handler = _LogCollector()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


class _PagedArray:
    """Lazy array over TIFF pages: shape = lead_shape + page_shape.

    Pages are ordered C-style over ``lead_shape``; only the pages selected by an index
    are decoded.
    """

    def __init__(
        self,
        series: tifffile.TiffPageSeries,
        lead_shape: tuple[int, ...],
        page_shape: tuple[int, ...],
        dtype: np.dtype,
        path: Path,
    ) -> None:
        self.series = series
        self.lead_shape = lead_shape
        self.page_shape = page_shape
        self.dtype = dtype
        self.path = path
        self.shape = lead_shape + page_shape

    def _page(self, i: int) -> np.ndarray:
        page = self.series[i]
        if page is None:
            raise ValueError(f"{self.path}: TIFF page {i} of the series is missing")
        try:
            data = page.asarray()
        except _TIFF_ERRORS as exc:
            raise ValueError(f"{self.path}: cannot decode TIFF page {i}: {exc}") from exc
        if data.shape != self.page_shape:
            data = data.reshape(self.page_shape)
        return data

    def __getitem__(self, idx: tuple[int | slice, ...]) -> np.ndarray:
        nl = len(self.lead_shape)
        grid = np.arange(math.prod(self.lead_shape)).reshape(self.lead_shape)[idx[:nl]]
        flat = np.asarray(grid).ravel()
        out = np.empty((flat.size, *self.page_shape), dtype=self.dtype)
        for k, i in enumerate(flat.tolist()):
            out[k] = self._page(i)
        out = out.reshape(np.shape(grid) + self.page_shape)
        lead_kept = (slice(None),) * np.ndim(grid)
        return out[lead_kept + tuple(idx[nl:])]


def _scanimage_settings(tif: tifffile.TiffFile) -> dict[str, Any]:
    page = tif.pages.first
    settings: dict[str, Any] = {}
    settings.update(parse_scanimage_text(page.description or ""))
    settings.update(parse_scanimage_text(page.software or ""))
    meta = tif.scanimage_metadata or {}
    frame_data = meta.get("FrameData") if isinstance(meta, Mapping) else None
    if isinstance(frame_data, Mapping):
        settings.update(frame_data)
    return settings


class TIFFMovieReader(MovieReader):
    """Read a TIFF movie as (T, H, W, C) frames without loading the whole file.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff`` file (classic or BigTIFF, ImageJ, ScanImage, tifffile).
    plane : int, optional
        z-plane to read from volumetric recordings (axes with both Z and T).
    this_file_only : bool, default False
        Read this file's own pages even where its OME-XML describes a series spread over
        several files (one file of a Bruker folder or of a multi-file recording).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a readable TIFF, is truncated, has an unsupported axis layout
        or dtype, no frames, or frames smaller than 2x2 pixels.
    """

    suffixes = (".tif", ".tiff")

    def __init__(self, path: str | os.PathLike[str], *, plane: int | None = None,
                 this_file_only: bool = False) -> None:
        super().__init__(path)
        self._tif: tifffile.TiffFile | None = None
        self._raw: ContiguousFileArray | _PagedArray | None = None
        self._scanimage: ScanImageLayout | None = None
        self._metadata: dict[str, Any] = {}
        try:
            self._open(plane, this_file_only)
        except BaseException:
            self._closed = True
            self._close()
            raise

    @property
    def is_scanimage(self) -> bool:
        """True when the pages were de-interleaved using ScanImage metadata."""
        return self._scanimage is not None

    @property
    def metadata(self) -> dict[str, Any]:
        """tifffile shaped-description metadata (e.g. attrs stored by the writer)."""
        return dict(self._metadata)

    def _open(self, plane: int | None, this_file_only: bool = False) -> None:
        where = self._path
        size = where.stat().st_size
        if size == 0:
            raise ValueError(f"{where}: TIFF file is empty (0 bytes)")
        with _tifffile_log() as messages:
            try:
                # OME-XML may describe a series spread over many files (Bruker writes one
                # file per frame, each naming all the others); a file read as one part of a
                # recording must be read alone.
                flags = {"is_ome": False} if this_file_only else {}
                self._tif = tif = tifffile.TiffFile(where, **flags)
            except _TIFF_ERRORS as exc:
                raise ValueError(f"{where}: not a readable TIFF file ({exc})") from exc
            try:
                all_series = tif.series
                if not all_series:
                    raise ValueError("no image series found")
                series = all_series[0]
                page = series.keyframe
                n_pages = len(series)
                is_scanimage = bool(tif.is_scanimage)
                settings = _scanimage_settings(tif) if is_scanimage else {}
                shaped = tif.shaped_metadata if tif.is_shaped else None
            except _TIFF_ERRORS as exc:
                raise ValueError(f"{where}: cannot parse TIFF structure ({exc})") from exc
        fatal = [m for m in messages if any(p in m.lower() for p in _FATAL_LOG_PATTERNS)]
        if fatal:
            raise ValueError(f"{where}: TIFF file is truncated or corrupt ({fatal[0]})")
        if shaped:
            self._metadata = {k: v for k, v in shaped[0].items() if k not in ("shape", "axes")}

        if page.dtype is None:
            raise ValueError(
                f"{where}: unsupported TIFF sample format ({page.bitspersample} bits per "
                f"sample, sampleformat {page.sampleformat})"
            )
        movie_dtype(page.dtype, path=where)
        check_frame_shape((page.imagelength, page.imagewidth), path=where)
        page_shape = tuple(int(n) for n in page.shape)
        page_axes = str(page.axes)
        layout = scanimage_layout(settings) if is_scanimage else None
        if is_scanimage and layout is None:
            warnings.warn(
                f"{where}: ScanImage file without saved-channel metadata; reading every "
                "page as a frame of one channel",
                stacklevel=3,
            )
        if layout is not None:
            self._scanimage = layout
            per_frame = layout.n_planes * layout.n_channels
            n_t = n_pages // per_frame
            if n_t * per_frame != n_pages:
                warnings.warn(
                    f"{where}: the last {n_pages - n_t * per_frame} ScanImage pages do not "
                    f"form a complete frame of {per_frame} pages and are ignored",
                    stacklevel=3,
                )
            lead_shape: tuple[int, ...] = (n_t, layout.n_planes, layout.n_channels)
            lead_axes = "TZC"
        else:
            s_shape = tuple(int(n) for n in series.shape)
            s_axes = str(series.axes)
            k = len(s_shape) - len(page_shape)
            if k < 0 or s_shape[k:] != page_shape or s_axes[k:] != page_axes:
                raise ValueError(
                    f"{where}: unsupported TIFF layout: series {s_axes} {s_shape} does not "
                    f"stack pages of shape {page_shape}"
                )
            lead_shape, lead_axes = s_shape[:k], s_axes[:k]

        self._plan = plan_axes(
            lead_axes + page_axes, lead_shape + page_shape, path=where, plane=plane
        )
        self._set_geometry(self._plan.shape, page.dtype)

        n_used = math.prod(lead_shape)
        offset = series.dataoffset
        contiguous = offset is not None and page.is_memmappable
        if not contiguous and n_used > n_pages:
            raise ValueError(
                f"{where}: TIFF series {lead_axes + page_axes} {lead_shape + page_shape} needs "
                f"{n_used} pages but only {n_pages} are present; the file may be truncated"
            )
        if contiguous:
            nbytes = n_used * math.prod(page_shape) * page.dtype.itemsize
            if offset + nbytes > size:
                raise ValueError(
                    f"{where}: TIFF file is truncated: image data end at byte "
                    f"{offset + nbytes} but the file has {size} bytes"
                )
            self._raw = ContiguousFileArray(
                where, offset, page.dtype.newbyteorder(tif.byteorder), lead_shape + page_shape
            )
        else:
            for i in sorted({0, n_used - 1}):
                p = series[i]
                ends = [o + c for o, c in zip(p.dataoffsets, p.databytecounts, strict=False)]
                if ends and max(ends) > size:
                    raise ValueError(
                        f"{where}: TIFF file is truncated: page {i} data end at byte "
                        f"{max(ends)} but the file has {size} bytes"
                    )
            self._raw = _PagedArray(series, lead_shape, page_shape, page.dtype, where)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        return self._plan.apply(self._raw, t0, t1)

    def _close(self) -> None:
        if isinstance(self._raw, ContiguousFileArray):
            self._raw.close()
        self._raw = None
        if self._tif is not None:
            self._tif.close()
            self._tif = None


class TIFFMovieWriter(MovieWriter):
    """Stream (T, H, W, C) frames into one contiguous TIFF series, crash-safely.

    See the module docstring for the file layout. Data are uncompressed (tifffile cannot
    append to compressed series); use HDF5 output for compression.

    Parameters
    ----------
    path : path-like
        Output ``.tif``/``.tiff`` file.
    frame_shape : (int, int)
        Frame size (H, W) in pixels.
    n_channels : int
        Number of channels C.
    dtype : dtype-like
        Storage pixel type (see :class:`~pyflowreg.io.MovieWriter`).
    n_frames : int, optional
        Total frames, if known (used for the BigTIFF decision and checked on close).
    bigtiff : bool, optional
        Force (True) or forbid (False) BigTIFF. Default: BigTIFF when ``n_frames`` is
        unknown or the data exceed :data:`BIGTIFF_THRESHOLD_BYTES` (3.5 GB).
    compression : None
        Only None is accepted (present for a uniform writer signature).
    attrs : mapping, optional
        JSON-serialisable metadata stored in the ImageDescription JSON (readable as
        :attr:`TIFFMovieReader.metadata`).
    dataset_names : sequence of str, optional
        Channel names, stored as ``channel_names`` in the ImageDescription JSON (the
        counterpart of HDF5 dataset names).
    """

    suffixes = (".tif", ".tiff")

    def __init__(
        self,
        path: str | os.PathLike[str],
        frame_shape: tuple[int, int],
        n_channels: int,
        dtype: npt.DTypeLike,
        *,
        n_frames: int | None = None,
        bigtiff: bool | None = None,
        compression: None = None,
        attrs: Mapping[str, Any] | None = None,
        dataset_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(path, frame_shape, n_channels, dtype, n_frames=n_frames)
        if compression is not None:
            raise ValueError(
                f"{self._path}: TIFF output is written uncompressed (streamed contiguous "
                f"series); compression={compression!r} is not supported, use HDF5 instead"
            )
        self._attrs = dict(attrs or {})
        reserved = {"shape", "axes", "channel_names"} & set(self._attrs)
        if reserved:
            raise ValueError(f"{self._path}: attrs may not set reserved keys {sorted(reserved)}")
        if dataset_names is not None:
            names = [] if isinstance(dataset_names, str) else [str(n) for n in dataset_names]
            if len(names) != self._n_channels or len(set(names)) != len(names):
                raise ValueError(
                    f"{self._path}: dataset_names must be {self._n_channels} distinct names, "
                    f"got {dataset_names!r}"
                )
            self._attrs["channel_names"] = names
        try:
            json.dumps(self._attrs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self._path}: attrs must be JSON-serialisable ({exc})") from exc
        h, w = self._frame_shape
        frame_bytes = h * w * self._n_channels * self._dtype.itemsize
        expected = None if n_frames is None else self._n_frames * frame_bytes  # type: ignore[operator]
        if bigtiff is None:
            bigtiff = expected is None or expected > BIGTIFF_THRESHOLD_BYTES
        elif not bigtiff and expected is not None and expected > _CLASSIC_TIFF_LIMIT:
            raise ValueError(
                f"{self._path}: {expected} bytes of image data do not fit in a classic TIFF "
                "(4 GB limit); use bigtiff=True"
            )
        self._bigtiff = bool(bigtiff)
        self._axes = "TYX" if self._n_channels == 1 else "TCYX"
        self._tw: tifffile.TiffWriter | None = None
        self._start()

    @property
    def bigtiff(self) -> bool:
        """Whether the file is written as BigTIFF."""
        return self._bigtiff

    def _open(self, temp_path: Path) -> None:
        self._tw = tifffile.TiffWriter(temp_path, bigtiff=self._bigtiff)

    def _append(self, frames: np.ndarray) -> None:
        assert self._tw is not None
        for frame in frames:
            page = frame[..., 0] if self._n_channels == 1 else np.moveaxis(frame, -1, 0)
            self._tw.write(
                np.ascontiguousarray(page),
                contiguous=True,
                photometric="minisblack",
                metadata={"axes": self._axes, **self._attrs},
                software="pyflowreg",
            )

    def _finish(self) -> None:
        assert self._tw is not None and self._output is not None
        self._tw.close()
        self._tw = None
        if self._written == 1:
            # tifffile records a single write without the leading T axis; restore it so
            # that the shape in the description matches the axes.
            h, w = self._frame_shape
            shape = [1, h, w] if self._n_channels == 1 else [1, self._n_channels, h, w]
            desc = json.dumps({"shape": shape, "axes": self._axes, **self._attrs})
            tifffile.tiffcomment(self._output.temp_path, comment=desc)

    def _discard(self) -> None:
        if self._tw is not None:
            tw, self._tw = self._tw, None
            try:
                tw.filehandle.close()
            except OSError:
                pass
