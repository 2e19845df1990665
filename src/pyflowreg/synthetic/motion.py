"""Time-varying displacement fields with exact inverses: local deformation, line scan.

A :class:`MotionField` gives the *rendering* displacement of every frame of a recording,
``observed_t(q) = clean_t(q + D_t(q))`` (frame coordinates ``q = (x, y)`` in px), as the sum of

* a rigid trace ``r(t)`` (dx, dy) (see :mod:`pyflowreg.synthetic.traces`);
* smooth wide modes ``sum_k c_k(t) a_k cos(k_k . q + phi_k)``
  (:func:`~pyflowreg.synthetic.fields.smooth_modes`);
* a local field: a cubic B-spline on a control grid of spacing ``h`` whose coefficients
  ``g(t)`` change over time (:func:`local_field`; features of 15-30 px).

Every term is sampled at integer times ``0 .. T`` (one sample more than frames) and linearly
interpolated between them, so the motion is continuous in time. With line scanning, row ``y``
of frame ``t`` is acquired at ``tau = t + line_fraction * y / H`` and sees ``D(tau, q)``:
fast motion bends the frame. The ground-truth registration flow is the inverse
``w_t(p) = -D_t(p + w_t(p))`` (so ``observed_t(p + w_t(p)) = clean_t(p)``), solved by fixed-point
iteration on a grid of step <= 2 px and spline-upsampled (largest error about 3e-3 px with a
local field, far below any flow error worth measuring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.interpolate import RectBivariateSpline

__all__ = ["MAX_CONTRACTION", "LocalField", "MotionField", "local_field"]

MAX_CONTRACTION = 0.9
"""Bound of ``|grad D|`` from which :class:`MotionField` refuses a motion: above it the
fixed-point inverse may not converge."""


@dataclass(frozen=True)
class LocalField:
    """Time-varying cubic B-spline displacement on a control grid.

    Attributes
    ----------
    coef : ndarray
        (T + 1, 2, Gy, Gx) float64 B-spline coefficients (dx, dy) in px at times 0 .. T.
    origin : (float, float)
        Frame coordinates (x, y) of control node [0, 0].
    spacing : float
        Control node spacing (px).
    max_gradient : float
        Largest spatial Jacobian norm over all times, as measured by :func:`local_field`.
    """

    coef: np.ndarray
    origin: tuple[float, float]
    spacing: float
    max_gradient: float = np.inf

    def at(self, t: int, x: np.ndarray, y: np.ndarray):
        """``(dx, dy)`` at integer time ``t`` and points ``(x, y)``."""
        coords = np.stack([(y - self.origin[1]) / self.spacing,
                           (x - self.origin[0]) / self.spacing])
        return tuple(ndi.map_coordinates(self.coef[t, c], coords, order=3, prefilter=False,
                                         mode="nearest") for c in (0, 1))

    def peak(self) -> float:
        """Upper bound of the displacement norm (px): B-spline weights are a partition of unity."""
        return float(np.hypot(self.coef[:, 0], self.coef[:, 1]).max(initial=0))

    def gradient_bound(self) -> float:
        """Bound of the spatial Jacobian's norm over all times (measured value + 10 %).

        The analytic bound from coefficient differences is several times too loose for these
        smooth fields; an inverse that fails to converge is reported by
        :meth:`MotionField.inverse` anyway.
        """
        return 1.1 * self.max_gradient

    def step_bound(self) -> float:
        """Largest change (px) of the field between consecutive integer times."""
        return float(np.abs(np.diff(self.coef, axis=0)).max(initial=0) * np.sqrt(2.0))


def local_field(
    rng: np.random.Generator, height: int, width: int, n_times: int, *, peak: float,
    feature_sigma: float = 6.0, timescale: float = 8.0, reach: float = 16.0,
    spacing: float = 3.0, patches: int = 0, patch_sigma: float = 25.0,
) -> LocalField:
    """Local deformation: Gaussian-filtered noise on a B-spline grid, smooth in time, zero mean.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draw.
    height, width : int
        Frame size; the grid covers the frame plus ``reach`` px on every side.
    n_times : int
        Number of integer time samples (frames + 1).
    peak : float
        Largest displacement norm over space and time (px; measured on a 2-px grid, so it
        may be exceeded by a hair between grid points).
    feature_sigma : float
        Spatial Gaussian sigma (px) of the noise. The field's autocorrelation then has a full
        width at half maximum of 3.3 x sigma: 20 px for the default, i.e. blobs of 15-30 px.
    timescale : float
        Temporal Gaussian sigma (frames) of the coefficient traces.
    reach : float
        Margin (px) around the frame covered by the grid (displacements evaluated outside it
        repeat the edge coefficients).
    spacing : float
        Control node spacing (px).
    patches : int
        0: the deformation fills the frame. Otherwise it is confined to this many patches: the
        noise is multiplied by a sum of Gaussian envelopes (sigma ``patch_sigma`` px, centres
        uniform over the grid) clipped at 1, before the peak is set, so the peak is reached
        inside a patch and most of the frame barely deforms.
    patch_sigma : float
        Gaussian sigma (px) of the patch envelopes.

    Returns
    -------
    LocalField
    """
    gy = int(np.ceil((height - 1 + 2 * reach) / spacing)) + 1
    gx = int(np.ceil((width - 1 + 2 * reach) / spacing)) + 1
    sigmas = (timescale, 0.0, feature_sigma / spacing, feature_sigma / spacing)
    # Filter noise larger than needed and crop, so the field is as strong at the ends of the
    # recording and at the edges of the grid as in the middle (stationary statistics).
    extra = [int(np.ceil(3 * s)) for s in sigmas]
    noise = rng.standard_normal((n_times + 2 * extra[0], 2, gy + 2 * extra[2],
                                 gx + 2 * extra[3]))
    coef = ndi.gaussian_filter(noise, sigmas, mode="nearest")[
        extra[0] : extra[0] + n_times, :, extra[2] : extra[2] + gy, extra[3] : extra[3] + gx]
    if patches:
        centres = rng.uniform((0, 0), (gy, gx), (patches, 2))
        node_y, node_x = np.mgrid[:gy, :gx]
        envelope = sum(np.exp(-((node_y - cy) ** 2 + (node_x - cx) ** 2)
                              / (2 * (patch_sigma / spacing) ** 2)) for cy, cx in centres)
        coef *= np.minimum(envelope, 1.0)
    coef -= coef[:-1].mean(0)  # zero mean over the frames' own samples 0 .. T-1
    field = LocalField(coef, (-reach, -reach), float(spacing))
    # Peak and steepness measured on a 2-px grid over the frame (plus margin) at every time.
    step = 2.0
    yy, xx = np.mgrid[-reach : height + reach : step, -reach : width + reach : step]
    top = steepest = 0.0
    for t in range(n_times):
        dx, dy = field.at(t, xx.astype(float), yy.astype(float))
        top = max(top, float(np.hypot(dx, dy).max(initial=0)))
        jac = [np.gradient(comp, step) for comp in (dx, dy)]  # [[d/dy, d/dx] of dx, of dy]
        frob = np.sqrt(sum(g**2 for row in jac for g in row))
        steepest = max(steepest, float(frob.max(initial=0)))
    scale = peak / top if top > 0 else 0.0
    return LocalField(coef * scale, field.origin, field.spacing, steepest * scale)


@dataclass(frozen=True)
class MotionField:
    """Rendering displacement ``D_t(q)`` of every frame of a recording and its exact inverse.

    Attributes
    ----------
    height, width : int
        Frame size (px); ``height`` sets the line-scan timing.
    rigid : ndarray
        (T + 1, 2) rigid displacement (dx, dy) px at integer times 0 .. T.
    wavevec, phase, vec : ndarray
        Smooth modes (K, 2), (K,), (K, 2) (see :func:`smooth_modes`); K may be 0.
    coeff : ndarray
        (T + 1, K) mode coefficients (px) at integer times.
    local : LocalField or None
        Local deformation.
    line_fraction : float
        Fraction of the frame period spent scanning the rows (0: all rows at once, 1: the last
        row is acquired just before the next frame starts).
    """

    height: int
    width: int
    rigid: np.ndarray
    wavevec: np.ndarray
    phase: np.ndarray
    vec: np.ndarray
    coeff: np.ndarray
    local: LocalField | None = None
    line_fraction: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.line_fraction <= 1.0:
            raise ValueError("line_fraction must lie in [0, 1]")
        if len(self.coeff) != len(self.rigid) or (
                self.local is not None and len(self.local.coef) != len(self.rigid)):
            raise ValueError("every motion term needs T + 1 time samples")
        if self.contraction_bound() >= MAX_CONTRACTION:
            raise ValueError(f"motion not invertible (|grad D| may reach "
                             f"{self.contraction_bound():.2f}): lower the amplitudes")

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return len(self.rigid) - 1

    def peak(self) -> float:
        """Upper bound of ``|D_t(q)|`` over frames and points (px)."""
        modes = np.abs(self.coeff) @ np.ones(len(self.phase)) if len(self.phase) else 0.0
        local = self.local.peak() if self.local is not None else 0.0
        return float(np.hypot(*self.rigid.T).max(initial=0) + np.max(modes, initial=0) + local)

    def contraction_bound(self) -> float:
        """Upper bound of the spectral norm of the Jacobian of ``D_t`` (line-scan included)."""
        k_norm = np.hypot(*self.wavevec.T) if len(self.phase) else np.zeros(0)
        modes = float((np.abs(self.coeff) @ k_norm).max(initial=0))
        local = self.local.gradient_bound() if self.local is not None else 0.0
        if self.line_fraction > 0:
            step = float(np.hypot(*np.diff(self.rigid, axis=0).T).max(initial=0))
            step += float(np.abs(np.diff(self.coeff, axis=0)).sum(1).max(initial=0))
            step += self.local.step_bound() if self.local is not None else 0.0
            modes += self.line_fraction * step / self.height
        return modes + local

    def _at_times(self, times, x, y):
        """``[(dx, dy) for t in times]`` at integer times and points ``(x, y)``."""
        basis = [np.cos(kx * x + ky * y + ph) for (kx, ky), ph in
                 zip(self.wavevec.tolist(), self.phase.tolist(), strict=True)]
        out = []
        for t in times:
            dx = np.full(np.shape(x), self.rigid[t, 0])
            dy = np.full(np.shape(x), self.rigid[t, 1])
            for mode, c, (ax, ay) in zip(basis, self.coeff[t].tolist(), self.vec.tolist(),
                                         strict=True):
                dx += (c * ax) * mode
                dy += (c * ay) * mode
            if self.local is not None:
                lx, ly = self.local.at(t, x, y)
                dx += lx
                dy += ly
            out.append((dx, dy))
        return out

    def displacement(self, t: int, x, y):
        """``D_t`` (dx, dy) float64 at points ``(x, y)`` of frame ``t`` (row time included)."""
        if not 0 <= t < self.n_frames:
            raise ValueError(f"frame {t} outside [0, {self.n_frames})")
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.line_fraction == 0:
            return self._at_times([t], x, y)[0]
        (dx0, dy0), (dx1, dy1) = self._at_times([t, t + 1], x, y)
        alpha = (self.line_fraction / self.height) * y
        return dx0 + alpha * (dx1 - dx0), dy0 + alpha * (dy1 - dy0)

    def inverse(self, t: int, x, y, *, tol: float = 1e-5, max_iter: int = 300):
        """Registration flow ``w_t(p) = -D_t(p + w_t(p))`` (wx, wy) at points ``p = (x, y)``.

        Fixed-point iteration per point until it moves less than ``tol`` px (converged points
        leave the active set, so the cost follows the hardest points only).
        """
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        shape, x, y = x.shape, x.ravel(), y.ravel()
        dx, dy = self.displacement(t, x, y)
        wx, wy = -dx, -dy
        active = np.arange(x.size)
        for _ in range(max_iter):
            dx, dy = self.displacement(t, x[active] + wx[active], y[active] + wy[active])
            change = np.maximum(np.abs(wx[active] + dx), np.abs(wy[active] + dy))
            wx[active], wy[active] = -dx, -dy
            active = active[change >= tol]
            if active.size == 0:
                return wx.reshape(shape), wy.reshape(shape)
        raise RuntimeError(f"inverse of frame {t} did not converge at {active.size} points")

    def flow(self, t: int) -> np.ndarray:
        """Ground-truth flow of frame ``t`` on the pixel grid, (H, W, 2) float32.

        Solved on a grid of step <= 2 px reaching 4 px beyond the frame (so spline end effects
        stay outside) and cubic-spline upsampled: largest error about 3e-3 px with a local
        field (mean < 3e-4 px), < 1e-4 px without; a rigid field is exact.
        """
        step = 2.0 if (self.local is not None or self.line_fraction > 0) else 4.0
        if len(self.phase):
            step = min(step, max(1.0, float(2 * np.pi / np.hypot(*self.wavevec.T).max() // 24)))
        if self.local is None and not len(self.phase) and self.line_fraction == 0:
            step = float(max(self.height, self.width))  # rigid: one value everywhere
        rows, cols = (np.arange(-4.0, n + 3.0 + step, step) for n in (self.height, self.width))
        yy, xx = np.meshgrid(rows, cols, indexing="ij")
        full = (np.arange(self.height, dtype=float), np.arange(self.width, dtype=float))
        return np.stack([RectBivariateSpline(rows, cols, comp, s=0)(*full)
                         for comp in self.inverse(t, xx, yy)], -1).astype(np.float32)
