"""One suite2p ROI set across a session: with flowreg-session's alignment, and without it.

A synthetic session (``pyflowreg.synthetic.make_session``: one tissue with known neurons seen by
every recording through its own static between-recording warp, plus per-frame motion; every
recording has its own calcium activity) is written as TIFF files and run through Stages 1-3.
suite2p then detects ROIs and extracts traces, with its registration off, on two movies:

* **aligned**: the session export ``pyflowreg.session.export_suite2p.export_suite2p`` (every
  aligned recording cropped to the session mask's bounding box, concatenated, int16);
* **baseline**: what a lab has without session alignment: the recordings' Stage 1 outputs
  (each motion-corrected within itself, not aligned to the others) concatenated as they are,
  cropped to the bounding box of the intersection of their own valid masks (``idx.hdf``),
  converted to int16 the same way.

Figures, per recording of each movie:

* **found**: fraction of the true neurons matched by a detected ROI. The neurons counted are
  those whose centre lies in the session's true common field of view (visible in every
  recording), the same set for both movies. A match is a one-to-one assignment (Hungarian, on
  distance) of ROI centroids (``lam``-weighted) to true centres within ``--radius`` px. The
  true centres are in the coordinates of the movie analysed: for the aligned movie the
  reference recording's centres of the same cells (the known between-recording displacement
  maps every recording's cell there; checked at run time), for the baseline each recording's
  own centres, so one ROI set meets each neuron at a different place in each recording.
* **corr**: median, over the matched neurons that fire in that recording (dF/F reaching 0.5;
  one spike gives at least 0.67), of the Pearson correlation of the ROI's ``F - 0.7 Fneu``
  over that recording's frames (``frames_per_file``) with the neuron's true dF/F.
* **corr-ref**: the same with each neuron's ROI taken from its match in the reference
  recording, as a lab that detects once and reads the same ROIs in every recording does.
* **offset**: median vector from true centre to matched ROI centroid (px); a check that the
  coordinates agree.

Per movie: the number of ROIs (and how many suite2p's classifier, trained on real data, calls
cells; all ROIs count here), and **tracked**: the neurons matched by one and the same ROI in
every recording, which is what one ROI set across a session has to give.

suite2p runs as ``suite2p.run_plane(ops, settings)``: the export's ``ops.npy`` serves as
suite2p 1.x's ``db`` (files and shapes), the baseline gets the same keys. Settings: CPU,
``do_registration=0``, the sparsery detector, ``fs`` 10 Hz and ``tau`` 1.5 s (the synthetic
calcium decays in 10-20 frames, 1-2 s at 10 Hz; suite2p bins the movie by ``tau * fs`` frames
for detection), ``diameter`` 10 px (somata of radius 4-7 px); everything else suite2p's
default. The matching radius, 4 px, is below half the 9 px minimum distance between the
synthetic neurons' centres, so no ROI is near two of them.

The synthetic activity is sparse calcium transients: Poisson spikes at 0.005-0.03 per frame per
neuron (log-uniform; ``--spike-rate``), 0.05-0.3 Hz at 10 Hz. At the generator's default
0.05-0.3 per frame the saturating indicator model keeps a neuron above half its peak dF/F in a
median 79 % of frames (12 % at the rates used here), which is not how cortical neurons look;
suite2p finds the neurons at either rate.

Environment. suite2p needs PyTorch, so it runs outside CI, in its own virtual environment. The
CPU build of torch 2.13.0 keeps pip from pulling a multi-GB CUDA build, and the constraint
keeps suite2p's dependencies from replacing it. cellpose stays at 4.1.1: from 4.2,
``cellpose.transforms`` imports torchvision, which ``import suite2p`` reaches through its
registration module, and PyPI's torchvision is a CUDA build whose compiled operators do not
load with the CPU torch (``operator torchvision::nms does not exist``). cellpose 4.1.1 leaves
torchvision unimported on the path used here (sparsery detection, no registration).

    python3 -m venv /work/s2p-venv
    /work/s2p-venv/bin/pip install torch==2.13.0
    echo "torch==2.13.0+cpu" > /tmp/torch-cpu.txt
    /work/s2p-venv/bin/pip install suite2p==1.1.0 cellpose==4.1.1 -c /tmp/torch-cpu.txt
    /work/s2p-venv/bin/pip install -e . -c /tmp/torch-cpu.txt    # this repository
    /work/s2p-venv/bin/pip list | grep torch                      # still 2.13.0+cpu

Run from the repository root (default: 3 recordings of 256 x 256 px and 300 frames, about
2 minutes on 2 cores):

    /work/s2p-venv/bin/python benchmarks/session_rois.py --json benchmarks/results/session_rois.json
    /work/s2p-venv/bin/python benchmarks/session_rois.py --recordings 5 --frames 500 --size 192

``--keep DIR`` (a new or empty folder) keeps the session, the stage outputs, both suite2p
planes and suite2p's outputs there; by default they go to a temporary folder, removed at the
end. ``--json PATH`` writes the configuration, every printed figure and the run's metadata
(``benchmarks/results_io.py``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.metadata
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)

NEUROPIL_COEFFICIENT = 0.7  # suite2p's default, F - 0.7 Fneu
CHUNK_FRAMES = 256
FIRING_DFF = 0.5  # a neuron "fires" in a recording when its dF/F reaches this (1 spike: >= 0.67)


def _suite2p():
    try:
        import suite2p
        import torch
    except ImportError as err:
        sys.exit(f"suite2p is not installed ({err}); see this script's docstring")
    return suite2p, torch


def _export_module():
    try:
        return importlib.import_module("pyflowreg.session.export_suite2p")
    except ImportError as err:
        sys.exit(f"this flowreg-session has no suite2p export ({err})")


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the True pixels, end-exclusive."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        raise ValueError("empty mask: no pixel is valid in every recording")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


# ---- the session and its two suite2p inputs

def make_synthetic_session(args, root: Path):
    from pyflowreg.synthetic import make_session, write_session

    session = make_session(args.recordings, args.size, args.size, args.frames, seed=args.seed,
                           spike_rate=tuple(args.spike_rate), cell_density=args.cell_density,
                           photons_per_unit=args.photons)
    # The within-recording flows are not needed here and would cost time and disk.
    write_session(session, root, ground_truth_flows=False)
    return session


def run_stages(args, root: Path, work: Path, center_index: int):
    from pyflowreg.session import SessionConfig, run_stage1, run_stage2, run_stage3

    config = SessionConfig(root=str(root), pattern="rec_*.tif",
                           output_root=str(work / "compensated"),
                           final_results=str(work / "final_results"),
                           center=f"rec_{center_index:02d}.tif",
                           quality_setting=args.preset, n_workers=args.workers,
                           metadata={"imaging_rate": args.fs})  # the export's ops["fs"]
    quiet = lambda *a, **k: None  # noqa: E731  (the stages' progress would drown the table)
    run_stage1(config, log=quiet)
    middle_idx, _, fields = run_stage2(config)
    if middle_idx != center_index:
        raise RuntimeError(f"Stage 2 chose recording {middle_idx}, the generator's reference "
                           f"is {center_index}")
    final_mask = run_stage3(config, middle_idx, fields)
    return config, final_mask


def aligned_plane(config, final_mask: np.ndarray) -> dict:
    """The session export: its ``ops`` and where its crop lies in the reference grid."""
    ops_path = Path(_export_module().export_suite2p(config, log=lambda message: None))
    ops = np.load(ops_path, allow_pickle=True).item()
    stems = [p.stem for p in config.discover_input_files()]
    if list(ops["flowreg_recordings"]) != stems:
        raise RuntimeError(f"the export holds {ops['flowreg_recordings']}, the session {stems}")
    y0, y1, x0, x1 = (int(v) for v in ops["flowreg_crop"])
    if (y0, y1, x0, x1) != bounding_box(final_mask):
        raise RuntimeError(f"export crop {(y0, y1, x0, x1)}, session mask's bounding box "
                           f"{bounding_box(final_mask)}")
    return {"ops": ops, "origin_yx": (y0, x0), "crop_pixels": int(final_mask.sum()),
            "int16_scale": float(ops["flowreg_int16_scale"])}


def baseline_plane(config, plane: Path) -> dict:
    """The Stage 1 outputs concatenated unaligned, in the export's layout and int16 rule.

    Crop: the bounding box of the AND of the recordings' own valid masks (``idx.hdf`` over
    time), each in its own, unaligned grid.
    """
    from pyflowreg.io import open_movie
    from pyflowreg.motion_correction.compensate import IDX_FILE, compensated_path
    from pyflowreg.session.stage3_valid_mask import temporal_valid_mask

    export = _export_module()
    folders = [config.output_folder(p) for p in config.discover_input_files()]
    valid = np.logical_and.reduce([temporal_valid_mask(f / IDX_FILE) for f in folders])
    y0, y1, x0, x1 = bounding_box(valid)

    def cropped(folder):
        with open_movie(compensated_path(folder)) as reader:
            for batch in reader.iter_batches(CHUNK_FRAMES):
                yield batch[:, y0:y1, x0:x1, 0]

    peak = max(float(np.abs(b).max()) for f in folders for b in cropped(f))
    scale = export.int16_scale(peak)
    plane.mkdir(parents=True, exist_ok=True)
    reg_file = plane / export.BINARY_FILE
    frames_per_file, total = [], np.zeros((y1 - y0, x1 - x0))
    with open(reg_file, "wb") as out:
        for folder in folders:
            n = 0
            for batch in cropped(folder):
                values = np.clip(np.rint(batch * np.float32(scale)), -export.INT16_PEAK,
                                 export.INT16_PEAK).astype(np.int16)
                values.tofile(out)
                total += values.sum(0, dtype=np.float64)
                n += len(values)
            frames_per_file.append(n)
    nframes = sum(frames_per_file)
    # The keys of the export's ops that suite2p's run_plane reads.
    ops = {"Ly": y1 - y0, "Lx": x1 - x0, "nframes": nframes,
           "frames_per_file": np.asarray(frames_per_file), "nchannels": 1, "nplanes": 1,
           "functional_chan": 1, "meanImg": (total / nframes).astype(np.float32),
           "yrange": np.asarray([0, y1 - y0]), "xrange": np.asarray([0, x1 - x0]),
           "reg_file": str(reg_file), "ops_path": str(plane / export.OPS_FILE),
           "save_path": str(plane), "save_path0": str(plane.parent.parent),
           "save_folder": plane.parent.name, "data_path": [str(plane.parent.parent)],
           "do_registration": 0, "keep_movie_raw": False, "fs": config.metadata["imaging_rate"]}
    np.save(plane / export.OPS_FILE, ops, allow_pickle=True)
    return {"ops": ops, "origin_yx": (y0, x0), "crop_pixels": int(valid.sum()),
            "int16_scale": scale}


# ---- suite2p

def suite2p_settings(args) -> dict:
    suite2p, _ = _suite2p()
    settings = suite2p.default_settings()
    settings["torch_device"] = "cpu"
    settings["fs"], settings["tau"] = args.fs, args.tau
    settings["diameter"] = [args.diameter, args.diameter]
    settings["run"]["do_registration"] = 0
    return settings


def run_suite2p(ops: dict, settings: dict) -> dict:
    """suite2p's ``run_plane`` on a plane's ``ops`` (detection, extraction; no registration).

    suite2p 1.x splits its old ``ops`` into ``db`` (files, shapes) and ``settings``; the
    export's ``ops`` serves as ``db``. Outputs (``stat.npy``, ``F.npy``, ...) go next to the
    binary, as for any suite2p plane.
    """
    suite2p, _ = _suite2p()
    if float(ops.get("fs", settings["fs"])) != float(settings["fs"]):
        raise RuntimeError(f"the plane's fs {ops['fs']} differs from suite2p's {settings['fs']}")
    start = time.perf_counter()
    # run_plane fills in both dicts; each movie gets fresh copies.
    outputs = suite2p.run_plane(copy.deepcopy(ops), copy.deepcopy(settings))
    stat, F, Fneu, iscell = outputs[2], outputs[3], outputs[4], outputs[8]
    return {"stat": stat, "F": F, "Fneu": Fneu, "iscell": iscell,
            "seconds": time.perf_counter() - start}


def roi_centroids(stat) -> np.ndarray:
    """(n, 2) ``lam``-weighted centroids (x, y) of suite2p ROIs, in the binary's pixels."""
    out = np.empty((len(stat), 2))
    for i, roi in enumerate(stat):
        lam = np.asarray(roi["lam"], float)
        out[i] = (np.average(roi["xpix"], weights=lam), np.average(roi["ypix"], weights=lam))
    return out


