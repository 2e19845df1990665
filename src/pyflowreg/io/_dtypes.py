"""Dtype policy for movies: which pixel types are accepted and how frames are cast.

Policy
------
* Accepted pixel types are all signed and unsigned integers (8 to 64 bit) and the
  floating-point types float32 and float64.
* float16 is accepted when *reading* and is returned as float32 (lossless upcast, because
  neither MATLAB nor most numerical code handles half precision). Writers store float16
  input as float32 for the same reason.
* Everything else is rejected with a ``ValueError`` naming the dtype: bool (masks are
  not movies), complex, extended precision (float96/float128), strings, bytes,
  objects, datetimes and structured (void) types.
* Non-native byte order is converted to native byte order on read.
"""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

__all__ = ["cast_frames", "movie_dtype", "is_supported_dtype"]

_FLOAT_OK = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(path: str | os.PathLike[str] | None) -> str:
    return f"{os.fspath(path)}: " if path is not None else ""


def movie_dtype(dtype: npt.DTypeLike, *, path: str | os.PathLike[str] | None = None) -> np.dtype:
    """Return the in-memory dtype used for a movie stored with ``dtype``.

    Parameters
    ----------
    dtype : dtype-like
        Pixel type as stored in a file (any byte order) or requested for a writer.
    path : path-like, optional
        File the dtype belongs to; named in the error message.

    Returns
    -------
    numpy.dtype
        Native-byte-order dtype: the same type for integers, float32 and float64;
        float32 for float16.

    Raises
    ------
    ValueError
        If the dtype is not a supported movie pixel type (see module docstring).
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"{_describe(path)}{dtype!r} is not a valid numpy dtype") from exc
    if dt.kind in "ui" and dt.fields is None:
        return dt.newbyteorder("=")
    if dt.kind == "f":
        native = dt.newbyteorder("=")
        if native == np.float16:
            return np.dtype(np.float32)
        if native in _FLOAT_OK:
            return native
        raise ValueError(
            f"{_describe(path)}unsupported pixel dtype {dt} (extended precision); "
            "use float32 or float64"
        )
    kinds = {
        "b": "boolean",
        "c": "complex",
        "O": "object",
        "U": "unicode string",
        "S": "byte string",
        "V": "structured/void",
        "M": "datetime",
        "m": "timedelta",
    }
    what = kinds.get(dt.kind, "non-numeric")
    raise ValueError(
        f"{_describe(path)}unsupported pixel dtype {dt} ({what}); movies must be stored as "
        "integers or float32/float64"
    )


def is_supported_dtype(dtype: npt.DTypeLike) -> bool:
    """Return True when :func:`movie_dtype` accepts ``dtype``."""
    try:
        movie_dtype(dtype)
    except ValueError:
        return False
    return True


def cast_frames(
    frames: np.ndarray,
    dtype: npt.DTypeLike,
    *,
    path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Convert frames to a storage dtype the way writers do.

    Integer targets: floating-point input is rounded to the nearest integer and clipped
    to the target range; integer input is clipped to the target range. NaN or infinite
    input cannot be represented and raises. Floating-point targets: plain ``astype``.
    No copy is made when the dtype already matches.

    Parameters
    ----------
    frames : numpy.ndarray
        Pixel data of any shape and numeric dtype.
    dtype : dtype-like
        Target (storage) dtype; must be a supported movie dtype.
    path : path-like, optional
        Output file, named in error messages.

    Returns
    -------
    numpy.ndarray
        Array with ``dtype`` and the shape of ``frames``.

    Raises
    ------
    ValueError
        If ``frames`` is not numeric, or holds NaN/inf for an integer target.
    """
    target = np.dtype(dtype)
    arr = np.asarray(frames)
    if arr.dtype == target:
        return arr
    if arr.dtype.kind not in "uif":
        raise ValueError(f"{_describe(path)}cannot write frames of dtype {arr.dtype}")
    if target.kind == "f":
        return arr.astype(target)
    info = np.iinfo(target)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(
                f"{_describe(path)}frames contain NaN or infinite values, which cannot be "
                f"stored as {target}"
            )
        wide = arr.astype(np.float64) if target.itemsize >= 4 else arr
        return np.clip(np.rint(wide), info.min, info.max).astype(target)
    if np.can_cast(arr.dtype, target, casting="safe"):
        return arr.astype(target)
    src = np.iinfo(arr.dtype)
    lo, hi = max(info.min, src.min), min(info.max, src.max)
    return np.clip(arr, lo, hi).astype(target)
