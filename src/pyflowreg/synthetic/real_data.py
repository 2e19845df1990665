"""Real 2-photon frames behind the benchmark's real models, read from a folder the caller names.

The recordings are not part of the package. Every function here takes the folder that holds
them (``data_dir``); the package never looks for it on its own, so what a call reads never
depends on where the package is installed or on the environment. The benchmark scripts and
the test suite locate the folder beside the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

__all__ = ["REAL_RECORDINGS", "RealSource", "load_real_frames"]

REAL_RECORDINGS = {
    "real": ("thunder_mouse_vs1/mouse_vs1_500x64x64_int16.tif", 500, 64, 64),
    "real_sima": ("sima_example/example.tif", 20, 128, 256),
    "real_tiled": ("thunder_mouse_vs1/mouse_vs1_500x64x64_int16.tif", 500, 64, 64),
}
"""Real model -> (file below the real-data folder, frames, height, width)."""

TILED_SIZE = 512
"""Frame size (px) of ``real_tiled``: the real frames mirrored into a mosaic this large."""


def mirrored_mosaic(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, size, size, C) frames: each frame of ``frames`` (T, H, W, C) mirrored to fill it.

    Tiles alternate with their mirror images, so the mosaic has no edge where tiles meet: real
    texture, noise and calcium activity at their own sampling, repeating every 2 H x 2 W px.
    """
    _, height, width, _ = frames.shape
    reps = (-(-size // (2 * height)), -(-size // (2 * width)))
    cell = np.concatenate([frames, frames[:, ::-1]], axis=1)
    cell = np.concatenate([cell, cell[:, :, ::-1]], axis=2)
    return np.ascontiguousarray(np.tile(cell, (1, *reps, 1))[:, :size, :size])


def load_real_frames(model: str, data_dir) -> np.ndarray:
    """Frames (T, H, W, 1) float32 of the real recording behind ``model`` (original counts).

    Parameters
    ----------
    model : {"real", "real_sima"}
        Real model (a key of :data:`REAL_RECORDINGS`).
    data_dir : str or Path
        Folder of the real recordings; it holds the files of :data:`REAL_RECORDINGS`.

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError
        For a model without real data, for ``data_dir=None``, or for a file of another shape.
    FileNotFoundError
        If the folder or the recording is absent (the message names the path).
    """
    if model not in REAL_RECORDINGS:
        raise ValueError(f"no real recording for model {model!r}; one of {list(REAL_RECORDINGS)}")
    relative, n_frames, height, width = REAL_RECORDINGS[model]
    if data_dir is None:
        raise ValueError(f"model {model!r} needs data_dir, the folder of the real recordings "
                         f"(the one holding {relative})")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"real-data folder {folder} does not exist (model {model!r} "
                                f"reads {relative} below it)")
    path = folder / relative
    if not path.is_file():
        raise FileNotFoundError(f"real recording {path} is missing (see the README beside it)")
    frames = tifffile.imread(path)
    if frames.shape != (n_frames, height, width):
        raise ValueError(f"{path}: shape {frames.shape}, expected {(n_frames, height, width)}")
    return frames.astype(np.float32)[..., None]


class RealSource:
    """Motion-free frames of a real recording, cropped so moved views stay inside them.

    A frame source of :class:`~pyflowreg.synthetic.BenchmarkRecording`: the recording's own
    frames are the clean frames, and a moved frame samples the uncropped frame, so every
    displacement up to ``margin`` px (minus the cubic spline's support) shows real tissue.

    Parameters
    ----------
    frames : ndarray
        (T, H, W, C) float32 frames.
    margin : int
        Crop (px) on every side.

    Attributes
    ----------
    shape : (int, int)
        Cropped frame size (H - 2 margin, W - 2 margin).
    """

    def __init__(self, frames: np.ndarray, margin: int):
        self._frames = frames
        self._margin = margin
        self.shape = (frames.shape[1] - 2 * margin, frames.shape[2] - 2 * margin)
        inner = (slice(None), slice(margin, margin + self.shape[0]),
                 slice(margin, margin + self.shape[1]))
        self._mean = frames[inner].mean(0)

    def clean(self, t: int) -> np.ndarray:
        """Cropped frame ``t`` (h, w, C)."""
        m, (h, w) = self._margin, self.shape
        return self._frames[t, m : m + h, m : m + w].copy()

    def warped(self, t: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Frame ``t`` sampled (cubic) at ``q + (dx, dy)`` of the cropped grid, (h, w, C)."""
        yy, xx = np.mgrid[: self.shape[0], : self.shape[1]].astype(float)
        coords = np.stack([yy + dy + self._margin, xx + dx + self._margin])
        return np.stack([ndi.map_coordinates(self._frames[t, ..., c], coords, order=3,
                                             mode="nearest", output=np.float32)
                         for c in range(self._frames.shape[-1])], -1)

    def mean(self) -> np.ndarray:
        """Time mean of the cropped frames (h, w, C)."""
        return self._mean.copy()