def match(truth: np.ndarray, rois: np.ndarray, radius: float) -> dict[int, int]:
    """One-to-one assignment of ROIs to true centres within ``radius`` px (Hungarian on
    distance): ``{truth index: roi index}``."""
    if len(truth) == 0 or len(rois) == 0:
        return {}
    dist = np.hypot(*(truth[:, None, :] - rois[None, :, :]).transpose(2, 0, 1))
    cost = np.where(dist <= radius, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if dist[r, c] <= radius}


def evaluate(result: dict, plane: dict, positions: list[np.ndarray], traces: list[np.ndarray],
             radius: float, reference: int) -> dict:
    """Per-recording found fraction, trace correlations and offset, and the tracked fraction.

    ``positions[r]`` (n, 2) are the counted neurons' true centres (x, y) in recording r's
    coordinates of the analysed movie (before its crop); ``traces[r]`` (T_r, n) their dF/F;
    ``reference`` the recording whose matches name each neuron's ROI for ``corr_ref_roi``.
    """
    origin = np.array(plane["origin_yx"][::-1], float)
    centroids = roi_centroids(result["stat"]) + origin
    dF = result["F"] - NEUROPIL_COEFFICIENT * result["Fneu"]
    bounds = np.cumsum([0, *plane["ops"]["frames_per_file"]])
    assigned = [match(truth, centroids, radius) for truth in positions]

    def median_corr(r, pairs):
        true_dff = traces[r]
        # A neuron without a transient in this recording has no trace to recover.
        corrs = [np.corrcoef(dF[roi, bounds[r]:bounds[r + 1]], true_dff[:, k])[0, 1]
                 for k, roi in pairs.items() if true_dff[:, k].max() >= FIRING_DFF]
        return (float(np.median(corrs)) if corrs else float("nan")), len(corrs)

    rows = []
    for r, (truth, pairs) in enumerate(zip(positions, assigned, strict=True)):
        corr, firing = median_corr(r, pairs)
        offsets = np.array([centroids[roi] - truth[k] for k, roi in pairs.items()])
        rows.append({
            "recording": r, "neurons": len(truth), "found": len(pairs),
            "found_fraction": len(pairs) / len(truth) if len(truth) else float("nan"),
            "firing_found": firing, "corr_median": corr,
            "corr_ref_roi_median": median_corr(r, assigned[reference])[0],
            "offset_xy": np.median(offsets, 0) if len(offsets) else [float("nan")] * 2,
        })
    n = len(positions[0])
    tracked = sum(assigned[0].get(k) is not None and len({p.get(k) for p in assigned}) == 1
                  for k in range(n))
    iscell = result["iscell"]
    return {"rois": len(result["stat"]),
            "rois_iscell": int((iscell[:, 0] > 0).sum()) if iscell is not None else None,
            "tracked": tracked, "tracked_fraction": tracked / n if n else float("nan"),
            "recordings": rows, "suite2p_s": result["seconds"]}


