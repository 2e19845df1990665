"""Seeded synthetic 2-photon recordings and sessions with exact ground-truth motion.

Conventions
-----------
* Frames are float32 arrays ``(T, H, W, C)`` in brightness units (background ~0.1-0.4,
  resting neurons ~0.3-0.7, active neurons up to ~2). Single images are ``(H, W, C)``.
* A flow field ``w`` is float32 ``(H, W, 2)`` in pixels; ``w[..., 0] = u`` (x, columns),
  ``w[..., 1] = v`` (y, rows). Displacement vectors elsewhere are also ordered ``(x, y)``.
* Registration convention: ``w`` registers ``moving`` onto ``fixed`` when
  ``moving(y + v, x + u) ~= fixed(y, x)``. For a recording, ``flow[t]`` satisfies
  ``observed_t(y + v, x + u) ~= clean_t(y, x)``.

Model
-----
A static tissue scene (band-limited neuropil, donut-shaped somata, dark vessels, Gaussian PSF,
mild vignetting baked into the tissue so every ground-truth relation is exact) is rasterised
once on a padded canvas together with its cubic-spline coefficients. Frame ``t`` is rendered by
backward sampling ``observed_t(q) = scene_t(q + d_t(q))`` with a smooth displacement
``d_t = rigid_t + sum_j c_tj a_j cos(k_j . q + phi_j)``; the ground-truth flow is its inverse
``w_t(p) = -d_t(p + w_t(p))``, solved by fixed-point iteration. Only channel 0 carries calcium
activity; channels >= 1 are static structural (e.g. red) channels of the same geometry.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sparse
import tifffile
from scipy import ndimage as ndi
from scipy.interpolate import RectBivariateSpline
from scipy.special import expit

__all__ = [
    "SyntheticRecording",
    "SyntheticSession",
    "make_image_pair",
    "make_session",
    "write_recording",
    "write_session",
    "write_demo_session",
]

_SPLINE_MARGIN = 8  # px of zeros around coefficient patches / spare border of every canvas
_SCENE, _MOTION, _ACTIVITY, _NOISE, _PAIR, _SESSION = range(6)  # random stream identifiers
_N_MODES = 4  # number of Fourier modes of every non-rigid field


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _normalised(series: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-std columns (constant columns become zero)."""
    series = series - series.mean(axis=0)
    std = series.std(axis=0)
    return series / np.where(std > 1e-12, std, np.inf)


# --------------------------------------------------------------------------- smooth fields
@dataclass(frozen=True)
class _Field:
    """Displacement ``d(x, y) = shift + sum_j vec_j cos(k_j . (x, y) + phase_j)`` in px."""

    shift: np.ndarray  # (2,) (dx, dy)
    wavevec: np.ndarray  # (K, 2) (kx, ky), rad/px
    phase: np.ndarray  # (K,)
    vec: np.ndarray  # (K, 2) (ax, ay), px

    def __call__(self, x, y):
        """Evaluate ``(dx, dy)`` at frame coordinates ``(x, y)`` (float32 in, float32 out)."""
        x, y = np.asarray(x), np.asarray(y)
        dtype = np.result_type(x.dtype, y.dtype, np.float32)
        dx = np.full(np.broadcast_shapes(x.shape, y.shape), self.shift[0], dtype)
        dy = np.full_like(dx, self.shift[1])
        for (kx, ky), ph, (ax, ay) in zip(self.wavevec.tolist(), self.phase.tolist(),
                                          self.vec.tolist(), strict=True):
            c = np.cos(kx * x + ky * y + ph)
            dx += ax * c
            dy += ay * c
        return dx, dy

    def gradient_bound(self) -> float:
        """Upper bound of the spectral norm of the Jacobian of ``d``."""
        return float(np.sum(np.hypot(*self.vec.T) * np.hypot(*self.wavevec.T)))


def _invert(field: _Field, x, y, tol: float = 1e-6, max_iter: int = 500):
    """Registration flow ``w(p) = -d(p + w(p))`` at points ``(x, y)`` (fixed-point iteration)."""
    if field.gradient_bound() >= 0.95:
        raise ValueError("non-rigid field too strong to be invertible; lower its amplitude")
    dx, dy = field(x, y)
    wx, wy = -dx, -dy
    for _ in range(max_iter):
        dx, dy = field(x + wx, y + wy)
        change = max(np.max(np.abs(wx + dx), initial=0), np.max(np.abs(wy + dy), initial=0))
        wx, wy = -dx, -dy
        if change < tol:
            break
    return wx, wy


