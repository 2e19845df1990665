"""What frames go through before the flow is computed: scaling to [0, 1] and Gaussian pre-filter.

The flow is estimated on normalised, smoothed frames; the *raw* frames are what gets warped and
written. The reference and every frame of a recording share one set of normalisation constants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

GAUSSIAN_TRUNCATE = 4.0  # kernel radius in sigmas (scipy's default)
# Smallest shift (normalised units) of the stabilising transform: an over-estimated intercept must
# not turn the darkest pixels' noise into the strongest signal.
MIN_SHIFT = 0.02


@dataclass(frozen=True)
class Normalization:
    """Affine map of raw intensities to roughly [0, 1]: ``(raw - offset) * scale`` per channel."""

    offset: np.ndarray  # (C,) float32
    scale: np.ndarray  # (C,) float32
    # Noise-stabilising transform per channel, applied after the pre-filter for the flow only:
    # (sqrt(x + shift) - stable_offset) * stable_scale on normalised x; NaN shift: linear channel.
    shift: np.ndarray | None = None
    stable_offset: np.ndarray | None = None
    stable_scale: np.ndarray | None = None

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

    def with_stabiliser(self, shift_counts, filtered_reference: np.ndarray) -> Normalization:
        """Add the transform ``sqrt(x + shift)`` for channels with a finite shift (raw counts).

        The shift (normalised units) is clipped to at least ``MIN_SHIFT`` so that the darkest
        pixels keep a finite slope; each transformed channel is rescaled to [0, 1] over
        ``filtered_reference``, the normalised, pre-filtered reference (H, W, C).
        """
        shift_counts = np.asarray(shift_counts, dtype=np.float64)
        shift = np.where(np.isfinite(shift_counts),
                         np.maximum((self.offset + shift_counts) * self.scale, MIN_SHIFT), np.nan)
        stable_offset = np.zeros_like(shift)
        stable_scale = np.ones_like(shift)
        for c in np.flatnonzero(np.isfinite(shift)):
            root = np.sqrt(np.maximum(filtered_reference[..., c] + shift[c], 0.0))
            lo, hi = float(root.min()), float(root.max())
            stable_offset[c] = lo
            stable_scale[c] = 1.0 / (hi - lo) if hi > lo else 1.0
        return dataclasses.replace(self, shift=shift.astype(np.float32),
                                   stable_offset=stable_offset.astype(np.float32),
                                   stable_scale=stable_scale.astype(np.float32))

    def stabilise(self, filtered: np.ndarray) -> np.ndarray:
        """The flow's view of normalised, pre-filtered (..., C) frames (modified in place)."""
        if self.shift is None:
            return filtered
        for c in np.flatnonzero(np.isfinite(self.shift)):
            channel = filtered[..., c]
            np.maximum(channel + self.shift[c], 0.0, out=channel)
            np.sqrt(channel, out=channel)
            channel -= self.stable_offset[c]
            channel *= self.stable_scale[c]
        return filtered

    def flow_view(self, frames: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """What the flow is estimated on: raw (T, H, W, C) frames normalised, pre-filtered
        (sigma (C, 3), see :func:`prefilter`) and passed through the noise transform."""
        return self.stabilise(prefilter(self.apply(frames), sigma))

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