# ---- ground truth

def true_positions(session) -> tuple[np.ndarray, list[np.ndarray]]:
    """Neurons counted (indices) and every recording's true centres (x, y) of them.

    The counted neurons are those whose centre, in the reference grid, lies in the session's
    true common field of view. Recording r sees the reference's point q at
    ``q + between_flow[r](q)``; that this gives recording r's own centres is checked here, so
    the reference recording's centres are the neurons' positions in the aligned movie.
    """
    from scipy.ndimage import map_coordinates

    ref = session.recordings[session.center_index].cell_centers
    common = session.common_valid_mask()
    height, width = common.shape
    xi, yi = np.rint(ref[:, 0]).astype(int), np.rint(ref[:, 1]).astype(int)
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    keep = np.flatnonzero(inside)
    keep = keep[common[yi[keep], xi[keep]]]
    own = []
    for r, rec in enumerate(session.recordings):
        w = session.between_flow[r]
        at = [ref[keep, 1], ref[keep, 0]]
        mapped = ref[keep] + np.stack([map_coordinates(w[..., c], at, order=1) for c in (0, 1)],
                                      1)
        error = float(np.abs(mapped - rec.cell_centers[keep]).max(initial=0))
        if error > 0.1:
            raise RuntimeError(f"recording {r}: between_flow maps the reference's centres "
                               f"{error:.2f} px from the recording's own")
        own.append(rec.cell_centers[keep])
    return keep, own


