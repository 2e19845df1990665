"""A recording is whatever the microscope wrote: one file, many files, or a folder of frames.

A :class:`MovieSource` names a recording (its ``stem``, used for every output name) and the
files it is read from, in frame order. :func:`open_recording` reads it as one lazy
(T, H, W, C) movie, streamed across file borders: only the files of the frames asked for are
open, so memory does not grow with the number of files.

Where the files come from:

* a **recordings sheet** (:func:`read_recordings_sheet`): a TSV file with the header
  ``recording<TAB>path``; a path is a file, a folder (its frames as files, in natural order)
  or a glob (natural order); rows with one recording name are concatenated in row order;
* **ScanImage split files** (:func:`group_scanimage_files`): ``<base>_00001.tif``,
  ``<base>_00002.tif``, ... whose headers show one acquisition with continuing frame numbers;
* a **Bruker PrairieView folder** (:func:`bruker_source`): one TIFF per frame and channel, the
  frames and channels listed in the folder's ``.xml``.

Every check that can fail runs when the source is built or opened, before any output is
written: a missing file, a gap or disorder in the numbering, a file of another frame size,
pixel type or channel count, and (:func:`check_disjoint`) one file in two recordings.
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import is_temporary_path
from .base import MovieReader
from .readers import READER_SUFFIXES, open_movie
from .tiff import TIFFMovieReader

__all__ = [
    "MovieSource",
    "SHEET_HEADER",
    "as_recording",
    "bruker_source",
    "check_disjoint",
    "expand_sheet_path",
    "group_scanimage_files",
    "is_bruker_folder",
    "natural_key",
    "open_recording",
    "read_recordings_sheet",
    "source_files",
]

#: The header line of a recordings sheet.
SHEET_HEADER = ("recording", "path")

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str | os.PathLike[str]) -> tuple:
    """Sort key that orders ``frame_2`` before ``frame_10`` (digits compared as numbers)."""
    parts = _DIGITS.split(Path(path).name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))


@dataclass(frozen=True)
class MovieSource:
    """The files of one recording, in frame order.

    Attributes
    ----------
    stem : str
        The recording's name: its output folder is ``<output_root>/<stem>``.
    parts : tuple of tuple of Path
        Blocks of frames in time order. A block is one movie file, or (Bruker) one file per
        channel of the same frames, stacked as channels in the order given.
    series : str, optional
        The ``TwoPhotonSeries`` to read from the recording's NWB files (other files ignore it).
    """

    stem: str
    parts: tuple[tuple[Path, ...], ...]
    series: str | None = None

    @classmethod
    def single(cls, path: str | os.PathLike[str], *, stem: str | None = None,
               series: str | None = None) -> MovieSource:
        path = Path(path)
        return cls(stem or path.stem, ((path,),), series)

    @classmethod
    def sequence(cls, stem: str, files: Iterable[str | os.PathLike[str]]) -> MovieSource:
        """A recording concatenated from ``files`` in the order given."""
        return cls(stem, tuple((Path(f),) for f in files))

    @property
    def files(self) -> list[Path]:
        """Every file of the recording, in reading order."""
        return [f for part in self.parts for f in part]

    @property
    def is_single_file(self) -> bool:
        return len(self.parts) == 1 and len(self.parts[0]) == 1

    @property
    def name(self) -> str:
        """What log lines call the recording: the file name, or the stem and file count."""
        if self.is_single_file:
            return self.parts[0][0].name
        return f"{self.stem} ({len(self.files)} files)"

    def __str__(self) -> str:
        if self.is_single_file:
            return str(self.parts[0][0])
        files = self.files
        return f"{self.stem} ({len(files)} files: {files[0]} .. {files[-1]})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the workflow passes it to its jobs)."""
        return {"stem": self.stem, "parts": [[str(f) for f in part] for part in self.parts],
                "series": self.series}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MovieSource:
        return cls(values["stem"], tuple(tuple(Path(f) for f in part) for part in values["parts"]),
                   values.get("series"))


def as_recording(recording: str | os.PathLike[str] | MovieSource) -> Path | MovieSource:
    """A path as a Path, a :class:`MovieSource` as it is."""
    return recording if isinstance(recording, MovieSource) else Path(recording)


