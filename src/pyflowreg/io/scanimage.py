"""ScanImage TIFF support: find the page interleaving and undo it.

ScanImage stores every saved channel of every frame as its own TIFF page, in acquisition
order: for each time point (volume), for each z-plane (fast-z volumes only), for each
saved channel. A file with channels 1 and 2 saved thus holds pages
``t0c1, t0c2, t1c1, t1c2, ...``. The number of saved channels is read from

* ``SI.hChannels.channelSave`` (ScanImage 2015 and later; from tifffile's
  ``scanimage_metadata`` or the per-page Software / ImageDescription text),
* ``scanimage.SI4.channelsSave`` / ``scanimage.SI5.channelsSave`` (ScanImage 4/5),
* ``state.acq.numberOfChannelsSave`` (ScanImage 3).

Fast-z volumes (``SI.hFastZ.enable`` or ``SI.hStackManager.stackMode = 'fast'`` with
``numSlices`` > 1) are exposed with a Z axis so that one plane can be selected with
``plane=``. Slow stacks and multi-ROI (mROI) layouts are not interpreted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ScanImageLayout", "deinterleave_pages", "parse_scanimage_text", "scanimage_layout"]

_LINE_RE = re.compile(
    r"^\s*(?:scanimage\.)?(?P<key>(?:SI\d?|state)\.[\w.]+)\s*=\s*(?P<value>.*?)\s*;?\s*$"
)
_NUMBER_RE = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def _parse_value(text: str) -> Any:
    """Parse a MATLAB-style scalar, logical, string or numeric vector."""
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if text.startswith("[") and text.endswith("]"):
        return [
            float(x) if "." in x or "e" in x.lower() else int(x) for x in _NUMBER_RE.findall(text)
        ]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_scanimage_text(text: str) -> dict[str, Any]:
    """Parse ``key = value`` lines of ScanImage metadata text into a dict.

    Keys keep their ScanImage spelling without a leading ``scanimage.`` (e.g.
    ``'SI.hChannels.channelSave'``, ``'SI4.channelsSave'``,
    ``'state.acq.numberOfChannelsSave'``). Lines that are not settings are skipped.
    """
    out: dict[str, Any] = {}
    for line in text.replace("\r", "\n").split("\n"):
        m = _LINE_RE.match(line)
        if m:
            out[m.group("key")] = _parse_value(m.group("value"))
    return out


@dataclass(frozen=True)
class ScanImageLayout:
    """Page interleaving of a ScanImage file: pages run over (time, plane, channel)."""

    n_channels: int
    n_planes: int = 1


def _count(value: Any) -> int:
    if isinstance(value, (list, tuple, np.ndarray)):
        return max(int(np.asarray(value).size), 1)
    return 1


def _lookup(settings: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        for prefix in ("", "scanimage."):
            if prefix + name in settings:
                return settings[prefix + name]
    return None


def scanimage_layout(settings: Mapping[str, Any]) -> ScanImageLayout | None:
    """Derive channel and plane counts from ScanImage settings.

    Parameters
    ----------
    settings : mapping
        ScanImage settings, e.g. tifffile's ``scanimage_metadata['FrameData']`` or the
        output of :func:`parse_scanimage_text`.

    Returns
    -------
    ScanImageLayout or None
        None when no saved-channel setting is present.
    """
    save = _lookup(settings, "SI.hChannels.channelSave", "SI5.channelsSave", "SI4.channelsSave")
    if save is not None:
        n_channels = _count(save)
    else:
        n3 = _lookup(settings, "state.acq.numberOfChannelsSave")
        if n3 is None:
            return None
        n_channels = int(n3)
    fast = bool(_lookup(settings, "SI.hFastZ.enable"))
    mode = _lookup(settings, "SI.hStackManager.stackMode")
    if (
        isinstance(mode, str)
        and mode.lower() == "fast"
        and _lookup(settings, "SI.hStackManager.enable")
    ):
        fast = True
    n_planes = 1
    if fast:
        slices = _lookup(settings, "SI.hStackManager.actualNumSlices", "SI.hStackManager.numSlices")
        n_planes = max(int(slices), 1) if isinstance(slices, (int, float)) else 1
    return ScanImageLayout(n_channels=max(n_channels, 1), n_planes=n_planes)


def deinterleave_pages(
    pages: np.ndarray, n_channels: int, *, drop_incomplete: bool = False
) -> np.ndarray:
    """Turn a channel-interleaved page stack into a (T, H, W, C) movie.

    Parameters
    ----------
    pages : numpy.ndarray
        (N, H, W) pages in acquisition order ``t0c0, t0c1, ..., t1c0, ...``.
    n_channels : int
        Number of interleaved channels C.
    drop_incomplete : bool, default False
        Drop trailing pages that do not form a complete frame (aborted acquisition)
        instead of raising.

    Returns
    -------
    numpy.ndarray
        (N // C, H, W, C) view of ``pages`` (no copy).

    Raises
    ------
    ValueError
        If ``pages`` is not 3-D, or N is not a multiple of C and ``drop_incomplete`` is
        False.
    """
    arr = np.asarray(pages)
    if arr.ndim != 3:
        raise ValueError(f"expected (N, H, W) pages, got shape {arr.shape}")
    if n_channels < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    n, h, w = arr.shape
    if n % n_channels and not drop_incomplete:
        raise ValueError(f"{n} pages cannot be split into {n_channels} interleaved channels")
    t = n // n_channels
    return arr[: t * n_channels].reshape(t, n_channels, h, w).transpose(0, 2, 3, 1)
