"""Optical-flow engine benchmark: frames/s, CPU-s/frame and accuracy per preset and thread count.

Usage: python benchmarks/optical_flow.py [--sizes 256 512] [--repeats 5]

For each image size, preset (min_level 0 / 4 / 6) and parallel mode it registers a synthetic
pair with a known smooth field (max 6 px) and prints wall-clock frames/s, CPU-seconds per frame
and the mean end-point error against ground truth. Modes: "1 thread" and "2 threads" (numba
threads splitting each image; one ``get_displacement`` call per pair, reference pyramid
included) and "2 workers" (frames against one reference on two threads, numba single-threaded
in each, as Stage 1 runs). It also times the first call in a fresh process with a cold and with
a warm numba cache.

The last columns are not measured here: they are reference figures of another tool, the
reference pyflowreg implementation of the same method, typed in as quoted in this project's
issue 2 (one frame pair of the same size and preset, same 2-core machine type). The ratio to
them is printed only for the frame size and preset the quoted figure was measured on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from scipy import ndimage

from pyflowreg.core.optical_flow import FlowEstimator, FlowParameters, get_displacement
from pyflowreg.motion_correction.parallel import FramePool
from pyflowreg.synthetic import make_image_pair

PRESETS = {"quality": 0, "balanced": 4, "fast": 6}
# Quoted reference figures, NOT measured by this script: frames/s of the reference pyflowreg
# implementation (another tool) per (frame size, min_level), from this project's issue 2, same
# 2-core machine type.
QUOTED_REFERENCE_FPS = {(256, 0): 2.9, (256, 4): 14.0, (256, 6): 25.0, (512, 6): 6.6}
QUOTED_SOURCE = "reference pyflowreg implementation, quoted in issue 2 (same machine type)"


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
    args = parser.parse_args()

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
    print(f"(quoted ref fps: not measured here; {QUOTED_SOURCE})")
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
                # Same frame size and preset as the quoted figure, or no ratio at all.
                base = QUOTED_REFERENCE_FPS.get((size, min_level))
                base_s = f"{base:14.1f}" if base else f"{'-':>14}"
                ratio = f"{fps / base:6.1f}x" if base else f"{'-':>7}"
                print(f"{size:>5} {name:>9} {min_level:>7} {mode:>10} {fps:8.1f} "
                      f"{cpu:11.4f} {epe:7.3f} {base_s} {ratio}", flush=True)


if __name__ == "__main__":
    main()
