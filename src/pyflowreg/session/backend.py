"""Settings of the flow backend (``backend_params``) and how the stages apply them.

The built-in backend ``flowreg`` (numba) takes

``n_workers``
    Stage 1 worker threads per recording (frames corrected in parallel, numba single-threaded in
    each); the same as the top-level ``n_workers``, and giving both with different values is an
    error.
``numba_threads``
    numba threads of Stages 2 and 3 (flow between the temporal averages, warping of the aligned
    videos); kernels split images of 100k pixels or more across them. The BLAS library gets
    as many. Default: every CPU available to the process. The caller's thread counts are
    restored afterwards.

Unknown entries are rejected by name (the schema lists these two), before any work starts.
"""

from __future__ import annotations

import functools

import numba

from pyflowreg.core.threads import limit_blas_threads, set_numba_threads


def stage1_workers(config) -> int | None:
    """Stage 1 worker threads of a session: ``n_workers`` or ``backend_params.n_workers``."""
    if config.n_workers is not None:
        return config.n_workers
    return (config.backend_params or {}).get("n_workers")


def check_backend_params(config) -> str | None:
    """Why the backend settings of ``config`` contradict each other, or None."""
    params = config.backend_params or {}
    workers = params.get("n_workers")
    if workers is not None and config.n_workers is not None and workers != config.n_workers:
        return (f"n_workers is {config.n_workers} but backend_params.n_workers is {workers}; "
                "give one of them")
    return None


def with_backend_threads(stage):
    """Run ``stage(config, ...)`` with ``config.backend_params['numba_threads']`` numba (and
    BLAS) threads."""

    @functools.wraps(stage)
    def run(config, *args, **kwargs):
        n_threads = (config.backend_params or {}).get("numba_threads")
        if n_threads is None:
            return stage(config, *args, **kwargs)
        previous = numba.get_num_threads()
        blas_limit = limit_blas_threads(set_numba_threads(n_threads))
        try:
            return stage(config, *args, **kwargs)
        finally:
            blas_limit.restore_original_limits()
            numba.set_num_threads(previous)

    return run
