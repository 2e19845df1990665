"""The workflow's cost per job: a session of many short recordings, Snakemake against the API.

Usage:
    python benchmarks/job_overhead.py                        # 20 x 100 frames, 128^2
    python benchmarks/job_overhead.py --recordings 5 --frames 200 --size 256
    python benchmarks/job_overhead.py --json benchmarks/results/job_overhead.json

The same synthetic session (uint16 TIFFs, written once into ``benchmarks/out/``) runs twice per
round, in alternating order: ``snakemake --cores 2`` on a copy of this workflow's configuration,
and ``pyflowreg-session`` (the Python API: all three stages in one process). A run's CPU time is
the user + system time of its whole process tree, interpreter starts, imports and Snakemake's
own bookkeeping included (what a laptop or a cluster pays). Both runs start from a warm numba
cache, as every run after a workflow's first does.

Printed per run: wall s, CPU-s, CPU-s per frame and the number of jobs; then the ratio of the
workflow's CPU to the API's (goal <= 1.3) and the workflow's extra CPU per job, and per rule
the median CPU-s of one job (from Snakemake's ``benchmark:`` files; a job's own process tree).
First, what a job's start costs: in fresh processes (median of ``--startup-repeats``), the CPU
of each step a job takes before its work, in the order a Stage 1 job takes them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pyflowreg.synthetic import make_session, write_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"


def session_folder(n_recordings: int, size: int, n_frames: int) -> Path:
    folder = OUT / f"overhead_{n_recordings}x{n_frames}_{size}"
    if not (folder / "ground_truth.npz").is_file():
        print(f"  writing {folder.name} ...", flush=True)
        session = make_session(n_recordings, size, size, n_frames, seed=n_recordings + size)
        write_session(session, folder, pattern="rec_{:02d}.tif")
    return folder


def write_config(run_dir: Path, recordings: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(root=str(recordings), pattern="rec_*.tif", demo={"enabled": False},
                  output_root=str(run_dir / "compensated_outputs"),
                  final_results=str(run_dir / "final_results"))
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# Each step's CPU-s in a fresh process; "interpreter" is the CPU spent before the first line.
STARTUP = r"""
import json, time
cpu = time.process_time
steps, last = {"interpreter": cpu()}, cpu()
def step(name):
    global last
    now = cpu(); steps[name] = now - last; last = now
import numpy as np; step("numpy")
import numba; step("numba")
import h5py, tifffile; step("h5py, tifffile")
import scipy.ndimage; step("scipy.ndimage")
from pyflowreg.core.warping import warp_image; step("pyflowreg.core")
frame = np.zeros((64, 64, 1), np.float32); zero = np.zeros((64, 64), np.float32)
warp_image(frame, zero, zero, frame); step("first numba kernel from the cache")
from pyflowreg.motion_correction import compensate_recording; step("rest of Stage 1's modules")
from matplotlib.figure import Figure
from matplotlib.backends import backend_agg; step("matplotlib")
import snakemake.script; step("snakemake.script (a script job's preamble)")
print(json.dumps(steps))
"""


def startup_costs(env: dict, repeats: int) -> dict[str, float]:
    """Median CPU-s of each start-up step over ``repeats`` fresh processes."""
    runs = [json.loads(subprocess.run([sys.executable, "-c", STARTUP], env=env, check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(repeats)]
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of ``cmd`` and every process it waited for."""
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return wall, cpu


def rule_cpu(workdir: Path) -> dict[str, dict]:
    """Per rule: job count and median CPU-s of one job, from the ``benchmark:`` files."""
    per_rule: dict[str, list[float]] = {}
    for tsv in sorted((workdir / "logs" / "benchmarks").rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent.name != "benchmarks" else tsv.stem
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        per_rule.setdefault(rule, []).append(float(row["cpu_time"]))
    return {rule: {"jobs": len(v), "median_cpu_s": statistics.median(v)}
            for rule, v in per_rule.items()}


def run_workflow(recordings: Path, env: dict, cores: int) -> dict:
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        run_dir = Path(tmp)
        config = write_config(run_dir, recordings)
        wall, cpu = run_measured(
            ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(run_dir),
             "--configfile", str(config), "--cores", str(cores), "--quiet", "all"],
            REPO, env)
        per_rule = rule_cpu(run_dir)
    n_jobs = sum(r["jobs"] for r in per_rule.values())
    return {"wall_s": wall, "cpu_s": cpu, "jobs": n_jobs, "rules": per_rule}