def _random_modes(rng: np.random.Generator, wavelength: float, n_modes: int = _N_MODES):
    """Random wave vectors (K, 2), phases (K,) and unit direction vectors (K, 2)."""
    lengths = wavelength * rng.uniform(0.8, 1.25, n_modes)
    angles = rng.uniform(0, 2 * np.pi, (2, n_modes))
    wavevec = (2 * np.pi / lengths)[:, None] * np.stack([np.cos(angles[0]), np.sin(angles[0])], 1)
    vec = np.stack([np.cos(angles[1]), np.sin(angles[1])], 1)
    return wavevec, rng.uniform(0, 2 * np.pi, n_modes), vec


def _default_wavelength(height: int, width: int, amplitude: float) -> float:
    """Half the image, enlarged when needed so the field stays smooth (|grad d| <~ 0.35)."""
    return max(0.5 * max(height, width), 4 * np.pi * amplitude / 0.7)


def _grid_max_norm(wavevec, phase, vec, coeff, height, width, n_points=49) -> float:
    """Max over frames and a sample grid of |sum_j coeff[t, j] vec_j cos(...)| (px)."""
    y, x = np.meshgrid(np.linspace(0, height - 1, n_points), np.linspace(0, width - 1, n_points))
    basis = np.cos(wavevec @ np.stack([x.ravel(), y.ravel()]) + phase[:, None])  # (K, P)
    best = 0.0
    for start in range(0, len(coeff), 2048):
        c = coeff[start : start + 2048]
        norm = np.hypot((c * vec[:, 0]) @ basis, (c * vec[:, 1]) @ basis)
        best = max(best, float(norm.max(initial=0)))
    return best


def _static_field(rng, height, width, shift, amplitude, wavelength=None) -> _Field:
    """Smooth field with rigid ``shift`` (dx, dy) and non-rigid part of max norm ``amplitude``."""
    wavelength = wavelength or _default_wavelength(height, width, amplitude)
    wavevec, phase, vec = _random_modes(rng, wavelength)
    weights = rng.standard_normal(_N_MODES)[None]
    peak = _grid_max_norm(wavevec, phase, vec, weights, height, width)
    scale = amplitude / peak if peak > 0 else 0.0
    return _Field(np.asarray(shift, float), wavevec, phase, vec * (scale * weights[0])[:, None])


# --------------------------------------------------------------------------- scene
@dataclass
class _Scene:
    """Rasterised tissue on a canvas; canvas index = frame coordinate + ``pad``."""

    pad: int
    frame_shape: tuple[int, int]
    neuropil: np.ndarray  # (Hc, Wc) channel-0 neuropil, scaled per frame by the neuropil factor
    static: np.ndarray  # (C, Hc, Wc) everything else at rest (channel 0: resting cells only)
    cells: list  # [(row0, col0, patch)] channel-0 resting footprint of every cell (canvas)
    centers: np.ndarray  # (n_cells, 2) cell centres, frame coordinates (x, y)


def _vessel_transmission(rng, shape, n_vessels) -> np.ndarray:
    """Product of dark, smoothly curved vessels (transmission 1 outside vessels)."""
    trans = np.ones(shape)
    hc, wc = shape
    for _ in range(n_vessels):
        n_steps = int(2 * (hc + wc))  # 0.5 px steps; the middle point lies inside the canvas
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(
            ndi.gaussian_filter1d(rng.standard_normal(n_steps), 25) * 0.015
        )
        pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * 0.5, 0)
        pts += rng.uniform(0.1, 0.9, 2) * (wc, hc) - pts[n_steps // 2]
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < wc) & (pts[:, 1] >= 0) & (pts[:, 1] < hc)
        mask = np.ones(shape, bool)
        mask[pts[inside, 1].astype(int), pts[inside, 0].astype(int)] = False
        if mask.all():
            continue
        dist = ndi.distance_transform_edt(mask)
        half_width = rng.uniform(1.5, 4.0)
        profile = expit((half_width - dist) / 0.6)
        trans *= 1.0 - rng.uniform(0.5, 0.8) * profile
    return trans


