"""Dense variational optical flow between two images (Brox et al. 2004; Flotho et al. 2022).

``get_displacement(fixed, moving)`` returns the flow ``w`` (H, W, 2) for which ``moving`` warped
by ``w`` matches ``fixed``: ``moving(y + v, x + u) ~ fixed(y, x)``, ``w[..., 0] = u`` (x, columns),
``w[..., 1] = v`` (y, rows), in pixels.

The solver runs coarse to fine over a pyramid with downsampling factor ``eta``. At each level the
moving image is warped by the current flow, a normalised motion tensor (gradient constancy by
default) linearises the data term, and the increment is found by red-black SOR with lagged robust
weights (see :mod:`pyflowreg.core.variational`), then 5x5 median filtered and added.

For many frames against one reference, build a :class:`FlowEstimator` once: it keeps the
reference's pyramid, so each frame only pays for its own pyramid and the solve.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np

from pyflowreg.core import interpolation, variational
from pyflowreg.core.median import median_filter_5x5
from pyflowreg.core.threads import use_parallel

SOR_OMEGA = 1.95
MIN_LEVEL_SIZE = 10  # a pyramid level is never smaller than this many pixels along an axis
MIN_IMAGE_SIZE = 4
CONST_ASSUMPTIONS = ("gc", "gray")


@dataclass(frozen=True)
class FlowParameters:
    """Parameters of the variational solver; see :func:`get_displacement` for their meaning."""

    alpha: tuple[float, float] = (1.5, 1.5)
    levels: int = 100
    min_level: int = 0
    eta: float = 0.8
    iterations: int = 50
    update_lag: int = 5
    a_data: float = 0.45
    a_smooth: float = 1.0
    const_assumption: str = "gc"
    median_filter: bool = True  # 5x5 median of each level's increment

    def __post_init__(self) -> None:
        alpha = self.alpha
        try:
            if np.isscalar(alpha):
                alpha = (float(alpha), float(alpha))
            alpha = tuple(float(a) for a in alpha)
        except (TypeError, ValueError):
            alpha = ()
        if len(alpha) != 2 or not all(math.isfinite(a) and a > 0 for a in alpha):
            raise ValueError(
                f"alpha must be one or two positive numbers (x, y), got {self.alpha!r}"
            )
        object.__setattr__(self, "alpha", alpha)
        _require_int(self.levels, "levels", minimum=1)
        _require_int(self.min_level, "min_level", minimum=0)
        _require_int(self.iterations, "iterations", minimum=1)
        _require_int(self.update_lag, "update_lag", minimum=1)
        if not 0.0 < _as_float(self.eta) < 1.0:
            raise ValueError(f"eta must lie in (0, 1), got {self.eta!r}")
        for name in ("a_data", "a_smooth"):
            value = getattr(self, name)
            if not 0.0 < _as_float(value) <= 1.0:
                raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
        if self.const_assumption not in CONST_ASSUMPTIONS:
            raise ValueError(
                f"const_assumption must be one of {CONST_ASSUMPTIONS}, "
                f"got {self.const_assumption!r}"
            )


def _as_float(value) -> float:
    """float(value), or NaN (which fails every range check) for non-numbers."""
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _require_int(value, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def pyramid_shapes(
    height: int, width: int, *, eta: float = 0.8, levels: int = 100
) -> list[tuple[int, int]]:
    """(rows, columns) of every pyramid level, finest (index 0) first.

    Each axis shrinks by ``eta`` per level until one more step would make it smaller than
    ``MIN_LEVEL_SIZE`` pixels; the other axis may keep shrinking, so elongated images get the depth
    their long axis needs. ``levels`` caps the number of levels.
    """
    def depth(n: int) -> int:
        i = 0
        while round(n * eta ** (i + 1)) >= MIN_LEVEL_SIZE:
            i += 1
        return i

    depth_y, depth_x = depth(height), depth(width)
    n_levels = min(max(depth_y, depth_x) + 1, levels)
    return [
        (
            max(1, round(height * eta ** min(i, depth_y))),
            max(1, round(width * eta ** min(i, depth_x))),
        )
        for i in range(n_levels)
    ]


def as_image_channels(image: np.ndarray, name: str) -> np.ndarray:
    """Validate an (H, W) or (H, W, C) real image and return it as contiguous float32 (H, W, C)."""
    array = np.asarray(image)
    if array.dtype.kind not in "fiu" or array.dtype == np.float16:
        raise ValueError(
            f"{name}: unsupported dtype {array.dtype}; expected real integers or float"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"{name}: expected an (H, W) or (H, W, C) image, got shape {array.shape}")
    height, width, n_ch = array.shape
    if height < MIN_IMAGE_SIZE or width < MIN_IMAGE_SIZE or n_ch < 1:
        raise ValueError(
            f"{name}: image of shape {array.shape} is too small; need at least "
            f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels and one channel"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def channel_weights(weight, n_channels: int) -> np.ndarray:
    """Per-channel data-term weights normalised to sum 1 (equal when ``weight`` is None)."""
    if weight is None:
        return np.full(n_channels, 1.0 / n_channels, dtype=np.float32)
    w = np.atleast_1d(np.asarray(weight, dtype=np.float64))
    if w.shape != (n_channels,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"weight must be {n_channels} non-negative numbers with a positive sum, got {weight!r}"
        )
    return (w / w.sum()).astype(np.float32)


def _antialias_sigma(n_full: int, n_level: int) -> float:
    scale = n_level / n_full
    return max(0.0, (1.0 / scale - 1.0) / 2.0)


class FlowEstimator:
    """Optical flow of many moving images against one fixed image.

    Parameters
    ----------
    fixed : (H, W) or (H, W, C) array
        The reference image, already pre-filtered and normalised like the moving images.
    params : FlowParameters
    weight : sequence of C floats, optional
        Channel weights of the data term (normalised to sum 1; default equal).
    """

    def __init__(self, fixed: np.ndarray, params: FlowParameters | None = None, weight=None):
        self.params = params or FlowParameters()
        self.fixed = as_image_channels(fixed, "fixed")
        height, width, n_ch = self.fixed.shape
        self.channel_weights = channel_weights(weight, n_ch)
        self.shapes = pyramid_shapes(
            height, width, eta=self.params.eta, levels=self.params.levels
        )
        self.max_level = len(self.shapes) - 1
        self.min_level = min(self.params.min_level, self.max_level)
        self.fixed_pyramid = self._pyramid(self.fixed)

    def _pyramid(self, image: np.ndarray, top: int | None = None) -> dict[int, np.ndarray]:
        height, width, n_ch = image.shape
        planes = [np.ascontiguousarray(image[:, :, c]) for c in range(n_ch)]
        levels = {}
        for i in range(self.min_level, (self.max_level if top is None else top) + 1):
            h, w = self.shapes[i]
            sigma = (_antialias_sigma(height, h), _antialias_sigma(width, w))
            levels[i] = np.stack(
                [interpolation.resize_2d(plane, (h, w), sigma) for plane in planes], axis=-1
            )
        return levels

    def estimate(self, moving: np.ndarray, uv: np.ndarray | None = None, *,
                 prior: np.ndarray | None = None, top_level: int | None = None) -> np.ndarray:
        """Flow (H, W, 2) float32 registering ``moving`` onto the fixed image.

        ``uv`` is an optional initial flow (H, W, 2) in pixels, same convention.

        ``prior`` (H, W, 2), optional: the smoothness term penalises the gradient of the flow's
        difference from it instead of the flow's own, so the solution is pulled towards the
        prior rather than towards a flat field (see :func:`refinement_parameters`).

        ``top_level``: start at this pyramid level instead of the coarsest (with a good ``uv``
        the coarse levels have nothing left to find).
        """
        moving = as_image_channels(moving, "moving")
        if moving.shape != self.fixed.shape:
            raise ValueError(
                f"moving has shape {moving.shape[:2]} with {moving.shape[2]} channel(s) but fixed "
                f"has {self.fixed.shape[:2]} with {self.fixed.shape[2]}; they must match"
            )
        height, width, _ = self.fixed.shape
        uv, prior = (_checked_flow(flow, name, (height, width))
                     for flow, name in ((uv, "uv"), (prior, "prior")))
        p = self.params
        top = self.max_level if top_level is None \
            else max(self.min_level, min(top_level, self.max_level))
        moving_pyramid = self._pyramid(moving, top)
        top_h, top_w = self.shapes[top]
        if uv is None:
            u = np.zeros((top_h, top_w), dtype=np.float32)
            v = np.zeros((top_h, top_w), dtype=np.float32)
        else:
            sigma = (_antialias_sigma(height, top_h), _antialias_sigma(width, top_w))
            u = interpolation.resize_2d(np.ascontiguousarray(uv[..., 0]), (top_h, top_w), sigma)
            v = interpolation.resize_2d(np.ascontiguousarray(uv[..., 1]), (top_h, top_w), sigma)

        for level in range(top, self.min_level - 1, -1):
            h, w = self.shapes[level]
            if u.shape != (h, w):
                u = interpolation.resize_2d(u, (h, w))
                v = interpolation.resize_2d(v, (h, w))
            spacing_x, spacing_y = width / w, height / h
            scale = p.eta ** (-level / 2.0) if level > self.min_level else 1.0
            prior_u, prior_v = _level_prior(prior, (h, w))
            du, dv = self._solve_level(
                self.fixed_pyramid[level], moving_pyramid[level],
                u / spacing_x, v / spacing_y, p.alpha[0] * scale, p.alpha[1] * scale,
                (u - prior_u) / spacing_x, (v - prior_v) / spacing_y,
            )
            u = u + du * spacing_x
            v = v + dv * spacing_y

        if u.shape != (height, width):
            u = interpolation.resize_2d(u, (height, width))
            v = interpolation.resize_2d(v, (height, width))
        return np.stack([u, v], axis=-1).astype(np.float32, copy=False)

    def _solve_level(self, fixed_level, moving_level, u_px, v_px, alpha_x, alpha_y,
                     smooth_u_px, smooth_v_px):
        # u_px, v_px: current flow in this level's pixels; returns the increment in the same units.
        # smooth_u_px, smooth_v_px: what the smoothness term sees (the flow minus the prior).
        p = self.params
        h, w, n_ch = fixed_level.shape
        u_px = np.ascontiguousarray(u_px, dtype=np.float32)
        v_px = np.ascontiguousarray(v_px, dtype=np.float32)
        warped = np.empty_like(moving_level)
        inside = np.empty((h, w), dtype=np.bool_)
        interpolation.warp_cubic(
            moving_level, u_px, v_px, fixed_level, w - 1, h - 1, warped, inside
        )
        tensor = np.empty((n_ch, variational.N_TENSOR, h, w), dtype=np.float32)
        variational.motion_tensor(
            fixed_level, warped, inside, p.const_assumption == "gc", tensor
        )
        u_pad, v_pad, du, dv, *work = _level_workspace(h, w, n_ch)
        u_pad[1:-1, 1:-1] = smooth_u_px
        v_pad[1:-1, 1:-1] = smooth_v_px
        solve = (
            variational.solve_level_parallel if use_parallel(h * w)
            else variational.solve_level_serial
        )
        solve(
            tensor, self.channel_weights, u_pad, v_pad, du, dv,
            float(alpha_x), float(alpha_y), float(p.a_data), float(p.a_smooth),
            SOR_OMEGA, int(p.iterations), int(p.update_lag), *work,
        )
        du = np.ascontiguousarray(du[1:-1, 1:-1])
        dv = np.ascontiguousarray(dv[1:-1, 1:-1])
        if p.median_filter and h > 5 and w > 5:
            du_f = np.empty_like(du)
            dv_f = np.empty_like(dv)
            median_filter_5x5(du, du_f)
            median_filter_5x5(dv, dv_f)
            du, dv = du_f, dv_f
        return du, dv


# Padded (H + 2, W + 2) float32 arrays of _solve_level: u, v, du, dv, w_east, w_south, psi_s.
_N_PADDED_ARRAYS = 7
_workspace = threading.local()


def _level_workspace(h: int, w: int, n_ch: int) -> list[np.ndarray]:
    """The arrays of one level, from a buffer the calling thread keeps between calls.

    Allocating and zeroing the solver's arrays per level cost about a tenth of an estimate. Each
    thread (frames run on several) keeps one buffer, sized for the largest level it has seen,
    and takes contiguous views of it: the padded arrays (``_N_PADDED_ARRAYS``), the
    column-split arrays and the split tensor (see :mod:`pyflowreg.core.variational`), and the
    float32 and int32 scratch. The one-pixel border of every padded array is zeroed here (the
    smoothness weights across the domain border must be zero; one compiled pass, not four
    slice assignments per array); the solver writes everything else before it reads it.
    """
    k = variational.split_width(w)
    n_padded = (h + 2) * (w + 2)
    n_split = (h + 2) * 2 * k
    sizes = (
        _N_PADDED_ARRAYS * n_padded,
        variational.N_SPLIT * n_split,
        n_ch * variational.N_TENSOR * n_split,
        2 * n_split,
    )
    n_floats = sum(sizes)
    floats = getattr(_workspace, "floats", None)
    if floats is None or floats.size < n_floats:
        floats = _workspace.floats = np.empty(n_floats, dtype=np.float32)
    ints = getattr(_workspace, "ints", None)
    if ints is None or ints.size < n_split:
        ints = _workspace.ints = np.empty(n_split, dtype=np.int32)
    ends = np.cumsum(sizes)
    padded = floats[: ends[0]].reshape(_N_PADDED_ARRAYS, h + 2, w + 2)
    variational.clear_borders(padded)
    split = floats[ends[0] : ends[1]].reshape(variational.N_SPLIT, h + 2, 2, k)
    tensor_split = floats[ends[1] : ends[2]].reshape(n_ch, variational.N_TENSOR, h + 2, 2, k)
    scratch_f = floats[ends[2] : ends[3]].reshape(2 * (h + 2), 2 * k)
    scratch_i = ints[:n_split].reshape(h + 2, 2 * k)
    return [*padded, split, tensor_split, scratch_f, scratch_i]


def _checked_flow(flow, name: str, shape: tuple[int, int]) -> np.ndarray | None:
    if flow is None:
        return None
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape != (*shape, 2):
        raise ValueError(f"{name} must have shape {(*shape, 2)}, got {flow.shape}")
    if not np.isfinite(flow).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return flow


def _level_prior(prior, shape):
    """The prior's (u, v) at a level's size, in full-resolution pixels (zeros without one).

    No anti-aliasing: the prior is a regularised, temporally filtered field, already smooth.
    """
    if prior is None:
        return np.float32(0.0), np.float32(0.0)
    return tuple(interpolation.resize_2d(np.ascontiguousarray(prior[..., c]), shape)
                 for c in (0, 1))


# Refinement pass (see refinement_parameters), measured on benchmarks/accuracy.py: alpha x 4-16
# all help, x 8 was best on average; starting 2 levels above the final one is as good as the
# whole pyramid and leaving out the median filter costs < 0.002 px.
REFINE_ALPHA_FACTOR = 8.0
REFINE_LEVELS = 2
# A first pass that a refinement follows stops this many levels above the final one: its finest
# level costs about a third of it, and what it finds there the refinement re-estimates. Measured
# (docs/method.md): Stage 1 11-19 % less CPU; real tissue 5 % and smooth and jitter 1-4 %
# more accurate, local deformation 2-4 % less.
FIRST_PASS_LEVELS_ABOVE_FINAL = 1


def first_pass_parameters(params: FlowParameters) -> FlowParameters:
    """Parameters of the first pass that a refinement with ``refinement_parameters(params)``
    follows: the same, stopping ``FIRST_PASS_LEVELS_ABOVE_FINAL`` levels above the final one."""
    return dataclasses.replace(params, min_level=params.min_level + FIRST_PASS_LEVELS_ABOVE_FINAL)


def refinement_parameters(params: FlowParameters) -> tuple[FlowParameters, int]:
    """Parameters and start level of the refinement pass that follows a pass with ``params``.

    The refinement re-estimates a frame's flow from its temporally filtered first estimate
    ``p`` (``uv=p, prior=p``): the smoothness then pulls towards ``p`` instead of towards a flat
    field, so the data can undo the shrinkage that strong regularisation of noisy frames leaves
    in the first estimate, while ``REFINE_ALPHA_FACTOR`` times the smoothness weight keeps the
    frame's own noise out (and makes the median filter unnecessary).
    """
    refined = dataclasses.replace(
        params, alpha=tuple(a * REFINE_ALPHA_FACTOR for a in params.alpha),
        iterations=max(10, params.iterations // 2), median_filter=False,
    )
    return refined, params.min_level + REFINE_LEVELS


def get_displacement(
    fixed: np.ndarray,
    moving: np.ndarray,
    *,
    alpha: float | tuple[float, float] = (1.5, 1.5),
    weight=None,
    levels: int = 100,
    min_level: int = 0,
    eta: float = 0.8,
    iterations: int = 50,
    update_lag: int = 5,
    a_data: float = 0.45,
    a_smooth: float = 1.0,
    const_assumption: str = "gc",
    uv: np.ndarray | None = None,
) -> np.ndarray:
    """Dense optical flow that registers ``moving`` onto ``fixed``.

    Parameters
    ----------
    fixed, moving : (H, W) or (H, W, C) real arrays
        Images of the same shape, pre-filtered and normalised (typically to [0, 1]) by the caller.
        Converted to float32. At least 4x4 pixels; NaN or inf is an error.
    alpha : float or (alpha_x, alpha_y), default (1.5, 1.5)
        Smoothness weight along x and y (dimensionless, > 0). Larger gives smoother flow.
    weight : sequence of C floats, optional
        Data-term weight of each channel, normalised to sum 1. Default: equal weights.
    levels : int, default 100
        Maximum number of pyramid levels (the pyramid stops when an axis would drop below 10 px).
    min_level : int, default 0
        Finest level solved; the flow of that level is resized (cubic) to full size. 0 solves at
        full resolution; Stage 1's presets use quality 1, balanced 1, fast 3. Clamped to the
        coarsest level.
    eta : float, default 0.8
        Downsampling factor between successive levels, in (0, 1).
    iterations : int, default 50
        SOR sweeps per level.
    update_lag : int, default 5
        Sweeps between recomputations of the non-linear (robust) weights.
    a_data : float, default 0.45
        Exponent of the generalised Charbonnier penalty of the data term, in (0, 1].
    a_smooth : float, default 1.0
        Exponent of the smoothness penalty, in (0, 1]; 1 gives quadratic (homogeneous) smoothness.
    const_assumption : {"gc", "gray"}, default "gc"
        Gradient constancy or brightness constancy data term.
    uv : (H, W, 2) array, optional
        Initial flow in pixels (same convention as the result).

    Returns
    -------
    w : (H, W, 2) float32
        Flow in pixels; ``w[..., 0] = u`` (x), ``w[..., 1] = v`` (y), such that
        ``moving(y + v, x + u) ~ fixed(y, x)``.

    Raises
    ------
    ValueError
        On shape mismatch, NaN/inf, images smaller than 4x4, unsupported dtype or bad parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from pyflowreg.core.optical_flow import get_displacement
    >>> rng = np.random.default_rng(0)
    >>> fixed = rng.random((64, 64)).astype(np.float32)
    >>> get_displacement(fixed, fixed).shape
    (64, 64, 2)
    """
    params = FlowParameters(
        alpha=alpha, levels=levels, min_level=min_level, eta=eta, iterations=iterations,
        update_lag=update_lag, a_data=a_data, a_smooth=a_smooth,
        const_assumption=const_assumption,
    )
    fixed_arr = as_image_channels(fixed, "fixed")
    moving_arr = as_image_channels(moving, "moving")
    if fixed_arr.shape != moving_arr.shape:
        raise ValueError(
            f"fixed has shape {np.shape(fixed)} but moving has shape {np.shape(moving)}; "
            "they must match"
        )
    return FlowEstimator(fixed_arr, params, weight=weight).estimate(moving_arr, uv=uv)