def run_api(recordings: Path, env: dict) -> dict:
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        run_dir = Path(tmp)
        config = write_config(run_dir, recordings)
        wall, cpu = run_measured(["pyflowreg-session", str(config)], run_dir, env)
    return {"wall_s": wall, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--startup-repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args()
    meta = results_io.start()

    recordings = session_folder(args.recordings, args.size, args.frames)
    n_frames = args.recordings * args.frames
    cache = Path(tempfile.mkdtemp(prefix="numba_cache_", dir=OUT))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(REPO / "src"))
    try:
        run_api(recordings, env)  # fills the numba cache
        startup = startup_costs(env, args.startup_repeats)
        print("start of a job, CPU-s: " + ", ".join(f"{k} {v:.2f}" for k, v in startup.items())
              + f"; sum {sum(startup.values()):.2f}", flush=True)
        runs: dict[str, list[dict]] = {"workflow": [], "api": []}
        for r in range(args.rounds):
            order = ["workflow", "api"] if r % 2 == 0 else ["api", "workflow"]
            for kind in order:
                run = (run_workflow(recordings, env, args.cores) if kind == "workflow"
                       else run_api(recordings, env))
                runs[kind].append(run)
                print(f"  round {r + 1} {kind:>8}: {run['wall_s']:6.1f} s wall, "
                      f"{run['cpu_s']:6.1f} CPU-s", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    def median(kind, key):
        return statistics.median(run[key] for run in runs[kind])

    wf_cpu, api_cpu = median("workflow", "cpu_s"), median("api", "cpu_s")
    n_jobs = runs["workflow"][0]["jobs"]
    figures = {
        "workflow": {"wall_s": median("workflow", "wall_s"), "cpu_s": wf_cpu,
                     "cpu_s_per_frame": wf_cpu / n_frames, "jobs": n_jobs,
                     "rules": runs["workflow"][-1]["rules"]},
        "api": {"wall_s": median("api", "wall_s"), "cpu_s": api_cpu,
                "cpu_s_per_frame": api_cpu / n_frames},
        "cpu_ratio": wf_cpu / api_cpu,
        "cpu_ratio_rounds": [w["cpu_s"] / a["cpu_s"]
                             for w, a in zip(runs["workflow"], runs["api"], strict=True)],
        "extra_cpu_s_per_job": (wf_cpu - api_cpu) / n_jobs,
        "startup_cpu_s": startup,
    }
    print(f"\n{args.recordings} x {args.frames} frames, {args.size}^2, --cores {args.cores}")
    for kind in ("workflow", "api"):
        f = figures[kind]
        print(f"{kind:>9}: {f['wall_s']:6.1f} s wall {f['cpu_s']:7.1f} CPU-s "
              f"{f['cpu_s_per_frame']:.4f} CPU-s/frame")
    print(f"CPU workflow / API: {figures['cpu_ratio']:.2f} (goal <= 1.3; rounds "
          + ", ".join(f"{x:.2f}" for x in figures["cpu_ratio_rounds"]) + ")")
    print(f"extra CPU per workflow job: {figures['extra_cpu_s_per_job']:.2f} s over {n_jobs} jobs")
    print("per rule (jobs, median CPU-s of one job):")
    for rule, f in sorted(figures["workflow"]["rules"].items()):
        print(f"  {rule:>16}: {f['jobs']:3d} x {f['median_cpu_s']:6.2f}")
    results_io.write(args.json, "job_overhead", meta, figures, params=vars(args))


if __name__ == "__main__":
    main()
