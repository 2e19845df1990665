"""Writers: recordings as multi-page TIFFs and sessions with their ground truth.

Recordings are streamed to disk chunk by chunk, never as a whole movie, so a long recording
needs memory for one chunk only. Any recording with the frame interface of
:class:`~.recording.WholeRecording` can be written (synthetic and benchmark recordings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from pyflowreg.synthetic.recording import WholeRecording
from pyflowreg.synthetic.session import SyntheticSession, make_session

__all__ = ["write_demo_session", "write_recording", "write_session"]


def write_recording(
    rec: WholeRecording, path, *, dtype: str = "uint16", scale: float | None = None,
    chunk_frames: int = 64, noise: bool = True, offset: float | None = None,
) -> Path:
    """Stream a recording to a multi-page TIFF (one page per frame, never the whole movie).

    Layout: ``tifffile.imread`` returns (T, H, W) for one channel and (T, H, W, C) for C > 1
    (contiguous samples per page).

    Parameters
    ----------
    rec : WholeRecording
        A :class:`~pyflowreg.synthetic.SyntheticRecording` or
        :class:`~pyflowreg.synthetic.BenchmarkRecording`.
    path : str or Path
        Output file.
    dtype : {"uint16", "float32"}
        Stored type. uint16 values are ``round(clip(I * scale + offset, 0, 65535))``.
    scale : float, optional
        Brightness-to-stored-value factor; default the recording's ``count_scale`` if it has
        one (benchmark recordings), else ``photons_per_unit`` (photon counts) or 1000 without
        shot noise for uint16, 1 for float32.
    chunk_frames : int
        Frames rendered per chunk.
    noise : bool
        Write noisy (default) or noise-free observed frames.
    offset : float, optional
        Dark level added to the stored values (counts), so Gaussian read noise is not clipped
        at zero; default the recording's ``count_offset`` if it has one, else 0.

    Returns
    -------
    Path
    """
    if dtype not in ("uint16", "float32"):
        raise ValueError("dtype must be 'uint16' or 'float32'")
    scale = _default_scale(rec, dtype) if scale is None else scale
    offset = getattr(rec, "count_offset", 0.0) if offset is None else offset
    shape = rec.shape if rec.n_channels > 1 else rec.shape[:3]

    def pages():
        for _, chunk in rec.iter_observed(chunk_frames, noise=noise):
            chunk = chunk * np.float32(scale)
            if offset:
                chunk += np.float32(offset)
            if dtype == "uint16":
                chunk = np.rint(np.clip(chunk, 0, 65535))
            for frame in chunk.astype(dtype):
                yield frame if rec.n_channels > 1 else frame[..., 0]

    path = Path(path)
    big = np.prod(shape) * np.dtype(dtype).itemsize > 2**31
    # Written under a temporary name and renamed when complete: a run stopped while writing
    # leaves no truncated movie that a later run (the demo, a benchmark) would take as input.
    partial = path.with_name(f".{path.name}.partial")
    try:
        with tifffile.TiffWriter(partial, bigtiff=bool(big)) as tif:
            tif.write(pages(), shape=shape, dtype=dtype, photometric="minisblack",
                      planarconfig="contig" if rec.n_channels > 1 else None)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _default_scale(rec: WholeRecording, dtype: str) -> float:
    if hasattr(rec, "count_scale"):  # benchmark recordings say how they are stored
        return float(rec.count_scale)
    return 1.0 if dtype == "float32" else float(rec.photons_per_unit or 1000.0)


def write_session(
    session: SyntheticSession, folder, *, pattern: str = "rec_{:02d}.tif",
    ground_truth_flows: bool | None = None, **write_kwargs,
) -> list[Path]:
    """Write every recording (:func:`write_recording`) and ``ground_truth.npz`` to ``folder``.

    ``ground_truth.npz`` holds ``between_flow`` (R, H, W, 2), ``center_index``,
    ``rigid_flow`` (R, T, 2), ``valid_masks`` (R, H, W; per recording, own grid),
    ``aligned_valid_masks`` (R, H, W; center grid), ``common_valid_mask`` (H, W),
    ``clean_static`` (R, H, W, C; time-mean), ``scale`` and, if ``ground_truth_flows``, the
    within-recording ``flow`` (R, T, H, W, 2).

    Parameters
    ----------
    session : SyntheticSession
    folder : str or Path
        Output folder (created if needed).
    pattern : str
        File name of recording ``r``, formatted with ``r``.
    ground_truth_flows : bool, optional
        Store the within-recording flows; default when they take at most 256 MB.
    **write_kwargs
        Options of :func:`write_recording` (``dtype``, ``scale``, ...).

    Returns
    -------
    list of Path
        The recordings' files, in order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recs = session.recordings
    paths = [write_recording(rec, folder / pattern.format(r), **write_kwargs)
             for r, rec in enumerate(recs)]
    truth = {
        "between_flow": session.between_flow,
        "center_index": np.int64(session.center_index),
        "rigid_flow": np.stack([rec.rigid_flow for rec in recs]),
        "valid_masks": np.stack([rec.valid_mask() for rec in recs]),
        "aligned_valid_masks": np.stack([session.aligned_valid_mask(r)
                                         for r in range(len(recs))]),
        "common_valid_mask": session.common_valid_mask(),
        "clean_static": np.stack([rec.clean_static() for rec in recs]),
    }
    dtype = write_kwargs.get("dtype", "uint16")
    scale = write_kwargs.get("scale") or _default_scale(recs[0], dtype)
    truth["scale"] = np.float64(scale)
    flow_bytes = sum(np.prod(rec.shape[:3]) * 8 for rec in recs)
    if ground_truth_flows or (ground_truth_flows is None and flow_bytes <= 2**28):
        truth["flow"] = np.stack([rec.flow_all() for rec in recs])
    np.savez(folder / "ground_truth.npz", **truth)
    return paths


def write_demo_session(folder, seed: int = 0) -> list[Path]:
    """Write a small 3-recording demo session (128 x 128 px, 60 frames each) to ``folder``.

    Parameters
    ----------
    folder : str or Path
        Output folder.
    seed : int
        Seed of the session.

    Returns
    -------
    list of Path
        The recordings' files (see :func:`write_session`).
    """
    return write_session(make_session(3, 128, 128, 60, seed=seed), folder)
