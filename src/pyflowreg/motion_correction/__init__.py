"""Motion correction of one recording against a reference built from it."""

from pyflowreg.motion_correction.compensate import compensate_recording, is_complete
from pyflowreg.motion_correction.options import OFOptions
from pyflowreg.motion_correction.reference import build_reference, reference_frame_indices

__all__ = [
    "OFOptions",
    "build_reference",
    "compensate_recording",
    "is_complete",
    "reference_frame_indices",
]
