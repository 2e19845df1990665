"""Quality control of one recording's motion correction: per-frame metrics, flags and figures.

:class:`RecordingQC` is fed every chunk of the correction pass (raw frames, corrected frames,
flows and valid masks, all already in memory), keeps only per-frame numbers and a few (H, W)
sums, and at the end writes ``qc.json`` and four PNG figures next to the corrected movie. The
movie is never read a second time and memory does not grow with its length beyond a few floats
per frame.

Metrics (every key of ``qc.json`` is described in ``docs/quality-control.md``):

- per frame: rigid part of the flow (mean u, v), mean and max |w|, fraction of valid pixels,
  Pearson correlation with the reference before and after correction, both over the pixels
  valid in the corrected frame (outside them the corrected frame holds the reference itself);
- outlier frames: robust z-score of the corrected correlation,
  ``z = (c - median) / max(1.4826 * MAD, OUTLIER_MIN_SPREAD)``, flagged when ``z < -OUTLIER_Z``
  (only frames that match the reference *worse* than usual);
- crispness of the temporal mean (root of the summed squared gradient magnitude, on the pixels
  valid in every frame) before and after correction, and their ratio (> 1: sharper);
- residual motion that does not trust the recording's own flow: an independent optical flow
  between the corrected means of the first and last thirds of the recording (and, for scale,
  the same between the raw means).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numba
import numpy as np

from pyflowreg.core.optical_flow import FlowEstimator, FlowParameters
from pyflowreg.io import atomic_output
from pyflowreg.motion_correction.preprocess import Normalization, prefilter_image
from pyflowreg.motion_correction.qc_figures import FIGURES, plot_recording, pyplot

QC_FILE = "qc.json"
QC_VERSION = 1
OUTLIER_Z = 3.5  # Iglewicz & Hoaglin's cut-off for the modified z-score
OUTLIER_MIN_SPREAD = 0.02  # correlation units: a frame must fall >= 0.07 below the median
MIN_CRISPNESS_PIXELS = 0.05  # below this fraction valid everywhere, crispness uses every pixel
RESIDUAL_SIGMA = 1.0  # px, pre-filter of the third-means before the residual flow
RESIDUAL_BORDER = 4  # px left out at the frame edge when summarising the residual flow
PER_FRAME_KEYS = ("rigid_u", "rigid_v", "mean_abs_w", "max_abs_w", "valid_fraction",
                  "corr_raw", "corr_corrected")


class RecordingQC:
    """Accumulates the quality-control metrics of one recording chunk by chunk.

    Parameters
    ----------
    reference : (H, W, C) float32
        The reference the recording is corrected against, raw intensity units.
    normalization : Normalization
        The recording's map of raw intensities to [0, 1] (shared by frames and reference).
    n_frames : int
        Frames the recording has; chunks must arrive in order and cover them all.
    start : int, default 0
        First frame this instance is fed: a segment of the recording starts later, and its
        :meth:`state` is combined with the other segments' by :meth:`merged`.
    prefetch_figures : bool, default True
        Import matplotlib in the background now, for :meth:`finish`.
    flow_parameters : FlowParameters, optional
        Solver parameters of the residual-motion flow (default: the recording's defaults).

    Examples
    --------
    Four frames identical to the reference, corrected with zero flow, in one chunk:

    >>> import tempfile
    >>> reference = np.random.default_rng(0).random((32, 32, 1), dtype=np.float32)
    >>> qc = RecordingQC(reference, Normalization.from_image(reference), n_frames=4)
    >>> frames = np.repeat(reference[None], 4, axis=0)
    >>> w = np.zeros((4, 32, 32, 2), np.float32)
    >>> qc.add_chunk(frames, frames, w, np.ones((4, 32, 32), bool))
    >>> summary = qc.finish(tempfile.mkdtemp())
    >>> summary["n_frames"], summary["max_abs_w"], summary["outlier_frames"]
    (4, 0.0, [])
    """

    def __init__(self, reference: np.ndarray, normalization: Normalization, n_frames: int, *,
                 start: int = 0, flow_parameters: FlowParameters | None = None,
                 prefetch_figures: bool = True):
        self.normalization = normalization
        self.n_frames = int(n_frames)
        self.flow_parameters = flow_parameters or FlowParameters()
        ref = normalization.apply(reference)
        self.shape = ref.shape
        self._ref = np.ascontiguousarray(ref, dtype=np.float32)
        height, width, n_ch = ref.shape
        self.frames = {key: np.full(self.n_frames, np.nan) for key in PER_FRAME_KEYS}
        self.raw_sum = np.zeros((height, width, n_ch))
        self.corrected_sum = np.zeros((height, width, n_ch))
        self.abs_w_sum = np.zeros((height, width))
        self.valid_everywhere = np.ones((height, width), dtype=bool)
        # The first and last thirds (at least one frame each) of the residual-motion check.
        self.third = max(1, math.ceil(self.n_frames / 3))
        self.third_sums = {k: np.zeros((height, width, n_ch))
                           for k in ("raw_first", "raw_last", "corrected_first",
                                     "corrected_last")}
        self.start = self.done = int(start)
        # matplotlib takes about a second to import: done meanwhile, it is off the critical path.
        # A segment, whose figures the join draws, does without it.
        if prefetch_figures:
            threading.Thread(target=pyplot, name="qc-import-matplotlib", daemon=True).start()

    def add_chunk(self, raw: np.ndarray, corrected: np.ndarray, w: np.ndarray,
                  valid: np.ndarray) -> None:
        """Take the next chunk of frames.

        Parameters
        ----------
        raw, corrected : (T, H, W, C) float32, raw intensity units
            The chunk before and after correction.
        w : (T, H, W, 2) float32, pixels; w[..., 0] = u (x)
            The flow each frame was corrected with.
        valid : (T, H, W) bool (or any array, nonzero = valid)
            Where the corrected frame was sampled inside the recording.
        """
        t0, n = self.done, raw.shape[0]
        if t0 + n > self.n_frames:
            raise ValueError(f"chunk of {n} frames after {t0} exceeds the {self.n_frames} frames")
        t1 = t0 + n
        valid = np.asarray(valid)
        if valid.dtype != np.uint8:
            valid = (valid != 0).view(np.uint8)
        raw, corrected, w = (np.asarray(a, dtype=np.float32) for a in (raw, corrected, w))
        sums = np.empty((n, N_SUMS))
        frame_sums(raw, corrected, w, valid, self._ref, self.normalization.offset,
                   self.normalization.scale, self.raw_sum, self.corrected_sum, self.abs_w_sum,
                   sums)
        self.valid_everywhere &= (valid != 0).all(axis=0)
        self._store(t0, sums)
        for part, movie in (("raw", raw), ("corrected", corrected)):
            first = slice(0, max(0, min(t1, self.third) - t0))
            last = slice(max(0, self.n_frames - self.third - t0), n)
            self.third_sums[f"{part}_first"] += movie[first].sum(axis=0, dtype=np.float64)
            self.third_sums[f"{part}_last"] += movie[last].sum(axis=0, dtype=np.float64)
        self.done = t1

    def _store(self, t0: int, sums: np.ndarray) -> None:
        n_pixels = self.shape[0] * self.shape[1]
        t1 = t0 + sums.shape[0]
        frames = self.frames
        count = sums[:, 0]
        frames["valid_fraction"][t0:t1] = count / n_pixels
        frames["rigid_u"][t0:t1] = sums[:, 1] / n_pixels
        frames["rigid_v"][t0:t1] = sums[:, 2] / n_pixels
        frames["mean_abs_w"][t0:t1] = sums[:, 3] / n_pixels
        frames["max_abs_w"][t0:t1] = sums[:, 4]
        count = count * self.shape[2]
        ref_sum, ref_sq = sums[:, 11], sums[:, 12]
        frames["corr_raw"][t0:t1] = _pearson(count, sums[:, 5], sums[:, 6], ref_sum, ref_sq,
                                             sums[:, 7])
        frames["corr_corrected"][t0:t1] = _pearson(count, sums[:, 8], sums[:, 9], ref_sum,
                                                   ref_sq, sums[:, 10])

    STATE_SUMS = ("raw_sum", "corrected_sum", "abs_w_sum")

    def state(self) -> dict[str, np.ndarray]:
        """The accumulated numbers of frames [start, done), for :meth:`merged` (npz-ready)."""
        frames = slice(self.start, self.done)
        return {
            "frames": np.array([self.start, self.done]),
            **{f"per_frame_{key}": values[frames] for key, values in self.frames.items()},
            **{key: getattr(self, key) for key in self.STATE_SUMS},
            "valid_everywhere": self.valid_everywhere,
            **{f"third_{key}": value for key, value in self.third_sums.items()},
        }

    @classmethod
    def merged(cls, reference: np.ndarray, normalization: Normalization, n_frames: int,
               states: list[dict], *, flow_parameters: FlowParameters | None = None
               ) -> RecordingQC:
        """The QC of a whole recording from the :meth:`state` of its consecutive segments."""
        qc = cls(reference, normalization, n_frames, flow_parameters=flow_parameters)
        for state in states:
            t0, t1 = (int(t) for t in state["frames"])
            if t0 != qc.done:
                raise ValueError(f"QC segments leave a gap: frames {qc.done}..{t0 - 1}")
            for key in PER_FRAME_KEYS:
                qc.frames[key][t0:t1] = state[f"per_frame_{key}"]
            for key in cls.STATE_SUMS:
                getattr(qc, key)[...] += state[key]
            qc.valid_everywhere &= np.asarray(state["valid_everywhere"], dtype=bool)
            for key in qc.third_sums:
                qc.third_sums[key] += state[f"third_{key}"]
            qc.done = t1
        return qc

    def metrics(self) -> dict:
        """Everything ``qc.json`` holds except the figure names (all chunks must be in)."""
        if self.done != self.n_frames:
            raise ValueError(f"quality control saw {self.done} of {self.n_frames} frames")
        frames = self.frames
        outliers, z = outlier_frames(frames["corr_corrected"])
        raw_mean = self.raw_sum / self.n_frames
        corrected_mean = self.corrected_sum / self.n_frames
        region = self.valid_everywhere
        if region.mean() < MIN_CRISPNESS_PIXELS:
            region = np.ones_like(region)
        crisp_raw = crispness(self.normalization.apply(raw_mean), region)
        crisp_corrected = crispness(self.normalization.apply(corrected_mean), region)
        residual = self._residual_motion("corrected")
        raw_drift = self._residual_motion("raw")
        return {
            "version": QC_VERSION,
            "n_frames": self.n_frames,
            "frame_shape": list(self.shape[:2]),
            "n_channels": int(self.shape[2]),
            "per_frame": {key: _json_list(values) for key, values in frames.items()},
            "corr_raw_median": _json_float(np.nanmedian(frames["corr_raw"])),
            "corr_corrected_median": _json_float(np.nanmedian(frames["corr_corrected"])),
            "max_abs_w": _json_float(np.nanmax(frames["max_abs_w"])),
            "mean_valid_fraction": _json_float(np.nanmean(frames["valid_fraction"])),
            "valid_everywhere_fraction": _json_float(self.valid_everywhere.mean()),
            "outlier_rule": (f"robust z of corr_corrected < -{OUTLIER_Z:g}; z = (c - median) / "
                             f"max(1.4826 MAD, {OUTLIER_MIN_SPREAD:g})"),
            "outlier_frames": [int(t) for t in outliers],
            "outlier_z": _json_list(z[outliers]),
            "crispness_raw": _json_float(crisp_raw),
            "crispness_corrected": _json_float(crisp_corrected),
            "crispness_ratio": _json_float(crisp_corrected / crisp_raw if crisp_raw > 0
                                           else math.nan),
            "residual_motion_frames": self.third,
            "residual_motion_px": residual[0],
            "residual_motion_max_px": residual[1],
            "raw_drift_px": raw_drift[0],
        }

    def _residual_motion(self, part: str) -> tuple[float, float]:
        """Mean and max |w| of the flow from the last third's mean onto the first third's."""
        first = self.third_sums[f"{part}_first"] / self.third
        last = self.third_sums[f"{part}_last"] / self.third
        sigma = np.array([[RESIDUAL_SIGMA, RESIDUAL_SIGMA, 0.0]] * first.shape[2])
        fixed = prefilter_image(self.normalization.apply(first), sigma)
        moving = prefilter_image(self.normalization.apply(last), sigma)
        w = FlowEstimator(fixed, self.flow_parameters).estimate(moving)
        magnitude = np.hypot(w[..., 0], w[..., 1])
        b = RESIDUAL_BORDER if min(magnitude.shape) > 4 * RESIDUAL_BORDER else 0
        inner = magnitude[b : magnitude.shape[0] - b, b : magnitude.shape[1] - b]
        return _json_float(inner.mean()), _json_float(inner.max())

    def finish(self, folder: str | Path, *, name: str = "", log=None,
               settings: dict | None = None) -> dict:
        """Write ``qc.json`` and the figures into ``folder``; return the metrics.

        Figures first, ``qc.json`` last, each under a temporary name renamed when complete, so
        a ``qc.json`` on disk always comes with its figures. ``settings``: how the correction
        was set up for this recording (the choice of the smoothness weight and the noise
        model), stored under ``settings`` so a reader of ``qc.json`` sees which path it took.
        """
        folder = Path(folder)
        metrics = self.metrics()
        if settings:
            metrics["settings"] = settings
        title = name or folder.name
        raw_mean = self.raw_sum / self.n_frames
        corrected_mean = self.corrected_sum / self.n_frames
        plot_recording(folder, title, metrics, raw_mean, corrected_mean,
                       self.abs_w_sum / self.n_frames)
        metrics["figures"] = sorted(FIGURES.values())
        with atomic_output(folder / QC_FILE) as tmp:
            Path(tmp).write_text(json.dumps(metrics, indent=1))
        if log is not None:
            log(f"{title}: QC corr {metrics['corr_raw_median']:.3f} -> "
                f"{metrics['corr_corrected_median']:.3f}, crispness x"
                f"{metrics['crispness_ratio']:.2f}, residual motion "
                f"{metrics['residual_motion_px']:.2f} px, "
                f"{len(metrics['outlier_frames'])} outlier frame(s)")
        return metrics


def is_qc_complete(folder: str | Path) -> bool:
    """True when ``folder`` holds a readable ``qc.json`` and every figure it lists."""
    folder = Path(folder)
    try:
        metrics = json.loads((folder / QC_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return metrics.get("version") == QC_VERSION and all(
        (folder / f).is_file() for f in metrics.get("figures", [None])
    )


N_SUMS = 13


@numba.njit(cache=True, nogil=True, fastmath=True)
def frame_sums(raw, corrected, w, valid, ref, offset, scale, raw_sum, corrected_sum, abs_w_sum,
               sums):  # pragma: no cover - compiled
    """One pass over a chunk: per-frame sums into ``sums`` (T, N_SUMS), image sums in place.

    Columns of ``sums``: valid pixel count, sum u, sum v, sum |w|, max |w|; over valid pixels of
    the normalised raw frame x: sum x, sum x^2, sum x*ref; the same for the corrected frame;
    sum ref and sum ref^2 over the valid pixels.
    """
    n_frames, height, width, n_ch = raw.shape
    # Separate, branch-free loops vectorise; one loop with everything in it runs 2.4x slower.
    for t in range(n_frames):
        su = sv = smag = mmax = 0.0
        for y in range(height):
            for x in range(width):
                u = w[t, y, x, 0]
                v = w[t, y, x, 1]
                mag = math.sqrt(u * u + v * v)
                su += u
                sv += v
                smag += mag
                mmax = max(mmax, mag)
                abs_w_sum[y, x] += mag
        rx = rxx = rxr = cx = cxx = cxr = qs = qss = 0.0
        for c in range(n_ch):
            o = offset[c]
            s = scale[c]
            for y in range(height):
                for x in range(width):
                    m = 1.0 if valid[t, y, x] != 0 else 0.0
                    r = raw[t, y, x, c]
                    k = corrected[t, y, x, c]
                    raw_sum[y, x, c] += r
                    corrected_sum[y, x, c] += k
                    rn = (r - o) * s * m
                    kn = (k - o) * s * m
                    q = ref[y, x, c]
                    rx += rn
                    rxx += rn * rn
                    rxr += rn * q
                    cx += kn
                    cxx += kn * kn
                    cxr += kn * q
                    qs += q * m
                    qss += q * q * m
        count = 0.0
        for y in range(height):
            for x in range(width):
                count += 1.0 if valid[t, y, x] != 0 else 0.0
        sums[t, 0] = count
        sums[t, 1] = su
        sums[t, 2] = sv
        sums[t, 3] = smag
        sums[t, 4] = mmax
        sums[t, 5] = rx
        sums[t, 6] = rxx
        sums[t, 7] = rxr
        sums[t, 8] = cx
        sums[t, 9] = cxx
        sums[t, 10] = cxr
        sums[t, 11] = qs
        sums[t, 12] = qss


def _pearson(count, x_sum, x_sq, ref_sum, ref_sq, x_ref) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = x_ref - x_sum * ref_sum / count
        var_x = x_sq - x_sum * x_sum / count
        var_r = ref_sq - ref_sum * ref_sum / count
        corr = cov / np.sqrt(var_x * var_r)
    return np.where((count > 1) & (var_x > 0) & (var_r > 0), corr, np.nan)


def outlier_frames(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of frames whose correlation is a low outlier, and every frame's robust z-score.

    ``z = (c - median) / max(1.4826 * MAD, OUTLIER_MIN_SPREAD)``; flagged when
    ``z < -OUTLIER_Z`` or the correlation is undefined (no valid pixel, flat frame).
    """
    corr = np.asarray(corr, dtype=np.float64)
    finite = np.isfinite(corr)
    if not finite.any():
        return np.arange(corr.size), np.full(corr.size, np.nan)
    median = np.median(corr[finite])
    spread = max(1.4826 * np.median(np.abs(corr[finite] - median)), OUTLIER_MIN_SPREAD)
    z = (corr - median) / spread
    return np.flatnonzero(~finite | (z < -OUTLIER_Z)), z


def crispness(image: np.ndarray, region: np.ndarray | None = None) -> float:
    """Root of the summed squared gradient magnitude of an (H, W[, C]) image over ``region``.

    Larger is sharper; compare only images of one recording under one normalisation.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    region = np.ones(image.shape[:2], dtype=bool) if region is None else region
    total = 0.0
    for c in range(image.shape[2]):
        gy, gx = np.gradient(image[..., c])
        total += float((gx * gx + gy * gy)[region].sum())
    return math.sqrt(total)


def _json_float(value) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def _json_list(values) -> list:
    return [_json_float(v) for v in np.asarray(values, dtype=np.float64)]
