"""Quality control of a session: did every recording land on the center, and what each costs.

For every recording (by stem) :func:`assess_session` measures

- ``alignment_score``: Pearson correlation between the center's temporal average and the
  recording's average warped into the center's grid by its Stage 2 field, both band-pass
  filtered (difference of Gaussians, ``BANDPASS_SIGMAS`` px: removes pixel noise and slow
  shading, keeps cells and vessels), over the pixels the warp fills from inside the recording.
  Range -1..1; 1 for the center itself; recordings of the same field of view score well above
  ``ALIGNMENT_THRESHOLD``, unrelated images near 0;
- ``overlap_fraction``: the fraction of the center's frame that the warped recording covers;
- ``alignment_ok``: ``alignment_score >= ALIGNMENT_THRESHOLD`` and ``overlap_fraction >=
  MIN_OVERLAP``. The overlap condition matters: the rigid search picks, among all shifts, the one
  whose overlap matches best, so an unrelated image can score well on a small overlap by chance;
  recordings of one field of view overlap by far more than half the frame;
- the rigid part of its field to the center (mean u, v) and the size of the rest (RMS and max
  of ``|w - mean w|``);
- ``fov_cost``: the fraction of the session mask that this recording alone removes, i.e. of
  the pixels valid in every *other* kept recording, the fraction where this one is invalid;
- from Stage 1 (``status.json``): the smoothness weight ``alpha`` and the path its choice took
  (``alpha_path``); ``alpha_fell_back`` when it was not chosen with a fitted photon-noise
  model (see :mod:`pyflowreg.motion_correction.alpha_selection`), which the figures mark and
  the log warns about.

:func:`write_session_qc` writes ``<final_results>/qc/session.json``, the coverage map
(``coverage.npy``: number of recordings valid at each pixel of the center's grid) and three PNG
figures. With ``exclude_misaligned`` the caller leaves recordings with ``alignment_ok`` false
out of the session mask and the aligned videos; ``session.json`` lists them under ``excluded``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from pyflowreg.core.warping import backward_valid_mask, warp_image
from pyflowreg.io import atomic_output, atomic_save_npy
from pyflowreg.motion_correction.compensate import STATUS_FILE
from pyflowreg.motion_correction.qc_figures import (
    contrast_limits,
    display_image,
    pyplot,
    save_figure,
)

QC_DIR = "qc"
SESSION_QC_FILE = "session.json"
COVERAGE_FILE = "coverage.npy"
FIGURES = {
    "aligned_averages": "aligned_averages.png",
    "overlays": "overlays.png",
    "coverage": "coverage.png",
}
QC_VERSION = 1
BANDPASS_SIGMAS = (1.0, 8.0)  # px: fine scale kept, coarse scale removed
ALIGNMENT_THRESHOLD = 0.4
MIN_OVERLAP = 0.5  # fraction of the center's frame a recording must cover to count as aligned
MIN_SCORE_PIXELS = 64  # fewer valid pixels than this: no score (the recording is not aligned)
SCORE_DEFINITION = (
    f"Pearson correlation of the band-pass filtered (Gaussian sigma {BANDPASS_SIGMAS[0]:g} px "
    f"minus sigma {BANDPASS_SIGMAS[1]:g} px) temporal averages of the center and of the "
    "recording warped onto it, over the pixels the warp fills from inside the recording; "
    "-1..1, 1 = identical structure"
)


def qc_dir(final_results: str | Path) -> Path:
    """Folder of the session QC files inside ``final_results``."""
    return Path(final_results) / QC_DIR


def bandpass(image: np.ndarray) -> np.ndarray:
    """Difference of Gaussians of an (H, W, C) image per channel, float64."""
    image = np.asarray(image, dtype=np.float64)
    fine, coarse = BANDPASS_SIGMAS
    sig = (fine, fine, 0) if image.ndim == 3 else fine
    out = ndimage.gaussian_filter(image, sig, mode="nearest")
    sig = (coarse, coarse, 0) if image.ndim == 3 else coarse
    return out - ndimage.gaussian_filter(image, sig, mode="nearest")


def alignment_score(center_average: np.ndarray, aligned_average: np.ndarray,
                    region: np.ndarray) -> float:
    """Band-pass correlation of two (H, W[, C]) averages over ``region`` (see module doc).

    Returns NaN when the region has fewer than ``MIN_SCORE_PIXELS`` pixels or an image is flat.
    """
    if int(region.sum()) < MIN_SCORE_PIXELS:
        return math.nan
    a = bandpass(center_average)[region].ravel()
    b = bandpass(aligned_average)[region].ravel()
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denominator if denominator > 0 else math.nan


def field_summary(w: np.ndarray) -> dict:
    """Rigid part (mean u, v) and size of the non-rigid rest of an (H, W, 2) field, pixels."""
    w = np.asarray(w, dtype=np.float64)
    rigid = w.reshape(-1, 2).mean(axis=0)
    rest = np.hypot(w[..., 0] - rigid[0], w[..., 1] - rigid[1])
    return {
        "rigid_shift_px": [round(float(rigid[0]), 4), round(float(rigid[1]), 4)],
        "nonrigid_rms_px": round(float(np.sqrt((rest * rest).mean())), 4),
        "nonrigid_max_px": round(float(rest.max()), 4),
    }


def fov_costs(aligned_masks: list[np.ndarray], kept: list[int]) -> list[tuple[float, int]]:
    """(fraction, pixels) of the session mask each recording alone removes.

    For recording r, ``base`` is the AND of the kept recordings other than r (the whole frame
    when there are none); the cost is the part of ``base`` where r is invalid.
    """
    masks = [np.asarray(m, dtype=bool) for m in aligned_masks]
    costs = []
    for r, mask in enumerate(masks):
        others = [masks[i] for i in kept if i != r]
        base = np.logical_and.reduce(others) if others else np.ones_like(mask)
        removed = int((base & ~mask).sum())
        area = int(base.sum())
        costs.append((removed / area if area else 0.0, removed))
    return costs


def coverage_map(aligned_masks: list[np.ndarray]) -> np.ndarray:
    """Number of recordings valid at each pixel of the center's grid, (H, W) uint16."""
    return np.sum([np.asarray(m, dtype=np.uint16) for m in aligned_masks], axis=0,
                  dtype=np.uint16)


