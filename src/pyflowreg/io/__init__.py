"""Readers and writers for movies (TIFF, HDF5, NPY) in (T, H, W, C) layout."""
