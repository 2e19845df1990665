"""Numerical core: optical flow, warping and rigid registration, with no file I/O."""

from pyflowreg._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "optical_flow": ("FlowEstimator", "FlowParameters", "get_displacement"),
    "rigid": ("estimate_rigid_shift",),
    "threads": ("set_job_threads", "set_numba_threads"),
    "warping": ("align_sequence", "backward_valid_mask", "compute_batch_valid_masks",
                "imregister_binary", "imregister_wrapper"),
})
