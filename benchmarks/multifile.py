"""Reading a recording made of many files against the same frames in one file.

Usage:
    python benchmarks/multifile.py                       # 256^2 x 2000 frames, 3 rounds
    python benchmarks/multifile.py --frames 500 --rounds 1   # quick look
    python benchmarks/multifile.py --json benchmarks/results/multifile.json

One synthetic uint16 recording is written as one TIFF, as numbered trial files of 100 frames,
as one file per frame (a Bruker PrairieView folder with its XML) and as a Zarr store. Each
layout is read in batches of ``--batch`` frames, as Stage 1 reads it (opening included: every
file's header is checked when the recording opens), in a fresh process per read, layouts in
alternating order. Prints frames/s, the CPU per frame, the peak RSS of the process and the
extra cost per file against the one TIFF; the page cache is warm (each layout is read once
before timing), so the figures are of the reader, not of the disk.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)

OUT = Path(__file__).resolve().parent / "out" / "multifile"

CHILD = r"""
import json, sys, time
from pyflowreg.io.recording import MovieSource, bruker_source, open_recording
kind, spec, batch = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
t0, c0 = time.perf_counter(), time.process_time()
if kind == "bruker":
    source = bruker_source(spec)
elif kind == "files":
    source = MovieSource.sequence("rec", spec)
else:
    source = spec
checksum = 0
with open_recording(source) as reader:
    n = reader.n_frames
    for t0_, t1_ in reader.batch_bounds(batch):
        checksum += int(reader.read(t0_, t1_)[:, 0, 0, 0].sum())
# VmHWM belongs to this program's memory map; getrusage's maxrss would carry the parent's
# from before exec.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "frames": n, "checksum": checksum,
                  "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def write_layouts(frames: np.ndarray, folder: Path, trial_frames: int) -> dict:
    """The recording in each layout: (kind, spec, number of files)."""
    import zarr

    folder.mkdir(parents=True, exist_ok=True)
    one = folder / "one.tif"
    tifffile.imwrite(one, frames, photometric="minisblack")
    trials = folder / "trials"
    trials.mkdir(exist_ok=True)
    trial_files = []
    for k, t0 in enumerate(range(0, len(frames), trial_frames), start=1):
        path = trials / f"trial_{k}.tif"
        tifffile.imwrite(path, frames[t0:t0 + trial_frames], photometric="minisblack")
        trial_files.append(str(path))
    bruker = folder / "TSeries-001"
    bruker.mkdir(exist_ok=True)
    entries = []
    for t, frame in enumerate(frames, start=1):
        name = f"TSeries-001_Cycle00001_Ch2_{t:06d}.ome.tif"
        tifffile.imwrite(bruker / name, frame, photometric="minisblack")
        entries.append(f'<Frame index="{t}"><File channel="2" filename="{name}" /></Frame>')
    (bruker / "TSeries-001.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<PVScan version="5.4"><Sequence '
        f'type="TSeries Timed Element" cycle="1">{"".join(entries)}</Sequence></PVScan>\n')
    store = folder / "rec.zarr"
    array = zarr.open_array(str(store), mode="w", shape=frames.shape, dtype=frames.dtype,
                            chunks=(trial_frames,) + frames.shape[1:])
    array[:] = frames
    return {
        "one TIFF": ("path", str(one), 1),
        f"TIFF trials of {trial_frames} frames": ("files", trial_files, len(trial_files)),
        "Bruker folder, one file per frame": ("bruker", str(bruker), len(frames)),
        f"Zarr store, chunks of {trial_frames} frames": ("path", str(store),
                                                         len(trial_files)),
    }


def read_once(kind: str, spec, batch: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, json.dumps(spec), str(batch)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--trial-frames", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    meta = results_io.start(argv)

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4000, size=(args.frames, args.size, args.size), dtype=np.uint16)
    layouts = write_layouts(frames, OUT / f"{args.size}x{args.frames}", args.trial_frames)
    expected = int(frames[:, 0, 0].astype(np.int64).sum())
    runs: dict[str, list[dict]] = {name: [] for name in layouts}
    for kind, spec, _ in layouts.values():
        read_once(kind, spec, args.batch)  # warm the page cache
    for round_ in range(args.rounds):
        order = list(layouts) if round_ % 2 == 0 else list(reversed(layouts))
        for name in order:
            kind, spec, _ = layouts[name]
            run = read_once(kind, spec, args.batch)
            if (run["frames"], run["checksum"]) != (args.frames, expected):
                raise SystemExit(f"{name}: read {run['frames']} frames, checksum "
                                 f"{run['checksum']} instead of {expected}")
            runs[name].append(run)

    baseline = statistics.median(r["cpu_s"] for r in runs["one TIFF"])
    results = []
    print(f"{args.frames} frames of {args.size}² uint16, batches of {args.batch}, "
          f"{args.rounds} round(s), medians")
    print(f"{'layout':42s} {'files':>6s} {'frames/s':>9s} {'CPU-s/frame':>12s} "
          f"{'RSS MB':>7s} {'extra CPU-ms/file':>18s}")
    for name, (_, _, n_files) in layouts.items():
        seconds = statistics.median(r["seconds"] for r in runs[name])
        cpu = statistics.median(r["cpu_s"] for r in runs[name])
        rss = max(r["peak_rss_mb"] for r in runs[name])
        per_file = 1000 * (cpu - baseline) / (n_files - 1) if n_files > 1 else None
        results.append({"layout": name, "files": n_files, "frames_per_second":
                        args.frames / seconds, "cpu_s_per_frame": cpu / args.frames,
                        "peak_rss_mb": rss, "extra_cpu_ms_per_file": per_file,
                        "runs": runs[name]})
        print(f"{name:42s} {n_files:6d} {args.frames / seconds:9.0f} "
              f"{cpu / args.frames:12.5f} {rss:7.0f} "
              f"{'' if per_file is None else f'{per_file:.2f}':>18s}")
    results_io.write(args.json, "multifile", meta, {"layouts": results}, params=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
