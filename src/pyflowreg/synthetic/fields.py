"""Static smooth displacement fields: rigid shift plus plane-wave modes, and their inverses.

A :class:`Field` is ``d(x, y) = shift + sum_j vec_j cos(k_j . (x, y) + phase_j)`` (px). It is
the displacement of one frame of a :class:`~pyflowreg.synthetic.SyntheticRecording`, the warp
between the recordings of a session and the warp of an image pair. Frames are rendered by
backward sampling ``observed(q) = scene(q + d(q))``; the registration flow is the inverse
``w(p) = -d(p + w(p))`` (:func:`invert`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "N_MODES",
    "Field",
    "default_wavelength",
    "grid_max_norm",
    "invert",
    "smooth_modes",
    "static_field",
    "zero_field",
]

N_MODES = 4
"""Number of plane-wave modes of every non-rigid field."""


@dataclass(frozen=True)
class Field:
    """Displacement ``d(x, y) = shift + sum_j vec_j cos(k_j . (x, y) + phase_j)`` in px.

    Attributes
    ----------
    shift : ndarray
        (2,) rigid part (dx, dy).
    wavevec : ndarray
        (K, 2) wave vectors (kx, ky), rad/px.
    phase : ndarray
        (K,) phases.
    vec : ndarray
        (K, 2) mode amplitudes (ax, ay), px.
    """

    shift: np.ndarray
    wavevec: np.ndarray
    phase: np.ndarray
    vec: np.ndarray

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


def zero_field() -> Field:
    """The identity warp: no shift and no modes."""
    return Field(np.zeros(2), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)))


def invert(field: Field, x, y, tol: float = 1e-6, max_iter: int = 500):
    """Registration flow ``w(p) = -d(p + w(p))`` at points ``(x, y)``.

    Solved by fixed-point iteration, which converges because the field is a contraction
    (:meth:`Field.gradient_bound` below 1).

    Parameters
    ----------
    field : Field
        The displacement ``d``.
    x, y : array_like
        Points ``p`` (frame coordinates, px).
    tol : float
        Stop when no point moves more than this (px).
    max_iter : int
        Iteration limit.

    Returns
    -------
    wx, wy : ndarray
        Flow components at the points.

    Raises
    ------
    ValueError
        If the field may not be invertible (gradient bound 0.95 or more).
    """
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


def smooth_modes(rng: np.random.Generator, wavelength: float, n_modes: int = N_MODES):
    """Random plane-wave modes: wave vectors (K, 2) rad/px, phases (K,), unit vectors (K, 2).

    Wavelengths are uniform in [0.8, 1.25] x ``wavelength`` px, so features (half a wavelength)
    span 0.4-0.63 x ``wavelength``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draw.
    wavelength : float
        Typical wavelength (px).
    n_modes : int
        Number of modes K.

    Returns
    -------
    wavevec, phase, vec : ndarray
    """
    lengths = wavelength * rng.uniform(0.8, 1.25, n_modes)
    angles = rng.uniform(0, 2 * np.pi, (2, n_modes))
    wavevec = (2 * np.pi / lengths)[:, None] * np.stack([np.cos(angles[0]), np.sin(angles[0])], 1)
    vec = np.stack([np.cos(angles[1]), np.sin(angles[1])], 1)
    return wavevec, rng.uniform(0, 2 * np.pi, n_modes), vec


def default_wavelength(height: int, width: int, amplitude: float) -> float:
    """Mode wavelength (px) of a field of maximum norm ``amplitude`` on a frame.

    Half the image, enlarged when needed so the field stays smooth (``|grad d| <~ 0.35``).
    """
    return max(0.5 * max(height, width), 4 * np.pi * amplitude / 0.7)


def grid_max_norm(wavevec, phase, vec, coeff, height, width, n_points=49) -> float:
    """Largest norm (px) of ``sum_j coeff[t, j] vec_j cos(k_j . q + phase_j)`` over frames.

    Evaluated on an ``n_points`` x ``n_points`` grid over the frame, for every row ``t`` of
    ``coeff`` (T, K); used to scale mode coefficients to a wanted peak.
    """
    y, x = np.meshgrid(np.linspace(0, height - 1, n_points), np.linspace(0, width - 1, n_points))
    basis = np.cos(wavevec @ np.stack([x.ravel(), y.ravel()]) + phase[:, None])  # (K, P)
    best = 0.0
    for start in range(0, len(coeff), 2048):  # bounds the (chunk, P) temporaries
        c = coeff[start : start + 2048]
        norm = np.hypot((c * vec[:, 0]) @ basis, (c * vec[:, 1]) @ basis)
        best = max(best, float(norm.max(initial=0)))
    return best


def static_field(rng, height, width, shift, amplitude, wavelength=None) -> Field:
    """Random smooth field with rigid ``shift`` (dx, dy) and a non-rigid part of max norm
    ``amplitude`` (px) over the frame; ``wavelength`` defaults to :func:`default_wavelength`."""
    wavelength = wavelength or default_wavelength(height, width, amplitude)
    wavevec, phase, vec = smooth_modes(rng, wavelength)
    weights = rng.standard_normal(N_MODES)[None]
    peak = grid_max_norm(wavevec, phase, vec, weights, height, width)
    scale = amplitude / peak if peak > 0 else 0.0
    return Field(np.asarray(shift, float), wavevec, phase, vec * (scale * weights[0])[:, None])