def source_files(recording: str | os.PathLike[str] | MovieSource) -> list[Path]:
    """The files a recording is read from (a single path for a plain file)."""
    if isinstance(recording, MovieSource):
        return recording.files
    return [Path(recording)]


def open_recording(recording: str | os.PathLike[str] | MovieSource, **options: Any
                   ) -> MovieReader:
    """Open a recording (a path or a :class:`MovieSource`) as one (T, H, W, C) movie.

    ``options`` go to :func:`~pyflowreg.io.open_movie` for single files (``dataset``,
    ``plane``, ``series``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`~pyflowreg.io.open_movie`, naming the file; for several files also when
        they disagree in frame size, pixel type or channel count.
    """
    if not isinstance(recording, MovieSource):
        return open_movie(recording, **options)
    if recording.is_single_file:
        path = recording.parts[0][0]
        return open_movie(path, **_file_options(path, recording.series, options))
    return ConcatMovieReader(recording, **options)


def _file_options(path: Path, series: str | None, options: dict[str, Any]) -> dict[str, Any]:
    # nwb_series names a series of the NWB files; other formats have no series.
    if series is not None and path.suffix.lower() == ".nwb":
        return dict(options, series=series)
    return options


class ConcatMovieReader(MovieReader):
    """Frames of many files read as one movie, across file borders.

    Every file is opened once when the reader is created, to check that all agree and to
    count their frames; afterwards at most :attr:`OPEN_FILES` are open at a time (a
    recording of 10 000 one-frame files must not exhaust file handles).
    """

    #: Files kept open between reads (the current block and the one before a border).
    OPEN_FILES = 2
    # A block may be a .zarr store; what each file is, is checked when it is probed.
    directory_store = True

    def __init__(self, source: MovieSource, **options: Any) -> None:
        files = source.files
        if not files:
            raise ValueError(f"recording {source.stem!r} has no files")
        for f in files:
            if not f.exists():
                raise FileNotFoundError(f"recording {source.stem!r}: file not found: {f}")
        super().__init__(files[0])
        self.source = source
        self._options = options
        self._open: dict[int, list[MovieReader]] = {}
        counts, first = [], None
        for part in source.parts:
            n_frames, geometry = self._probe(part)
            if first is None:
                first = (part, geometry)
            elif geometry != first[1]:
                raise ValueError(_mismatch(source.stem, first, (part, geometry)))
            counts.append(n_frames)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        (h, w), n_channels, dtype = first[1]
        self._set_geometry((int(self._starts[-1]), h, w, n_channels), dtype)

    def _probe(self, part: tuple[Path, ...]):
        counts, shapes, channels, dtypes = [], [], 0, set()
        for f in part:
            with self._open_file(f) as reader:
                counts.append(reader.n_frames)
                shapes.append(reader.frame_shape)
                channels += reader.n_channels
                dtypes.add(reader.dtype)
        if len(set(counts)) > 1 or len(set(shapes)) > 1 or len(dtypes) > 1:
            listing = ", ".join(f"{f.name}: {n} frames of {s}" for f, n, s in
                                zip(part, counts, shapes, strict=True))
            raise ValueError(f"recording {self.source.stem!r}: the channel files of one block "
                             f"disagree ({listing})")
        return counts[0], (shapes[0], channels, dtypes.pop())

    def _open_file(self, path: Path) -> MovieReader:
        if path.suffix.lower() in TIFFMovieReader.suffixes:
            return TIFFMovieReader(path, plane=self._options.get("plane"), this_file_only=True)
        return open_movie(path, **_file_options(path, self.source.series, self._options))

    @property
    def file_frame_counts(self) -> list[int]:
        """Frames per block (file), in order."""
        return np.diff(self._starts).tolist()

    def _readers(self, k: int) -> list[MovieReader]:
        readers = self._open.pop(k, None)
        if readers is None:
            readers = [self._open_file(f) for f in self.source.parts[k]]
        self._open[k] = readers  # most recently used last
        while len(self._open) > self.OPEN_FILES:
            for reader in self._open.pop(next(iter(self._open))):
                reader.close()
        return readers

    def _read(self, t0: int, t1: int) -> np.ndarray:
        _, h, w, c = self._shape
        out = np.empty((t1 - t0, h, w, c), dtype=self._dtype)
        k = int(np.searchsorted(self._starts, t0, side="right")) - 1
        t = t0
        while t < t1:
            start, stop = int(self._starts[k]), int(self._starts[k + 1])
            a, b = t - start, min(t1, stop) - start
            channels = [reader.read(a, b) for reader in self._readers(k)]
            out[t - t0:t - t0 + b - a] = np.concatenate(channels, axis=-1)
            t, k = start + b, k + 1
        return out

    def _close(self) -> None:
        for readers in self._open.values():
            for reader in readers:
                reader.close()
        self._open.clear()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"shape={self._shape}, dtype={self._dtype}"
        return f"ConcatMovieReader({str(self.source)!r}, {state})"


