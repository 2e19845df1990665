"""Backward warping of images and valid masks by displacement fields.

Convention (shared with :func:`pyflowreg.core.optical_flow.get_displacement`): a flow ``w`` of
shape (H, W, 2), ``w[..., 0] = u`` (x, columns) and ``w[..., 1] = v`` (y, rows) in pixels,
registers an image by sampling it at the displaced position:
``registered(y, x) = moving(y + v(y, x), x + u(y, x))``.

A pixel is *valid* when its sample position lies within the pixel centres of the image,
``0 <= x + u <= W - 1`` and ``0 <= y + v <= H - 1``: beyond the last centre there is no data to
interpolate from, on either side. (The algorithm notes write ``[0, W)``; that would count the
half pixel beyond the right/bottom edge as valid but not the one beyond the left/top edge.)
Invalid pixels of a registered image take the reference (``fixed``) value.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pyflowreg.core import interpolation

INTERPOLATION_METHODS = ("cubic", "linear", "nearest")
INVERSE_ITERATIONS = 6  # fixed-point steps of invert_flow: the error shrinks by |grad w| each


def _flow_components(u, v, name: str = "flow") -> tuple[np.ndarray, np.ndarray]:
    u = np.ascontiguousarray(u, dtype=np.float32)
    v = np.ascontiguousarray(v, dtype=np.float32)
    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(
            f"{name}: u and v must be (H, W) arrays of one shape, got {u.shape}, {v.shape}"
        )
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        raise ValueError(f"{name}: displacement contains NaN or infinite values")
    return u, v


def backward_valid_mask(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pixels whose sample position ``(y + v, x + u)`` lies inside the image.

    Parameters
    ----------
    u, v : (H, W) arrays
        Displacement in pixels along x (columns) and y (rows).

    Returns
    -------
    (H, W) bool
        True where ``0 <= x + u <= W - 1`` and ``0 <= y + v <= H - 1``.
    """
    u, v = _flow_components(u, v)
    return _inside(*_sample_positions(u, v))