def _place_cells(rng, shape, n_cells, min_dist) -> np.ndarray:
    """Dart-throwing positions (n, 2) (x, y) in canvas index coordinates."""
    hc, wc = shape
    accepted = np.empty((0, 2))
    for _ in range(50):
        cand = rng.uniform(0, 1, (4 * n_cells, 2)) * (wc - 1, hc - 1)
        for p in cand:
            if len(accepted) >= n_cells:
                return accepted
            if len(accepted) == 0 or np.min(np.hypot(*(accepted - p).T)) >= min_dist:
                accepted = np.vstack([accepted, p])
    return accepted


def _soma(rng, center, half, psf_sigma) -> tuple[np.ndarray, int, int]:
    """Donut-shaped soma (peak ~1) with darker nucleus, PSF-blurred; returns patch, row0, col0."""
    radius = rng.uniform(4.0, 7.0)
    aspect = rng.uniform(0.75, 1.0)
    theta = rng.uniform(0, np.pi)
    row0, col0 = int(center[1]) - half, int(center[0]) - half
    yy, xx = np.mgrid[row0 : row0 + 2 * half + 1, col0 : col0 + 2 * half + 1]
    dx, dy = xx - center[0], yy - center[1]
    xr = (dx * np.cos(theta) + dy * np.sin(theta)) / (radius / np.sqrt(aspect))
    yr = (-dx * np.sin(theta) + dy * np.cos(theta)) / (radius * np.sqrt(aspect))
    rho = np.hypot(xr, yr)
    body = expit((1.0 - rho) / 0.08)
    nucleus = rng.uniform(0.4, 0.7) * np.exp(-((rho / 0.5) ** 4))
    return ndi.gaussian_filter(body * (1.0 - nucleus), psf_sigma), row0, col0


def _make_scene(
    rng, frame_shape, pad, n_channels, *, cell_density=100.0, psf_sigma=0.9, vignetting=0.15
) -> _Scene:
    """Generate a tissue scene on a canvas of ``frame_shape + 2 * pad``."""
    height, width = frame_shape
    shape = (height + 2 * pad, width + 2 * pad)
    area = shape[0] * shape[1] / 256**2
    extra = np.random.default_rng(rng.integers(2**63))  # channels >= 1: geometry unaffected
    texture = []
    for c in range(n_channels):
        rng_c = rng if c == 0 else extra
        fine = _normalised(ndi.gaussian_filter(rng_c.standard_normal(shape), 1.5).ravel())
        coarse = _normalised(ndi.gaussian_filter(rng_c.standard_normal(shape), 12.0).ravel())
        texture.append(0.22 * np.exp(0.25 * fine + 0.3 * coarse).reshape(shape))
    n_vessels = int(rng.integers(2, 5) * max(1.0, math.sqrt(area)))
    trans = _vessel_transmission(rng, shape, n_vessels)
    yy, xx = np.mgrid[: shape[0], : shape[1]] - pad
    r2 = ((xx - (width - 1) / 2) ** 2 + (yy - (height - 1) / 2) ** 2) / (
        ((width - 1) / 2) ** 2 + ((height - 1) / 2) ** 2 + 1e-9
    )
    vignette = np.clip(1.0 - vignetting * r2, 0.5, 1.0)
    layers = [ndi.gaussian_filter(trans * t, psf_sigma) * vignette for t in texture]
    static = np.zeros((n_channels, *shape))
    for c in range(1, n_channels):
        static[c] = 0.5 * layers[c]
    centers = _place_cells(rng, shape, max(1, round(cell_density * area)), 9.0)
    half = int(np.ceil(7.0 / np.sqrt(0.75) + 3 * psf_sigma + 2))
    cells = []
    for center in centers:
        body, row0, col0 = _soma(rng, center, half, psf_sigma)
        rows = slice(max(row0, 0), min(row0 + body.shape[0], shape[0]))
        cols = slice(max(col0, 0), min(col0 + body.shape[1], shape[1]))
        local = body[rows.start - row0 : rows.stop - row0, cols.start - col0 : cols.stop - col0]
        local = local * (trans * vignette)[rows, cols]
        cells.append((rows.start, cols.start, (rng.uniform(0.15, 0.4) * local)))
        static[0, rows, cols] += cells[-1][2]
        for c in range(1, n_channels):
            static[c, rows, cols] += extra.uniform(0.2, 0.6) * local
    return _Scene(pad, (height, width), layers[0].astype(np.float32), static.astype(np.float32),
                  [(r, c, p.astype(np.float32)) for r, c, p in cells], centers - pad)


