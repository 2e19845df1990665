"""suite2p's block registration on the accuracy benchmark's cases, beside this project's Stage 1.

Usage (suite2p is not a dependency of this project: it needs PyTorch and cellpose, several GB;
install it into its own environment together with this project):

    python -m venv /tmp/s2p && /tmp/s2p/bin/pip install suite2p==1.1.0 -e .
    /tmp/s2p/bin/python benchmarks/suite2p_baseline.py --models smooth local jitter real \\
        --photons 10 100

Every case is the cached input of ``benchmarks/accuracy.py`` (same movie, same ground truth,
same EPE definition: :func:`accuracy.flow_errors`). suite2p runs on the CPU with its default
registration settings and nonrigid 128-px blocks (``--block-size``): its own reference
(``compute_reference`` on all frames), then ``register_frames``. Its field is read off what it
does to the frames: the integer rigid shift plus the block shifts that ``transform_data``
interpolates, applied to coordinate ramps (bilinear sampling reproduces a linear ramp
exactly; the ramps are scaled by 120 because ``transform_data`` returns int16, which leaves
1/240 px of rounding), so ``registered(p) = frame(p + w(p))`` as in this project.

suite2p's reference is the mean of its best-correlated frames, so its geometry is that of those
frames, not the motion-free geometry the truth is relative to. Besides the plain EPE the table
therefore prints the EPE after removing suite2p's constant offset (``EPE-off``), and after
removing its per-pixel time-mean error (``EPE-ref``: registration to its own reference frame,
the most favourable reading). This project's Stage 1 (balanced, the real
``compensate_recording``) runs on the same input in the same invocation; ``ratio`` is its EPE
over suite2p's ``EPE-off``. ``--json PATH`` writes every printed figure and the run's metadata
(``benchmarks/results_io.py``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402  (the benchmark's inputs and error definition)
import real_data  # noqa: E402  (where the real recordings are)
import results_io  # noqa: E402  (run metadata and the result file)

INT16_MAX = 32767
RAMP_SCALE = 120.0  # 255 px x 120 stays inside int16


def _suite2p():
    try:
        import torch
        from suite2p import default_settings
        from suite2p.registration import nonrigid, register
    except ImportError as err:
        sys.exit(f"suite2p is not installed ({err}); see this script's docstring")
    return torch, default_settings, register, nonrigid


def suite2p_fields(movie: Path, block_size: int, threads: int) -> tuple[np.ndarray, float, int]:
    """Per-pixel fields (T, H, W, 2) of suite2p's nonrigid registration, CPU-s/frame, block.

    Frames smaller than twice the block (the 52-px ``real`` recording) get blocks of half the
    frame: suite2p needs at least two blocks along each axis to interpolate between them.
    """
    torch, default_settings, register, nonrigid = _suite2p()
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    counts = tifffile.imread(movie).astype(np.float32)
    if counts.ndim == 4:
        counts = counts[..., 0]
    # suite2p works on int16 frames; a linear rescale changes no shift.
    frames = np.round(counts * (INT16_MAX / max(float(counts.max()), 1.0))).astype(np.int16)
    n_frames, height, width = frames.shape
    block_size = min(block_size, min(height, width) // 2)
    settings = default_settings()
    reg = settings["registration"]
    reg.update(nonrigid=True, block_size=(block_size, block_size))
    cpu0 = time.process_time()
    reference = register.compute_reference(frames.copy(), settings=reg, device=device)
    outputs = register.register_frames(
        frames.copy(), reference, batch_size=reg["batch_size"], norm_frames=reg["norm_frames"],
        smooth_sigma=reg["smooth_sigma"], spatial_taper=reg["spatial_taper"],
        block_size=reg["block_size"], nonrigid=True, maxregshift=reg["maxregshift"],
        smooth_sigma_time=reg["smooth_sigma_time"], snr_thresh=reg["snr_thresh"],
        maxregshiftNR=reg["maxregshiftNR"], subpixel=reg["subpixel"], device=device)
    cpu = (time.process_time() - cpu0) / n_frames
    offsets, blocks = outputs[3], outputs[4]
    rigid_dy, rigid_dx, _, block_dy, block_dx = offsets[:5]
    if max(height, width) * RAMP_SCALE > INT16_MAX:
        sys.exit(f"{movie}: frames of {height} x {width} px are too large for the int16 ramps")
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    # + 0.5 so that the truncation to int16 rounds
    ramps = torch.from_numpy(np.stack([xx, yy]) * RAMP_SCALE + 0.5)
    w = np.empty((n_frames, height, width, 2), np.float32)
    for t in range(n_frames):
        sampled = nonrigid.transform_data(
            ramps, blocks[2], blocks[1], blocks[0],
            torch.from_numpy(np.repeat(block_dy[t : t + 1], 2, 0)),
            torch.from_numpy(np.repeat(block_dx[t : t + 1], 2, 0))).numpy() / RAMP_SCALE
        # the rigid roll by (-dy, -dx) comes first: registered(p) = rolled(p + d) = frame(p + d + r)
        w[t, ..., 0] = sampled[0] - xx + rigid_dx[t]
        w[t, ..., 1] = sampled[1] - yy + rigid_dy[t]
    return w, cpu, block_size


def suite2p_case(model, photons, size, n_frames, seed, block_size, threads) -> dict:
    folder = accuracy.case_input(model, photons, size, n_frames, seed)
    w_true = np.load(folder / "flow.npy")
    w, cpu, block_used = suite2p_fields(folder / "movie.tif", block_size, threads)
    plain = accuracy.flow_errors(w, w_true)
    offset = np.asarray(plain["offset_xy"], np.float32)
    without_offset = accuracy.flow_errors(w - offset, w_true)
    always = plain["always_inside"]
    own_reference = w - np.where(always[..., None], (w - w_true).mean(0), offset)
    relative = accuracy.flow_errors(own_reference, w_true)
    return {"model": model, "photons": None if model in accuracy.REAL_RECORDINGS else photons,
            "frames": int(len(w_true)), "block_size": block_used, "epe_mean": plain["epe_mean"],
            "epe_p95": plain["epe_p95"], "offset": plain["offset"],
            "distortion": plain["distortion"], "epe_mean_offset_removed":
            without_offset["epe_mean"], "epe_p95_offset_removed": without_offset["epe_p95"],
            "epe_mean_own_reference": relative["epe_mean"], "cpu_s_per_frame": cpu}


def main(argv=None) -> None:
    meta = results_io.start(None if argv is None else [__file__, *argv])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=accuracy.QUICK["models"])
    parser.add_argument("--photons", nargs="+", type=float, default=accuracy.QUICK["photons"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    real_data.add_argument(parser)
    args = parser.parse_args(argv)
    real_data.apply(args)
    _suite2p()
    accuracy.warm_up(["balanced"])
    print(f"{'model':>13} {'photons':>7}   suite2p: {'EPE':>6} {'p95':>6} {'off':>6} {'dist':>6} "
          f"{'EPE-off':>7} {'p95-off':>7} {'EPE-ref':>7} {'CPU-s/f':>8}   "
          f"balanced: {'EPE':>6} {'p95':>6} {'CPU-s/f':>8}   ratio")
    rows = []
    for model in args.models:
        levels = [None] if model in accuracy.REAL_RECORDINGS else args.photons
        for photons in levels:
            s2p = suite2p_case(model, photons, args.size, args.frames, args.seed,
                               args.block_size, args.threads)
            ours = accuracy.run_case(model, photons, "balanced", args.size, args.frames,
                                     args.seed)
            ours.pop("offset_xy", None)
            ratio = ours["epe_mean"] / s2p["epe_mean_offset_removed"]
            rows.append({"suite2p": s2p, "balanced": ours, "ratio": ratio})
            level = "own" if photons is None else f"{photons:g}"
            print(f"{model:>13} {level:>7}            {s2p['epe_mean']:6.3f} {s2p['epe_p95']:6.3f} "
                  f"{s2p['offset']:6.3f} {s2p['distortion']:6.3f} "
                  f"{s2p['epe_mean_offset_removed']:7.3f} {s2p['epe_p95_offset_removed']:7.3f} "
                  f"{s2p['epe_mean_own_reference']:7.3f} {s2p['cpu_s_per_frame']:8.4f}"
                  f"             {ours['epe_mean']:6.3f} {ours['epe_p95']:6.3f} "
                  f"{ours['cpu_s_per_frame']:8.4f}   {ratio:5.2f}", flush=True)
    print(accuracy.quoted_text())
    import torch

    meta["versions"].update(suite2p=importlib.metadata.version("suite2p"),
                            torch=torch.__version__)
    results_io.write(args.json, "suite2p", meta, {"rows": rows}, params=vars(args))


if __name__ == "__main__":
    main()
