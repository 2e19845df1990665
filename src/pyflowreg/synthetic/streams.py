"""Seeded random streams of the generator: one independent stream per purpose and seed.

Every random draw of the generator comes from ``rng(seed, stream, ...)``, so changing how one
part (say the activity) is drawn leaves every other part of the same seed untouched, and a
frame's noise can be drawn without drawing the frames before it. The stream identifiers are
gathered here so no two purposes share one.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ACTIVITY",
    "BENCHMARK_MOTION",
    "BENCHMARK_NOISE",
    "MOTION",
    "NOISE",
    "PAIR",
    "SCENE",
    "SESSION",
    "rng",
]

SCENE, MOTION, ACTIVITY, NOISE, PAIR, SESSION = range(6)
"""Streams of the tissue scene, recording motion, calcium activity, per-frame noise, image-pair
field and session layout."""

BENCHMARK_MOTION, BENCHMARK_NOISE = 101, 102
"""Streams of the benchmark recordings' motion and per-frame noise."""


def rng(seed: int, *stream: int) -> np.random.Generator:
    """Generator of one stream of one seed.

    Parameters
    ----------
    seed : int
        Seed of the recording, session or image pair.
    *stream : int
        Stream identifier, optionally followed by sub-stream indices (e.g. a frame index).

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([int(seed), *stream])
