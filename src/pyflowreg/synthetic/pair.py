"""Image pairs with a known smooth displacement, for tests of the optical-flow engine.

The pair shows the same resting tissue twice: ``fixed`` as it is and ``moving`` through a
static smooth field (:func:`~pyflowreg.synthetic.fields.static_field`), each with its own
noise; ``w_true`` is the field's exact inverse.
"""

from __future__ import annotations

import numpy as np

from pyflowreg.synthetic import streams
from pyflowreg.synthetic.fields import invert, static_field
from pyflowreg.synthetic.recording import add_noise
from pyflowreg.synthetic.scene import Renderer, make_scene, motion_pad

__all__ = ["make_image_pair"]


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
        Wavelength (px) of the non-rigid modes; default as
        :class:`~pyflowreg.synthetic.SyntheticRecording`.
    photons_per_unit, read_noise : float or None, float
        Noise model of :func:`~pyflowreg.synthetic.recording.add_noise`; fixed and moving get
        independent noise.
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
    pad = motion_pad(float(np.hypot(*rigid_shift)), amplitude)
    scene = make_scene(streams.rng(seed, streams.SCENE), (height, width), pad, n_channels)
    renderer = Renderer(scene)
    field = static_field(streams.rng(seed, streams.PAIR), height, width,
                         -np.asarray(rigid_shift, float), amplitude, wavelength)
    yy, xx = renderer.grid
    dff = np.zeros(len(scene.cells), np.float32)
    fixed = add_noise(renderer.clean(1.0, dff), streams.rng(seed, streams.NOISE, 0),
                      photons_per_unit, read_noise)
    moving = add_noise(renderer.warped(1.0, dff, *field(xx, yy)),
                       streams.rng(seed, streams.NOISE, 1), photons_per_unit, read_noise)
    w_true = np.stack(invert(field, xx.astype(float), yy.astype(float)), -1).astype(np.float32)
    if n_channels == 1:
        fixed, moving = fixed[..., 0], moving[..., 0]
    return fixed, moving, w_true
