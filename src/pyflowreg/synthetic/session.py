"""Synthetic sessions: recordings of one field of view with known between-recording warps.

One tissue scene, larger than a frame, is seen by every recording through its own static warp
(a rigid offset plus a smooth non-rigid part; none for the center recording). Each recording
then has its own motion, activity and noise, as a :class:`~.recording.SyntheticRecording`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pyflowreg.synthetic import streams
from pyflowreg.synthetic.fields import invert, static_field, zero_field
from pyflowreg.synthetic.recording import SyntheticRecording
from pyflowreg.synthetic.scene import make_scene, motion_pad, warp_scene

__all__ = ["SyntheticSession", "make_session"]


@dataclass
class SyntheticSession:
    """Recordings of one field of view, each seen through its own between-recording warp.

    Attributes
    ----------
    recordings : list of SyntheticRecording
        Per-recording streams (same cells and vessels, own motion, activity and noise).
    between_flow : ndarray
        (R, H, W, 2) float32 flows registering recording r's motion-free view (moving) onto
        the center's (fixed): ``view_r(y + v, x + u) ~= view_center(y, x)``; zeros for center.
    center_index : int
        Index of the reference (center) recording.

    Notes
    -----
    Valid regions (what a perfect two-stage pipeline can fill): ``valid_r(q)`` is True where
    ``q + flow_t(q)`` lies in ``[0, W-1] x [0, H-1]`` for every frame t of recording r (own
    motion-free grid). In the center grid, recording r is valid at p where
    ``p + between_flow[r](p)`` lies in the frame and ``valid_r`` sampled there
    (nearest neighbour) is True; the common region is the AND over all recordings.
    """

    recordings: list[SyntheticRecording]
    between_flow: np.ndarray
    center_index: int

    def aligned_valid_mask(self, index: int) -> np.ndarray:
        """Valid region of one recording in the center grid, (H, W) bool.

        ``valid_r`` (see :meth:`SyntheticRecording.valid_mask`) sampled nearest-neighbour at
        ``p + between_flow[r](p)``, and that position inside ``[0, W-1] x [0, H-1]``.

        Parameters
        ----------
        index : int
            Recording r.
        """
        rec, w = self.recordings[index], self.between_flow[index]
        yy, xx = np.mgrid[: rec.height, : rec.width]
        x, y = xx + w[..., 0], yy + w[..., 1]
        inside = (x >= 0) & (x <= rec.width - 1) & (y >= 0) & (y <= rec.height - 1)
        xi = np.clip(np.rint(x), 0, rec.width - 1).astype(int)
        yi = np.clip(np.rint(y), 0, rec.height - 1).astype(int)
        return inside & rec.valid_mask()[yi, xi]

    def common_valid_mask(self) -> np.ndarray:
        """(H, W) bool in the center grid: AND of :meth:`aligned_valid_mask` over recordings."""
        return np.logical_and.reduce([self.aligned_valid_mask(r)
                                      for r in range(len(self.recordings))])


def make_session(
    n_recordings: int = 3, height: int = 128, width: int = 128, n_frames: int = 60, *,
    between_rigid_amplitude: float = 12.0, between_nonrigid_amplitude: float = 2.0,
    rigid_amplitude: float = 3.0, nonrigid_amplitude: float = 1.0,
    center_index: int | None = None, seed: int = 0, **recording_kwargs,
) -> SyntheticSession:
    """Multi-recording session of one larger scene with known between-recording warps.

    Parameters
    ----------
    n_recordings, height, width, n_frames : int
        Number of recordings R and the size (px, frames) of each.
    between_rigid_amplitude : float
        Norm (px) of each non-center recording's rigid offset is uniform in [0.5, 1] x this.
    between_nonrigid_amplitude : float
        Maximum norm (px) of each non-center recording's non-rigid between warp.
    rigid_amplitude, nonrigid_amplitude : float
        Within-recording motion amplitudes (see :class:`SyntheticRecording`).
    center_index : int, optional
        Reference recording; default ``ceil(R / 2) - 1``.
    seed : int
        Base seed; the recordings' seeds are derived from it.
    **recording_kwargs
        Further :class:`SyntheticRecording` options (noise, activity, ``n_channels``...).

    Returns
    -------
    SyntheticSession
    """
    center = math.ceil(n_recordings / 2) - 1 if center_index is None else int(center_index)
    if not 0 <= center < n_recordings:
        raise ValueError("center_index out of range")
    rng = streams.rng(seed, streams.SESSION)
    fields = []
    for r in range(n_recordings):
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.0)
        shift = between_rigid_amplitude * radius * np.array([np.cos(angle), np.sin(angle)])
        field = static_field(rng, height, width, shift, between_nonrigid_amplitude)
        fields.append(field if r != center else zero_field())
    pad = motion_pad(rigid_amplitude, nonrigid_amplitude)
    yy, xx = np.mgrid[-pad : height + pad, -pad : width + pad]
    reach = max(float(np.hypot(*f(xx, yy)).max()) for f in fields)
    scene_kwargs = {k: recording_kwargs[k] for k in ("cell_density", "psf_sigma", "vignetting")
                    if k in recording_kwargs}
    big = make_scene(streams.rng(seed, streams.SCENE), (height, width),
                     pad + int(np.ceil(reach)) + 4, recording_kwargs.get("n_channels", 1),
                     **scene_kwargs)
    recordings, between = [], np.zeros((n_recordings, height, width, 2), np.float32)
    gy, gx = np.mgrid[:height, :width].astype(float)
    for r, field in enumerate(fields):
        rec_seed = int(np.random.SeedSequence([seed, streams.SESSION, r]).generate_state(1)[0])
        kwargs = {k: v for k, v in recording_kwargs.items() if k not in scene_kwargs}
        recordings.append(SyntheticRecording(
            height, width, n_frames, rigid_amplitude=rigid_amplitude,
            nonrigid_amplitude=nonrigid_amplitude, seed=rec_seed,
            scene=warp_scene(big, field, pad), **kwargs))
        if r != center:
            between[r] = np.stack(invert(field, gx, gy), -1)
    return SyntheticSession(recordings, between, center)
