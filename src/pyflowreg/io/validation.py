"""Checks on movie geometry and pixel values, shared by readers and writers."""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "MIN_FRAME_SIZE",
    "check_finite",
    "check_frame_shape",
    "check_movie_shape",
    "check_not_constant",
]

#: Smallest accepted frame height and width in pixels.
MIN_FRAME_SIZE = 2


def check_frame_shape(
    frame_shape: tuple[int, int], *, path: str | os.PathLike[str]
) -> tuple[int, int]:
    """Validate a frame shape (H, W) in pixels and return it as a tuple of ints.

    Raises
    ------
    ValueError
        If it is not two integers or either is smaller than :data:`MIN_FRAME_SIZE`.
    """
    where = os.fspath(path)
    try:
        h, w = (int(n) for n in frame_shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: frame_shape must be (height, width), got {frame_shape!r}"
        ) from exc
    if h < MIN_FRAME_SIZE or w < MIN_FRAME_SIZE:
        raise ValueError(
            f"{where}: frame size {h}x{w} pixels is smaller than the minimum "
            f"{MIN_FRAME_SIZE}x{MIN_FRAME_SIZE}"
        )
    return h, w


def check_movie_shape(
    shape: tuple[int, int, int, int], *, path: str | os.PathLike[str], min_frames: int = 1
) -> tuple[int, int, int, int]:
    """Validate a movie shape (T, H, W, C).

    Parameters
    ----------
    shape : tuple of int
        (frames, height, width, channels).
    path : path-like
        Movie file, named in error messages.
    min_frames : int, default 1
        Minimum number of frames required.

    Raises
    ------
    ValueError
        Too few frames, frames smaller than 2x2 pixels, or no channels.
    """
    where = os.fspath(path)
    t, h, w, c = (int(n) for n in shape)
    if t == 0:
        raise ValueError(f"{where}: movie contains 0 frames")
    if t < min_frames:
        raise ValueError(f"{where}: movie has {t} frames, at least {min_frames} are required")
    check_frame_shape((h, w), path=path)
    if c < 1:
        raise ValueError(f"{where}: movie has no channels")
    return t, h, w, c


def check_finite(batch: np.ndarray, path: str | os.PathLike[str], t0: int = 0) -> None:
    """Raise if a batch of frames holds NaN or infinite values.

    Meant to be called per batch while streaming through a movie, because scanning a
    multi-gigabyte file up front would double the I/O. Integer batches pass at once.

    Parameters
    ----------
    batch : numpy.ndarray
        Frames, (n, H, W, C) or any array whose first axis is time.
    path : path-like
        Movie file the batch came from (named in the message).
    t0 : int, default 0
        Index of the batch's first frame within the movie.

    Raises
    ------
    ValueError
        Naming the file and the movie index of the first frame holding NaN or inf.
    """
    arr = np.asarray(batch)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return
    if arr.ndim == 0:
        arr = arr.reshape(1)
    finite = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1)
    if not finite.all():
        first = int(np.argmin(finite))
        frame = arr[first]
        n_nan = int(np.isnan(frame).sum())
        n_inf = int(np.isinf(frame).sum())
        raise ValueError(
            f"{os.fspath(path)}: frame {t0 + first} contains non-finite values "
            f"({n_nan} NaN, {n_inf} inf pixels)"
        )


def check_not_constant(
    reader, frame_indices, path: str | os.PathLike[str], *, chunk_frames: int = 64
) -> None:
    """Raise if every pixel of the given frames has one value (all-zero, saturated, blank).

    Optical flow compares image structure; against a constant reference there is none, so the
    flow is undefined and any "corrected" movie would be noise. Reading stops at the first
    chunk holding two different values, so for a real recording this costs one chunk.

    Parameters
    ----------
    reader : movie reader
        Open reader with ``read(t0, t1)`` returning (n, H, W, C) frames.
    frame_indices : sequence of int
        Frames to look at (the reference window), sorted.
    path : path-like
        Movie file, named in the message.
    chunk_frames : int, default 64
        Frames read at a time.

    Raises
    ------
    ValueError
        Naming the file, the frames and their single value.
    """
    indices = [int(t) for t in frame_indices]
    if not indices:
        return
    value = None
    t = 0
    while t < len(indices):
        # a run of consecutive frames, at most chunk_frames long
        end = t + 1
        while end < len(indices) and indices[end] == indices[end - 1] + 1 \
                and end - t < chunk_frames:
            end += 1
        frames = np.asarray(reader.read(indices[t], indices[end - 1] + 1))
        low, high = frames.min(), frames.max()
        if low != high or (value is not None and low != value):
            return
        value = low
        t = end
    raise ValueError(
        f"{os.fspath(path)}: frames {indices[0]}-{indices[-1]} (the reference) all have the "
        f"single value {value!r}; the recording has no image structure, so the flow is "
        "undefined (an all-zero or blank recording?)"
    )
