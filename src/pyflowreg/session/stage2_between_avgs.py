"""Session Stage 2: displacement of every recording's temporal average onto the center's.

Per recording (moving) against the center recording (fixed):

1. Gaussian-smooth both averages (``sigma_smooth`` px), scale both to [0, 1] with the smoothed
   reference's range.
2. Rigid subpixel shift by phase correlation (``cc_upsample``) -> constant field w0.
3. Pre-warp the smoothed moving average by w0, then optical flow (``alpha_between``,
   ``iterations_between``, gradient constancy) -> w = w_flow + w0 (exact, as w0 is constant).
4. Refine: repeat the flow on less smoothed averages (sigma halved down to 1 px), each starting
   from the previous field. Heavy smoothing makes the first flow robust but blurs away the
   structure that pins a 1-3 px deformation; the refinements recover it.
5. Keep the candidate (rigid, or any flow) whose warped average best matches the reference by
   normalised-gradient-field alignment (Haber & Modersitzki 2006) on the pixels valid under all
   candidates. That measure ignores differences in brightness (calcium activity differs between
   recordings), unlike plain correlation. The result is thereby never worse than its own rigid
   initialisation; every candidate's score is recorded.

The result is ``<output_root>/<stem>/w_to_reference.npz`` (keys ``u``, ``v``: (H, W) float32,
pixels) with a sidecar ``w_to_reference.json`` recording the decision and what the field was
computed from (used to resume). The center gets zeros.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from pyflowreg.core.optical_flow import get_displacement
from pyflowreg.core.rigid import estimate_rigid_shift, rigid_flow
from pyflowreg.core.warping import backward_valid_mask, warp_image
from pyflowreg.io import atomic_output, atomic_save_npz
from pyflowreg.motion_correction.compensate import AVERAGE_FILE, STATUS_FILE
from pyflowreg.session.backend import with_backend_threads
from pyflowreg.session.config import SessionConfig

W_FILE = "w_to_reference.npz"
W_INFO_FILE = "w_to_reference.json"
# Smoothing of the averages when judging candidates: suppresses noise, keeps the structure that
# tells a good alignment from a poor one.
JUDGE_SIGMA = 1.0
FINEST_SIGMA = 1.0  # the refinement cascade stops at this smoothing (pixels)
NGF_EPS = 1e-3  # edge-noise level of the NGF measure, relative to the mean squared gradient


class MissingStageOutput(FileNotFoundError):
    """An earlier stage's output is missing; the message names the recording and the stage."""


def load_average(folder: Path, recording_name: str = "") -> np.ndarray:
    """A recording's Stage 1 temporal average as (H, W, C) float32."""
    folder = Path(folder)
    path = folder / AVERAGE_FILE
    status = folder / STATUS_FILE
    if not path.is_file() or not status.is_file():
        raise MissingStageOutput(
            f"recording {recording_name or folder.name}: Stage 1 output missing ({path} or "
            f"{status.name}); run stage 1 first"
        )
    average = np.load(path).astype(np.float32)
    return average[..., None] if average.ndim == 2 else average


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image.astype(np.float32)
    return ndimage.gaussian_filter(image, (sigma, sigma, 0), mode="nearest").astype(np.float32)


def smoothing_cascade(sigma_smooth: float) -> list[float]:
    """Smoothing of each flow pass: sigma_smooth, halved until FINEST_SIGMA, then FINEST_SIGMA."""
    sigmas = [float(sigma_smooth)]
    while sigmas[-1] / 2 > FINEST_SIGMA:
        sigmas.append(sigmas[-1] / 2)
    if sigmas[-1] > FINEST_SIGMA:
        sigmas.append(FINEST_SIGMA)
    return sigmas


