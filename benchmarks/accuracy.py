"""Stage 1 accuracy against exact ground truth: motion model x photon level x preset.

Usage:
    python benchmarks/accuracy.py --quick          # balanced, 5 models x 10 and 100 photons
    python benchmarks/accuracy.py                  # full grid (models x 3..1000 photons x presets)
    python benchmarks/accuracy.py --models local --photons 10 --presets fast balanced
    python benchmarks/accuracy.py --quick --markdown --json out.json
    python benchmarks/accuracy.py --quick --compare out.json   # EPE change per case
    python benchmarks/accuracy.py --session        # Stage 2 / session-mask accuracy instead
    python benchmarks/accuracy.py --session --seeds 0 --size 64 --frames 10   # quick look

Every case is a recording of :func:`pyflowreg.synthetic.make_benchmark_recording`
(models ``smooth``, ``local``, ``local_patches``, ``jitter``, ``real``, ``real_sima``;
see that module) written as
a uint16 TIFF (photon counts + 100 dark counts) and corrected by the real
``compensate_recording`` with ``save_w: True`` and 2 workers; ``w.hdf5`` is read back.
Inputs and ground truth are cached in ``benchmarks/out/accuracy/`` (``$FLOWREG_BENCH_OUT`` if
set; keyed by the generator source, so a changed generator makes new inputs). A photon level
whose stored counts would saturate uint16 (the synthetic tissue from about 30000 per unit)
stops the run with an error instead of measuring the clipping.

Figures, per case (pooled over seeds):

* **EPE mean / p95** (px): end-point error ``|w - w_true|`` over every frame and every pixel
  whose true sample ``p + w_true(p)`` lies inside the frame; mean and 95th percentile.
* **offset** (px): norm of the mean error vector (where the reference sits).
* **dist** (px): reference distortion, the mean norm of the per-pixel time-mean error minus the
  offset (pixels observable in every frame). EPE that is neither offset nor distortion is
  per-frame noise of the fields.
* **img%** (ideal): error of the corrected mean image (``temporal_average.npy``) against the
  true motion-free mean: RMS difference after a least-squares gain and offset (the stored
  counts are scaled), in % of the true mean's standard deviation, on the pixels observable in
  every frame, eroded by 3 px. Blur from wrong fields raises it. In brackets the same for the
  mean of the stored frames registered with the *true* flows (cubic): the floor set by the
  frames' own noise. The JSON also holds the uncorrected mean's error and Pearson correlations
  of Gaussian gradient magnitudes (sigma 1 px), a scale-free sharpness measure.
* **CPU-s/f**: ``time.process_time`` of the ``compensate_recording`` call / frames (all
  threads; numba is compiled before timing). **ref%**: reference construction, share of
  Stage 1 wall time (``status.json``).
* **goal**: the accuracy target of the case (``GOALS``, balanced preset) and whether its EPE
  mean meets it.

After the table come figures of suite2p as quoted in the project's requirements
(``benchmarks/reference_figures.json``), measured on held-back sessions,
not on these inputs, so without a ratio (``benchmarks/suite2p_baseline.py`` measures suite2p on
these inputs). ``--json PATH`` writes every figure and the run's metadata
(``benchmarks/results_io.py``); ``--compare`` reads such a file.

``--session`` measures Stage 2 and the session mask instead: sessions of 5 recordings
(``--size``, default 192, x ``--frames``, default 30; 12 px rigid + 2.5 px non-rigid motion
between recordings, one session per seed, default seeds 0 1), balanced, through the session
stages; per recording the EPE of its field to the reference recording against the true
between-recording flow (and that of its rigid shift alone), per session the Dice overlap of the
session mask with the true common field of view.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import tifffile
from scipy import ndimage as ndi

import pyflowreg
from pyflowreg.motion_correction import compensate_recording
from pyflowreg.synthetic import REAL_RECORDINGS, make_benchmark_recording, write_recording

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data  # noqa: E402  (where the real recordings are)
import results_io  # noqa: E402  (run metadata, the result file, the quoted figures)

UINT16_MAX = 65535
# Extra flow options for every case, e.g. FLOWREG_BENCH_OPTIONS='{"alpha": 30}' (experiments).
EXTRA_OPTIONS = json.loads(os.environ.get("FLOWREG_BENCH_OPTIONS", "{}"))
OUT = Path(os.environ.get("FLOWREG_BENCH_OUT",
                         Path(__file__).resolve().parent / "out" / "accuracy"))
FULL = {"models": ["smooth", "smooth_wide", "local", "local_patches", "jitter", "real",
                   "real_sima"],
        "photons": [3.0, 10.0, 100.0, 1000.0], "presets": ["fast", "balanced", "quality"],
        "sizes": [256]}
# The frame size most 2-photon labs record, at the balanced preset: the synthetic models at two
# photon levels and real frames mirrored into a 512 px mosaic ("real_tiled").
LARGE = {"models": ["smooth", "smooth_wide", "local_patches", "jitter", "real_tiled"],
         "photons": [10.0, 100.0], "presets": ["balanced"], "sizes": [512]}
QUICK = {"models": ["smooth", "local", "local_patches", "jitter", "real"],
         "photons": [10.0, 100.0],
         "presets": ["balanced"], "sizes": [256]}
# Accuracy targets at the balanced preset: (model, photons or None for real, frame size) -> EPE
# mean, px. The local target is judged on "local_patches", the local model on which both quoted
# figures of the local case (reference_figures.json) are reproduced by measurement; the
# frame-filling "local" is a stress case, harder than the quoted one. The wide deformation of
# the 512 px and dim targets is "smooth_wide", whose deformation 128 px blocks can follow, as
# in the held-back recordings those targets come from.
GOALS = {("smooth", 100.0, 256): 0.12, ("smooth", 1000.0, 256): 0.12,
         ("local_patches", 100.0, 256): 0.20, ("smooth", 10.0, 256): 0.20,
         ("real", None, 52): 0.45, ("smooth_wide", 100.0, 512): 0.05,
         ("smooth_wide", 10.0, 256): 0.12, ("smooth_wide", 10.0, 512): 0.12}


def generator_fingerprint() -> str:
    """Hash of the generator's source: cached inputs are reused only for the same generator."""
    root = Path(pyflowreg.__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted((root / "synthetic").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def quoted_text() -> str:
    """The quoted accuracy figures of reference_figures.json as a small table."""
    entries = results_io.reference_figures("accuracy")
    columns = list(dict.fromkeys(f"{e['tool']} {e['version']}, {e['input']['preset']}"
                                 for e in entries))
    cells: dict[str, dict[str, str]] = {}
    for e in entries:
        case, fig = e["input"]["case"], e["figures"]
        if e["input"]["photons"] is not None:
            case += f", {e['input']['photons']:g} photons"
        if "cpu_s_per_frame" in fig:
            text = f"{fig['cpu_s_per_frame']:.3f}"
        else:
            text = f"{fig['epe_mean']:.2f}" + (f" ({fig['epe_p95']:.2f})" if "epe_p95" in fig
                                                 else "")
        column = f"{e['tool']} {e['version']}, {e['input']['preset']}"
        cells.setdefault(case, {})[column] = text
    sources = "; ".join(sorted({e["source"] for e in entries}))
    lines = [f"Quoted figures of held-back sessions, not these inputs ({sources}).",
             "Per-frame EPE mean (p95), px; CPU-s per frame at 256^2:",
             f"  {'':<44}" + "".join(f"{c:<36}" for c in columns)]
    lines += [f"  {case:<44}" + "".join(f"{row.get(c, '-'):<36}" for c in columns)
              for case, row in cells.items()]
    return "\n".join(line.rstrip() for line in lines)


def _refuse_clipped(movie: Path, model: str, photons: float | None) -> None:
    """Stop before a case whose stored uint16 counts saturate: its figures would be of the
    clipping, not of the registration (e.g. local at 1e5 photons per unit clips bright cells)."""
    n_clipped = n_values = 0
    with tifffile.TiffFile(movie) as tif:
        for page in tif.pages:
            counts = page.asarray()
            n_clipped += int(np.count_nonzero(counts == UINT16_MAX))
            n_values += counts.size
    if n_clipped:
        level = "its own counts" if photons is None else f"{photons:g} photons per unit"
        sys.exit(f"{model} at {level}, {movie}: {n_clipped} of {n_values} stored "
                 f"counts ({n_clipped / n_values:.3%}) saturate at {UINT16_MAX}; the uint16 "
                 "benchmark input cannot hold this brightness, choose a lower photon level")


def case_input(model: str, photons: float | None, size: int, n_frames: int, seed: int) -> Path:
    """Folder with ``movie.tif``, ``flow.npy`` and ``truth.npz`` of one case (cached)."""
    real = model in REAL_RECORDINGS
    n_frames = min(n_frames, REAL_RECORDINGS[model][1]) if real else n_frames
    tag = f"{model}_{'own' if real else f'{photons:g}ph'}_{'own' if real else size}" \
          f"_{n_frames}f_s{seed}_{generator_fingerprint()}"
    folder = OUT / tag
    if (folder / "truth.npz").is_file():
        _refuse_clipped(folder / "movie.tif", model, photons)  # a cached input must not clip either
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if real:
        rec = make_benchmark_recording(model, height=None, width=None, n_frames=n_frames,
                                       seed=seed, data_dir=real_data.real_data_dir())
    else:
        rec = make_benchmark_recording(model, photons_per_unit=photons, height=size, width=size,
                                       n_frames=n_frames, seed=seed)
    tmp = folder / "movie.tmp.tif"
    write_recording(rec, tmp, dtype="uint16", scale=rec.count_scale, offset=rec.count_offset)
    try:
        _refuse_clipped(tmp, model, photons)  # the case stays incomplete: no truth.npz
    except SystemExit:
        tmp.unlink()
        raise
    os.replace(tmp, folder / "movie.tif")
    flow = rec.flow_all()
    with open(folder / "flow.tmp.npy", "wb") as f:
        np.save(f, flow)
    os.replace(folder / "flow.tmp.npy", folder / "flow.npy")
    raw_mean = np.zeros(rec.shape[1:], np.float64)
    for _, chunk in rec.iter_observed(32):
        raw_mean += chunk.sum(0)
    with open(folder / "truth.tmp.npz", "wb") as f:  # written last: marks the case complete
        np.savez(f, clean_mean=rec.clean_static()[..., 0], raw_mean=raw_mean[..., 0] / rec.n_frames,
                 photons=np.float64(photons if photons and not real else np.nan))
    os.replace(folder / "truth.tmp.npz", folder / "truth.npz")
    return folder


def ideal_mean(folder: Path) -> np.ndarray:
    """Mean of the stored frames registered with the true flows (cached in the case folder)."""
    path = folder / "ideal_mean.npy"
    if not path.is_file():
        movie = tifffile.imread(folder / "movie.tif").astype(np.float64)
        flow = np.load(folder / "flow.npy", mmap_mode="r")
        yy, xx = np.mgrid[: movie.shape[1], : movie.shape[2]].astype(float)
        total = np.zeros(movie.shape[1:])
        for frame, w in zip(movie, flow, strict=True):
            total += ndi.map_coordinates(frame, [yy + w[..., 1], xx + w[..., 0]], order=3,
                                         mode="nearest")
        with open(folder / "ideal_mean.tmp.npy", "wb") as f:
            np.save(f, total / len(movie))
        os.replace(folder / "ideal_mean.tmp.npy", path)
    return np.load(path)


def mean_image_error(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """RMS of ``gain * image + offset - truth`` (least squares) on ``mask``, % of truth's std."""
    a, b = image[mask].astype(np.float64), truth[mask].astype(np.float64)
    design = np.stack([a, np.ones_like(a)], 1)
    fit = design @ np.linalg.lstsq(design, b, rcond=None)[0]
    return float(100 * np.sqrt(np.mean((fit - b) ** 2)) / b.std())


def gradient_correlation(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of Gaussian gradient magnitudes (sigma 1 px) on ``mask``."""
    a = ndi.gaussian_gradient_magnitude(image.astype(np.float64), 1.0)[mask]
    b = ndi.gaussian_gradient_magnitude(truth.astype(np.float64), 1.0)[mask]
    return float(np.corrcoef(a, b)[0, 1])


def flow_errors(w: np.ndarray, w_true: np.ndarray) -> dict:
    """EPE statistics on the pixels whose true sample lies inside the frame (see docstring)."""
    n, height, width, _ = w_true.shape
    yy, xx = np.mgrid[:height, :width]
    x, y = xx + w_true[..., 0], yy + w_true[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    error = w - w_true
    norm = np.hypot(error[..., 0], error[..., 1])
    offset = error[inside].mean(0)
    always = inside.all(0)
    per_pixel = error.mean(0)[always] - offset
    per_frame = np.array([norm[t][inside[t]].mean() for t in range(n)])
    return {"epe_mean": float(norm[inside].mean()), "epe_p95": float(np.percentile(norm[inside],
                                                                                   95)),
            "epe_worst_frame": float(per_frame.max()), "offset": float(np.hypot(*offset)),
            "offset_xy": offset.tolist(),
            "distortion": float(np.hypot(per_pixel[:, 0], per_pixel[:, 1]).mean()),
            "always_inside": always}


def read_fields(out: Path) -> np.ndarray:
    """(T, H, W, 2) fields that Stage 1 saved in ``out/w.hdf5`` (``save_w``)."""
    with h5py.File(Path(out) / "w.hdf5") as f:
        return np.stack([f["u"][()], f["v"][()]], -1)


def compensate(options: dict, movie: Path, out: str, engine: Path | None = None) -> float:
    """Run Stage 1 on ``movie``; CPU seconds of all its threads (or of its process)."""
    if engine is None:
        cpu0 = time.process_time()
        compensate_recording(options, input_file=movie, output_path=out, resume=False)
        return time.process_time() - cpu0
    # Another checkout's library on the same input: a child process importing it from there.
    # It must come from there: an installed pyflowreg would otherwise answer silently.
    code = ("import json, sys; from pathlib import Path; import pyflowreg; "
            "here = Path(pyflowreg.__file__).resolve(); "
            "sys.exit(f'pyflowreg came from {here}, not from {sys.argv[4]}') "
            "if Path(sys.argv[4]).resolve() not in here.parents else None; "
            "from pyflowreg.motion_correction import compensate_recording; "
            "compensate_recording(json.loads(sys.argv[1]), input_file=sys.argv[2], "
            "output_path=sys.argv[3], resume=False)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code, json.dumps(options), str(movie), out,
                    str(engine)], check=True, env={**os.environ, "PYTHONPATH": str(engine)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_case(model, photons, preset, size, n_frames, seed, engine: Path | None = None) -> dict:
    folder = case_input(model, photons, size, n_frames, seed)
    w_true = np.load(folder / "flow.npy")
    truth = np.load(folder / "truth.npz")
    with tempfile.TemporaryDirectory(dir=OUT) as out:
        wall0 = time.perf_counter()
        cpu = compensate({"quality_setting": preset, "save_w": True, "n_workers": 2,
                          **EXTRA_OPTIONS}, folder / "movie.tif", out, engine)
        wall = time.perf_counter() - wall0
        w = read_fields(out)
        average = np.load(Path(out) / "temporal_average.npy")
        status_file = Path(out) / "status.json"
        status = json.loads(status_file.read_text()) if status_file.is_file() else {}
        seconds = status.get("seconds", {})
        # Another checkout's Stage 1 (--engine) may record less about its choice of alpha.
        selection = status.get("alpha_selection", {})
    result = flow_errors(w, w_true)
    mask = ndi.binary_erosion(result.pop("always_inside"), iterations=3)
    result.update(
        model=model, photons=None if model in REAL_RECORDINGS else photons, preset=preset,
        seed=seed, frames=int(len(w_true)), size=list(w_true.shape[1:3]),
        image_error=mean_image_error(average, truth["clean_mean"], mask),
        image_error_ideal=mean_image_error(ideal_mean(folder), truth["clean_mean"], mask),
        image_error_raw=mean_image_error(truth["raw_mean"], truth["clean_mean"], mask),
        sharpness=gradient_correlation(average, truth["clean_mean"], mask),
        sharpness_ideal=gradient_correlation(ideal_mean(folder), truth["clean_mean"], mask),
        sharpness_raw=gradient_correlation(truth["raw_mean"], truth["clean_mean"], mask),
        cpu_s_per_frame=cpu / len(w_true), wall_s=wall,
        reference_share=seconds.get("reference", np.nan) / max(seconds.get("total", 0), 1e-9),
        alpha=selection.get("alpha", [None])[0], alpha_path=selection.get("path"),
    )
    return result


def pooled(results: list[dict]) -> dict:
    """Mean of every figure over the seeds of one case."""
    keys = ("epe_mean", "epe_p95", "epe_worst_frame", "offset", "distortion", "image_error",
            "image_error_ideal", "image_error_raw", "sharpness", "sharpness_ideal",
            "sharpness_raw", "cpu_s_per_frame", "wall_s", "reference_share")
    out = {k: float(np.mean([r[k] for r in results])) for k in keys}
    first = results[0]
    out.update(model=first["model"], photons=first["photons"], preset=first["preset"],
               size=first["size"], frames=first["frames"], seeds=[r["seed"] for r in results],
               alpha=[r.get("alpha") for r in results],
               alpha_path=[r.get("alpha_path") for r in results])
    return out


def alpha_text(row: dict) -> str:
    """The weight each seed's Stage 1 used and the path its choice took (e.g. 12 photon)."""
    paths = {"photon-model": "photon", "measured-variance": "measured", "configured": "kept"}
    return ",".join(f"{a:g} {paths.get(p, p)}" if a is not None else "?"
                    for a, p in zip(row.get("alpha", []), row.get("alpha_path", []),
                                    strict=False))


def goal_text(row: dict) -> str:
    goal = GOALS.get((row["model"], row["photons"], row["size"][0]))
    if goal is None or row["preset"] != "balanced":
        return ""
    return f"goal<={goal:.2f} {'ok' if row['epe_mean'] <= goal else 'MISS'}"


def case_key(row: dict) -> tuple:
    return (row["model"], row["photons"], row["preset"], tuple(row["size"]), row["frames"])


def compare_text(row: dict, before: dict) -> str:
    old = before.get(case_key(row))
    if old is None:
        return ""
    change = row["epe_mean"] - old["epe_mean"]
    return f"EPE was {old['epe_mean']:.3f} ({100 * change / old['epe_mean']:+.0f}%)"


def line(row: dict, before: dict | None = None) -> str:
    photons = "own" if row["photons"] is None else f"{row['photons']:g}"
    size = "x".join(map(str, row["size"]))
    return (f"{row['model']:>13} {photons:>5} {row['preset']:>8} {size:>7}x{row['frames']:<4} "
            f"{row['epe_mean']:6.3f} {row['epe_p95']:6.3f} {row['offset']:6.3f} "
            f"{row['distortion']:6.3f} {row['image_error']:5.2f} ({row['image_error_ideal']:5.2f}) "
            f"{row['cpu_s_per_frame']:7.4f} {100 * row['reference_share']:4.0f}% "
            f"{alpha_text(row):>14}  {goal_text(row)} {compare_text(row, before or {})}"
            ).rstrip()


HEADER = (f"{'model':>13} {'ph/u':>5} {'preset':>8} {'size':>12} {'EPE':>6} {'p95':>6} "
          f"{'offset':>6} {'dist':>6} {'img%':>5} {'(ideal)':>7} {'CPU-s/f':>7} {'ref%':>5} "
          f"{'alpha, path':>14}")


def markdown(rows: list[dict]) -> str:
    lines = ["| model | photons/unit | preset | frames | EPE mean (p95), px | offset, px | "
             "ref. distortion, px | mean-image error % (true flows) | CPU-s/frame | alpha, path |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        photons = "own noise" if r["photons"] is None else f"{r['photons']:g}"
        lines.append(
            f"| {r['model']} | {photons} | {r['preset']} | {'x'.join(map(str, r['size']))} x "
            f"{r['frames']} | {r['epe_mean']:.3f} ({r['epe_p95']:.2f}) | {r['offset']:.3f} | "
            f"{r['distortion']:.3f} | {r['image_error']:.2f} ({r['image_error_ideal']:.2f}) | "
            f"{r['cpu_s_per_frame']:.3f} | {alpha_text(r)} |")
    return "\n".join(lines)


def warm_up(presets) -> None:
    """Compile (or load) numba kernels so compilation is not billed to the first case."""
    rec = make_benchmark_recording("smooth", photons_per_unit=100.0, height=48, width=48,
                                   n_frames=6, seed=0)
    with tempfile.TemporaryDirectory(dir=OUT) as d:
        movie = write_recording(rec, Path(d) / "warm.tif", scale=rec.count_scale,
                                offset=rec.count_offset)
        for preset in presets:
            compensate_recording({"quality_setting": preset, "save_w": True, "n_workers": 2},
                                 input_file=movie, output_path=Path(d) / preset, resume=False)


def run_session(seeds, size: int, n_frames: int) -> list[dict]:
    """Stage 2 and session mask against ground truth; one record per session (seed)."""
    from pyflowreg.session import SessionConfig
    from pyflowreg.session.stage1_compensate import run_stage1
    from pyflowreg.session.stage2_between_avgs import run_stage2
    from pyflowreg.session.stage3_valid_mask import run_stage3
    from pyflowreg.synthetic import make_session, write_session

    sessions = []
    with tempfile.TemporaryDirectory(dir=OUT) as d:
        for seed in seeds:
            s = make_session(5, size, size, n_frames, between_rigid_amplitude=12.0,
                             between_nonrigid_amplitude=2.5, seed=seed)
            root = Path(d) / f"sess{seed}"
            write_session(s, root, pattern="rec_{:02d}.tif")
            cfg = SessionConfig(root=str(root), pattern="rec_*.tif", quality_setting="balanced",
                                n_workers=2)
            run_stage1(cfg)
            mid, _, fields = run_stage2(cfg)
            final = run_stage3(cfg, mid, fields)
            truth = s.common_valid_mask()
            dice = 2 * (final & truth).sum() / (final.sum() + truth.sum())
            res, alignments = [], []
            for r, p in enumerate(cfg.discover_input_files()):
                if r == mid:
                    continue
                info = json.loads((cfg.output_folder(p) / "w_to_reference.json").read_text())
                e = np.linalg.norm(fields[r] - s.between_flow[r], axis=-1).mean()
                er = np.linalg.norm(np.array(info["rigid_shift"]) - s.between_flow[r],
                                    axis=-1).mean()
                res.append(f"{e:.3f} (rigid {er:.2f}, kept {info['kept']})")
                alignments.append({"recording": r, "epe_mean": float(e),
                                   "rigid_epe_mean": float(er), "kept": info["kept"]})
            print(f"session seed {seed} {size}x{size}x{n_frames} balanced: stage2 EPE "
                  + "; ".join(res) + f"; Dice {dice:.4f}", flush=True)
            sessions.append({"seed": seed, "recordings": len(s.between_flow), "size": size,
                             "frames": n_frames, "preset": "balanced", "reference": int(mid),
                             "alignments": alignments, "dice": float(dice)})
    return sessions


def main(argv=None) -> None:
    meta = results_io.start(None if argv is None else [__file__, *argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="balanced only, smooth/local/local_patches/jitter/real x 10 and "
                             "100 photons")
    parser.add_argument("--models", nargs="+", choices=FULL["models"])
    parser.add_argument("--photons", nargs="+", type=float, help="photons per unit")
    parser.add_argument("--presets", nargs="+", choices=FULL["presets"])
    parser.add_argument("--sizes", "--size", nargs="+", type=int, dest="sizes",
                        help="frame sizes of synthetic models (default: the grid's, 256 and "
                             "512 for the large-frame grid; --session 192)")
    parser.add_argument("--frames", type=int,
                        help="frames (default 200, real models at most their own count; "
                             "--session 30 per recording)")
    parser.add_argument("--seeds", nargs="+", type=int, help="default 0; --session 0 1")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the table as Markdown")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    parser.add_argument("--session", action="store_true",
                        help="run the Stage 2 / session-mask benchmark instead")
    parser.add_argument("--no-quote", action="store_true",
                        help="omit the quoted figures of other tools")
    parser.add_argument("--compare", type=Path, metavar="JSON",
                        help="show each case's EPE change against an earlier --json output")
    parser.add_argument("--engine", type=Path, metavar="SRC",
                        help="run Stage 1 from another checkout's library (its src folder, e.g. "
                             "of `git worktree add /tmp/old <commit>`) on this checkout's inputs")
    real_data.add_argument(parser)
    args = parser.parse_args(argv)
    real_data.apply(args)

    OUT.mkdir(parents=True, exist_ok=True)
    if args.session:
        sessions = run_session(args.seeds or [0, 1], (args.sizes or [192])[0],
                               args.frames or 30)
        results_io.write(args.json, "accuracy_session", meta, {"sessions": sessions},
                         params=vars(args))
        return
    args.frames, args.seeds = args.frames or 200, args.seeds or [0]
    chosen = any(v is not None for v in (args.models, args.photons, args.presets, args.sizes))
    # Without a choice the default run is the full grid and the large-frame grid; any choice
    # applies to one grid (the full one unless --quick), sizes defaulting to 256 px.
    grids = [QUICK] if args.quick else [FULL] if chosen else [FULL, LARGE]
    cases = []
    for grid in grids:
        for size in args.sizes or grid["sizes"]:
            for model in args.models or grid["models"]:
                for ph in ([None] if model in REAL_RECORDINGS else args.photons or grid["photons"]):
                    cases += [(model, ph, preset, size)
                              for preset in args.presets or grid["presets"]]
    # Real models have their own size: one case each, whatever the sizes asked for.
    cases = list(dict.fromkeys((m, ph, preset, None if m in REAL_RECORDINGS else size)
                               for m, ph, preset, size in cases))
    presets = sorted({preset for _, _, preset, _ in cases})

    before = {}
    if args.compare:
        earlier = json.loads(args.compare.read_text())
        # a result file of results_io, or the plain {"meta", "cases"} of older runs
        earlier = earlier.get("results", earlier)["cases"]
        before = {case_key(r): r for r in earlier}
    if args.engine is not None and not (args.engine / "pyflowreg" / "__init__.py").is_file():
        sys.exit(f"--engine {args.engine}: no pyflowreg package there (give a checkout's src)")
    if args.engine is None:
        warm_up(presets)  # another engine compiles in its own processes, billed to the first case
    print(HEADER)
    rows, raw = [], []
    for model, ph, preset, size in cases:
        per_seed = [run_case(model, ph, preset, size, args.frames, seed, args.engine)
                    for seed in args.seeds]
        raw += per_seed
        rows.append(pooled(per_seed))
        if case_key(rows[-1]) in before:
            rows[-1]["compared_epe_mean"] = before[case_key(rows[-1])]["epe_mean"]
        print(line(rows[-1], before), flush=True)
    if not args.no_quote:
        print()
        print(quoted_text())
    if args.markdown:
        print()
        print(markdown(rows))
    meta.update(engine=str(args.engine or Path(pyflowreg.__file__).parent.parent),
                generator=generator_fingerprint())
    goals = [{"model": model, "photons": ph, "size": size, "preset": "balanced",
              "epe_mean": goal} for (model, ph, size), goal in GOALS.items()]
    results_io.write(args.json, "accuracy", meta,
                     {"cases": rows, "per_seed": raw, "goals": goals,
                      "compared_with": str(args.compare) if args.compare else None},
                     params=vars(args))


if __name__ == "__main__":
    main()
