"""Adaptive temporal filtering of a sequence of flow fields (noise goes, motion stays).

Consecutive frames of a recording move almost alike, while the photon noise in each frame's
flow estimate is independent from frame to frame. Averaging the fields of neighbouring frames
therefore removes noise, but a fixed window would blur fast motion (jitter, breathing peaks).
The window is chosen per frame by the intersection-of-confidence-intervals rule (ICI;
Goldenshluger & Nemirovski 1997, Katkovnik 1999): estimates with growing Gaussian windows are
accepted while their confidence intervals, ``estimate +- gamma * std``, still share a point,
i.e. while the wider window is not yet biased by a change of the motion beyond what noise
explains. The rule looks at a low-dimensional summary of each field (its rigid part and the
block means of its non-rigid part), so one window serves the whole field of a frame.

Fields are (H, W, 2) float32 in pixels, ``w[..., 0] = u`` (x), ``w[..., 1] = v`` (y).
"""

from __future__ import annotations

import numpy as np

DEFAULT_SCALES = (0.0, 1.0, 2.0, 3.0)  # Gaussian window sigmas (frames); 0 keeps the frame
DEFAULT_GAMMA = 2.0  # ICI threshold in standard deviations
SUMMARY_BLOCKS = 4  # the non-rigid part is summarised by its means over 4 x 4 blocks
TRUNCATE = 3.0  # window half-width in sigmas
MAD_TO_STD = 1.4826
_SECOND_DIFFERENCE_GAIN = np.sqrt(1.5)  # std of w_t - (w_{t-1} + w_{t+1}) / 2 over white noise


def window_radius(scales=DEFAULT_SCALES) -> int:
    """Frames of context a filter with these window sigmas needs on each side."""
    return int(np.ceil(TRUNCATE * max(scales)))


def flow_summary(w: np.ndarray, blocks: int = SUMMARY_BLOCKS) -> np.ndarray:
    """Low-dimensional description of one field: rigid (u, v) then block means of the rest.

    Parameters
    ----------
    w : (H, W, 2) array
        Flow in pixels.
    blocks : int
        The non-rigid part is averaged over ``blocks x blocks`` tiles.

    Returns
    -------
    (2 + 2 * blocks**2,) float64
    """
    w = np.asarray(w, dtype=np.float64)
    rigid = w.mean(axis=(0, 1))
    height, width = w.shape[:2]
    rows = np.linspace(0, height, blocks + 1).astype(int)
    cols = np.linspace(0, width, blocks + 1).astype(int)
    tiles = [
        w[r0:r1, c0:c1].mean(axis=(0, 1)) - rigid
        for r0, r1 in zip(rows[:-1], rows[1:], strict=True)
        for c0, c1 in zip(cols[:-1], cols[1:], strict=True)
        if r1 > r0 and c1 > c0
    ]
    return np.concatenate([rigid, *tiles])


def summary_noise(summaries: np.ndarray) -> np.ndarray:
    """Per-component noise std of a (N, D) summary sequence, robust to motion and jumps.

    The median absolute second difference ignores smooth motion (which it cancels) and the
    few frames where the motion jumps (which it out-votes). Returns (D,) float64, zero where
    fewer than three frames are given.
    """
    summaries = np.asarray(summaries, dtype=np.float64)
    if summaries.shape[0] < 3:
        return np.zeros(summaries.shape[1])
    second = summaries[1:-1] - 0.5 * (summaries[:-2] + summaries[2:])
    mad = np.median(np.abs(second - np.median(second, axis=0)), axis=0)
    return MAD_TO_STD * mad / _SECOND_DIFFERENCE_GAIN


def _kernel(sigma: float, offsets: np.ndarray) -> np.ndarray:
    if sigma <= 0:
        return (offsets == 0).astype(np.float64)
    k = np.exp(-0.5 * (offsets / sigma) ** 2)
    k[np.abs(offsets) > TRUNCATE * sigma] = 0.0
    return k


