"""Numerical core: optical flow, warping and rigid registration, with no file I/O."""

from pyflowreg.core.optical_flow import FlowEstimator, FlowParameters, get_displacement
from pyflowreg.core.rigid import estimate_rigid_shift
from pyflowreg.core.threads import set_numba_threads
from pyflowreg.core.warping import (
    align_sequence,
    backward_valid_mask,
    compute_batch_valid_masks,
    imregister_binary,
    imregister_wrapper,
)

__all__ = [
    "FlowEstimator",
    "FlowParameters",
    "align_sequence",
    "backward_valid_mask",
    "compute_batch_valid_masks",
    "estimate_rigid_shift",
    "get_displacement",
    "imregister_binary",
    "imregister_wrapper",
    "set_numba_threads",
]
