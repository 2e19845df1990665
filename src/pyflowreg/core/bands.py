"""The wide part of a flow's non-rigid deformation, and the gain that undoes its shrinkage.

A variational flow of a noisy frame underestimates wide deformation: where photon noise
inflates the gradient normaliser and the robust data term down-weights noisy residuals, even a
small smoothness weight outweighs the data term, and the temporal filter and the refinement
keep what is left (dim wide deformation, 10 photons per unit: 87 % of the true non-rigid part,
``docs/method.md``). The shrinkage of the wide band can be measured by simulation
(:mod:`pyflowreg.motion_correction.band_gain`) and undone by one gain per recording.

The wide band is the non-rigid part (the field minus its spatial mean) smoothed by a Gaussian
of ``LOW_BAND_SIGMA_PX``, computed separably through a grid of ``sigma`` spacing: the
Gaussian-weighted means at the grid nodes, linearly interpolated back. That is a few small
matrix products (0.2 ms per 256 x 256 field) instead of a 97-tap convolution per axis; the band
only has to be the same operator wherever it is measured and applied.

Fields are (H, W, 2) float32 in pixels, ``w[..., 0] = u`` (x), ``w[..., 1] = v`` (y).
"""

from __future__ import annotations

import numpy as np

LOW_BAND_SIGMA_PX = 16.0
TRUNCATE = 3.0  # Gaussian weights beyond this many sigmas are left out


def _axis_factors(n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(means, interpolate)``: (m, n) Gaussian means at nodes every ``sigma`` px, and the
    (n, m) linear interpolation back; their product smooths one axis.

    Weights are renormalised where the Gaussian runs past either end, so a constant stays
    constant up to the border.
    """
    nodes = np.linspace(0.0, n - 1.0, max(2, int(np.ceil((n - 1) / sigma)) + 1))
    offsets = np.arange(n)[None, :] - nodes[:, None]
    means = np.exp(-0.5 * (offsets / sigma) ** 2)
    means[np.abs(offsets) > TRUNCATE * sigma] = 0.0
    means /= means.sum(axis=1, keepdims=True)
    position = np.interp(np.arange(n), nodes, np.arange(nodes.size))
    lower = np.minimum(np.floor(position).astype(int), nodes.size - 2)
    upper_share = position - lower
    interpolate = np.zeros((n, nodes.size))
    interpolate[np.arange(n), lower] = 1.0 - upper_share
    interpolate[np.arange(n), lower + 1] = upper_share
    return means.astype(np.float32), interpolate.astype(np.float32)


class LowBand:
    """The wide band of (H, W, 2) fields of one frame size (see the module docstring)."""

    def __init__(self, height: int, width: int, sigma_px: float = LOW_BAND_SIGMA_PX):
        self.shape = (height, width)
        self.sigma_px = float(sigma_px)
        row_means, self._row_interpolate = _axis_factors(height, self.sigma_px)
        # A last row of 1 / H gives the column means, and from them the field's mean, in the
        # same product (numpy's own mean over two axes costs several times the whole band).
        self._row_means = np.vstack([row_means, np.full((1, height), 1.0 / height, np.float32)])
        col_means, col_interpolate = _axis_factors(width, self.sigma_px)
        self._col_means_t, self._col_interpolate_t = col_means.T.copy(), col_interpolate.T.copy()
        # Each node's share of the interpolated field's mean, per axis: the band's mean is
        # taken off on the nodes, so the band leaves the rigid part alone.
        self._row_share = self._row_interpolate.mean(axis=0)
        self._col_share = col_interpolate.mean(axis=0)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """The wide band of the non-rigid part of ``w``: (H, W, 2) float32."""
        w = np.ascontiguousarray(w, dtype=np.float32)
        height, width = self.shape
        if w.shape != (height, width, 2):
            raise ValueError(f"field of shape {w.shape}, this band is for {(height, width, 2)}")
        # Both components in one product per axis: rows act on the (H, 2 W) view, columns on
        # (component, node row) pairs.
        rows = (self._row_means @ w.reshape(height, 2 * width)).reshape(-1, width, 2)
        mean = rows[-1].mean(axis=0)
        nodes = rows[:-1].transpose(0, 2, 1) @ self._col_means_t  # (m_rows, 2, m_cols)
        nodes -= mean[None, :, None]
        nodes -= np.einsum("i,icj,j->c", self._row_share, nodes, self._col_share)[None, :, None]
        back = (nodes @ self._col_interpolate_t).transpose(0, 2, 1)  # (m_rows, W, 2)
        return (self._row_interpolate @ back.reshape(back.shape[0], 2 * width)).reshape(w.shape)

    def scaled(self, w: np.ndarray, gain: float) -> np.ndarray:
        """``w`` with its wide non-rigid band multiplied by ``gain``: (H, W, 2) float32."""
        w = np.asarray(w, dtype=np.float32)
        if gain == 1.0:
            return w
        band = self(w)
        band *= np.float32(gain - 1.0)
        band += w
        return band


def wide_band_gain(truth, estimates, band: LowBand, margin: int) -> tuple[float, float, float]:
    """The gain that brings the wide band of the estimates closest to that of ``truth``.

    ``truth`` is an (N, H, W, 2) sequence of a simulation, the fields its frames were moved by
    (the recording's own estimated fields); ``estimates`` holds one or more (N, H, W, 2)
    sequences, what the same estimation made of those frames under different noise draws. With
    ``e = k t + n`` in the wide band (``k`` the shrinkage, ``n`` what the estimate gets wrong
    independently of ``t``) and ``t`` itself an estimate of the recording's true band ``T``
    (``t = k T + n'``, ``var n' = var n``), the gain that minimises the mean squared error of
    ``g t`` against ``T`` is ``(1 / k) (1 - var n / var t)``: it undoes the shrinkage as far as
    the noise allows. Pixels within ``margin`` of the border are left out (there the flow is
    extrapolated).

    Returns ``(gain, k, var n / var t)``; the gain is 1 where the truth has no wide band.
    """
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    t = np.stack([band(w)[inner] for w in truth])
    e = np.stack([np.stack([band(w)[inner] for w in estimate]) for estimate in estimates])
    power = float(np.sum(t * t)) * len(e)
    if power <= 0:
        return 1.0, 1.0, 0.0
    k = float(np.sum(e * t)) / power
    noise_ratio = float(np.sum((e - k * t) ** 2)) / power
    if k <= 0:
        return 1.0, k, noise_ratio
    return max(0.0, 1.0 - noise_ratio) / k, k, noise_ratio
