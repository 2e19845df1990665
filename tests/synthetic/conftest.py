"""Helpers of the generator tests."""

import numpy as np
import pytest
from scipy import ndimage as ndi


@pytest.fixture(scope="session")
def warp_backward():
    """``warp(image, flow)``: ``registered(y, x) = image(y + v, x + u)``, cubic spline."""

    def warp(image, flow):
        height, width = image.shape
        yy, xx = np.mgrid[:height, :width].astype(float)
        return ndi.map_coordinates(image, [yy + flow[..., 1], xx + flow[..., 0]], order=3,
                                   mode="nearest")

    return warp
