"""Motion correction of one recording against a reference built from it."""

from pyflowreg._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "compensate": ("compensate_recording", "is_complete"),
    "options": ("OFOptions",),
    "reference": ("build_reference", "reference_frame_indices"),
})