def aligned_averages(averages: list[np.ndarray], fields: list[np.ndarray],
                     middle_idx: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every (H, W, C) average warped into the center's grid, and where the warp is valid."""
    center = np.asarray(averages[middle_idx], dtype=np.float32)
    warped, regions = [], []
    for average, w in zip(averages, fields, strict=True):
        image, inside = warp_image(np.asarray(average, dtype=np.float32), w[..., 0], w[..., 1],
                                   center)
        warped.append(image)
        regions.append(inside & backward_valid_mask(w[..., 0], w[..., 1]))
    return warped, regions


def assess_session(
    stems: list[str],
    averages: list[np.ndarray],
    fields: list[np.ndarray],
    aligned_masks: list[np.ndarray],
    middle_idx: int,
    *,
    exclude_misaligned: bool = False,
    stage1: list[dict | None] | None = None,
) -> tuple[dict, list[np.ndarray], np.ndarray]:
    """Assess every recording; see the module docstring (``stage1``: see
    :func:`write_session_qc`).

    Returns (report, warped, final): the content of ``session.json`` without file names, the
    averages warped into the center's grid (zero where the warp leaves the recording) and the
    session mask over the kept recordings.
    """
    warped, regions = aligned_averages(averages, fields, middle_idx)
    center = warped[middle_idx]
    scores = [1.0 if r == middle_idx else alignment_score(center, warped[r], regions[r])
              for r in range(len(stems))]
    overlaps = [float(region.mean()) for region in regions]
    ok = [bool(math.isfinite(s) and s >= ALIGNMENT_THRESHOLD and o >= MIN_OVERLAP)
          for s, o in zip(scores, overlaps, strict=True)]
    excluded = [r for r in range(len(stems)) if exclude_misaligned and not ok[r]]
    kept = [r for r in range(len(stems)) if r not in excluded]
    costs = fov_costs(aligned_masks, kept)
    final = np.logical_and.reduce([np.asarray(aligned_masks[r], dtype=bool) for r in kept])
    warped = [image * region[..., None] for image, region in zip(warped, regions, strict=True)]
    recordings = {}
    for r, stem in enumerate(stems):
        recordings[stem] = {
            "index": r,
            "is_center": r == middle_idx,
            "alignment_score": round(scores[r], 4) if math.isfinite(scores[r]) else None,
            "overlap_fraction": round(overlaps[r], 4),
            "alignment_ok": ok[r],
            **field_summary(fields[r]),
            "valid_fraction": round(float(np.mean(aligned_masks[r])), 4),
            "fov_cost": round(costs[r][0], 4),
            "fov_cost_px": costs[r][1],
            "excluded": r in excluded,
            **_alpha_summary(stage1[r] if stage1 else None),
        }
    return {
        "version": QC_VERSION,
        "center": stems[middle_idx],
        "alignment_score_definition": SCORE_DEFINITION,
        "alignment_threshold": ALIGNMENT_THRESHOLD,
        "min_overlap": MIN_OVERLAP,
        "exclude_misaligned": bool(exclude_misaligned),
        "misaligned": [stems[r] for r in range(len(stems)) if not ok[r]],
        "excluded": [stems[r] for r in excluded],
        "alpha_fallback": [stem for stem in stems if recordings[stem]["alpha_fell_back"]],
        "session_mask_px": int(final.sum()),
        "session_mask_fraction": round(float(final.mean()), 4),
        "recordings": recordings,
    }, warped, final


def _alpha_summary(selection: dict | None) -> dict:
    """A recording's smoothness weight and the path its choice took (None where unknown)."""
    if not selection:
        return {"alpha": None, "alpha_path": None, "alpha_reason": None,
                "alpha_fell_back": False}
    return {"alpha": selection["alpha"][0], "alpha_path": selection.get("path"),
            "alpha_reason": selection.get("reason"),
            "alpha_fell_back": bool(selection.get("fell_back", False))}


def misaligned_warning(stem: str, entry: dict, center: str, excluded: bool) -> str:
    """The log line for a recording that did not align: what, why it matters, what to do."""
    score = entry["alignment_score"]
    score_text = "undefined" if score is None else f"{score:.2f}"
    reasons = []
    if score is None or score < ALIGNMENT_THRESHOLD:
        reasons.append(f"alignment_score {score_text} < {ALIGNMENT_THRESHOLD}")
    if entry["overlap_fraction"] < MIN_OVERLAP:
        reasons.append(f"it covers only {entry['overlap_fraction']:.0%} of the center's frame "
                       f"(< {MIN_OVERLAP:.0%})")
    action = (
        "it is left out of the session mask and the aligned videos (exclude_misaligned: true)"
        if excluded else
        "remove it from the session, or set exclude_misaligned: true to leave it out of the "
        "session mask and the aligned videos"
    )
    return (
        f"WARNING: recording {stem} did not align to the center {center}: "
        f"{' and '.join(reasons)} (another field of view or z-plane, or a failed flow). Check "
        f"its overlay in {QC_DIR}/{FIGURES['overlays']}; {action}."
    )


def stage1_alpha(folder: str | Path) -> dict | None:
    """How a recording's Stage 1 chose its smoothness weight (``status.json``), if recorded."""
    try:
        status = json.loads((Path(folder) / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return status.get("alpha_selection")


def alpha_fallback_warning(stem: str, entry: dict) -> str:
    """The log line for a recording whose smoothness weight was not chosen with a photon model."""
    return (
        f"WARNING: recording {stem}: its smoothness weight alpha {entry['alpha']:g} took the "
        f"fallback path '{entry['alpha_path']}' ({entry['alpha_reason']}); its correction "
        "may be less accurate than the others'. See its qc.json (settings) and "
        "docs/quality-control.md."
    )


def write_session_qc(
    out_dir: str | Path,
    *,
    stems: list[str],
    averages: list[np.ndarray],
    fields: list[np.ndarray],
    aligned_masks: list[np.ndarray],
    middle_idx: int,
    exclude_misaligned: bool = False,
    stage1: list[dict | None] | None = None,
    log=None,
) -> dict:
    """Assess the session and write ``qc/session.json``, ``qc/coverage.npy`` and the figures.

    Parameters
    ----------
    out_dir : path
        The session's ``final_results`` folder (``qc/`` is created inside).
    stems : list of str
        Recording names, in session order.
    averages : list of (H, W) or (H, W, C) arrays
        Stage 1 temporal averages.
    fields : list of (H, W, 2) float32
        Stage 2 fields to the center (pixels; zeros for the center).
    aligned_masks : list of (H, W) bool
        Each recording's valid mask in the center's grid.
    middle_idx : int
        0-based index of the center.
    exclude_misaligned : bool
        Whether misaligned recordings are left out of the session mask (recorded only).
    stage1 : list of dict or None, optional
        Per recording, its Stage 1 choice of the smoothness weight (``status.json``'s
        ``alpha_selection``, see :func:`stage1_alpha`); None where unknown.
    log : callable(str), optional
        Receives a warning per misaligned recording and per recording whose smoothness weight
        fell back (default: stderr).

    Returns
    -------
    dict : the content of ``session.json``.
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    folder = qc_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    averages = [a[..., None] if a.ndim == 2 else a for a in averages]
    report, warped, final = assess_session(stems, averages, fields, aligned_masks, middle_idx,
                                           exclude_misaligned=exclude_misaligned, stage1=stage1)
    for stem in report["misaligned"]:
        log(misaligned_warning(stem, report["recordings"][stem], report["center"],
                               stem in report["excluded"]))
    for stem in report["alpha_fallback"]:
        log(alpha_fallback_warning(stem, report["recordings"][stem]))
    coverage = coverage_map(aligned_masks)
    atomic_save_npy(folder / COVERAGE_FILE, coverage)
    plot_session(folder, report, warped, coverage, final)
    report["coverage_file"] = COVERAGE_FILE
    report["figures"] = sorted(FIGURES.values())
    with atomic_output(folder / SESSION_QC_FILE) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))
    return report


def excluded_recordings(final_results: str | Path) -> list[str]:
    """Stems ``session.json`` lists as left out of the session (empty if there is none)."""
    path = qc_dir(final_results) / SESSION_QC_FILE
    try:
        return list(json.loads(path.read_text()).get("excluded", []))
    except (OSError, json.JSONDecodeError):
        return []


# --------------------------------------------------------------------------- figures
def _grid(n: int) -> tuple[int, int]:
    cols = min(n, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def _label(stem: str, entry: dict) -> tuple[str, str]:
    # A weight that fell back is named under the title, in orange unless the recording is
    # also misaligned (red wins).
    fallback = (f"\nalpha FALLBACK: {entry['alpha_path']}" if entry.get("alpha_fell_back")
                else "")
    if entry["is_center"]:
        return f"{stem} (center){fallback}", "darkorange" if fallback else "black"
    score = entry["alignment_score"]
    text = f"{stem}: score {'n/a' if score is None else f'{score:.2f}'}"
    if not entry["alignment_ok"]:
        excluded = "\nNOT ALIGNED, excluded" if entry["excluded"] else "\nNOT ALIGNED"
        return text + excluded + fallback, "red"
    return text + fallback, "darkorange" if fallback else "black"


def _panels(report: dict, title: str):
    plt = pyplot()
    stems = list(report["recordings"])
    rows, cols = _grid(len(stems))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows + 0.4),
                             squeeze=False, constrained_layout=True)
    fig.suptitle(title)
    for ax in axes.ravel()[len(stems):]:
        ax.set_axis_off()
    return fig, [(stem, report["recordings"][stem], ax)
                 for stem, ax in zip(stems, axes.ravel(), strict=False)]


def _decorate(ax, stem: str, entry: dict) -> None:
    text, color = _label(stem, entry)
    ax.set_title(text, color=color, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(color)
        spine.set_linewidth(3 if color == "red" else 0.5)


def _scaled(image: np.ndarray) -> np.ndarray:
    lo, hi = contrast_limits(image)
    return np.clip((image - lo) / (hi - lo), 0, 1)


def plot_session(folder: Path, report: dict, warped: list[np.ndarray], coverage: np.ndarray,
                 final: np.ndarray) -> None:
    """Draw the aligned-average grid, the red/green overlays and the coverage map."""
    plt = pyplot()
    center = display_image(warped[list(report["recordings"]).index(report["center"])])
    fig, panels = _panels(report, "Temporal averages in the center's grid")
    for (stem, entry, ax), image in zip(panels, warped, strict=True):
        ax.imshow(_scaled(display_image(image)), cmap="gray", vmin=0, vmax=1)
        _decorate(ax, stem, entry)
    save_figure(fig, folder / FIGURES["aligned_averages"])

    fig, panels = _panels(report, "Red: center average, green: recording (yellow = overlap)")
    red = _scaled(center)
    for (stem, entry, ax), image in zip(panels, warped, strict=True):
        green = _scaled(display_image(image))
        ax.imshow(np.stack([red, green, np.zeros_like(red)], axis=-1))
        _decorate(ax, stem, entry)
    save_figure(fig, folder / FIGURES["overlays"])

    n = len(report["recordings"])
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    cmap = plt.get_cmap("viridis", n + 1)
    image = ax.imshow(coverage, cmap=cmap, vmin=-0.5, vmax=n + 0.5)
    bar = fig.colorbar(image, ax=ax, ticks=range(n + 1))
    bar.set_label("recordings valid at the pixel")
    if final.any() and not final.all():
        ax.contour(final.astype(float), levels=[0.5], colors="red", linewidths=1.5)
    ax.set_title(f"Coverage; red outline: session mask ({report['session_mask_fraction']:.1%} "
                 "of the frame)", fontsize=10)
    ax.set_axis_off()
    save_figure(fig, folder / FIGURES["coverage"])
