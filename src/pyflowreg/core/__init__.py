"""Numerical core: optical flow, warping and rigid registration, with no file I/O."""
