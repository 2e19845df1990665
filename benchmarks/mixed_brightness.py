"""A session of mixed brightness under one configuration, against per-recording tuning.

Usage:
    python benchmarks/mixed_brightness.py                      # smooth, 3 / 10 / 100 / 1000 photons
    python benchmarks/mixed_brightness.py --model local_patches --photons 10 100 1000

The session holds the same tissue and motion (one seed of
:func:`pyflowreg.synthetic.make_benchmark_recording`) recorded at several photon levels,
as when the laser power or the depth changes between recordings; the inputs are the cached
cases of ``benchmarks/accuracy.py``. Stage 1 runs once over the whole session through the
session API (``SessionConfig`` + ``run_stage1``) with a single configuration: the preset
(balanced by default) and nothing else. Each recording's per-frame EPE is then set against
what tuning it by hand would give: the same recording corrected with each fixed smoothness
weight of ``--fixed-alphas`` (the choice of α switched off), the best of them picked *with the
ground truth*, a choice no lab can make. The table also shows the noise the recording's fit
found and the weight Stage 1 chose for it. ``--json PATH`` writes every printed figure and the
run's metadata (``benchmarks/results_io.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402  (the benchmark's inputs and error definition)
import results_io  # noqa: E402  (run metadata and the result file)

from pyflowreg.session import SessionConfig  # noqa: E402
from pyflowreg.session.stage1_compensate import run_stage1  # noqa: E402


def _noise_text(status: dict) -> str:
    fit = status["noise_model"]["channels"][0]
    return (f"gain {fit['gain']:.3g}, intercept {fit['intercept']:.3g}, "
            f"r_squared {fit['r_squared']:.3g}, plausible {fit['plausible']}")


def main(argv=None) -> None:
    meta = results_io.start(None if argv is None else [__file__, *argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smooth",
                        choices=[m for m in accuracy.FULL["models"]
                                 if m not in accuracy.REAL_RECORDINGS])
    parser.add_argument("--photons", nargs="+", type=float, default=[3.0, 10.0, 100.0, 1000.0])
    parser.add_argument("--preset", default="balanced", choices=accuracy.FULL["presets"])
    parser.add_argument("--fixed-alphas", nargs="+", type=float, default=[1.5, 3.0, 6.0, 12.0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    args = parser.parse_args(argv)

    cases = {ph: accuracy.case_input(args.model, ph, args.size, args.frames, args.seed)
             for ph in args.photons}
    accuracy.warm_up([args.preset])
    rows = []
    with tempfile.TemporaryDirectory(dir=accuracy.OUT) as tmp:
        session = Path(tmp) / "session"
        session.mkdir()
        names = {}
        for ph, folder in cases.items():
            names[ph] = f"{args.model}_{ph:g}ph"
            os.symlink(folder / "movie.tif", session / f"{names[ph]}.tif")
        config = SessionConfig(root=session, output_root=Path(tmp) / "stage1",
                               quality_setting=args.preset, flow_options={"save_w": True},
                               n_workers=2, resume=False)
        run_stage1(config, log=lambda message: None)
        for ph, folder in cases.items():
            w_true = np.load(folder / "flow.npy")
            out = Path(tmp) / "stage1" / names[ph]
            status = json.loads((out / "status.json").read_text())
            shared = accuracy.flow_errors(accuracy.read_fields(out), w_true)["epe_mean"]
            fixed = {}
            for alpha in args.fixed_alphas:
                with tempfile.TemporaryDirectory(dir=tmp) as single:
                    accuracy.compensate({"quality_setting": args.preset, "save_w": True,
                                         "n_workers": 2, "alpha": alpha,
                                         "select_alpha": False}, folder / "movie.tif", single)
                    fixed[alpha] = accuracy.flow_errors(accuracy.read_fields(single),
                                                        w_true)["epe_mean"]
            best = min(fixed, key=fixed.get)
            rows.append({"model": args.model, "photons": ph, "preset": args.preset,
                         "size": args.size, "frames": int(len(w_true)), "seed": args.seed,
                         "epe_mean_one_config": shared,
                         "alpha_chosen": status["alpha_selection"]["alpha"],
                         "alpha_reason": status["alpha_selection"]["reason"],
                         "noise": status["noise_model"]["channels"][0],
                         "epe_mean_fixed_alpha": [{"alpha": a, "epe_mean": e}
                                                  for a, e in fixed.items()],
                         "best_fixed_alpha": best, "epe_mean_best_fixed_alpha": fixed[best],
                         "one_config_over_best": shared / fixed[best]})
            print(f"{args.model} {ph:g} photons/unit: one configuration {shared:.3f} px "
                  f"(α {status['alpha_selection']['alpha'][0]:g}, "
                  f"{status['alpha_selection']['reason']}; noise fit: {_noise_text(status)}); "
                  "fixed α " + ", ".join(f"{a:g}: {e:.3f}" for a, e in fixed.items())
                  + f"; best by the truth α {best:g}: {fixed[best]:.3f} px "
                  f"({100 * (shared / fixed[best] - 1):+.0f} %)", flush=True)
    results_io.write(args.json, "mixed_brightness", meta, {"rows": rows}, params=vars(args))


if __name__ == "__main__":
    main()