def ngf_similarity(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared cosine between the image gradients of a and b (H, W, C) over ``mask``.

    1 means every edge of one image lies along an edge of the other, whatever their contrast.
    """
    scores = []
    for c in range(a.shape[2]):
        ay, ax = np.gradient(a[..., c].astype(np.float64))
        by, bx = np.gradient(b[..., c].astype(np.float64))
        na, nb = ax * ax + ay * ay, bx * bx + by * by
        eps_a, eps_b = NGF_EPS * max(na.mean(), 1e-20), NGF_EPS * max(nb.mean(), 1e-20)
        cos2 = (ax * bx + ay * by) ** 2 / ((na + eps_a) * (nb + eps_b))
        scores.append(cos2[mask].mean() if mask.any() else 0.0)
    return float(np.mean(scores))


def _normalised_pair(reference, moving, sigma):
    ref_s, mov_s = _smooth(reference, sigma), _smooth(moving, sigma)
    lo, hi = float(ref_s.min()), float(ref_s.max())
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    return (ref_s - lo) * scale, (mov_s - lo) * scale


def register_average(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    sigma_smooth: float = 6.0,
    cc_upsample: int = 4,
    alpha_between: float = 25.0,
    iterations_between: int = 100,
    weight=None,
) -> tuple[np.ndarray, dict]:
    """Displacement (H, W, 2) float32 registering the ``moving`` average onto ``reference``.

    Parameters
    ----------
    reference, moving : (H, W) or (H, W, C) temporal averages of one shape.
    sigma_smooth, cc_upsample, alpha_between, iterations_between
        See :class:`~pyflowreg.session.config.SessionConfig`.
    weight : sequence of C floats, optional
        Channel weights as in Stage 1 (``flow_options.weight``): channels of weight 0 take no
        part (rigid shift, flow, choice of candidate), the others weigh the flow's data term.

    Returns
    -------
    w : (H, W, 2) float32, pixels, ``moving(y + v, x + u) ~ reference(y, x)``
    info : dict with ``kept`` (the chosen candidate: "rigid" or "flow_sigma_<s>"),
        ``rigid_shift`` (u, v) and ``ngf`` (similarity of every candidate).
    """
    reference = np.asarray(reference, dtype=np.float32)
    moving = np.asarray(moving, dtype=np.float32)
    if reference.ndim == 2:
        reference, moving = reference[..., None], moving[..., None]
    if reference.shape != moving.shape:
        raise ValueError(
            f"averages differ in shape: reference {reference.shape}, moving {moving.shape}"
        )
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != (reference.shape[2],):
            raise ValueError(
                f"weight has {weight.size} entries but the averages have {reference.shape[2]} "
                "channel(s)"
            )
        used = np.flatnonzero(weight > 0)
        reference, moving, weight = reference[..., used], moving[..., used], weight[used]
    ref_s, mov_s = _normalised_pair(reference, moving, sigma_smooth)
    u0, v0 = estimate_rigid_shift(ref_s, mov_s, upsample_factor=cc_upsample)
    w = rigid_flow(ref_s.shape[:2], u0, v0)
    candidates = {"rigid": w}
    flow_kwargs = dict(
        alpha=(alpha_between, alpha_between), iterations=iterations_between,
        const_assumption="gc", weight=weight,
    )
    for i, sigma in enumerate(smoothing_cascade(sigma_smooth)):
        if i == 0:
            prewarped, _ = warp_image(mov_s, w[..., 0], w[..., 1], ref_s)
            w = get_displacement(ref_s, prewarped, **flow_kwargs) + w
        else:
            ref_i, mov_i = _normalised_pair(reference, moving, sigma)
            w = get_displacement(ref_i, mov_i, uv=w, **flow_kwargs)
        candidates[f"flow_sigma_{sigma:g}"] = w

    ref_j, mov_j = _smooth(reference, JUDGE_SIGMA), _smooth(moving, JUDGE_SIGMA)
    common = np.logical_and.reduce(
        [backward_valid_mask(c[..., 0], c[..., 1]) for c in candidates.values()]
    )
    scores = {}
    for name, field in candidates.items():
        warped, _ = warp_image(mov_j, field[..., 0], field[..., 1], ref_j)
        scores[name] = ngf_similarity(warped, ref_j, common)
    kept = max(scores, key=scores.get)
    info = {"kept": kept, "rigid_shift": [u0, v0], "ngf": scores}
    return candidates[kept].astype(np.float32), info


def array_digest(array: np.ndarray) -> str:
    """SHA-1 of an array's bytes: identifies what a saved result was computed from."""
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def stage2_params(config: SessionConfig) -> dict:
    """Keyword arguments of :func:`register_average` from the session config.

    The channel weights of Stage 1 (``flow_options.weight``) drive Stage 2 as well; they are
    included only when set, so sessions without them keep their provenance.
    """
    params = {
        "sigma_smooth": config.sigma_smooth,
        "cc_upsample": config.cc_upsample,
        "alpha_between": config.alpha_between,
        "iterations_between": config.iterations_between,
    }
    weight = config.stage1_options().weight
    if weight is not None:
        params["weight"] = [float(x) for x in np.atleast_1d(weight)]
    return params



def align_to_center(
    center_average: np.ndarray,
    average: np.ndarray,
    out_folder: Path,
    params: dict,
    *,
    is_center: bool = False,
    center_name: str = "",
    resume: bool = True,
) -> np.ndarray:
    """Stage 2 for one recording: compute (or reuse) and save ``w_to_reference.npz``.

    ``params`` holds sigma_smooth, cc_upsample, alpha_between, iterations_between.
    ``center_name`` is the center recording's stem (``rec_01`` for ``rec_01.tif``), as the
    workflow and ``qc/session.json`` name it, so the API and the workflow write the same
    provenance and the API's resume accepts what the workflow computed. Returns the field
    (H, W, 2) float32.
    """
    out_folder = Path(out_folder)
    provenance = {
        "center": center_name,
        "center_average_sha1": array_digest(center_average),
        "average_sha1": array_digest(average),
        "params": params,
    }
    npz_path, info_path = out_folder / W_FILE, out_folder / W_INFO_FILE
    if resume and npz_path.is_file() and info_path.is_file():
        try:
            previous = json.loads(info_path.read_text())
            if previous.get("provenance") == provenance:
                with np.load(npz_path) as data:
                    return np.stack([data["u"], data["v"]], axis=-1).astype(np.float32)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # unreadable leftovers are recomputed below
    if is_center:
        w = np.zeros((*average.shape[:2], 2), dtype=np.float32)
        info = {"kept": "center"}
    else:
        w, info = register_average(center_average, average, **params)
    info_path.unlink(missing_ok=True)
    atomic_save_npz(npz_path, u=w[..., 0], v=w[..., 1])
    with atomic_output(info_path) as tmp:
        Path(tmp).write_text(json.dumps({"provenance": provenance, **info}, indent=2))
    return w


@with_backend_threads
def run_stage2(config: SessionConfig) -> tuple[int, Path, list[np.ndarray]]:
    """Align every recording's temporal average to the center recording's.

    Returns
    -------
    middle_idx : int
        0-based index of the center recording.
    center_file : Path
    displacement_fields : list of (H, W, 2) float32, one per recording in order.
    """
    config.validate()
    files = config.discover_input_files()
    middle_idx, center_file = config.resolve_center(files)
    averages = [load_average(config.output_folder(p), p.name) for p in files]
    shapes = {p.name: a.shape for p, a in zip(files, averages, strict=True)}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"temporal averages differ in shape across recordings: {shapes}")
    params = stage2_params(config)
    fields = [
        align_to_center(
            averages[middle_idx], avg, config.output_folder(p), params,
            is_center=(i == middle_idx), center_name=center_file.stem, resume=config.resume,
        )
        for i, (p, avg) in enumerate(zip(files, averages, strict=True))
    ]
    return middle_idx, center_file, fields
