"""Optical-flow engine benchmark: frames/s, CPU-s/frame and accuracy per preset and thread count.

Usage: python benchmarks/optical_flow.py [--sizes 256 512] [--repeats 5] [--json PATH]

For each image size, preset (min_level 0 / 4 / 6) and parallel mode it registers a synthetic
pair with a known smooth field (max 6 px) and prints wall-clock frames/s, CPU-seconds per frame
and the mean end-point error against ground truth. Modes: "1 thread" and "2 threads" (numba
threads splitting each image; one ``get_displacement`` call per pair, reference pyramid
included) and "2 workers" (frames against one reference on two threads, numba single-threaded
in each, as Stage 1 runs). It also times the first call in a fresh process with a cold and with
a warm numba cache.

The last columns are not measured here: they are figures of another tool, the reference
pyflowreg implementation of the same method, as quoted in the project's requirements
(``benchmarks/reference_figures.json``: one frame pair of the same size and preset, same 2-core
machine type). The ratio to them is printed only for the frame size and preset the quoted
figure was measured on. ``--json PATH`` writes every printed figure and the run's metadata
(``benchmarks/results_io.py``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from scipy import ndimage

from pyflowreg.core.optical_flow import FlowEstimator, FlowParameters, get_displacement
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.synthetic import make_image_pair

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)

PRESETS = {"quality": 0, "balanced": 4, "fast": 6}


def prefilter(image, lo, hi):
    return ((ndimage.gaussian_filter(image, 1.0) - lo) / (hi - lo)).astype(np.float32)


def time_frame_workers(fixed, moving, w_true, min_level, workers, repeats):
    numba.set_num_threads(1)
    estimator = FlowEstimator(fixed, FlowParameters(min_level=min_level))
    frames = [moving] * (repeats * workers)
    with FramePool(workers) as pool:
        pool.map(estimator.estimate, frames[:workers])  # warm-up
        wall0, cpu0 = time.perf_counter(), time.process_time()
        flows = pool.map(estimator.estimate, frames)
    wall = (time.perf_counter() - wall0) / len(frames)
    cpu = (time.process_time() - cpu0) / len(frames)
    epe = float(np.linalg.norm(flows[-1] - w_true, axis=-1).mean())
    return 1.0 / wall, cpu, epe


def time_preset(fixed, moving, w_true, min_level, threads, repeats):
    numba.set_num_threads(threads)
    w = get_displacement(fixed, moving, min_level=min_level)  # warm-up
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        w = get_displacement(fixed, moving, min_level=min_level)
    wall = (time.perf_counter() - wall0) / repeats
    cpu = (time.process_time() - cpu0) / repeats
    epe = float(np.linalg.norm(w - w_true, axis=-1).mean())
    return 1.0 / wall, cpu, epe


FIRST_CALL = (
    "import time; t = time.perf_counter(); import numpy as np; "
    "from pyflowreg.core.optical_flow import get_displacement; "
    "a = np.random.default_rng(0).random((64, 64)).astype(np.float32); "
    "get_displacement(a, a); get_displacement(a, a, a_smooth=0.5); "
    "print(time.perf_counter() - t)"
)


def first_call_seconds(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    args = parser.parse_args()
    meta = results_io.start()

    with tempfile.TemporaryDirectory() as cache:
        cold = first_call_seconds(cache)
        warm = first_call_seconds(cache)
    print(f"first call in a fresh process: cold numba cache {cold:.1f} s, warm cache {warm:.2f} s")
    print(f"machine: {os.cpu_count()} CPUs, numba {numba.__version__}, "
          f"threading layer threads available {numba.config.NUMBA_NUM_THREADS}")
    header = (f"{'size':>5} {'preset':>9} {'min_lvl':>7} {'mode':>10} {'fps':>8} "
              f"{'CPU-s/frame':>11} {'EPE px':>7} {'quoted ref fps':>14} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    sources = sorted({e["source"] for e in results_io.reference_figures("optical_flow")})
    print(f"(quoted ref fps: reference pyflowreg implementation, {'; '.join(sources)})")
    rows = []
    for size in args.sizes:
        fixed, moving, w_true = make_image_pair(size, size, max_displacement=6.0, seed=0)
        lo, hi = fixed.min(), fixed.max()
        f, m = prefilter(fixed, lo, hi), prefilter(moving, lo, hi)
        for name, min_level in PRESETS.items():
            for mode in ("1 thread", "2 threads", "2 workers"):
                if mode == "2 workers":
                    fps, cpu, epe = time_frame_workers(f, m, w_true, min_level, 2, args.repeats)
                else:
                    threads = int(mode[0])
                    fps, cpu, epe = time_preset(f, m, w_true, min_level, threads, args.repeats)
                rows.append({"size": size, "preset": name, "min_level": min_level,
                             "mode": mode, "fps": fps, "cpu_s_per_frame": cpu, "epe": epe})
                # Same frame size and preset as the quoted figure, or no ratio at all.
                quoted = results_io.find_reference("optical_flow", size=size, preset=name)
                base = quoted["figures"]["fps"] if quoted else None
                base_s = f"{base:14.1f}" if base else f"{'-':>14}"
                ratio = f"{fps / base:6.1f}x" if base else f"{'-':>7}"
                print(f"{size:>5} {name:>9} {min_level:>7} {mode:>10} {fps:8.1f} "
                      f"{cpu:11.4f} {epe:7.3f} {base_s} {ratio}", flush=True)
    results_io.write(args.json, "optical_flow", meta, {
        "first_call": {"cold_cache_s": cold, "warm_cache_s": warm},
        "numba_threads": numba.config.NUMBA_NUM_THREADS, "pairs": rows,
    }, params=vars(args))


if __name__ == "__main__":
    main()