def _warp_scene(scene: _Scene, field: _Field, pad: int) -> _Scene:
    """Scene seen through ``field``: ``new(q) = scene(q + field(q))`` on a canvas with ``pad``."""
    height, width = scene.frame_shape
    shape = (height + 2 * pad, width + 2 * pad)
    yy, xx = np.mgrid[: shape[0], : shape[1]] - float(pad)
    dx, dy = field(xx, yy)
    coords = np.stack([yy + dy + scene.pad, xx + dx + scene.pad])
    warp = lambda img: ndi.map_coordinates(img, coords, order=3, mode="nearest")  # noqa: E731
    neuropil = warp(scene.neuropil)
    static = np.stack([warp(s) for s in scene.static[1:]]) if len(scene.static) > 1 else None
    cx, cy = scene.centers.T
    ux, uy = _invert(field, cx, cy)
    cells, static0 = [], np.zeros(shape, np.float32)
    for (row0, col0, patch), qx, qy in zip(scene.cells, cx + ux, cy + uy, strict=True):
        half = (max(patch.shape) // 2) + 2 + int(np.ceil(field.gradient_bound() * max(patch.shape)))
        r0, c0 = int(round(qy)) + pad - half, int(round(qx)) + pad - half
        rows = slice(max(r0, 0), min(r0 + 2 * half + 1, shape[0]))
        cols = slice(max(c0, 0), min(c0 + 2 * half + 1, shape[1]))
        if rows.start >= rows.stop or cols.start >= cols.stop:  # cell outside this view
            cells.append((0, 0, np.zeros((0, 0), np.float32)))
            continue
        local = np.stack([coords[0][rows, cols] - row0, coords[1][rows, cols] - col0])
        new = ndi.map_coordinates(patch, local, order=3, mode="grid-constant").astype(np.float32)
        cells.append((rows.start, cols.start, new))
        static0[rows, cols] += new
    static = static0[None] if static is None else np.concatenate([static0[None], static])
    centers = np.stack([cx + ux, cy + uy], 1)
    return _Scene(pad, scene.frame_shape, neuropil.astype(np.float32),
                  static.astype(np.float32), cells, centers)


class _Renderer:
    """Precomputed image-domain and spline-coefficient components of a scene."""

    def __init__(self, scene: _Scene):
        self.scene = scene
        height, width = scene.frame_shape
        pad, shape = scene.pad, scene.neuropil.shape
        frame = (slice(pad, pad + height), slice(pad, pad + width))
        spline = lambda img: ndi.spline_filter(img, 3, output=np.float32)  # noqa: E731
        self.np_img, self.np_coef = scene.neuropil[frame], spline(scene.neuropil)
        self.static_img = scene.static[:, frame[0], frame[1]]
        self.static_coef = np.stack([spline(s) for s in scene.static])
        img_parts, coef_parts = ([], [], []), ([], [], [])
        m = _SPLINE_MARGIN
        for k, (row0, col0, patch) in enumerate(scene.cells):
            if patch.size == 0:
                continue
            coef = spline(np.pad(patch, m))
            for parts, values, r0, c0, (h, w) in (
                (img_parts, patch, row0 - pad, col0 - pad, (height, width)),
                (coef_parts, coef, row0 - m, col0 - m, shape),
            ):
                rr, cc = np.mgrid[r0 : r0 + values.shape[0], c0 : c0 + values.shape[1]]
                keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w) & (values != 0)
                parts[0].append(values[keep])
                parts[1].append(rr[keep] * w + cc[keep])
                parts[2].append(np.full(int(keep.sum()), k))
        n = len(scene.cells)
        to_matrix = lambda p, size: sparse.csr_matrix(  # noqa: E731
            (np.concatenate([*p[0], []]), (np.concatenate([*p[1], []]).astype(int),
                                           np.concatenate([*p[2], []]).astype(int))),
            shape=(size, n), dtype=np.float32)
        self.cells_img = to_matrix(img_parts, height * width)
        self.cells_coef = to_matrix(coef_parts, shape[0] * shape[1])
        yy, xx = np.mgrid[:height, :width].astype(np.float32)
        self.grid = (yy, xx)

    def clean(self, neuropil_factor: float, dff: np.ndarray) -> np.ndarray:
        """Motion-free frame (H, W, C) for a neuropil factor and dF/F vector (n_cells,)."""
        out = self.static_img.copy()
        out[0] += neuropil_factor * self.np_img
        out[0] += (self.cells_img @ dff).reshape(out.shape[1:])
        return np.moveaxis(out, 0, -1)

    def warped(self, neuropil_factor, dff, dx, dy) -> np.ndarray:
        """Frame (H, W, C) sampled at ``q + (dx, dy)``: ``scene(q + d(q))``."""
        coef = self.static_coef.copy()
        coef[0] += neuropil_factor * self.np_coef
        coef[0] += (self.cells_coef @ dff).reshape(coef.shape[1:])
        coords = np.stack([self.grid[0] + dy + self.scene.pad, self.grid[1] + dx + self.scene.pad])
        out = [ndi.map_coordinates(c, coords, order=3, prefilter=False, mode="nearest",
                                   output=np.float32) for c in coef]
        return np.stack(out, -1)


