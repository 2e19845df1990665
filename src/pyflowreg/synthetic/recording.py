"""Rendered recordings: a scene moved by smooth motion, with calcium activity and noise.

:class:`SyntheticRecording` draws everything temporal once (motion, calcium traces, neuropil
brightness) and renders frames on demand, so a recording of any length streams in constant
memory. Frame ``t`` is ``observed_t(q) = scene_t(q + d_t(q))`` with the smooth displacement
``d_t = rigid_t + sum_j c_tj a_j cos(k_j . q + phi_j)`` (:class:`~.fields.Field`); the
ground-truth flow is its inverse ``w_t(p) = -d_t(p + w_t(p))``. :func:`add_noise` is the noise
model shared by every generated image: shot noise plus Gaussian read noise.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage as ndi
from scipy.interpolate import RectBivariateSpline

from pyflowreg.synthetic import streams
from pyflowreg.synthetic.fields import (
    N_MODES,
    Field,
    default_wavelength,
    grid_max_norm,
    invert,
    smooth_modes,
)
from pyflowreg.synthetic.scene import Renderer, make_scene, motion_pad
from pyflowreg.synthetic.traces import standardised

__all__ = ["SyntheticRecording", "WholeRecording", "add_noise"]


def add_noise(img, rng, photons_per_unit, read_noise) -> np.ndarray:
    """Shot noise ``Poisson(ppu * I) / ppu`` (if ppu) plus Gaussian read noise.

    Parameters
    ----------
    img : array_like
        Noise-free image in brightness units.
    rng : numpy.random.Generator
        Source of the noise (one stream per frame keeps frames independent of chunking).
    photons_per_unit : float or None
        Photons per brightness unit; None adds no shot noise.
    read_noise : float
        Standard deviation of the Gaussian read noise (brightness units); 0 adds none.

    Returns
    -------
    ndarray
        float32 noisy image.
    """
    img = np.array(img, np.float32)
    if photons_per_unit is not None:
        img = rng.poisson(np.maximum(img, 0) * photons_per_unit).astype(np.float32)
        img *= np.float32(1.0 / photons_per_unit)
    if read_noise:
        img += np.float32(read_noise) * rng.standard_normal(img.shape, dtype=np.float32)
    return img


class WholeRecording:
    """Whole-recording views of a streamable recording.

    Mixin for classes with ``observed(t0, t1, *, noise)``, ``clean(t0, t1)`` and
    ``flow(t0, t1)`` over frame ranges and an ``n_frames`` attribute (the synthetic and the
    benchmark recordings), so both offer the same frame interface to the writers.
    """

    def iter_observed(self, chunk_frames: int = 64, *, noise: bool = True) -> Iterator:
        """Yield ``(t0, frames)`` chunks of :meth:`observed` covering the recording."""
        for t0 in range(0, self.n_frames, chunk_frames):
            yield t0, self.observed(t0, min(t0 + chunk_frames, self.n_frames), noise=noise)

    def observed_all(self, *, noise: bool = True) -> np.ndarray:
        """All observed frames (T, H, W, C) float32 (materialises the movie)."""
        return self.observed(0, self.n_frames, noise=noise)

    def clean_all(self) -> np.ndarray:
        """All clean frames (T, H, W, C) float32."""
        return self.clean(0, self.n_frames)

    def flow_all(self) -> np.ndarray:
        """All ground-truth flows (T, H, W, 2) float32."""
        return self.flow(0, self.n_frames)


class SyntheticRecording(WholeRecording):
    """Streamable synthetic 2-photon recording with exact ground-truth motion.

    Everything temporal (motion, calcium traces, neuropil factor) is drawn once at construction
    (memory O(T * n_cells)); frames are rendered on demand and noise is seeded per frame from
    ``(seed, t)``, so any frame range is reproducible independently of chunking.

    Parameters
    ----------
    height, width : int
        Frame size in pixels.
    n_frames : int
        Number of frames T.
    n_channels : int
        Channels C; channel 0 is functional (calcium), channels >= 1 are static structural.
    rigid_amplitude : float
        Maximum Euclidean norm (px) over time of the rigid translation.
    nonrigid_amplitude : float
        Maximum norm (px) over time and frame of the non-rigid displacement part.
    nonrigid_wavelength : float, optional
        Typical spatial wavelength (px) of the non-rigid modes; default half the image size
        (enlarged if needed to keep the field invertible).
    motion_timescale : float
        Temporal smoothing (Gaussian sigma, frames) of the motion traces.
    jitter : float
        Relative weight of independent per-frame (sharp) rigid jitter; 0 disables.
    zero_mean_motion : bool
        Make the temporal mean of the rendering displacement ``d_t(q)`` zero at every pixel, so
        the mean scene geometry equals the motion-free geometry (``flow`` is then zero-mean up
        to second order in the non-rigid part; exactly for rigid-only motion).
    photons_per_unit : float or None
        Shot noise ``Poisson(photons_per_unit * I) / photons_per_unit``; None disables it.
    read_noise : float
        Standard deviation of additive Gaussian read noise (brightness units); 0 disables it.
    cell_density : float
        Cells per 256 x 256 px of canvas.
    spike_rate : (float, float)
        Range (spikes/frame) of log-uniform per-cell Poisson firing rates.
    decay_frames : (float, float)
        Range (frames) of per-cell exponential calcium decay constants.
    neuropil_fluctuation : float
        Relative std of the slow global neuropil brightness fluctuation.
    psf_sigma, vignetting : float
        Gaussian PSF sigma (px) and relative brightness loss at the frame corners.
    seed : int
        Base seed.
    scene : Scene, optional
        Precomputed tissue (:func:`~pyflowreg.synthetic.make_session` passes each recording's
        view of the session's tissue); default a new scene drawn from ``seed``, in which case
        ``cell_density``, ``psf_sigma`` and ``vignetting`` apply.
    """

    def __init__(
        self, height: int = 256, width: int = 256, n_frames: int = 100, *, n_channels: int = 1,
        rigid_amplitude: float = 4.0, nonrigid_amplitude: float = 1.5,
        nonrigid_wavelength: float | None = None, motion_timescale: float = 15.0,
        jitter: float = 0.0, zero_mean_motion: bool = True,
        photons_per_unit: float | None = 100.0, read_noise: float = 0.01,
        cell_density: float = 100.0, spike_rate: tuple[float, float] = (0.05, 0.3),
        decay_frames: tuple[float, float] = (10.0, 20.0), neuropil_fluctuation: float = 0.05,
        psf_sigma: float = 0.9, vignetting: float = 0.15, seed: int = 0, scene=None,
    ):
        self.height, self.width, self.n_frames = int(height), int(width), int(n_frames)
        if min(self.height, self.width) < 4 or self.n_frames < 1 or n_channels < 1:
            raise ValueError("need height, width >= 4, n_frames >= 1 and n_channels >= 1")
        self.n_channels, self.seed = int(n_channels), int(seed)
        self.rigid_amplitude, self.nonrigid_amplitude = rigid_amplitude, nonrigid_amplitude
        self.photons_per_unit, self.read_noise = photons_per_unit, read_noise
        if scene is None:
            scene = make_scene(streams.rng(seed, streams.SCENE), (self.height, self.width),
                               motion_pad(rigid_amplitude, nonrigid_amplitude), n_channels,
                               cell_density=cell_density, psf_sigma=psf_sigma,
                               vignetting=vignetting)
        self._renderer = Renderer(scene)
        rng = streams.rng(seed, streams.MOTION)
        wavelength = nonrigid_wavelength or default_wavelength(height, width, nonrigid_amplitude)
        self._wavevec, self._phase, self._vec = smooth_modes(rng, wavelength)
        self._rigid, self._coeff = self._draw_motion(rng, motion_timescale, jitter,
                                                     zero_mean_motion)
        steepness = np.abs(self._coeff) @ np.hypot(*self._wavevec.T)  # bound of |grad d_t|
        if steepness.max(initial=0) >= 0.95:
            raise ValueError("non-rigid motion not invertible: lower nonrigid_amplitude or "
                             "raise nonrigid_wavelength")
        rng = streams.rng(seed, streams.ACTIVITY)
        self.dff = self._draw_activity(rng, len(scene.cells), spike_rate, decay_frames)
        drift = ndi.gaussian_filter1d(rng.standard_normal(self.n_frames), 2 * motion_timescale)
        self.neuropil_factor = 1.0 + neuropil_fluctuation * standardised(drift)
        self._flow_grid = self._coarse_grid(min(2 * np.pi / np.hypot(*self._wavevec.T)))
        self._valid = self._basis = None

    # ---- construction helpers
    def _draw_motion(self, rng, timescale, jitter, zero_mean):
        n = self.n_frames
        smooth = lambda x, s: ndi.gaussian_filter1d(x, s, axis=0, mode="nearest")  # noqa: E731
        walk = smooth(np.cumsum(rng.standard_normal((n, 2)), 0), timescale)
        rigid = 0.5 * standardised(walk) + standardised(smooth(rng.standard_normal((n, 2)),
                                                             timescale))
        rigid += jitter * rng.standard_normal((n, 2))
        coeff = standardised(smooth(rng.standard_normal((n, N_MODES)), timescale))
        if zero_mean:
            rigid -= rigid.mean(0)
            coeff -= coeff.mean(0)
        else:
            rigid += rng.standard_normal(2)
            coeff += 0.5 * rng.standard_normal(N_MODES)
        peak = np.hypot(*rigid.T).max(initial=0)
        rigid *= self.rigid_amplitude / peak if peak > 0 else 0.0
        peak = grid_max_norm(self._wavevec, self._phase, self._vec, coeff, self.height, self.width)
        coeff *= self.nonrigid_amplitude / peak if peak > 0 else 0.0
        return rigid, coeff

    def _draw_activity(self, rng, n_cells, spike_rate, decay_frames):
        rates = np.exp(rng.uniform(*np.log(spike_rate), n_cells))
        decay = np.exp(-1.0 / rng.uniform(*decay_frames, n_cells))
        dff_max = rng.uniform(2.0, 4.0, n_cells)
        burn_in = int(5 * max(decay_frames))
        spikes = rng.poisson(rates, (self.n_frames + burn_in, n_cells))
        calcium = np.zeros((self.n_frames + burn_in, n_cells))
        level = np.zeros(n_cells)
        for t, s in enumerate(spikes):
            level = level * decay + s
            calcium[t] = level
        calcium = calcium[burn_in:]
        return (dff_max * calcium / (calcium + 2.0)).astype(np.float32)

    def _coarse_grid(self, min_wavelength):
        """Coarse node coordinates (rows, cols) on which flows are solved before upsampling."""
        step = int(np.clip(min_wavelength // 24, 1, 8))
        return [np.linspace(0, n - 1, max(4, int(np.ceil((n - 1) / step)) + 1))
                for n in (self.height, self.width)]

    # ---- properties
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Movie shape (T, H, W, C)."""
        return (self.n_frames, self.height, self.width, self.n_channels)

    @property
    def n_cells(self) -> int:
        """Number of cells on the scene canvas (including some just outside the frame)."""
        return self.dff.shape[1]

    @property
    def cell_centers(self) -> np.ndarray:
        """(n_cells, 2) cell centres (x, y) in this recording's motion-free frame (px)."""
        return self._renderer.scene.centers.copy()

    @property
    def rigid_flow(self) -> np.ndarray:
        """(T, 2) rigid part (u, v) of the ground-truth flow, px (``= -rigid displacement``)."""
        return (-self._rigid).astype(np.float32)

    def _field(self, t: int) -> Field:
        return Field(self._rigid[t], self._wavevec, self._phase,
                      self._vec * self._coeff[t][:, None])

    def _frames(self, t0, t1) -> range:
        if not 0 <= t0 <= t1 <= self.n_frames:
            raise ValueError(f"frame range [{t0}, {t1}) outside [0, {self.n_frames}]")
        return range(t0, t1)

    # ---- frame access
    def displacement(self, t0: int, t1: int) -> np.ndarray:
        """Rendering displacements ``d_t`` (n, H, W, 2) float32, px, (x, y) order.

        ``observed_t(q) = clean_t(q + d_t(q))`` (before noise); the inverse of ``flow``.
        """
        frames = self._frames(t0, t1)
        out = np.empty((len(frames), self.height, self.width, 2), np.float32)
        for i, t in enumerate(frames):
            out[i, ..., 0], out[i, ..., 1] = self._displacement_frame(t)
        return out

    def _displacement_frame(self, t: int):
        """``d_t`` on the pixel grid as float32 (dx, dy) from cached cosine modes."""
        if self._basis is None:
            yy, xx = self._renderer.grid
            self._basis = [np.cos(kx * xx + ky * yy + ph) for (kx, ky), ph in
                           zip(self._wavevec.tolist(), self._phase.tolist(), strict=True)]
        dx = np.full((self.height, self.width), self._rigid[t, 0], np.float32)
        dy = np.full((self.height, self.width), self._rigid[t, 1], np.float32)
        for mode, (ax, ay) in zip(self._basis, (self._vec * self._coeff[t][:, None]).tolist(),
                                  strict=True):
            dx += np.float32(ax) * mode
            dy += np.float32(ay) * mode
        return dx, dy

    def flow(self, t0: int, t1: int) -> np.ndarray:
        """Ground-truth registration flows (n, H, W, 2) float32 for frames ``[t0, t1)``.

        ``observed_t(y + v, x + u) ~= clean_t(y, x)`` with ``u = flow[..., 0]``,
        ``v = flow[..., 1]`` in px. Solved to 1e-6 px on a coarse grid and cubic-spline
        upsampled (error well below 1e-3 px); the rigid part is exact.
        """
        ny, nx = self._flow_grid
        yy, xx = np.meshgrid(ny, nx, indexing="ij")
        full = (np.arange(self.height, dtype=float), np.arange(self.width, dtype=float))
        frames = self._frames(t0, t1)
        out = np.empty((len(frames), self.height, self.width, 2), np.float32)
        for i, t in enumerate(frames):
            field = self._field(t)
            for c, comp in enumerate(invert(field, xx, yy)):
                nonrigid = comp + field.shift[c]  # the rigid part -shift is exact
                if len(ny) < self.height or len(nx) < self.width:
                    nonrigid = RectBivariateSpline(ny, nx, nonrigid, s=0)(*full)
                out[i, ..., c] = nonrigid - field.shift[c]
        return out

    def clean(self, t0: int, t1: int) -> np.ndarray:
        """Motion-free, noise-free frames (n, H, W, C) float32 with calcium activity."""
        frames = self._frames(t0, t1)
        out = np.empty((len(frames), *self.shape[1:]), np.float32)
        for i, t in enumerate(frames):
            out[i] = self._renderer.clean(self.neuropil_factor[t], self.dff[t])
        return out

    def observed(self, t0: int, t1: int, *, noise: bool = True) -> np.ndarray:
        """Moved (and, if ``noise``, noisy) frames (n, H, W, C) float32 for ``[t0, t1)``."""
        frames = self._frames(t0, t1)
        out = np.empty((len(frames), *self.shape[1:]), np.float32)
        for i, t in enumerate(frames):
            frame = self.render(t, *self._displacement_frame(t))
            if noise:
                frame = add_noise(frame, streams.rng(self.seed, streams.NOISE, t),
                                  self.photons_per_unit, self.read_noise)
            out[i] = frame
        return out

    def render(self, t: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Noise-free frame ``t`` of the tissue sampled at ``q + (dx, dy)``, (H, W, C) float32.

        Any displacement works, not only the recording's own (the benchmark recordings move
        this tissue by their own motion); the activity is frame ``t``'s.

        Parameters
        ----------
        t : int
            Frame whose activity and neuropil brightness are shown.
        dx, dy : ndarray
            (H, W) float32 displacement (px) at every pixel ``q``.

        Returns
        -------
        ndarray
        """
        return self._renderer.warped(self.neuropil_factor[t], self.dff[t], dx, dy)

    def clean_static(self, activity: str = "mean") -> np.ndarray:
        """Motion-free, noise-free mean scene (H, W, C) float32.

        ``activity="mean"`` gives the exact time average of :meth:`clean` (what a perfect
        reference would show); ``"baseline"`` the scene at rest (dF/F = 0, neuropil factor 1),
        which is identical across the recordings of a session up to their geometry.
        """
        if activity == "mean":
            return self._renderer.clean(float(self.neuropil_factor.mean()), self.dff.mean(0))
        if activity == "baseline":
            return self._renderer.clean(1.0, np.zeros(self.n_cells, np.float32))
        raise ValueError("activity must be 'mean' or 'baseline'")

    def valid_mask(self, chunk_frames: int = 64) -> np.ndarray:
        """(H, W) bool: pixels q whose sample ``q + flow_t(q)`` is inside the frame
        ``[0, W-1] x [0, H-1]`` for every frame t (the region a perfect correction covers)."""
        if self._valid is None:
            valid = np.ones((self.height, self.width), bool)
            yy, xx = self._renderer.grid
            for t0 in range(0, self.n_frames, chunk_frames):
                w = self.flow(t0, min(t0 + chunk_frames, self.n_frames))
                x, y = xx + w[..., 0], yy + w[..., 1]
                inside = (x >= 0) & (x <= self.width - 1) & (y >= 0) & (y <= self.height - 1)
                valid &= inside.all(0)
            self._valid = valid
        return self._valid.copy()
