"""What frames go through before the flow is computed: scaling to [0, 1] and Gaussian pre-filter.

The flow is estimated on normalised, smoothed frames; the *raw* frames are what gets warped and
written. The reference and every frame of a recording share one set of normalisation constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

GAUSSIAN_TRUNCATE = 4.0  # kernel radius in sigmas (scipy's default)


@dataclass(frozen=True)
class Normalization:
    """Affine map of raw intensities to roughly [0, 1]: ``(raw - offset) * scale`` per channel."""

    offset: np.ndarray  # (C,) float32
    scale: np.ndarray  # (C,) float32

    @classmethod
    def from_image(cls, image: np.ndarray, mode: str = "joint", weight=None) -> Normalization:
        """Constants that map ``image`` (H, W, C) onto [0, 1], jointly or per channel.

        With channel ``weight`` given, the joint range is taken over the channels of positive
        weight only: a channel that takes no part in the registration must not change it.
        """
        if mode == "joint":
            used = np.ones(image.shape[2], bool) if weight is None else np.asarray(weight) > 0
            lo = np.full(image.shape[2], image[..., used].min())
            hi = np.full(image.shape[2], image[..., used].max())
        else:
            lo = image.min(axis=(0, 1))
            hi = image.max(axis=(0, 1))
        span = hi - lo
        # A flat channel (no signal) keeps unit scale instead of dividing by zero.
        scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 1.0)
        return cls(lo.astype(np.float32), scale.astype(np.float32))

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of (..., C) frames."""
        return ((np.asarray(frames, dtype=np.float32) - self.offset) * self.scale).astype(
            np.float32, copy=False
        )


def temporal_radius(sigma: np.ndarray) -> int:
    """Frames of context the temporal filter needs on each side (0 when it is a no-op)."""
    st = float(np.max(sigma[:, 2]))
    return int(GAUSSIAN_TRUNCATE * st + 0.5) if st > 0 else 0


def prefilter(frames: np.ndarray, sigma: np.ndarray, *, temporal: bool = True) -> np.ndarray:
    """Gaussian-filter (n, H, W, C) float32 frames per channel.

    ``sigma`` is (C, 3): [sx, sy, st] per channel, pixels and frames. The temporal part is
    applied along the first axis when ``temporal`` is True and there is more than one frame;
    the caller supplies context frames (see :func:`temporal_radius`) so that chunk borders do not
    differ from a whole-movie filter.
    """
    out = np.empty(frames.shape, dtype=np.float32)
    for c in range(frames.shape[3]):
        sx, sy, st = sigma[c]
        st = st if temporal and frames.shape[0] > 1 else 0.0
        ndimage.gaussian_filter(
            frames[..., c], (st, sy, sx), output=out[..., c], mode="nearest",
            truncate=GAUSSIAN_TRUNCATE,
        )
    return out


def prefilter_image(image: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Spatial Gaussian pre-filter of one (H, W, C) image (the reference)."""
    return prefilter(image[None], sigma, temporal=False)[0]
