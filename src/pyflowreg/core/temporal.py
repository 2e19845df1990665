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
from numba import njit

DEFAULT_SCALES = (0.0, 1.0, 2.0, 3.0, 4.5, 6.0)  # Gaussian window sigmas (frames); 0: the frame
DEFAULT_GAMMA = 2.5  # ICI threshold in standard deviations
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
    (2 + 2 * n_tiles,) float64
        ``n_tiles`` is ``blocks**2``, fewer for fields with fewer rows or columns than blocks.
    """
    w = np.asarray(w)
    height, width = w.shape[:2]
    # np.unique drops the empty tiles of fields with fewer rows or columns than blocks. reduceat
    # sums every tile in one pass over the field: Stage 1 calls this twice per frame on its
    # main thread, where a slow summary holds back the workers.
    rows = np.unique(np.linspace(0, height, blocks + 1).astype(int))
    cols = np.unique(np.linspace(0, width, blocks + 1).astype(int))
    column_sums = np.add.reduceat(w, cols[:-1], axis=1, dtype=np.float64)
    tile_sums = np.add.reduceat(column_sums, rows[:-1], axis=0)
    rigid = tile_sums.sum(axis=(0, 1)) / (height * width)
    tile_sizes = np.diff(rows)[:, None, None] * np.diff(cols)[None, :, None]
    tiles = (tile_sums / tile_sizes - rigid).reshape(-1)
    return np.concatenate([rigid, tiles])


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


def split_noise(summaries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise vectors that decide the non-rigid and the rigid windows, each (D,).

    The non-rigid window is judged by the block means' own noise (:func:`summary_noise`), the
    rigid one by what that noise implies for the average of all blocks, ``mean / blocks``
    (independent blocks). The rigid part's own temporal statistic is not used on purpose:
    sharp rigid jumps (jitter, a twitch) are common and, frame to frame, look exactly like
    noise to it; judged against the much smaller implied noise they keep their own frame.
    """
    noise = summary_noise(summaries)
    nonrigid = noise.copy()
    nonrigid[:2] = 0.0
    rigid = np.zeros_like(noise)
    n_blocks = (noise.size - 2) // 2
    if n_blocks:
        rigid[:2] = noise[2:].mean() / np.sqrt(n_blocks)
    return nonrigid, rigid


def filter_frame(flows, t: int, sigma: float, rigid=None, rigid_sigma: float = 0.0):
    """Field ``t`` of ``flows`` (N, H, W, 2) averaged over time, rigid and non-rigid apart.

    The non-rigid parts of the neighbouring frames are averaged with a Gaussian window of
    ``sigma`` frames, the rigid parts (spatial means) with one of ``rigid_sigma`` frames (0
    keeps frame ``t``'s own); windows are renormalised where they run past either end of the
    sequence. ``rigid`` (N, 2), the frames' spatial mean flows, saves recomputing them (e.g.
    ``summaries[:, :2]`` of :func:`flow_summary`). Returns (H, W, 2) float32.
    """
    n = len(flows)
    k = _kernel(sigma, np.arange(n) - t)
    support = np.flatnonzero(k)
    if support.size == 1 and rigid_sigma <= 0:
        return np.asarray(flows[t], dtype=np.float32)
    if rigid is None:
        rigid = np.stack([np.asarray(w, np.float64).mean(axis=(0, 1)) for w in flows])
    rigid = np.asarray(rigid, dtype=np.float64)
    k_rigid = _kernel(rigid_sigma, np.arange(n) - t)
    target = k_rigid @ rigid / k_rigid.sum()
    k = k[support] / k[support].sum()
    # sum_s k_s (w_s - r_s) + target: the weighted mean field moved to the chosen rigid part.
    out = np.multiply(flows[support[0]], np.float32(k[0]), dtype=np.float32)
    flat_out = out.reshape(-1)
    for weight, s in zip(k[1:], support[1:], strict=True):
        flow = np.ascontiguousarray(flows[s], dtype=np.float32)
        if flow.shape != out.shape:  # the loop below does not check bounds
            raise ValueError(f"flow {s} has shape {flow.shape}, flow {support[0]} {out.shape}")
        _add_scaled(flat_out, np.float32(weight), flow.reshape(-1))
    out += (target - k @ rigid[support]).astype(np.float32)
    return out


@njit(cache=True, nogil=True)
def _add_scaled(out, weight, flow):
    # out += weight * flow in one pass over memory (numpy makes a temporary and takes three).
    # No fastmath: the product is rounded to float32 before the sum, as numpy does, so the
    # filtered fields do not depend on which of the two ran.
    for i in range(out.size):
        out[i] += weight * flow[i]


def filter_sequence(flows, summaries, frames, *, scales=DEFAULT_SCALES,
                    gamma: float = DEFAULT_GAMMA, map_fn=map):
    """Filter positions ``frames`` of ``flows`` (N, H, W, 2) given their summaries (N, D).

    Returns the filtered fields (list of (H, W, 2) float32) and the chosen non-rigid and rigid
    window indices into ``scales``. ``map_fn`` may spread the frames over threads.
    """
    frames = list(frames)
    nonrigid_noise, rigid_noise = split_noise(summaries)
    windows = choose_windows(summaries, nonrigid_noise, scales=scales, gamma=gamma,
                             frames=frames)
    rigid_windows = choose_windows(summaries, rigid_noise, scales=scales, gamma=gamma,
                                   frames=frames)
    sigmas = np.asarray(scales, dtype=np.float64)
    rigid = summaries[:, :2]
    filtered = list(map_fn(
        lambda item: filter_frame(flows, item[0], sigmas[item[1]], rigid, sigmas[item[2]]),
        list(zip(frames, windows, rigid_windows, strict=True)),
    ))
    return filtered, windows, rigid_windows


def adaptive_temporal_filter(
    flows: np.ndarray, *, scales=DEFAULT_SCALES, gamma: float = DEFAULT_GAMMA
) -> tuple[np.ndarray, np.ndarray]:
    """Filter a whole (T, H, W, 2) flow sequence in memory.

    Returns the filtered flows (T, H, W, 2) float32 and the non-rigid window sigma chosen per
    frame (T,), in frames. Stage 1 applies the same rule chunk by chunk, deciding each frame
    from its neighbours within the chunk and the window's reach.
    """
    summaries = np.stack([flow_summary(w) for w in flows])
    filtered, windows, _ = filter_sequence(flows, summaries, range(len(flows)), scales=scales,
                                           gamma=gamma)
    return np.stack(filtered), np.asarray(scales, dtype=np.float64)[windows]
