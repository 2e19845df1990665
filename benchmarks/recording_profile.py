"""Where one recording's Stage 1 time goes: CPU seconds per step, in a warm process.

Usage:
    python benchmarks/recording_profile.py                      # 256^2 x 200, balanced
    python benchmarks/recording_profile.py --size 128 --frames 60 --workers 1
    python benchmarks/recording_profile.py --json benchmarks/results/recording_profile.json

The recording is ``stage1.py``'s synthetic uint16 TIFF. One untimed run loads the numba kernels
and the imports, then ``--rounds`` runs of ``compensate_recording`` are timed, each step by
timers wrapped around the library function that does it (the process's CPU clock and the wall
clock; a profiler's per-call cost would inflate the steps made of many small Python calls, such
as drawing figures). With ``--workers 1`` (the default) all work runs on the calling thread, so
the CPU seconds of the steps add up to the whole. Steps nest: the noise fit is part of the
reference, the first estimates and the refinement are part of the correction, the figures part
of writing the results.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)
from stage1 import OUT, synthetic_input  # noqa: E402

# (step, step it is part of or None, module, attribute path of the function whose time is the
# step's); each function is wrapped where its caller looks it up.
STEPS = [
    ("reference", None, "pyflowreg.motion_correction.compensate", "build_reference"),
    ("noise fit", "reference", "pyflowreg.motion_correction.reference", "fit_recording_noise"),
    ("choice of alpha", None, "pyflowreg.motion_correction.compensate", "select_alpha"),
    ("wide-band gain", None, "pyflowreg.motion_correction.compensate", "calibrate_band_gain"),
    ("correction", None, "pyflowreg.motion_correction.compensate", "correct_frames"),
    ("first estimates", "correction", "pyflowreg.motion_correction.flow_sequence",
     "FlowSequence._estimate"),
    ("refinement", "correction", "pyflowreg.motion_correction.flow_sequence",
     "FlowSequence._refine"),
    ("results written", None, "pyflowreg.motion_correction.compensate", "write_results"),
    ("QC figures", "results written", "pyflowreg.motion_correction.qc", "plot_recording"),
]


def install_timers() -> dict:
    """Wrap every step's function with timers; return the dict they add their seconds to."""
    import importlib

    spent = defaultdict(lambda: [0.0, 0.0])  # step -> [CPU s, wall s]
    running = defaultdict(int)  # step -> calls under way
    for step, parent, module_name, attribute in STEPS:
        owner = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        function = getattr(owner, name)

        def timed(*args, _function=function, _step=step, _parent=parent, **kwargs):
            # A part counts only inside its step: the wide-band gain's calibration runs the
            # same flow estimation as the correction.
            if _parent is not None and not running[_parent]:
                return _function(*args, **kwargs)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            running[_step] += 1
            try:
                return _function(*args, **kwargs)
            finally:
                running[_step] -= 1
                spent[_step][0] += time.process_time() - cpu0
                spent[_step][1] += time.perf_counter() - wall0

        setattr(owner, name, timed)
    return spent


def profile_once(src: Path, preset: str, workers: int, spent: dict) -> dict:
    from pyflowreg.motion_correction import compensate_recording

    spent.clear()
    options = {"quality_setting": preset, "n_workers": workers}
    with tempfile.TemporaryDirectory(dir=OUT) as dst:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        compensate_recording(options, input_file=src, output_path=dst, resume=False)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    steps = [{"step": step, "part_of": parent, "cpu_s": spent[step][0], "wall_s": spent[step][1]}
             for step, parent, _, _ in STEPS]
    return {"cpu_s": cpu, "wall_s": wall, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    meta = results_io.start()

    src = synthetic_input(args.size, args.frames)
    from pyflowreg.core.threads import set_numba_threads

    set_numba_threads(args.workers)
    spent = install_timers()
    profile_once(src, args.preset, args.workers, spent)  # numba kernels from the cache, imports
    rounds = [profile_once(src, args.preset, args.workers, spent) for _ in range(args.rounds)]
    best = min(rounds, key=lambda r: r["cpu_s"])
    print(f"{args.size}^2 x {args.frames} frames, {args.preset}, {args.workers} worker(s), "
          f"best of {args.rounds} rounds: {best['cpu_s']:.2f} CPU-s "
          f"({best['cpu_s'] / args.frames:.4f} CPU-s/frame), {best['wall_s']:.2f} s wall")
    for step in best["steps"]:
        name = step["step"] + (f" (in {step['part_of']})" if step["part_of"] else "")
        share = 100 * step["cpu_s"] / best["cpu_s"]
        print(f"  {name:34s} {step['cpu_s']:6.2f} CPU-s {share:5.1f} %  "
              f"{step['wall_s']:6.2f} s wall")
    results_io.write(args.json, "recording_profile", meta, {"best": best, "rounds": rounds},
                     params=vars(args))


if __name__ == "__main__":
    main()
