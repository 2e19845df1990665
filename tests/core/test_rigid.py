"""Rigid phase-correlation wrapper follows the flow convention."""

import numpy as np
import pytest
from scipy import ndimage

from pyflowreg.core.rigid import estimate_rigid_shift, rigid_flow, tukey
from pyflowreg.core.warping import imregister_wrapper


@pytest.mark.parametrize("u0, v0", [(-3.5, 2.25), (4.75, -1.5), (0.25, 0.0)])
def test_rigid_subpixel_shift_sign_and_size(u0, v0):
    rng = np.random.default_rng(1)
    scene = ndimage.gaussian_filter(rng.random((160, 160)), 2.0)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    fixed = scene[16:144, 16:144]
    moving = ndimage.map_coordinates(scene, [yy + 16 - v0, xx + 16 - u0], order=3)
    u, v = estimate_rigid_shift(fixed, moving, upsample_factor=20)
    assert abs(u - u0) <= 0.051 and abs(v - v0) <= 0.051
    w = rigid_flow(fixed.shape, u, v)
    registered = imregister_wrapper(moving, w[..., 0], w[..., 1], fixed)
    assert np.abs(registered - fixed)[10:-10, 10:-10].mean() < 2e-3


def test_rigid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must be equal"):
        estimate_rigid_shift(np.zeros((8, 8)), np.zeros((8, 9)))


@pytest.mark.parametrize("n", [1, 2, 3, 64, 127, 256])
@pytest.mark.parametrize("taper", [0.0, 0.1, 0.25, 1.0, 1.5])
def test_tukey_window_equals_scipys(n, taper):
    from scipy.signal.windows import tukey as scipy_tukey

    np.testing.assert_allclose(tukey(n, taper), scipy_tukey(n, taper), rtol=0, atol=1e-15)


@pytest.mark.parametrize("shape", [(96, 96), (81, 110)])
@pytest.mark.parametrize("u0, v0, upsample", [(3.0, -2.0, 1), (-1.75, 0.5, 4), (2.25, 4.75, 4),
                                              (0.5, -0.5, 2), (-3.3, 1.7, 10)])
def test_rigid_recovers_band_limited_shifts_on_its_grid(shape, u0, v0, upsample):
    """Shifts on the 1/upsample grid come back exactly, on even and odd sizes.

    At a step of 0.1 px the taper's pull towards zero (under 0.1 px) can move the peak by one
    step, so there the bound is that step.
    """
    rng = np.random.default_rng(7)
    fixed = ndimage.gaussian_filter(rng.random(shape), 2.0, mode="wrap")
    # moving(y, x) = fixed(y - v0, x - u0), exactly, through the Fourier shift theorem
    moving = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(fixed), (v0, u0))).real
    u, v = estimate_rigid_shift(fixed, moving, upsample_factor=upsample)
    step = 1 / upsample if upsample > 4 else 0.0
    assert (u, v) == pytest.approx((u0, v0), abs=step + 1e-9)
