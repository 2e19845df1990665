"""Motion correction of one recording against a reference built from it."""

from pyflowreg._lazy import lazy_exports

_EXPORTS = {
    "OFOptions": "options",
    "build_reference": "reference",
    "compensate_recording": "compensate",
    "is_complete": "compensate",
    "reference_frame_indices": "reference",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
