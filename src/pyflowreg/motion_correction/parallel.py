"""Frames corrected concurrently: one thread per worker, each running numba single-threaded.

Splitting whole frames across threads needs no synchronisation inside a frame, so it scales
better than splitting each frame's rows (whose threads meet at every SOR sweep) and degrades
gracefully when other jobs share the cores. The numba kernels release the GIL.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba

from pyflowreg.core.threads import limit_blas_threads


class FramePool:
    """Ordered ``map`` over frames on ``n_workers`` threads (inline when n_workers is 1)."""

    def __init__(self, n_workers: int):
        self.n_workers = max(1, int(n_workers))
        self._executor = (
            ThreadPoolExecutor(
                self.n_workers, thread_name_prefix="flowreg-frame",
                initializer=numba.set_num_threads, initargs=(1,),
            )
            if self.n_workers > 1 else None
        )

    def map(self, fn, items) -> list:
        """``[fn(item) for item in items]``, computed concurrently, in order."""
        if self._executor is None:
            return [fn(item) for item in items]
        return list(self._executor.map(fn, items))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> FramePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CorrectionPool(FramePool):
    """A :class:`FramePool` whose caller also runs numba, and the process its BLAS library, on
    one thread while it is open.

    With one worker the frames are corrected on the calling thread itself. The parallelism is
    the workers'; a BLAS call (phase correlation and regressions of the noise fit) that spread
    over every core would only compete with them. Both thread counts are restored on exit.
    """

    def __enter__(self) -> CorrectionPool:
        self._caller_threads = numba.get_num_threads()
        numba.set_num_threads(1)
        self._blas_limit = limit_blas_threads(1)
        return self

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._blas_limit.restore_original_limits()
        numba.set_num_threads(self._caller_threads)
