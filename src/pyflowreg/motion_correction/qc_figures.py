"""Figures of a recording's quality control (matplotlib, Agg backend, PNG).

Drawn once per recording at the end of the correction pass from the numbers and (H, W) means
that :class:`~pyflowreg.motion_correction.qc.RecordingQC` accumulated. The helpers here are
shared with the session figures (:mod:`pyflowreg.session.qc`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyflowreg.io import atomic_output

FIGURES = {
    "mean_images": "qc_mean_images.png",
    "displacement": "qc_displacement.png",
    "correlation": "qc_correlation.png",
    "flow_magnitude": "qc_flow_magnitude.png",
}

def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG under a temporary name, rename when complete."""
    # zlib level 3 instead of PIL's 6: a recording's figures draw in 0.33 instead of 0.39 CPU-s
    # for files 4 % larger (drawing them is part of every Stage 1 job's fixed cost).
    with atomic_output(path, fsync=False) as tmp:
        fig.savefig(tmp, format="png", dpi=100, pil_kwargs={"compress_level": 3})
    pyplot().close(fig)


def display_image(image: np.ndarray) -> np.ndarray:
    """(H, W) view of an (H, W[, C]) image for display: channel 0 (the functional one)."""
    image = np.asarray(image)
    return image[..., 0] if image.ndim == 3 else image


def contrast_limits(*images: np.ndarray) -> tuple[float, float]:
    """Common display range (0.5th and 99.5th percentiles of all images together)."""
    values = np.concatenate([np.asarray(i, dtype=np.float64).ravel() for i in images])
    lo, hi = np.percentile(values, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _alpha_note(metrics: dict) -> str:
    """The smoothness weight used and, where it was not chosen with a photon model, why."""
    selection = metrics.get("settings", {}).get("alpha_selection")
    if not selection:
        return ""
    note = f" (smoothness alpha {selection['alpha'][0]:g}"
    if selection.get("fell_back"):
        note += f", FALLBACK: {selection['path']}"
    return note + ")"


def plot_recording(folder: Path, title: str, metrics: dict, raw_mean: np.ndarray,
                   corrected_mean: np.ndarray, mean_abs_w: np.ndarray) -> None:
    """Draw the four per-recording figures (see ``FIGURES``) into ``folder``."""
    plt = pyplot()
    folder = Path(folder)
    raw_img, corr_img = display_image(raw_mean), display_image(corrected_mean)
    lo, hi = contrast_limits(raw_img, corr_img)
    # Fixed margins instead of constrained layout: half the drawing time, in every Stage 1 job.
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.87, wspace=0.04)
    for ax, img, label, crisp in ((axes[0], raw_img, "raw mean", metrics["crispness_raw"]),
                                  (axes[1], corr_img, "corrected mean",
                                   metrics["crispness_corrected"])):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(f"{label} (crispness {_fmt(crisp)})")
        ax.set_axis_off()
    fig.suptitle(f"{title}: temporal means at the same contrast, crispness ratio "
                 f"{_fmt(metrics['crispness_ratio'])}")
    save_figure(fig, folder / FIGURES["mean_images"])

    per_frame = {k: np.array([np.nan if v is None else v for v in values])
                 for k, values in metrics["per_frame"].items()}
    t = np.arange(metrics["n_frames"])
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.92, hspace=0.08)
    axes[0].plot(t, per_frame["rigid_u"], label="mean u (x)")
    axes[0].plot(t, per_frame["rigid_v"], label="mean v (y)")
    axes[0].set_ylabel("rigid part (px)")
    axes[0].legend(loc="upper right")
    axes[1].plot(t, per_frame["mean_abs_w"], label="mean |w|")
    axes[1].plot(t, per_frame["max_abs_w"], label="max |w|", alpha=0.7)
    axes[1].set_ylabel("|w| (px)")
    axes[1].set_xlabel("frame")
    axes[1].legend(loc="upper right")
    fig.suptitle(f"{title}: displacement corrected in every frame{_alpha_note(metrics)}")
    save_figure(fig, folder / FIGURES["displacement"])

    fig, ax = plt.subplots(figsize=(9, 3.6))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.9)
    ax.plot(t, per_frame["corr_raw"], label="raw", color="tab:gray")
    ax.plot(t, per_frame["corr_corrected"], label="corrected", color="tab:blue")
    flagged = np.asarray(metrics["outlier_frames"], dtype=int)
    if flagged.size:
        y = np.nan_to_num(per_frame["corr_corrected"][flagged], nan=0.0)
        ax.scatter(flagged, y, color="red", marker="x", zorder=3,
                   label=f"outliers ({flagged.size})")
    ax.set_xlabel("frame")
    ax.set_ylabel("correlation with reference")
    ax.legend(loc="lower right")
    ax.set_title(f"{title}: median {_fmt(metrics['corr_raw_median'])} raw -> "
                 f"{_fmt(metrics['corr_corrected_median'])} corrected")
    save_figure(fig, folder / FIGURES["correlation"])

    fig, ax = plt.subplots(figsize=(5.5, 4.6))
    fig.subplots_adjust(left=0.02, right=0.9, bottom=0.02, top=0.92)
    image = ax.imshow(mean_abs_w, cmap="magma")
    fig.colorbar(image, ax=ax, label="mean |w| over frames (px)")
    ax.set_title(f"{title}: where the correction moved pixels")
    ax.set_axis_off()
    save_figure(fig, folder / FIGURES["flow_magnitude"])


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
