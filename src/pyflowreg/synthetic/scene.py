"""Synthetic tissue: a static 2-photon scene rasterised on a canvas, and its renderer.

The scene holds band-limited neuropil, donut-shaped somata, dark vessels, a Gaussian PSF and
mild vignetting baked into the tissue, so every ground-truth relation is exact. It is
rasterised once on a padded canvas (canvas index = frame coordinate + ``pad``) together with
its cubic-spline coefficients (:class:`Renderer`); a frame is then one spline evaluation at
the moved sample positions. Only channel 0 carries calcium activity (per-cell footprints
scaled by dF/F, and the neuropil scaled per frame); channels >= 1 are static structural
channels of the same geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy import ndimage as ndi
from scipy.special import expit

from pyflowreg.synthetic.fields import Field, invert
from pyflowreg.synthetic.traces import standardised

__all__ = ["SPLINE_MARGIN", "Renderer", "Scene", "make_scene", "motion_pad", "warp_scene"]

SPLINE_MARGIN = 8
"""Zeros (px) around every cell's coefficient patch, and spare border of every canvas, so
cubic-spline samples near an edge never reach past the rasterised data."""


def motion_pad(*amplitudes: float) -> int:
    """Canvas border (px) covering displacements up to ``sum(amplitudes)`` plus the spline
    margin."""
    return int(np.ceil(sum(amplitudes))) + 2 + SPLINE_MARGIN


@dataclass
class Scene:
    """Rasterised tissue on a canvas; canvas index = frame coordinate + ``pad``.

    Attributes
    ----------
    pad : int
        Canvas border (px) around the frame.
    frame_shape : (int, int)
        Frame size (H, W).
    neuropil : ndarray
        (Hc, Wc) float32 channel-0 neuropil, scaled per frame by the neuropil factor.
    static : ndarray
        (C, Hc, Wc) float32 everything else at rest (channel 0: the resting cells only).
    cells : list of (int, int, ndarray)
        ``(row0, col0, patch)``: the channel-0 resting footprint of every cell, placed at
        canvas index ``(row0, col0)``; an empty patch for a cell outside the canvas.
    centers : ndarray
        (n_cells, 2) cell centres (x, y), frame coordinates.
    """

    pad: int
    frame_shape: tuple[int, int]
    neuropil: np.ndarray
    static: np.ndarray
    cells: list
    centers: np.ndarray


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


def make_scene(
    rng, frame_shape, pad, n_channels, *, cell_density=100.0, psf_sigma=0.9, vignetting=0.15
) -> Scene:
    """Generate a tissue scene on a canvas of ``frame_shape + 2 * pad``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the scene (the scene stream of a seed).
    frame_shape : (int, int)
        Frame size (H, W).
    pad : int
        Canvas border (px); at least the largest displacement plus :data:`SPLINE_MARGIN`.
    n_channels : int
        Channels; channel 0 functional, channels >= 1 structural. Their draws come from a
        generator split off ``rng``, so the geometry does not depend on ``n_channels``.
    cell_density : float
        Cells per 256 x 256 px of canvas.
    psf_sigma : float
        Gaussian PSF sigma (px).
    vignetting : float
        Relative brightness loss at the frame corners.

    Returns
    -------
    Scene
    """
    height, width = frame_shape
    shape = (height + 2 * pad, width + 2 * pad)
    area = shape[0] * shape[1] / 256**2
    extra = np.random.default_rng(rng.integers(2**63))  # channels >= 1: geometry unaffected
    texture = []
    for c in range(n_channels):
        rng_c = rng if c == 0 else extra
        fine = standardised(ndi.gaussian_filter(rng_c.standard_normal(shape), 1.5).ravel())
        coarse = standardised(ndi.gaussian_filter(rng_c.standard_normal(shape), 12.0).ravel())
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
    return Scene(pad, (height, width), layers[0].astype(np.float32), static.astype(np.float32),
                  [(r, c, p.astype(np.float32)) for r, c, p in cells], centers - pad)


def warp_scene(scene: Scene, field: Field, pad: int) -> Scene:
    """Scene seen through ``field``: ``new(q) = scene(q + field(q))`` on a canvas with ``pad``.

    Cell footprints are resampled one by one, so the warped scene keeps per-cell activity;
    cell centres move by the inverse of ``field``.

    Parameters
    ----------
    scene : Scene
        Source scene; its canvas must cover ``q + field(q)`` for every ``q`` of the new one.
    field : Field
        Rendering displacement.
    pad : int
        Canvas border (px) of the new scene.

    Returns
    -------
    Scene
    """
    height, width = scene.frame_shape
    shape = (height + 2 * pad, width + 2 * pad)
    yy, xx = np.mgrid[: shape[0], : shape[1]] - float(pad)
    dx, dy = field(xx, yy)
    coords = np.stack([yy + dy + scene.pad, xx + dx + scene.pad])
    warp = lambda img: ndi.map_coordinates(img, coords, order=3, mode="nearest")  # noqa: E731
    neuropil = warp(scene.neuropil)
    static = np.stack([warp(s) for s in scene.static[1:]]) if len(scene.static) > 1 else None
    cx, cy = scene.centers.T
    ux, uy = invert(field, cx, cy)
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
    return Scene(pad, scene.frame_shape, neuropil.astype(np.float32),
                  static.astype(np.float32), cells, centers)


class Renderer:
    """Precomputed image-domain and spline-coefficient components of a scene.

    A frame is a linear combination of the static layer, the neuropil (times the neuropil
    factor) and the cell footprints (times their dF/F), so the components are rasterised and
    spline-filtered once and every frame costs one sparse product and one spline evaluation.

    Parameters
    ----------
    scene : Scene

    Attributes
    ----------
    scene : Scene
        The rendered scene.
    grid : (ndarray, ndarray)
        float32 (H, W) row and column coordinates of the frame's pixels.
    """

    def __init__(self, scene: Scene):
        self.scene = scene
        height, width = scene.frame_shape
        pad, shape = scene.pad, scene.neuropil.shape
        frame = (slice(pad, pad + height), slice(pad, pad + width))
        spline = lambda img: ndi.spline_filter(img, 3, output=np.float32)  # noqa: E731
        self.np_img, self.np_coef = scene.neuropil[frame], spline(scene.neuropil)
        self.static_img = scene.static[:, frame[0], frame[1]]
        self.static_coef = np.stack([spline(s) for s in scene.static])
        img_parts, coef_parts = ([], [], []), ([], [], [])
        m = SPLINE_MARGIN
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