# ---- report

def print_table(name: str, summary: dict) -> None:
    movie = summary["movie"]
    print(f"\n{name}: {movie['Ly']} x {movie['Lx']} px from (y, x) = "
          f"{tuple(movie['origin_yx'])}, {summary['rois']} ROIs ({summary['rois_iscell']} "
          f"iscell), neurons tracked by one ROI in every recording "
          f"{summary['tracked']} ({100 * summary['tracked_fraction']:.1f}%), suite2p "
          f"{summary['suite2p_s']:.1f} s")
    print(f"{'rec':>4} {'neurons':>7} {'found':>6} {'found%':>7} {'firing':>6} {'corr':>6} "
          f"{'corr-ref':>8} {'offset (x, y)':>15}")
    for row in summary["recordings"]:
        dx, dy = row["offset_xy"]
        print(f"{row['recording']:>4} {row['neurons']:>7} {row['found']:>6} "
              f"{100 * row['found_fraction']:>6.1f}% {row['firing_found']:>6} "
              f"{row['corr_median']:>6.3f} {row['corr_ref_roi_median']:>8.3f} "
              f"{f'({dx:+.2f}, {dy:+.2f})':>15}")


def main(argv=None) -> None:
    meta = results_io.start(None if argv is None else [__file__, *argv])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300, help="per recording")
    parser.add_argument("--size", type=int, default=256, help="frame height and width, px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell-density", type=float, default=100.0,
                        help="neurons per 256 x 256 px (the generator's default)")
    parser.add_argument("--spike-rate", type=float, nargs=2, default=(0.005, 0.03),
                        metavar=("LOW", "HIGH"), help="spikes per frame per neuron, range")
    parser.add_argument("--photons", type=float, default=100.0,
                        help="photons per brightness unit (the generator's default; resting "
                             "somata 0.3-0.7 units)")
    parser.add_argument("--preset", default="balanced", help="Stage 1 quality_setting")
    parser.add_argument("--workers", type=int, default=2, help="Stage 1 workers")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for suite2p")
    parser.add_argument("--fs", type=float, default=10.0, help="suite2p frame rate, Hz")
    parser.add_argument("--tau", type=float, default=1.5, help="suite2p indicator decay, s")
    parser.add_argument("--diameter", type=float, default=10.0, help="suite2p diameter, px")
    parser.add_argument("--radius", type=float, default=4.0,
                        help="matching radius, px (less than half the 9 px minimum spacing "
                             "of the synthetic neurons)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the session and every output here")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every figure and the run's metadata here")
    args = parser.parse_args(argv)
    suite2p, torch = _suite2p()
    _export_module()  # fail before the stages run, not after
    torch.set_num_threads(args.threads)

    # Stage 1 would resume from, and suite2p read the crop of, outputs of another run.
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        sys.exit(f"--keep {args.keep}: not empty")
    with tempfile.TemporaryDirectory(prefix="session_rois_") as tmp:
        work = args.keep or Path(tmp)
        timings = {}
        start = time.perf_counter()
        session = make_synthetic_session(args, work / "session")
        timings["synthetic_s"] = time.perf_counter() - start
        start = time.perf_counter()
        config, final_mask = run_stages(args, work / "session", work, session.center_index)
        timings["stages_s"] = time.perf_counter() - start
        start = time.perf_counter()
        planes = {"aligned": aligned_plane(config, final_mask),
                  "baseline": baseline_plane(config, work / "baseline" / "suite2p" / "plane0")}
        timings["binaries_s"] = time.perf_counter() - start

        keep, own = true_positions(session)
        traces = [rec.dff[:, keep] for rec in session.recordings]
        reference = own[session.center_index]
        positions = {"aligned": [reference] * len(own), "baseline": own}
        settings = suite2p_settings(args)
        summaries = {}
        for name, plane in planes.items():
            ops = plane["ops"]
            result = run_suite2p(ops, settings)
            summaries[name] = evaluate(result, plane, positions[name], traces, args.radius,
                                       session.center_index)
            summaries[name]["movie"] = {
                "Ly": ops["Ly"], "Lx": ops["Lx"], "frames_per_file": ops["frames_per_file"],
                "origin_yx": plane["origin_yx"], "crop_mask_pixels": plane["crop_pixels"],
                "int16_scale": plane["int16_scale"]}
            print_table(name, summaries[name])
        timings["suite2p_s"] = sum(summaries[name]["suite2p_s"] for name in summaries)
    timings["total_s"] = sum(timings.values())
    print("\ntimings (s): " + ", ".join(f"{k[:-2]} {v:.0f}" for k, v in timings.items()))

    meta["versions"].update(suite2p=importlib.metadata.version("suite2p"),
                            torch=torch.__version__,
                            cellpose=importlib.metadata.version("cellpose"),
                            flowreg_session=importlib.metadata.version("flowreg-session"))
    detection = settings["detection"]
    configuration = {
        "session": {"recordings": args.recordings, "frames": args.frames, "size": args.size,
                    "seed": args.seed, "cell_density": args.cell_density,
                    "spike_rate": list(args.spike_rate), "photons_per_unit": args.photons,
                    "center_index": session.center_index,
                    "neurons_counted": len(keep)},
        "stage1_preset": args.preset, "matching_radius_px": args.radius,
        "aligned_crop": "bounding box of the session mask (the export's)",
        "baseline_crop": "bounding box of the AND of the recordings' own valid masks",
        "suite2p": {"fs": args.fs, "tau": args.tau, "diameter": args.diameter,
                    "algorithm": detection["algorithm"],
                    "threshold_scaling": detection["threshold_scaling"],
                    "neuropil_coefficient": NEUROPIL_COEFFICIENT, "do_registration": 0},
        "timings": timings,
    }
    results_io.write(args.json, "session_rois", meta,
                     {"configuration": configuration, **summaries}, params=vars(args))


if __name__ == "__main__":
    main()