def _add_noise(img, rng, photons_per_unit, read_noise) -> np.ndarray:
    """Shot noise ``Poisson(ppu * I) / ppu`` (if ppu) plus Gaussian read noise (float32)."""
    img = np.array(img, np.float32)
    if photons_per_unit is not None:
        img = rng.poisson(np.maximum(img, 0) * photons_per_unit).astype(np.float32)
        img *= np.float32(1.0 / photons_per_unit)
    if read_noise:
        img += np.float32(read_noise) * rng.standard_normal(img.shape, dtype=np.float32)
    return img


# --------------------------------------------------------------------------- recording
class _WholeRecording:
    """Whole-recording views of a streamable recording with ``observed``, ``clean`` and
    ``flow`` over frame ranges and an ``n_frames``."""

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


class SyntheticRecording(_WholeRecording):
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
    scene : optional
        Internal: a precomputed scene (used by :func:`make_session`).
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
            scene = _make_scene(_rng(seed, _SCENE), (self.height, self.width),
                                _motion_pad(rigid_amplitude, nonrigid_amplitude), n_channels,
                                cell_density=cell_density, psf_sigma=psf_sigma,
                                vignetting=vignetting)
        self._renderer = _Renderer(scene)
        rng = _rng(seed, _MOTION)
        wavelength = nonrigid_wavelength or _default_wavelength(height, width, nonrigid_amplitude)
        self._wavevec, self._phase, self._vec = _random_modes(rng, wavelength)
        self._rigid, self._coeff = self._draw_motion(rng, motion_timescale, jitter,
                                                     zero_mean_motion)
        steepness = np.abs(self._coeff) @ np.hypot(*self._wavevec.T)  # bound of |grad d_t|
        if steepness.max(initial=0) >= 0.95:
            raise ValueError("non-rigid motion not invertible: lower nonrigid_amplitude or "
                             "raise nonrigid_wavelength")
        rng = _rng(seed, _ACTIVITY)
        self.dff = self._draw_activity(rng, len(scene.cells), spike_rate, decay_frames)
        drift = ndi.gaussian_filter1d(rng.standard_normal(self.n_frames), 2 * motion_timescale)
        self.neuropil_factor = 1.0 + neuropil_fluctuation * _normalised(drift)
        self._flow_grid = self._coarse_grid(min(2 * np.pi / np.hypot(*self._wavevec.T)))
        self._valid = self._basis = None

    # ---- construction helpers
    def _draw_motion(self, rng, timescale, jitter, zero_mean):
        n = self.n_frames
        smooth = lambda x, s: ndi.gaussian_filter1d(x, s, axis=0, mode="nearest")  # noqa: E731
        walk = smooth(np.cumsum(rng.standard_normal((n, 2)), 0), timescale)
        rigid = 0.5 * _normalised(walk) + _normalised(smooth(rng.standard_normal((n, 2)),
                                                             timescale))
        rigid += jitter * rng.standard_normal((n, 2))
        coeff = _normalised(smooth(rng.standard_normal((n, _N_MODES)), timescale))
        if zero_mean:
            rigid -= rigid.mean(0)
            coeff -= coeff.mean(0)
        else:
            rigid += rng.standard_normal(2)
            coeff += 0.5 * rng.standard_normal(_N_MODES)
        peak = np.hypot(*rigid.T).max(initial=0)
        rigid *= self.rigid_amplitude / peak if peak > 0 else 0.0
        peak = _grid_max_norm(self._wavevec, self._phase, self._vec, coeff, self.height, self.width)
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

    def _field(self, t: int) -> _Field:
        return _Field(self._rigid[t], self._wavevec, self._phase,
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
            for c, comp in enumerate(_invert(field, xx, yy)):
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
            dx, dy = self._displacement_frame(t)
            frame = self._renderer.warped(self.neuropil_factor[t], self.dff[t], dx, dy)
            if noise:
                frame = _add_noise(frame, _rng(self.seed, _NOISE, t), self.photons_per_unit,
                                   self.read_noise)
            out[i] = frame
        return out

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


def _motion_pad(*amplitudes: float) -> int:
    """Canvas border (px) covering displacements up to ``sum(amplitudes)`` plus spline margin."""
    return int(np.ceil(sum(amplitudes))) + 2 + _SPLINE_MARGIN


# --------------------------------------------------------------------------- image pair
def make_image_pair(
    height: int = 128, width: int = 128, *, max_displacement: float = 6.0,
    rigid_shift: tuple[float, float] = (0.0, 0.0), nonrigid: bool = True,
    wavelength: float | None = None, photons_per_unit: float | None = None,
    read_noise: float = 0.0, n_channels: int = 1, seed: int = 0,
):
    """Image pair with a known smooth displacement for optical-flow engine tests.

    Parameters
    ----------
    height, width : int
        Image size (px).
    max_displacement : float
        Maximum norm (px) of the non-rigid part of ``w_true`` (ignored if not ``nonrigid``).
    rigid_shift : (float, float)
        Exact rigid part ``(u, v)`` of ``w_true`` (px, x then y).
    nonrigid : bool
        Add the smooth non-rigid part (Fourier modes of wavelength ~ half the image).
    wavelength : float, optional
        Wavelength (px) of the non-rigid modes; default as :class:`SyntheticRecording`.
    photons_per_unit, read_noise : float or None, float
        Noise model as in :class:`SyntheticRecording`; fixed and moving get independent noise.
    n_channels : int
        Channels; channel >= 1 are structural.
    seed : int
        Seed of scene, field and noise.

    Returns
    -------
    fixed, moving : ndarray
        float32 (H, W) if ``n_channels == 1`` else (H, W, C), resting activity.
    w_true : ndarray
        float32 (H, W, 2) flow with ``moving(y + v, x + u) ~= fixed(y, x)``.
    """
    amplitude = max_displacement if nonrigid else 0.0
    pad = _motion_pad(float(np.hypot(*rigid_shift)), amplitude)
    scene = _make_scene(_rng(seed, _SCENE), (height, width), pad, n_channels)
    renderer = _Renderer(scene)
    field = _static_field(_rng(seed, _PAIR), height, width, -np.asarray(rigid_shift, float),
                          amplitude, wavelength)
    yy, xx = renderer.grid
    dff = np.zeros(len(scene.cells), np.float32)
    fixed = _add_noise(renderer.clean(1.0, dff), _rng(seed, _NOISE, 0), photons_per_unit,
                       read_noise)
    moving = _add_noise(renderer.warped(1.0, dff, *field(xx, yy)), _rng(seed, _NOISE, 1),
                        photons_per_unit, read_noise)
    w_true = np.stack(_invert(field, xx.astype(float), yy.astype(float)), -1).astype(np.float32)
    if n_channels == 1:
        fixed, moving = fixed[..., 0], moving[..., 0]
    return fixed, moving, w_true


# --------------------------------------------------------------------------- session
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
        """(H, W) bool in the center grid: ``valid_r`` (see
        :meth:`SyntheticRecording.valid_mask`) sampled nearest-neighbour at
        ``p + between_flow[r](p)``, and that position inside ``[0, W-1] x [0, H-1]``."""
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
    rng = _rng(seed, _SESSION)
    fields = []
    for r in range(n_recordings):
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.0)
        shift = between_rigid_amplitude * radius * np.array([np.cos(angle), np.sin(angle)])
        field = _static_field(rng, height, width, shift, between_nonrigid_amplitude)
        fields.append(field if r != center else _Field(np.zeros(2), np.zeros((0, 2)), np.zeros(0),
                                                           np.zeros((0, 2))))
    pad = _motion_pad(rigid_amplitude, nonrigid_amplitude)
    yy, xx = np.mgrid[-pad : height + pad, -pad : width + pad]
    reach = max(float(np.hypot(*f(xx, yy)).max()) for f in fields)
    scene_kwargs = {k: recording_kwargs[k] for k in ("cell_density", "psf_sigma", "vignetting")
                    if k in recording_kwargs}
    big = _make_scene(_rng(seed, _SCENE), (height, width), pad + int(np.ceil(reach)) + 4,
                      recording_kwargs.get("n_channels", 1), **scene_kwargs)
    recordings, between = [], np.zeros((n_recordings, height, width, 2), np.float32)
    gy, gx = np.mgrid[:height, :width].astype(float)
    for r, field in enumerate(fields):
        rec_seed = int(np.random.SeedSequence([seed, _SESSION, r]).generate_state(1)[0])
        kwargs = {k: v for k, v in recording_kwargs.items() if k not in scene_kwargs}
        recordings.append(SyntheticRecording(
            height, width, n_frames, rigid_amplitude=rigid_amplitude,
            nonrigid_amplitude=nonrigid_amplitude, seed=rec_seed,
            scene=_warp_scene(big, field, pad), **kwargs))
        if r != center:
            between[r] = np.stack(_invert(field, gx, gy), -1)
    return SyntheticSession(recordings, between, center)