def _sample_positions(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = u.shape
    ys = np.arange(height, dtype=np.float32)[:, None] + v
    xs = np.arange(width, dtype=np.float32)[None, :] + u
    return ys, xs


def _inside(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    height, width = ys.shape
    return (xs >= 0) & (xs <= width - 1) & (ys >= 0) & (ys <= height - 1)


def imregister_binary(mask: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Warp a binary mask (nearest neighbour) and AND it with the in-bounds mask of the flow.

    Parameters
    ----------
    mask : (H, W) array, non-zero = valid
    u, v : (H, W) displacement in pixels

    Returns
    -------
    (H, W) bool
        ``mask(round(y + v), round(x + u))`` where the sample lies inside the image, else False.
    """
    u, v = _flow_components(u, v)
    mask = np.asarray(mask)
    if mask.shape != u.shape:
        raise ValueError(f"mask has shape {mask.shape} but the flow has shape {u.shape}")
    height, width = u.shape
    ys, xs = _sample_positions(u, v)
    rows = np.clip(np.floor(ys + 0.5).astype(np.int64), 0, height - 1)
    cols = np.clip(np.floor(xs + 0.5).astype(np.int64), 0, width - 1)
    return (mask[rows, cols] != 0) & _inside(ys, xs)


def compute_batch_valid_masks(w: np.ndarray) -> np.ndarray:
    """Valid masks of a batch of flows.

    Parameters
    ----------
    w : (T, H, W, 2) array, pixels; ``w[..., 0] = u``, ``w[..., 1] = v``

    Returns
    -------
    (T, H, W) uint8
        255 where the frame's sample position is inside the image, 0 elsewhere.
    """
    w = np.asarray(w)
    if w.ndim != 4 or w.shape[-1] != 2:
        raise ValueError(f"w must have shape (T, H, W, 2), got {w.shape}")
    masks = np.empty(w.shape[:3], dtype=np.uint8)
    for t in range(w.shape[0]):
        masks[t] = np.where(backward_valid_mask(w[t, ..., 0], w[t, ..., 1]), 255, 0)
    return masks


def _as_hwc(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (H, W, C), got shape {image.shape}")
    return np.ascontiguousarray(image, dtype=np.float32)


def warp_image(
    moving: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    fill: np.ndarray,
    interpolation_method: str = "cubic",
) -> tuple[np.ndarray, np.ndarray]:
    """Warp an (H, W, C) float32 image; return (registered (H, W, C) float32, valid (H, W) bool)."""
    if interpolation_method not in INTERPOLATION_METHODS:
        raise ValueError(
            f"interpolation_method must be one of {INTERPOLATION_METHODS}, "
            f"got {interpolation_method!r}"
        )
    height, width, n_ch = moving.shape
    if interpolation_method == "cubic":
        out = np.empty_like(moving)
        inside = np.empty((height, width), dtype=np.bool_)
        interpolation.warp_cubic(moving, u, v, fill, width - 1, height - 1, out, inside)
        return out, inside
    ys, xs = _sample_positions(u, v)
    inside = _inside(ys, xs)
    order = 1 if interpolation_method == "linear" else 0
    out = np.empty_like(moving)
    for c in range(n_ch):
        out[:, :, c] = ndimage.map_coordinates(
            moving[:, :, c], [ys, xs], order=order, mode="nearest"
        )
    out[~inside] = fill[~inside]
    return out, inside


def invert_flow(w: np.ndarray, iterations: int = INVERSE_ITERATIONS) -> np.ndarray:
    """The flow that undoes ``w``: where ``w`` registers a frame onto the reference, the inverse
    carries the reference into the frame's geometry.

    ``w`` maps p to ``p + w(p)``; its inverse ``z`` satisfies ``z(q) = -w(q + z(q))``, solved by
    fixed-point iteration from ``z = -w`` (it converges where ``|grad w| < 1``, which smooth
    motion fields are). Where ``q + z(q)`` falls outside the frame, ``w`` is taken at ``q``.

    Parameters
    ----------
    w : (H, W, 2) float32, pixels; w[..., 0] = u (x)
    iterations : int
        Fixed-point steps; each warps ``w`` once.

    Returns
    -------
    (H, W, 2) float32

    Examples
    --------
    >>> w = np.zeros((32, 32, 2), np.float32)
    >>> w[..., 0] = 0.5 * np.sin(np.arange(32) / 5.0)  # u varies along x
    >>> z = invert_flow(w)
    >>> back, _ = warp_image(w, z[..., 0], z[..., 1], w)  # w at q + z(q)
    >>> float(np.abs(back + z)[4:-4, 4:-4].max()) < 1e-3
    True
    """
    w = np.asarray(w, dtype=np.float32)
    height, width = w.shape[:2]
    # Each component as its own contiguous plane: the warp then reads and writes whole planes
    # instead of copying the interleaved channels in and out on every step (7.2 -> 5.2 ms at
    # 256², same values).
    planes = [np.ascontiguousarray(w[..., c])[:, :, None] for c in range(2)]
    z_u, z_v = -planes[0][:, :, 0], -planes[1][:, :, 0]
    warped = np.empty((height, width, 1), dtype=np.float32)
    inside = np.empty((height, width), dtype=np.bool_)
    for _ in range(iterations):
        steps = []
        for plane in planes:
            interpolation.warp_cubic(plane, z_u, z_v, plane, width - 1, height - 1, warped, inside)
            steps.append(-warped[:, :, 0])
        z_u, z_v = steps
    return np.stack([z_u, z_v], axis=-1)


def imregister_wrapper(
    moving: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    fixed: np.ndarray,
    interpolation_method: str = "cubic",
) -> np.ndarray:
    """Register ``moving`` by the flow (u, v); pixels sampled outside the image come from ``fixed``.

    Parameters
    ----------
    moving : (H, W) or (H, W, C) array
    u, v : (H, W) arrays, pixels (x and y displacement)
    fixed : array of the same shape as ``moving``: the reference that fills invalid pixels
    interpolation_method : {"cubic", "linear", "nearest"}, default "cubic"

    Returns
    -------
    float32 array, shape of ``moving``: ``moving(y + v, x + u)`` where valid, else ``fixed``.
    """
    u, v = _flow_components(u, v)
    squeeze = np.ndim(moving) == 2
    moving3 = _as_hwc(moving, "moving")
    fixed3 = _as_hwc(fixed, "fixed")
    if moving3.shape != fixed3.shape or moving3.shape[:2] != u.shape:
        raise ValueError(
            f"moving {np.shape(moving)}, fixed {np.shape(fixed)} and flow {u.shape} must agree"
        )
    out, _ = warp_image(moving3, u, v, fixed3, interpolation_method)
    return out[:, :, 0] if squeeze else out


def align_sequence(
    frames: np.ndarray,
    w: np.ndarray,
    reference: np.ndarray,
    interpolation_method: str = "cubic",
) -> np.ndarray:
    """Warp every frame of a sequence into the reference grid.

    Parameters
    ----------
    frames : (T, H, W) or (T, H, W, C) array
    w : (H, W, 2) flow applied to every frame, or (T, H, W, 2) one flow per frame; pixels
    reference : (H, W) or (H, W, C) array filling pixels sampled outside the frame
    interpolation_method : {"cubic", "linear", "nearest"}

    Returns
    -------
    float32 array of the shape of ``frames``.
    """
    frames = np.asarray(frames)
    squeeze = frames.ndim == 3
    frames4 = frames[..., None] if squeeze else frames
    if frames4.ndim != 4:
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, C), got shape {frames.shape}")
    n_frames = frames4.shape[0]
    w = np.asarray(w, dtype=np.float32)
    per_frame = w.ndim == 4
    if w.shape[-1] != 2 or w.shape[-3:-1] != frames4.shape[1:3] or (
        per_frame and w.shape[0] != n_frames
    ):
        raise ValueError(f"w of shape {w.shape} does not fit frames of shape {frames.shape}")
    fill = _as_hwc(reference, "reference")
    if fill.shape != frames4.shape[1:]:
        raise ValueError(f"reference {np.shape(reference)} does not fit frames {frames.shape}")
    out = np.empty(frames4.shape, dtype=np.float32)
    if not per_frame:
        u, v = _flow_components(w[..., 0], w[..., 1])
    for t in range(n_frames):
        if per_frame:
            u, v = _flow_components(w[t, ..., 0], w[t, ..., 1])
        out[t], _ = warp_image(
            np.ascontiguousarray(frames4[t], dtype=np.float32), u, v, fill, interpolation_method
        )
    return out[..., 0] if squeeze else out
