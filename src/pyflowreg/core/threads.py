"""Thread counts of numba and of the BLAS library: set from the job's allotted threads."""

from __future__ import annotations

import os

import numba
from threadpoolctl import threadpool_limits


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks set by schedulers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


def set_numba_threads(n_threads: int | None) -> int:
    """Use ``n_threads`` numba threads (None: all CPUs available); return the count in effect.

    numba cannot start more threads than it was launched with (``NUMBA_NUM_THREADS``), so the
    request is clamped to that.
    """
    if n_threads is None:
        n_threads = available_cpus()
    if isinstance(n_threads, bool) or int(n_threads) < 1:
        raise ValueError(f"thread count must be a positive integer, got {n_threads!r}")
    n = min(int(n_threads), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    return n


def limit_blas_threads(n_threads: int):
    """Cap the BLAS library's threads (process-wide) at ``n_threads``; returns the limiter,
    whose ``restore_original_limits()`` undoes it.

    numpy's BLAS otherwise starts a thread per core of the node for the matrix products of a
    phase correlation or a noise fit, whatever the job was given: on 2 cores a 1-thread Stage 1
    job spent 0.55 CPU-s instead of 0.30 on its noise fit (the same result), and on a cluster
    node of 64 cores each job would start 64.
    """
    return threadpool_limits(limits=max(1, int(n_threads)), user_api="blas")


def set_job_threads(n_threads: int | None) -> int:
    """A job's thread count for numba (:func:`set_numba_threads`) and for the BLAS library."""
    n = set_numba_threads(n_threads)
    limit_blas_threads(n)
    return n


# Below this many pixels a kernel runs on the calling thread: waking numba's workers for each of
# the solver's many short parallel regions costs more than the work. Measured on 2 cores: with
# 16384 px, 2 threads were slower than 1 on 256^2 images (12.8 vs 13.7 frames/s); with 100k px
# they are never slower, and 40 % faster on 512^2 (4.8 vs 3.4). Throughput over many frames
# comes from running frames in parallel instead (motion_correction.parallel).
PARALLEL_MIN_PIXELS = 100_000


def use_parallel(n_pixels: int) -> bool:
    """Whether a kernel over ``n_pixels`` pixels should split its rows across numba threads."""
    return n_pixels >= PARALLEL_MIN_PIXELS and numba.get_num_threads() > 1
