"""Stage 1's noise fit against the generator's true photon gain and read noise.

Usage:
    python benchmarks/noise_model.py                      # the grid below, then the real data
    python benchmarks/noise_model.py --models jitter --photons 10 --sizes 512 --json out.json
    python benchmarks/noise_model.py --detectors 1:100 2.5:0

Every case is a :func:`pyflowreg.synthetic.make_benchmark_recording` recording stored as a
detector would store it: ``round(clip(k * photons + k * read + offset, 0, 65535))`` with ``k``
counts per photon and a dark ``offset`` (``--detectors K:OFFSET ...``; an offset of 0 clips
the read noise at the floor). Its variance is ``k (x - offset) + k^2 read^2 + 1/12`` at mean
``x``: the true gain is ``k`` and the true intercept ``k^2 read^2 + 1/12 - k offset``. Stage 1's fit
(:func:`pyflowreg.motion_correction.reference.fit_recording_noise`, 16 consecutive frame pairs
spread over 200 frames) is compared with them: the gain's relative error, the intercept, and
which answer the fit gives (``kind``: ``photon`` where a significant shot-noise line fits,
``line`` without a significant gain, ``bins`` where only measured variances are left, as for
clipped data). The real recordings have no known gain; their fit is printed as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data  # noqa: E402
import results_io  # noqa: E402

from pyflowreg.motion_correction.reference import fit_recording_noise  # noqa: E402
from pyflowreg.synthetic import REAL_RECORDINGS, make_benchmark_recording  # noqa: E402

MODELS = ["smooth", "smooth_wide", "local_patches", "jitter"]
PHOTONS = [3.0, 10.0, 100.0, 1000.0]
SIZES = [256, 512]
READ_NOISE = 5.0  # photons, the generator's default
N_FRAMES = 200
# counts per photon : dark offset. 1:100 is the accuracy benchmark's detector; 4 counts per
# photon is a PMT-like gain; an offset of 0 clips the read noise at the floor.
DETECTORS = ["1:100", "4:100", "1:0"]


class StoredCounts:
    """A recording as a detector stores it: the reader interface Stage 1's noise fit reads."""

    def __init__(self, rec, counts_per_photon: float, offset: float):
        self.rec, self.n_frames = rec, rec.n_frames
        # The generator's brightness times photons_per_unit is photons; k counts each.
        self.scale = counts_per_photon * rec.photons_per_unit
        self.offset = offset

    def read(self, t0: int, t1: int) -> np.ndarray:
        counts = self.rec.observed(t0, t1) * self.scale + self.offset
        return np.round(np.clip(counts, 0, 65535))


class RealFrames:
    def __init__(self, frames: np.ndarray):
        self.frames, self.n_frames = frames, len(frames)

    def read(self, t0: int, t1: int) -> np.ndarray:
        return self.frames[t0:t1]


def synthetic_cases(model, photons, size, detectors, seed) -> list[dict]:
    """One recording, stored by each detector (counts per photon, offset) in turn."""
    rec = make_benchmark_recording(model, photons_per_unit=photons, height=size, width=size,
                                   n_frames=N_FRAMES, seed=seed, read_noise_photons=READ_NOISE)
    rows = []
    for gain, offset in detectors:
        (fit,) = fit_recording_noise(StoredCounts(rec, gain, offset))
        true_intercept = gain**2 * READ_NOISE**2 + 1 / 12 - gain * offset
        rows.append({"model": model, "photons": photons, "size": size,
                     "counts_per_photon": gain, "offset": offset, "seed": seed,
                     "true_gain": gain, "true_intercept": true_intercept,
                     "gain_relative_error": fit.gain / gain - 1, **fit.as_dict()})
    return rows


def real_case(model: str, data_dir: Path) -> dict:
    relative, *_ = REAL_RECORDINGS[model]
    frames = tifffile.imread(data_dir / relative).astype(np.float64)[..., None]
    (fit,) = fit_recording_noise(RealFrames(frames))
    return {"model": model, "file": relative, "frames": len(frames),
            "frame_shape": list(frames.shape[1:3]), **fit.as_dict()}


def line(row: dict) -> str:
    if "true_gain" not in row:
        return (f"{row['model']:>13} {'own':>5} {'x'.join(map(str, row['frame_shape'])):>7}"
                f" {'-':>5} {'-':>6} {row['gain']:8.3f} {'-':>8} {row['intercept']:10.1f} "
                f"{'-':>9} {row['kind']:>7} {str(row['plausible']):>6}")
    return (f"{row['model']:>13} {row['photons']:5g} {row['size']:7d} "
            f"{row['counts_per_photon']:5g} {row['offset']:6g} {row['gain']:8.3f} "
            f"{100 * row['gain_relative_error']:+7.1f}% {row['intercept']:10.1f} "
            f"{row['true_intercept']:9.1f} {row['kind']:>7} {str(row['plausible']):>6}")


HEADER = (f"{'model':>13} {'ph/u':>5} {'size':>7} {'k':>5} {'offset':>6} {'gain':>8} "
          f"{'error':>8} {'intercept':>10} {'(true)':>9} {'kind':>7} {'photon':>6}")


def main(argv=None) -> None:
    meta = results_io.start(None if argv is None else [__file__, *argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--photons", nargs="+", type=float, default=PHOTONS)
    parser.add_argument("--sizes", nargs="+", type=int, default=SIZES)
    parser.add_argument("--detectors", nargs="+", default=DETECTORS, metavar="K:OFFSET",
                        help="simulated detectors: counts per photon and dark offset (counts; "
                             "0 clips the read noise at the floor)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-real", action="store_true", help="skip the real recordings")
    real_data.add_argument(parser)
    parser.add_argument("--json", type=Path, help="write every row and the run's metadata")
    args = parser.parse_args(argv)

    print(HEADER)
    rows = []
    detectors = [tuple(float(x) for x in d.split(":")) for d in args.detectors]
    for model in args.models:
        for size in args.sizes:
            for photons in args.photons:
                for row in synthetic_cases(model, photons, size, detectors, args.seed):
                    rows.append(row)
                    print(line(row), flush=True)
    real_rows = []
    if not args.no_real:
        folder = args.real_data or real_data.real_data_dir()
        for model in REAL_RECORDINGS:
            row = real_case(model, folder)
            real_rows.append(row)
            print(line(row), flush=True)
    photon = [r for r in rows if r["kind"] == "photon"]
    if photon:
        errors = np.abs([r["gain_relative_error"] for r in photon])
        print(f"photon models: {len(photon)} of {len(rows)} cases; gain error median "
              f"{100 * np.median(errors):.1f} %, largest {100 * errors.max():.1f} %")
    results_io.write(args.json, "noise_model", meta, {"cases": rows, "real": real_rows},
                     params=vars(args))


if __name__ == "__main__":
    main()
