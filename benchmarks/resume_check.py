"""Cost of Stage 1's exact input fingerprint: the resume check per GB and the hashing in Stage 1.

Usage:
    python benchmarks/resume_check.py                   # 1 GB file, 256^2 x 1000 Stage 1, 3 rounds
    python benchmarks/resume_check.py --gb 0.25 --frames 200 --rounds 1   # quick look
    python benchmarks/resume_check.py --json out.json   # also every figure and the run's metadata

Prints
  * the resume check of an unchanged recording (size and mtime equal: one ``stat``);
  * the re-hash a moved or copied recording costs (new mtime: the whole file is read), from the
    page cache and from disk (the file's pages dropped with ``posix_fadvise(DONTNEED)``);
  * Stage 1 of a synthetic recording with the background hash (as Stage 1 runs it) and without
    it (hashing disabled in the child), alternating: medians of wall-clock and CPU time and
    their differences, and the load average (the CPU-time difference is the robust figure on a
    shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyflowreg.io.fingerprint import fingerprint_matches, hash_file, input_fingerprint
from pyflowreg.synthetic import SyntheticRecording, write_recording

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)

OUT = Path(__file__).resolve().parent / "out"

CHILD = r"""
import json, sys, time
import pyflowreg.motion_correction.compensate as compensate
src, dst, hashing = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if not hashing:  # the baseline: Stage 1 with no fingerprint at all
    compensate.start_hashing = lambda path: None
    compensate.input_fingerprint = lambda path: {}
wall0, cpu0 = time.perf_counter(), time.process_time()
compensate.compensate_recording({"quality_setting": "fast", "n_workers": 2}, input_file=src,
                                output_path=dst, resume=False)
print(json.dumps({"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0}))
"""


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resume_check_figures(gb: float) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    size = int(gb * 2**30)
    with tempfile.NamedTemporaryFile(dir=OUT, suffix=".bin", delete=False) as f:
        path = Path(f.name)
        block = os.urandom(64 << 20)
        for offset in range(0, size, len(block)):
            f.write(block[: min(len(block), size - offset)])
    try:
        recorded = input_fingerprint(path)
        t0 = time.perf_counter()
        n = 1000
        for _ in range(n):
            assert fingerprint_matches(recorded, path)
        stat_us = (time.perf_counter() - t0) / n * 1e6
        os.utime(path, ns=(time.time_ns(), recorded["mtime_ns"] + 10**9))  # "copied"
        t0 = time.perf_counter()
        assert fingerprint_matches(recorded, path)
        warm = time.perf_counter() - t0
        drop_from_page_cache(path)
        t0 = time.perf_counter()
        hash_file(path)
        cold = time.perf_counter() - t0
    finally:
        path.unlink()
    per_gb = 2**30 / size
    print(f"resume check, {size / 2**30:.2f} GiB file")
    print(f"  unchanged (size + mtime equal): {stat_us:.0f} us per recording, any size")
    print(f"  re-hash, page cache:            {warm * per_gb:.2f} s per GiB "
          f"({size / warm / 2**20:.0f} MiB/s)")
    print(f"  re-hash, from disk:             {cold * per_gb:.2f} s per GiB "
          f"({size / cold / 2**20:.0f} MiB/s)")
    return {"file_gib": size / 2**30, "unchanged_us": stat_us,
            "rehash_page_cache_s_per_gib": warm * per_gb,
            "rehash_page_cache_mib_per_s": size / warm / 2**20,
            "rehash_disk_s_per_gib": cold * per_gb, "rehash_disk_mib_per_s": size / cold / 2**20}


def stage1_overhead(size: int, n_frames: int, rounds: int) -> dict:
    src = OUT / f"stage1_{size}x{size}x{n_frames}.tif"
    if not src.is_file():
        rec = SyntheticRecording(size, size, n_frames, rigid_amplitude=6.0,
                                 nonrigid_amplitude=1.5, seed=size + n_frames)
        write_recording(rec, src, dtype="uint16")
    times = {"1": [], "0": []}
    cpu = {"1": [], "0": []}
    for _ in range(rounds + 1):  # the first round warms numba's cache and is discarded
        for hashing in ("1", "0"):
            with tempfile.TemporaryDirectory(dir=OUT) as dst:
                out = subprocess.run([sys.executable, "-c", CHILD, str(src), dst, hashing],
                                     check=True, capture_output=True, text=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            times[hashing].append(figures["wall"])
            cpu[hashing].append(figures["cpu"])
    with_hash, without = (statistics.median(times[k][1:]) for k in ("1", "0"))
    cpu_with, cpu_without = (statistics.median(cpu[k][1:]) for k in ("1", "0"))
    mib = src.stat().st_size / 2**20
    print(f"Stage 1, {size}^2 x {n_frames} uint16 ({mib:.0f} MiB), fast, 2 workers, "
          f"median of {rounds}")
    print(f"  wall: with background hash {with_hash:.2f} s, without {without:.2f} s, "
          f"difference {with_hash - without:+.2f} s ({(with_hash / without - 1) * 100:+.1f} %)")
    extra = cpu_with - cpu_without
    print(f"  CPU:  with background hash {cpu_with:.2f} s, without {cpu_without:.2f} s, "
          f"difference {extra:+.2f} s ({extra / cpu_without * 100:+.1f} %)")
    load = os.getloadavg()[0]
    print(f"  load average during the runs: {load:.1f} on {os.cpu_count()} CPUs "
          "(other processes share the machine: wall-clock differences are noise above ~5 %)")
    return {"size": size, "frames": n_frames, "preset": "fast", "input_mib": mib,
            "rounds": rounds, "wall_with_hash_s": with_hash, "wall_without_hash_s": without,
            "wall_difference_s": with_hash - without,
            "wall_difference_share": with_hash / without - 1, "cpu_with_hash_s": cpu_with,
            "cpu_without_hash_s": cpu_without, "cpu_difference_s": extra,
            "cpu_difference_share": extra / cpu_without, "loadavg_1min_after_runs": load,
            "wall_s": {"with_hash": times["1"][1:], "without_hash": times["0"][1:]},
            "cpu_s": {"with_hash": cpu["1"][1:], "without_hash": cpu["0"][1:]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the hashed file (GiB)")
    parser.add_argument("--size", type=int, default=256, help="Stage 1 frame size (px)")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    args = parser.parse_args()
    meta = results_io.start()
    results = {"resume_check": resume_check_figures(args.gb),
               "stage1": stage1_overhead(args.size, args.frames, args.rounds)}
    results_io.write(args.json, "resume_check", meta, results, params=vars(args))


if __name__ == "__main__":
    main()
