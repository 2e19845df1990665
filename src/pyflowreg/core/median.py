"""5x5 median filter of the solver's flow increments: exact, vectorised, row-parallel.

The row kernel is generated from a compare-exchange network (see
:mod:`pyflowreg.core.median_network`).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from pyflowreg.core._median_kernel import median_rows
from pyflowreg.core.threads import use_parallel


@njit(cache=True, fastmath=True, nogil=True)
def _median_serial(src, out):
    median_rows(src, out, 0, src.shape[0])


@njit(cache=True, parallel=True, fastmath=True, nogil=True)
def _median_parallel(src, out, n_threads):
    height = src.shape[0]
    step = (height + n_threads - 1) // n_threads
    for t in prange(n_threads):
        median_rows(src, out, t * step, min(height, (t + 1) * step))


def median_filter_5x5(src: np.ndarray, out: np.ndarray) -> None:
    """5x5 median of an (H, W) float32 array into ``out``, with replicated borders."""
    if use_parallel(src.size):
        _median_parallel(src, out, get_num_threads())
    else:
        _median_serial(src, out)
