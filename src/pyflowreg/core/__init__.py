"""Numerical core: optical flow, warping and rigid registration, with no file I/O."""

from pyflowreg._lazy import lazy_exports

_EXPORTS = {
    "FlowEstimator": "optical_flow",
    "FlowParameters": "optical_flow",
    "get_displacement": "optical_flow",
    "estimate_rigid_shift": "rigid",
    "set_numba_threads": "threads",
    "align_sequence": "warping",
    "backward_valid_mask": "warping",
    "compute_batch_valid_masks": "warping",
    "imregister_binary": "warping",
    "imregister_wrapper": "warping",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