def _mismatch(stem, first, other) -> str:
    def describe(part, geometry):
        (h, w), c, dtype = geometry
        names = "+".join(str(f) for f in part)
        return f"{names} has {h}x{w} frames, {c} channel(s), {dtype}"
    return (f"recording {stem!r}: its files disagree: {describe(*first)}, but "
            f"{describe(*other)}; every file of a recording needs one frame size, pixel "
            "type and channel count")


# -- numbering -----------------------------------------------------------------------------
def _numbering(files: Sequence[Path]) -> tuple[str, list[int]] | None:
    """The files' common name pattern and their numbers, when they are numbered alike.

    The number is the last run of digits in the name; files are numbered alike when their
    names differ only there. ``None`` when they are not (nothing to check).
    """
    patterns, numbers = set(), []
    for f in files:
        runs = list(_DIGITS.finditer(f.name))
        if not runs:
            return None
        last = runs[-1]
        patterns.add(f.name[:last.start()] + "#" + f.name[last.end():])
        numbers.append(int(last.group()))
    if len(patterns) != 1:
        return None
    return patterns.pop(), numbers


def check_numbering(stem: str, files: Sequence[Path]) -> None:
    """Refuse numbered files with a gap or out of order (a lost or misplaced file).

    Raises
    ------
    ValueError
        Naming the two files around the gap or the disorder.
    """
    numbered = _numbering(files)
    if numbered is None or len(files) < 2:
        return
    _, numbers = numbered
    for (a, na), (b, nb) in zip(zip(files, numbers, strict=True),
                                zip(files[1:], numbers[1:], strict=True), strict=False):
        if nb == na + 1:
            continue
        if nb <= na:
            raise ValueError(f"recording {stem!r}: files out of order: {b} (number {nb}) comes "
                             f"after {a} (number {na})")
        raise ValueError(f"recording {stem!r}: gap in the file numbering between {a} and {b} "
                         f"(numbers {na + 1}..{nb - 1} are missing)")


# -- recordings sheet ----------------------------------------------------------------------
def _movie_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and not is_temporary_path(p)
                   and _is_movie_name(p)), key=natural_key)


def _is_movie_name(path: Path) -> bool:
    return path.suffix.lower() in READER_SUFFIXES or path.name.lower().endswith(".ome.tif")


def expand_sheet_path(value: str, root: Path, *, where: str) -> list[tuple[Path, ...]]:
    """The blocks of frames one sheet row names: a file, a folder or a glob.

    Raises
    ------
    FileNotFoundError
        When nothing exists there, naming ``where`` (sheet file and line).
    """
    path = Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    if any(ch in value for ch in "*?["):
        files = sorted((Path(p) for p in glob.glob(str(path))
                        if Path(p).is_file() and not is_temporary_path(Path(p))),
                       key=natural_key)
        if not files:
            raise FileNotFoundError(f"{where}: no file matches {value!r} (in {root})")
        return [(f,) for f in files]
    if path.is_dir() and not path.name.lower().endswith(".zarr"):
        if is_bruker_folder(path):
            return list(bruker_source(path).parts)
        files = _movie_files(path)
        if not files:
            raise FileNotFoundError(f"{where}: folder {path} holds no movie files")
        return [(f,) for f in files]
    if not path.exists():
        raise FileNotFoundError(f"{where}: file not found: {path}")
    return [(path,)]


