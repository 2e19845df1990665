"""Stage 1 of one long recording, unsplit against split into segments: cost and equality.

Usage:
    python benchmarks/segments.py                          # 256^2 x 20 000 frames, 8 segments
    python benchmarks/segments.py --frames 2000 --segments 4 --rounds 1   # quick look
    python benchmarks/segments.py --json benchmarks/results/segments.json

Every job is a fresh subprocess with 2 worker threads, as a workflow job is: the unsplit
correction (``compensate_recording``), and the preparation, each segment and the join of the
split run (``pyflowreg.motion_correction.segments``), one after the other. A job's CPU time is
the user + system time of its process, interpreter start and imports included (what a cluster
bills); its peak RSS is the process's own high-water mark (``VmHWM``). Both runs are repeated
``--rounds`` times in alternating order, because this machine's speed drifts by more than the
overhead measured.

Printed: CPU of both runs and the overhead of splitting (goal <= 5 %), peak RSS per job, the
largest difference between the two runs' flows (px) and corrected frames (fraction of the data
range), and the wall time the per-job figures imply on N nodes (one job per node at a time;
preparation, then the segments spread over the nodes, then the join). The recording repeats
2000 synthetic frames (uint16 TIFF, rigid motion up to 6 px + 1.5 px non-rigid, photon noise)
to its length, since generating frames costs more than correcting them; it is cached in
``benchmarks/out/``. Both runs' outputs are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from pyflowreg.io import open_movie, open_movie_writer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)
import stage1  # noqa: E402  (its synthetic recordings)

OUT = Path(__file__).resolve().parent / "out"
COMPARE_FRAMES = 500  # frames read at a time when comparing the two runs
UNIQUE_FRAMES = 2000  # synthetic frames generated; longer recordings repeat them

CHILD = r"""
import json, sys, time
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.motion_correction import segments
step, src, dst, options, arg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), \
    int(sys.argv[5])
wall0 = time.perf_counter()
if step == "unsplit":
    compensate_recording(options, input_file=src, output_path=dst, resume=False)
elif step == "prepare":
    segments.prepare_segments(options, input_file=src, output_path=dst, segment_frames=arg,
                              resume=False)
elif step == "segment":
    segments.compensate_segment(options, input_file=src, output_path=dst, segment=arg,
                                resume=False)
else:
    segments.join_segments(options, input_file=src, output_path=dst)
# VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork and exec.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
print(json.dumps({"wall": time.perf_counter() - wall0, "peak_rss_mb": peak_kb / 1024}))
"""


def synthetic_input(size: int, n_frames: int, unique: int = UNIQUE_FRAMES) -> Path:
    """A recording of ``n_frames``: ``unique`` synthetic frames, repeated as often as needed.

    Generating a frame costs more than correcting it, so a long recording repeats a shorter
    one (a jump in position at each repeat, as a sudden movement would make).
    """
    unique = min(unique, n_frames)
    path = OUT / f"segments_{size}x{size}x{n_frames}_{unique}.tif"
    if not path.is_file():
        base = stage1.synthetic_input(size, unique)  # same generator settings as Stage 1's
        print(f"  writing {path.name} ...", flush=True)
        with open_movie(base) as reader:
            frames = np.asarray(reader.read(0, unique))
        with open_movie_writer(path, (size, size), 1, np.uint16, n_frames=n_frames) as writer:
            for t0 in range(0, n_frames, unique):
                writer.write(frames[: min(unique, n_frames - t0)])
    return path


def run_job(step: str, src: Path, dst: Path, options: dict, arg: int = 0) -> dict:
    """One job in a fresh process: its wall time, CPU time (start-up included), peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", CHILD, step, str(src), str(dst),
                           json.dumps(options), str(arg)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{step} {arg} failed:\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    job = json.loads(done.stdout.strip().splitlines()[-1])
    job["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    job["step"] = step if step != "segment" else f"segment {arg}"
    return job


def largest_differences(unsplit: Path, split: Path, n_frames: int) -> dict:
    """Max |difference| of flows (px) and frames (fraction of the data range); masks equal?"""
    flow_px = frame_diff = 0.0
    lo, hi = np.inf, -np.inf
    masks_equal = True
    with h5py.File(unsplit / "w.hdf5") as wa, h5py.File(split / "w.hdf5") as wb, \
            h5py.File(unsplit / "compensated.hdf5") as ca, \
            h5py.File(split / "compensated.hdf5") as cb, \
            h5py.File(unsplit / "idx.hdf") as ia, h5py.File(split / "idx.hdf") as ib:
        assert wb["u"].is_virtual and cb["ch1"].is_virtual
        for t0 in range(0, n_frames, COMPARE_FRAMES):
            t = slice(t0, min(n_frames, t0 + COMPARE_FRAMES))
            for key in ("u", "v"):
                flow_px = max(flow_px, float(np.abs(wa[key][t] - wb[key][t]).max()))
            a, b = ca["ch1"][t].astype(np.float64), cb["ch1"][t].astype(np.float64)
            frame_diff = max(frame_diff, float(np.abs(a - b).max()))
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
            masks_equal &= bool(np.array_equal(ia["ch1"][t], ib["ch1"][t]))
    return {"flow_px": flow_px, "frame_fraction_of_range": frame_diff / max(hi - lo, 1e-12),
            "valid_masks_equal": masks_equal}


def wall_on_nodes(prepare: float, segment_walls: list[float], join: float, nodes: int) -> float:
    """Preparation, then the segments on ``nodes`` nodes (longest first), then the join."""
    loads = [0.0] * nodes
    for wall in sorted(segment_walls, reverse=True):
        heapq.heapreplace(loads, loads[0] + wall)
    return prepare + max(loads) + join


def run_split(src: Path, dst: Path, options: dict, segment_frames: int,
              n_segments: int) -> list[dict]:
    """The split run's jobs, one after the other: preparation, segments, join."""
    jobs = [run_job("prepare", src, dst, options, segment_frames)]
    jobs += [run_job("segment", src, dst, options, k) for k in range(n_segments)]
    jobs.append(run_job("join", src, dst, options))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of both runs, in alternating order (unsplit first in odd "
                        "rounds, split first in even ones) so that drifts in machine load "
                        "cancel")
    parser.add_argument("--keep", action="store_true",
                        help="keep the first round's outputs of both runs")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    args = parser.parse_args()
    meta = results_io.start()
    options = {"quality_setting": args.preset, "n_workers": 2, "save_w": True}
    chunk = 32
    segment_frames = -(-args.frames // args.segments)
    segment_frames = -(-segment_frames // chunk) * chunk  # segments start on a chunk
    n_segments = -(-args.frames // segment_frames)

    src = synthetic_input(args.size, args.frames)
    # Warm the numba cache so that compile time is billed to neither run.
    warm = stage1.synthetic_input(64, 20)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        run_job("unsplit", warm, Path(tmp) / "w", {"quality_setting": args.preset})
    print(f"{args.size}^2 x {args.frames} frames, {args.preset}, 2 threads per job; "
          f"{n_segments} segments of {segment_frames} frames", flush=True)
    rounds, differences = [], None
    for round_ in range(args.rounds):
        work = Path(tempfile.mkdtemp(prefix="segments_", dir=OUT))
        try:
            result = {}
            for run in ("unsplit", "split") if round_ % 2 == 0 else ("split", "unsplit"):
                if run == "unsplit":
                    result["unsplit"] = run_job("unsplit", src, work / "unsplit", options)
                else:
                    result["split_jobs"] = run_split(src, work / "split", options,
                                                     segment_frames, n_segments)
            unsplit, jobs = result["unsplit"], result["split_jobs"]
            split_cpu = sum(job["cpu"] for job in jobs)
            rounds.append({"unsplit": unsplit, "split_jobs": jobs, "split_cpu_s": split_cpu,
                           "cpu_overhead": split_cpu / unsplit["cpu"] - 1})
            print(f"round {round_ + 1}: unsplit {unsplit['wall']:.0f} s wall, "
                  f"{unsplit['cpu']:.0f} CPU-s, {unsplit['peak_rss_mb']:.0f} MB; split "
                  f"{split_cpu:.0f} CPU-s ({100 * rounds[-1]['cpu_overhead']:+.1f} %)",
                  flush=True)
            for job in jobs:
                print(f"  {job['step']:>10}: {job['wall']:6.1f} s wall, {job['cpu']:6.1f} CPU-s, "
                      f"{job['peak_rss_mb']:5.0f} MB", flush=True)
            if differences is None:
                differences = largest_differences(work / "unsplit", work / "split", args.frames)
        finally:
            if not (args.keep and round_ == 0):
                shutil.rmtree(work, ignore_errors=True)

    unsplit_cpu = sum(r["unsplit"]["cpu"] for r in rounds) / len(rounds)
    split_cpu = sum(r["split_cpu_s"] for r in rounds) / len(rounds)
    overhead = split_cpu / unsplit_cpu - 1
    last = rounds[-1]
    jobs = last["split_jobs"]
    segment_walls = [job["wall"] for job in jobs[1:-1]]
    nodes = sorted({1, 2, 4, n_segments})
    implied = {n: wall_on_nodes(jobs[0]["wall"], segment_walls, jobs[-1]["wall"], n)
               for n in nodes}
    unsplit_wall = last["unsplit"]["wall"]
    print(f"CPU (mean of {len(rounds)} round(s)): unsplit {unsplit_cpu:.0f} s "
          f"({unsplit_cpu / args.frames:.4f} per frame), split {split_cpu:.0f} s: overhead "
          f"{100 * overhead:+.1f} % (per round: "
          + ", ".join(f"{100 * r['cpu_overhead']:+.1f} %" for r in rounds) + "; goal <= 5 %)")
    all_jobs = [job for r in rounds for job in r["split_jobs"]]
    print(f"peak RSS: unsplit {max(r['unsplit']['peak_rss_mb'] for r in rounds):.0f} MB, split "
          f"jobs {min(j['peak_rss_mb'] for j in all_jobs):.0f}-"
          f"{max(j['peak_rss_mb'] for j in all_jobs):.0f} MB")
    print(f"largest difference: flows {differences['flow_px']:.3g} px, frames "
          f"{differences['frame_fraction_of_range']:.3g} of the data range, valid masks "
          f"{'equal' if differences['valid_masks_equal'] else 'DIFFER'}")
    print("wall time implied on N nodes (last round): " + ", ".join(
        f"{n}: {wall:.0f} s ({unsplit_wall / wall:.1f}x)" for n, wall in implied.items())
        + f"; unsplit {unsplit_wall:.0f} s")
    results_io.write(args.json, "segments", meta, {
        "size": args.size, "frames": args.frames, "preset": args.preset,
        "segment_frames": segment_frames, "segments": n_segments, "rounds": rounds,
        "unsplit_cpu_s": unsplit_cpu, "split_cpu_s": split_cpu, "cpu_overhead": overhead,
        "largest_difference": differences,
        "implied_wall_s": {str(n): wall for n, wall in implied.items()},
        "unsplit_wall_s": unsplit_wall,
    }, params=vars(args))


if __name__ == "__main__":
    main()
