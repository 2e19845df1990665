"""A job's BLAS library runs on the threads the job was given.

numpy's BLAS starts a thread per core for the matrix products of a phase correlation (the noise
fit's frame shifts, Stage 2's rigid start) unless told otherwise; in a job given fewer cores
than the node has, those threads only compete with the job's own.
"""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from pyflowreg.core import noise
from pyflowreg.core.threads import set_job_threads
from pyflowreg.motion_correction import compensate_recording


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    """The process's BLAS set to 2 threads for the test (restored after it)."""
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_threads() != {2}:
            pytest.skip(f"no BLAS library that runs on 2 threads here: {threadpool_info()}")
        yield


def test_set_job_threads_gives_blas_the_jobs_thread_count(two_blas_threads):
    assert set_job_threads(1) == 1
    assert blas_threads() == {1}


def test_stage1_fits_its_noise_with_single_threaded_blas_and_restores_it(
        two_blas_threads, write_movie, tmp_path, monkeypatch):
    path, _ = write_movie(n_frames=24)
    seen = []
    real = noise.estimate_rigid_shift

    def recording(*args, **kwargs):
        seen.append(blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(noise, "estimate_rigid_shift", recording)
    compensate_recording({"quality_setting": "fast", "n_workers": 2}, input_file=path,
                         output_path=tmp_path / "out")
    assert seen and all(threads == {1} for threads in seen)
    assert blas_threads() == {2}
