"""The parallel numba kernels (images from 100k pixels) against the serial path.

"Results do not depend on the thread count" is checked here: the same flow estimate runs with
one numba thread (every kernel serial), two and three (each parallel kernel splits rows across
threads). Every parallel kernel is observed to run; two and three threads agree bit for bit, and
the serial path agrees to float32 rounding: the serial and the parallel kernels are separately
compiled machine code, which LLVM's fast-math rounds differently (measured ~2e-6 px).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from pyflowreg.core import get_displacement, interpolation, median, variational
from pyflowreg.core.threads import PARALLEL_MIN_PIXELS, use_parallel
from pyflowreg.synthetic import make_image_pair

SERIAL_TOLERANCE_PX = 1e-4  # float32 rounding over ~20 pyramid levels x 20 sweeps
# 320 x 320 = 102400 px: just above the threshold, so the finest pyramid level runs in parallel.
SIZE = 320
PARALLEL_KERNELS = (
    (interpolation, "_resample_parallel"),
    (interpolation, "_warp_cubic_parallel"),
    (variational, "_motion_tensor_parallel"),
    (variational, "solve_level_parallel"),
    (median, "_median_parallel"),
)

pytestmark = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2,
    reason="numba was started with one thread (NUMBA_NUM_THREADS); no parallel path exists",
)


@pytest.fixture(scope="module")
def pair():
    assert SIZE * SIZE >= PARALLEL_MIN_PIXELS
    fixed, moving, _ = make_image_pair(SIZE, SIZE, max_displacement=4.0, seed=3)
    return fixed, moving


def _flow(pair, n_threads: int, monkeypatch, calls: dict) -> np.ndarray:
    for module, name in PARALLEL_KERNELS:
        kernel = getattr(module, name)

        def counting(*args, _kernel=kernel, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return _kernel(*args)

        monkeypatch.setattr(module, name, counting)
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        assert use_parallel(SIZE * SIZE) == (n_threads > 1)
        return get_displacement(*pair, iterations=20)
    finally:
        numba.set_num_threads(previous)
        monkeypatch.undo()


def test_parallel_kernels_equal_serial_path(pair, monkeypatch):
    serial_calls, parallel_calls = {}, {}
    serial = _flow(pair, 1, monkeypatch, serial_calls)
    parallel = _flow(pair, 2, monkeypatch, parallel_calls)
    assert serial_calls == {}, f"one thread must never take a parallel kernel: {serial_calls}"
    missing = [name for _, name in PARALLEL_KERNELS if not parallel_calls.get(name)]
    assert missing == [], f"parallel kernels that did not run: {missing}"
    assert np.abs(serial).max() > 1.0  # a real flow, not zeros that match trivially
    np.testing.assert_allclose(parallel, serial, rtol=0, atol=SERIAL_TOLERANCE_PX)


THREAD_COUNTS = textwrap.dedent(
    f"""
    import sys
    import numba, numpy as np
    from pyflowreg.core import get_displacement
    from pyflowreg.synthetic import make_image_pair
    fixed, moving, _ = make_image_pair({SIZE}, {SIZE}, max_displacement=4.0, seed=3)
    flows = {{}}
    for n in (2, 3):
        numba.set_num_threads(n)
        flows[f"threads_{{n}}"] = get_displacement(fixed, moving, iterations=20)
    np.savez(sys.argv[1], **flows)
    """
)


def test_parallel_result_is_identical_for_any_thread_count(tmp_path):
    # numba cannot add threads after start-up, so three threads need a fresh process.
    out = tmp_path / "flows.npz"
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    subprocess.run([sys.executable, "-c", THREAD_COUNTS, str(out)], env=env, check=True,
                   timeout=600)
    with np.load(out) as flows:
        assert np.abs(flows["threads_2"]).max() > 1.0
        np.testing.assert_array_equal(flows["threads_3"], flows["threads_2"])