def read_recordings_sheet(sheet: str | os.PathLike[str], root: str | os.PathLike[str], *,
                          series: str | None = None) -> list[MovieSource]:
    """The recordings a sheet lists, in order of their first row.

    Parameters
    ----------
    sheet : path-like
        TSV file whose first line is ``recording<TAB>path``; blank lines and lines starting
        with ``#`` are skipped.
    root : path-like
        Folder that relative paths in the sheet are relative to.
    series : str, optional
        NWB ``TwoPhotonSeries`` name, passed on to every recording.

    Raises
    ------
    FileNotFoundError
        The sheet or a file it names does not exist.
    ValueError
        A malformed line (naming the sheet and line number), a gap or disorder in the
        numbering of a recording's files, or one file listed twice.
    """
    sheet, root = Path(sheet), Path(root)
    try:
        lines = sheet.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"recordings sheet not found: {sheet}") from None
    rows = [(i, line) for i, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows or tuple(c.strip().lower() for c in rows[0][1].split("\t")) != SHEET_HEADER:
        raise ValueError(f"{sheet}: the first line must be the header 'recording<TAB>path' "
                         "(tab-separated)")
    blocks: dict[str, list[tuple[Path, ...]]] = {}
    for number, line in rows[1:]:
        cells = line.split("\t")
        where = f"{sheet}, line {number}"
        if len(cells) != 2 or not cells[0].strip() or not cells[1].strip():
            raise ValueError(f"{where}: expected 'recording<TAB>path', got {line!r}")
        name, value = cells[0].strip(), cells[1].strip()
        if "/" in name or name in (".", ".."):
            raise ValueError(f"{where}: recording name {name!r} cannot be a folder name")
        blocks.setdefault(name, []).extend(expand_sheet_path(value, root, where=where))
    if not blocks:
        raise ValueError(f"{sheet}: lists no recordings")
    sources = []
    for name, parts in blocks.items():
        if all(len(p) == 1 for p in parts):
            check_numbering(name, [p[0] for p in parts])
        sources.append(MovieSource(name, tuple(parts), series))
    check_disjoint(sources)
    return sources


def check_disjoint(recordings: Sequence[str | os.PathLike[str] | MovieSource]) -> None:
    """Refuse a file that belongs to two recordings (or twice to one).

    Raises
    ------
    ValueError
        Naming the file and the recordings.
    """
    owner: dict[Path, str] = {}
    for recording in recordings:
        stem = recording.stem if isinstance(recording, MovieSource) else Path(recording).stem
        for f in source_files(recording):
            key = f.resolve()
            if key in owner:
                where = (f"twice in recording {stem!r}" if owner[key] == stem
                         else f"in recordings {owner[key]!r} and {stem!r}")
                raise ValueError(f"{f} is listed {where}; a file belongs to one recording once")
            owner[key] = stem


# -- ScanImage split files -----------------------------------------------------------------
_SPLIT_NAME = re.compile(r"^(?P<base>.+)_(?P<index>\d{5})\.tiff?$", re.IGNORECASE)


def _parse_frame_lines(text: str) -> dict[str, Any]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in ("frameNumbers", "acquisitionNumbers"):
            try:
                out[key.strip()] = int(float(value.strip().rstrip(";")))
            except ValueError:
                pass
    return out


def group_scanimage_files(files: Sequence[Path]) -> list[str | Path | MovieSource]:
    """Group ScanImage split files into one recording per acquisition.

    Files named ``<base>_NNNNN.tif`` (ScanImage's five-digit file counter) whose per-frame
    headers show one acquisition with frame numbers that continue from file to file become one
    :class:`MovieSource` named ``<base>``; every other file is returned as it is. Only the
    first and last page header of each file are read.

    Raises
    ------
    ValueError
        When files of one base name and acquisition have a gap or overlap in their frame
        numbers, naming the two files.
    """
    groups: dict[str, list[Path]] = {}
    rest: list[Path] = []
    for f in files:
        m = _SPLIT_NAME.match(f.name)
        (groups.setdefault(str(f.parent / m.group("base")), []) if m else rest).append(f)
    out: list[Any] = list(rest)
    for base, members in groups.items():
        members = sorted(members, key=natural_key)
        numbers = [_frame_numbers(f) for f in members]
        if len(members) < 2 or any(n is None for n in numbers):
            out.extend(members)
            continue
        acquisitions = {n[2] for n in numbers}
        if len(acquisitions) > 1:
            out.extend(members)
            continue
        for (a, na), (b, nb) in zip(zip(members, numbers, strict=True),
                                    zip(members[1:], numbers[1:], strict=True), strict=False):
            if nb[0] != na[1] + 1:
                raise ValueError(
                    f"ScanImage files {a.name} and {b.name} belong to one acquisition but their "
                    f"frame numbers do not continue ({a.name} ends at frame {na[1]}, {b.name} "
                    f"starts at frame {nb[0]}): a file is missing or out of order"
                )
        out.append(MovieSource.sequence(Path(base).name, members))
    return out


def _frame_numbers(path: Path) -> tuple[int, int, Any] | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.is_scanimage:
                return None
            first = _parse_frame_lines(tif.pages[0].description or "")
            last = _parse_frame_lines(tif.pages[-1].description or "")
    except (OSError, ValueError, tifffile.TiffFileError):
        return None
    if "frameNumbers" not in first or "frameNumbers" not in last:
        return None
    return first["frameNumbers"], last["frameNumbers"], first.get("acquisitionNumbers")


# -- Bruker PrairieView --------------------------------------------------------------------
def _bruker_xml(folder: Path) -> Path | None:
    for xml in sorted(folder.glob("*.xml")):
        try:
            with open(xml, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        if b"<PVScan" in head:
            return xml
    return None


def is_bruker_folder(path: str | os.PathLike[str]) -> bool:
    """True for a folder holding a PrairieView ``.xml`` (root element ``PVScan``)."""
    path = Path(path)
    return path.is_dir() and _bruker_xml(path) is not None


def bruker_source(folder: str | os.PathLike[str], *, stem: str | None = None) -> MovieSource:
    """A Bruker PrairieView T-series folder as one recording.

    The ``.xml`` lists every frame (``<Frame index=...>``) and, per frame, one ``<File>`` per
    channel; the channels become C in the order of their channel numbers. Only the first
    sequence of the XML is read (a T-series; multi-sequence Z-series are not interpreted).

    Raises
    ------
    ValueError
        When the XML has no frames, frames list different channels, or frame indices are not
        consecutive.
    FileNotFoundError
        When a file the XML lists is missing.
    """
    folder = Path(folder)
    xml = _bruker_xml(folder)
    if xml is None:
        raise ValueError(f"{folder}: no PrairieView .xml (root element PVScan) in the folder")
    try:
        tree = ElementTree.parse(xml)
    except ElementTree.ParseError as exc:
        raise ValueError(f"{xml}: not a readable PrairieView XML ({exc})") from None
    sequence = tree.getroot().find("Sequence")
    if sequence is None:
        raise ValueError(f"{xml}: no <Sequence> element")
    parts, channels, previous, seen = [], None, None, set()
    for frame in sequence.iter("Frame"):
        index = int(frame.get("index", "0"))
        files = sorted(((int(f.get("channel", "0")), f.get("filename", ""))
                        for f in frame.iter("File")), key=lambda cf: cf[0])
        names = [c for c, _ in files]
        if channels is None:
            channels = names
        elif names != channels:
            raise ValueError(f"{xml}: frame {index} lists channels {names}, the first frame "
                             f"{channels}")
        if previous is not None and index != previous + 1:
            raise ValueError(f"{xml}: frame index {index} follows {previous}: frames are "
                             "missing or out of order")
        previous = index
        paths = tuple(folder / name for _, name in files)
        if any(p in seen for p in paths):
            raise ValueError(f"{xml}: frame {index} lists a file of an earlier frame; "
                             "multi-page PrairieView TIFFs are not supported (save one file "
                             "per frame and channel)")
        seen.update(paths)
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"{xml}: frame {index} lists {p.name}, which is not "
                                        f"in {folder}")
        parts.append(paths)
    if not parts:
        raise ValueError(f"{xml}: lists no frames")
    return MovieSource(stem or folder.name, tuple(parts))