# --------------------------------------------------------------------------- disk output
def write_recording(
    rec: SyntheticRecording, path, *, dtype: str = "uint16", scale: float | None = None,
    chunk_frames: int = 64, noise: bool = True, offset: float | None = None,
) -> Path:
    """Stream a recording to a multi-page TIFF (one page per frame, never the whole movie).

    Layout: ``tifffile.imread`` returns (T, H, W) for one channel and (T, H, W, C) for C > 1
    (contiguous samples per page).

    Parameters
    ----------
    rec : SyntheticRecording
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
    with tifffile.TiffWriter(path, bigtiff=bool(big)) as tif:
        tif.write(pages(), shape=shape, dtype=dtype, photometric="minisblack",
                  planarconfig="contig" if rec.n_channels > 1 else None)
    return path


def _default_scale(rec: SyntheticRecording, dtype: str) -> float:
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
    ``clean_static`` (R, H, W, C; time-mean), ``scale`` and, if ``ground_truth_flows`` (default:
    when below 256 MB), the within-recording ``flow`` (R, T, H, W, 2).
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
    """Write a small 3-recording demo session (128 x 128 px, 60 frames each) to ``folder``."""
    return write_session(make_session(3, 128, 128, 60, seed=seed), folder)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m pyflowreg.synthetic OUTDIR [--n-recordings N ...]``."""
    parser = argparse.ArgumentParser(description="Write a synthetic 2-photon session.")
    parser.add_argument("outdir")
    parser.add_argument("--n-recordings", type=int, default=3)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--dtype", choices=("uint16", "float32"), default="uint16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    session = make_session(args.n_recordings, args.height, args.width, args.frames,
                           seed=args.seed, n_channels=args.channels)
    for path in write_session(session, args.outdir, dtype=args.dtype):
        print(path)


_BENCHMARK_NAMES = ("BenchmarkRecording", "make_benchmark_recording", "load_real_frames",
                    "BENCHMARK_MODELS")


def __getattr__(name):
    # The benchmark models build on this module, so they are imported on first use.
    if name in _BENCHMARK_NAMES:
        from pyflowreg import synthetic_benchmark

        return getattr(synthetic_benchmark, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