def choose_windows(
    summaries: np.ndarray,
    noise: np.ndarray,
    *,
    scales=DEFAULT_SCALES,
    gamma: float = DEFAULT_GAMMA,
    frames=None,
) -> np.ndarray:
    """Per-frame index into ``scales`` of the widest window the ICI rule accepts.

    Parameters
    ----------
    summaries : (N, D) array
        :func:`flow_summary` of N consecutive frames.
    noise : (D,) array
        Per-component noise std (see :func:`summary_noise`); components with zero noise are
        ignored.
    scales : increasing sequence of float
        Gaussian window sigmas in frames; ``scales[0]`` is normally 0 (the frame alone).
    gamma : float
        Half-width of the confidence intervals in noise standard deviations.
    frames : iterable of int, optional
        Positions (0..N-1) to decide; default all.

    Returns
    -------
    (len(frames),) int
    """
    summaries = np.asarray(summaries, dtype=np.float64)
    n = summaries.shape[0]
    noise = np.asarray(noise, dtype=np.float64)
    used = noise > 0
    frames = range(n) if frames is None else frames
    if not used.any():  # nothing to judge a change by: keep every frame's own field
        return np.zeros(len(frames), dtype=int)
    chosen = []
    for t in frames:
        lower = np.full(int(used.sum()), -np.inf)
        upper = np.full(int(used.sum()), np.inf)
        best = 0
        for i, sigma in enumerate(scales):
            k = _kernel(sigma, np.arange(n) - t)
            k /= k.sum()
            estimate = k @ summaries[:, used]
            half = gamma * noise[used] * np.sqrt(np.sum(k**2))
            lower = np.maximum(lower, estimate - half)
            upper = np.minimum(upper, estimate + half)
            if np.any(lower > upper):
                break
            best = i
        chosen.append(best)
    return np.asarray(chosen, dtype=int)


def nonrigid_noise(summaries: np.ndarray) -> np.ndarray:
    """:func:`summary_noise` with the rigid components zeroed, so only the non-rigid part
    decides the window.

    The rigid part is left alone on purpose: the rigid shift of a frame is estimated from every
    pixel and is already precise, while sharp rigid jumps (jitter, an animal's twitch) are
    common and, frame to frame, look exactly like noise to a temporal statistic.
    """
    noise = summary_noise(summaries)
    noise[:2] = 0.0
    return noise


def filter_frame(flows, t: int, sigma: float) -> np.ndarray:
    """Field ``t`` of ``flows`` (N, H, W, 2) with its non-rigid part averaged over time.

    The rigid part (spatial mean) of frame ``t`` is kept; the non-rigid parts of the
    neighbouring frames are averaged with a Gaussian window of ``sigma`` frames, renormalised
    where it runs past either end of the sequence.
    """
    n = len(flows)
    k = _kernel(sigma, np.arange(n) - t)
    support = np.flatnonzero(k)
    if support.size == 1:
        return np.asarray(flows[t], dtype=np.float32)
    out = np.zeros(np.shape(flows[t]), dtype=np.float64)
    for s in support:
        out += k[s] * (flows[s] - flows[s].mean(axis=(0, 1), dtype=np.float64))
    out /= k[support].sum()
    out += flows[t].mean(axis=(0, 1), dtype=np.float64)
    return out.astype(np.float32)


def adaptive_temporal_filter(
    flows: np.ndarray, *, scales=DEFAULT_SCALES, gamma: float = DEFAULT_GAMMA
) -> tuple[np.ndarray, np.ndarray]:
    """Filter a whole (T, H, W, 2) flow sequence in memory.

    Returns the filtered flows (T, H, W, 2) float32 and the window sigma chosen per frame (T,),
    in frames. Stage 1 applies the same rule chunk by chunk, deciding each frame from its
    neighbours within the chunk and the window's reach.
    """
    summaries = np.stack([flow_summary(w) for w in flows])
    windows = choose_windows(summaries, nonrigid_noise(summaries), scales=scales, gamma=gamma)
    sigmas = np.asarray(scales, dtype=np.float64)[windows]
    filtered = np.stack([filter_frame(flows, t, s) for t, s in enumerate(sigmas)])
    return filtered, sigmas
