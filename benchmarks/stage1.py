"""Stage 1 benchmark: whole-recording frames/s, CPU-s/frame and peak RSS per size and preset.

Usage:
    python benchmarks/stage1.py                     # 256^2 and 512^2 x 1000, every preset
    python benchmarks/stage1.py --rss-growth        # also 512^2 fast at 4000 frames
    python benchmarks/stage1.py --sizes 256 --frames 200 --presets fast   # quick look
    python benchmarks/stage1.py --extra 512x500:fast --json out.json   # one more run, as JSON
    python benchmarks/stage1.py --qc-compare --sizes 256 --frames 500 --presets balanced
        # quality control on vs off, interleaved (--repeats rounds), frames/s and their ratio
    python benchmarks/stage1.py --workers-compare --sizes 256 512 --frames 500 --presets balanced
        # 1 and 2 workers, interleaved: frames/s, CPU-s/frame and the speed-up

Each run is a fresh subprocess calling ``compensate_recording`` on a synthetic uint16 TIFF
(rigid motion up to 6 px + 1.5 px non-rigid, photon noise) with ``n_workers=2``; the time covers
everything (reading, reference construction, the choice of alpha, correction, writing); "alpha s"
and "alpha" are the seconds spent choosing the smoothness weight and the weight chosen. Peak
RSS is the child's ``ru_maxrss``. Inputs are cached in ``benchmarks/out/``.

The last columns are not measured here: figures of another tool, the reference pyflowreg
implementation, as quoted in the project's requirements (``benchmarks/reference_figures.json``:
whole recordings, 2 workers, same 2-core machine type). The ratio to a quoted figure is printed
only for a run of the same frame size, frame count and preset (``--extra 512x500:fast`` for the
512^2 figure). ``--json PATH`` writes every printed figure and the run's metadata
(``benchmarks/results_io.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pyflowreg.synthetic import SyntheticRecording, write_recording

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)

OUT = Path(__file__).resolve().parent / "out"

CHILD = r"""
import json, resource, sys, time
from pyflowreg.motion_correction import compensate_recording
src, dst, preset, qc = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "on"
workers = int(sys.argv[5])
wall0, cpu0 = time.perf_counter(), time.process_time()
compensate_recording({"quality_setting": preset, "n_workers": workers, "qc": qc},
                     input_file=src, output_path=dst, resume=False)
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
status = json.load(open(dst + "/status.json"))
print(json.dumps({"wall": wall, "cpu": cpu, "n_frames": status["n_frames"],
                  "reference_s": status["seconds"]["reference"],
                  "alpha_selection_s": status["seconds"].get("alpha_selection", 0.0),
                  "alpha": status.get("alpha_selection", {}).get("alpha", [None])[0],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic_input(size: int, n_frames: int) -> Path:
    path = OUT / f"stage1_{size}x{size}x{n_frames}.tif"
    if not path.is_file():
        OUT.mkdir(parents=True, exist_ok=True)
        rec = SyntheticRecording(size, size, n_frames, rigid_amplitude=6.0,
                                 nonrigid_amplitude=1.5, seed=size + n_frames)
        print(f"  writing {path.name} ...", flush=True)
        write_recording(rec, path, dtype="uint16")
    return path


def run_child(src: Path, preset: str, qc: bool = True, workers: int = 2) -> dict:
    with tempfile.TemporaryDirectory(dir=OUT) as dst:
        out = subprocess.run([sys.executable, "-c", CHILD, str(src), dst, preset,
                              "on" if qc else "off", str(workers)],
                             check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--presets", nargs="+", default=["quality", "balanced", "fast"])
    parser.add_argument("--rss-growth", action="store_true",
                        help="also run 512^2 fast with 4x the frames to show flat memory")
    parser.add_argument("--qc-compare", action="store_true",
                        help="run every set-up with quality control on and off, interleaved, "
                        "and print frames/s of both and their ratio")
    parser.add_argument("--workers-compare", action="store_true",
                        help="run every set-up with 1 and 2 workers, interleaved, and print "
                        "frames/s and CPU-s/frame of both")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of on/off runs with --qc-compare, of 1/2-worker runs with "
                        "--workers-compare")
    parser.add_argument("--extra", nargs="+", default=[], metavar="SIZExFRAMES:PRESET",
                        type=_extra_run, help="further runs after the grid, e.g. 512x500:fast")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    args = parser.parse_args()
    meta = results_io.start()

    # Warm the numba cache so that compile time is not billed to the first run.
    run_child(synthetic_input(64, 20), "fast")
    if args.qc_compare:
        results_io.write(args.json, "stage1_qc", meta, compare_qc(args), params=vars(args))
        return
    if args.workers_compare:
        results_io.write(args.json, "stage1_workers", meta, compare_workers(args),
                         params=vars(args))
        return
    header = (f"{'size':>5} {'frames':>6} {'preset':>9} {'fps':>7} {'CPU-s/frame':>11} "
              f"{'ref s':>7} {'ref %':>5} {'alpha s':>7} {'alpha':>5} {'peak RSS MB':>11} "
              f"{'quoted ref fps':>14} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    quoted = results_io.reference_figures("stage1")
    listed = ", ".join(f"{e['input']['size']}^2 x {e['input']['frames']} {e['input']['preset']}: "
                       f"{e['figures']['fps']:g}" for e in quoted)
    sources = "; ".join(sorted({e["source"] for e in quoted}))
    print(f"(quoted ref fps: reference pyflowreg implementation, {sources}; {listed})")
    runs = [(s, args.frames, p) for s in args.sizes for p in args.presets]
    if args.rss_growth:
        runs.append((512, 4 * args.frames, "fast"))
    runs += args.extra
    rows = []
    for size, n_frames, preset in runs:
        r = run_child(synthetic_input(size, n_frames), preset)
        fps = r["n_frames"] / r["wall"]
        rows.append({"size": size, "frames": r["n_frames"], "preset": preset, "fps": fps,
                     "wall_s": r["wall"], "cpu_s_per_frame": r["cpu"] / r["n_frames"],
                     "reference_s": r["reference_s"],
                     "reference_share": r["reference_s"] / r["wall"],
                     "alpha_selection_s": r["alpha_selection_s"], "alpha": r["alpha"],
                     "peak_rss_mb": r["peak_rss_mb"]})
        # Only a run of the quoted figure's own size, length and preset gets a ratio.
        entry = results_io.find_reference("stage1", size=size, frames=n_frames, preset=preset)
        base = entry["figures"]["fps"] if entry else None
        print(f"{size:>5} {n_frames:>6} {preset:>9} {fps:7.2f} {r['cpu'] / r['n_frames']:11.4f} "
              f"{r['reference_s']:7.1f} {100 * r['reference_s'] / r['wall']:5.0f} "
              f"{r['alpha_selection_s']:7.1f} {r['alpha'] or 0:5g} {r['peak_rss_mb']:11.0f} "
              f"{base if base else '-':>14} {f'{fps / base:.1f}x' if base else '-':>7}",
              flush=True)
    results_io.write(args.json, "stage1", meta, {"runs": rows}, params=vars(args))


def _extra_run(text: str) -> tuple[int, int, str]:
    """``512x500:fast`` -> (512, 500, "fast")."""
    try:
        shape, preset = text.split(":")
        size, frames = (int(v) for v in shape.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SIZExFRAMES:PRESET") from None
    return size, frames, preset


def alternate(args, name: str, values: tuple, run, label) -> tuple[list, list]:
    """Run every set-up with each of two ``values`` in alternating order (a, b, b, a, ...) so
    drifts in machine load cancel; returns the runs and, per set-up, the mean frames/s and
    CPU-s/frame of each value. ``run(src, preset, value)`` runs one child, ``label(value)``
    prints the value."""
    print(f"{'size':>5} {'frames':>6} {'preset':>9} {'round':>5} {name:>7} {'fps':>7} "
          f"{'CPU-s/frame':>11}")
    runs, means = [], []
    for size in args.sizes:
        for preset in args.presets:
            src = synthetic_input(size, args.frames)
            fps, cpu = {v: [] for v in values}, {v: [] for v in values}
            for round_ in range(args.repeats):
                for value in values if round_ % 2 == 0 else values[::-1]:
                    r = run(src, preset, value)
                    fps[value].append(r["n_frames"] / r["wall"])
                    cpu[value].append(r["cpu"] / r["n_frames"])
                    runs.append({"size": size, "frames": args.frames, "preset": preset,
                                 "round": round_ + 1, name: value, "fps": fps[value][-1],
                                 "cpu_s_per_frame": cpu[value][-1]})
                    print(f"{size:>5} {args.frames:>6} {preset:>9} {round_ + 1:>5} "
                          f"{label(value):>7} {fps[value][-1]:7.2f} {cpu[value][-1]:11.4f}",
                          flush=True)
            means.append((size, preset, {v: (sum(fps[v]) / len(fps[v]),
                                             sum(cpu[v]) / len(cpu[v])) for v in values}))
    return runs, means


def compare_qc(args) -> dict:
    """QC on/off, alternating: frames/s and CPU-s/frame of both and their ratios."""
    runs, means = alternate(args, "qc", (True, False),
                            lambda src, preset, qc: run_child(src, preset, qc),
                            lambda qc: "on" if qc else "off")
    summaries = []
    for size, preset, mean in means:
        (on, cpu_on), (off, cpu_off) = mean[True], mean[False]
        print(f"  {size}^2 x {args.frames} {preset}: QC on {on:.2f} frames/s, off "
              f"{off:.2f} frames/s, on/off = {on / off:.3f} ({(1 - on / off) * 100:+.1f} % "
              f"slower with QC); CPU-s/frame on/off = {cpu_on / cpu_off:.3f}", flush=True)
        summaries.append({"size": size, "frames": args.frames, "preset": preset,
                          "fps_qc_on": on, "fps_qc_off": off, "fps_ratio_on_off": on / off,
                          "cpu_s_per_frame_qc_on": cpu_on, "cpu_s_per_frame_qc_off": cpu_off,
                          "cpu_ratio_on_off": cpu_on / cpu_off})
    return {"runs": runs, "summaries": summaries}


def compare_workers(args) -> dict:
    """1 and 2 workers, alternating: throughput and its scaling."""
    runs, means = alternate(args, "workers", (1, 2),
                            lambda src, preset, workers: run_child(src, preset, workers=workers),
                            str)
    summaries = []
    for size, preset, mean in means:
        (fps_1, cpu_1), (fps_2, cpu_2) = mean[1], mean[2]
        print(f"  {size}^2 x {args.frames} {preset}: 1 worker {fps_1:.2f} frames/s, "
              f"2 workers {fps_2:.2f} frames/s: x{fps_2 / fps_1:.2f}; CPU-s/frame "
              f"{cpu_1:.4f} / {cpu_2:.4f}", flush=True)
        summaries.append({"size": size, "frames": args.frames, "preset": preset,
                          "fps_1": fps_1, "fps_2": fps_2, "speedup": fps_2 / fps_1,
                          "cpu_s_per_frame_1": cpu_1, "cpu_s_per_frame_2": cpu_2})
    return {"runs": runs, "summaries": summaries}


if __name__ == "__main__":
    main()
