"""Positioned reads of uncompressed array data stored contiguously in a file."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np


class ContiguousFileArray:
    """Uncompressed C-ordered array data in a file, read with positioned reads into fresh arrays.

    Not a memory map on purpose: pages of a map that have been read stay in the process's
    resident memory until it is unmapped, so streaming a long recording through a map makes the
    resident size grow with the recording. Positioned reads keep it at one batch.
    """

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.path = path
        self.offset = offset
        self.dtype = dtype
        self.shape = shape
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __getitem__(self, idx: tuple[int | slice, ...]) -> np.ndarray:
        return self._read(tuple(idx), self.offset, self.shape)

    def _read(self, idx: tuple, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        if not idx:
            return self._block(offset, 1, shape)[0]
        first, rest = idx[0], idx[1:]
        row_bytes = math.prod(shape[1:]) * self.dtype.itemsize
        if isinstance(first, int | np.integer):
            return self._read(rest, offset + int(first) * row_bytes, shape[1:])
        start, stop, step = first.indices(shape[0])
        if all(r == slice(None) for r in rest):
            # One read of consecutive rows along this axis.
            return self._block(offset + start * row_bytes, max(0, stop - start), shape[1:])[::step]
        return np.stack([
            self._read(rest, offset + i * row_bytes, shape[1:]) for i in range(start, stop, step)
        ])

    def _block(self, offset: int, n_rows: int, row_shape: tuple[int, ...]) -> np.ndarray:
        nbytes = n_rows * math.prod(row_shape) * self.dtype.itemsize
        buf = bytearray(nbytes)
        view = memoryview(buf)
        done = 0
        while done < nbytes:
            n = os.preadv(self.fd, [view[done:]], offset + done)
            if n <= 0:
                raise ValueError(f"{self.path}: file ended early at byte {offset + done}")
            done += n
        return np.frombuffer(buf, dtype=self.dtype).reshape((n_rows, *row_shape))
