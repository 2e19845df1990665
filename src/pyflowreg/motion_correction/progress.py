"""Progress of a long correction pass: frames done, frames/s and the estimated time left."""

from __future__ import annotations

import time


class Progress:
    """Formats one progress line per chunk of a pass over ``n_frames`` frames.

    The rate is measured from the pass's start (construction), so it includes reading, writing
    and quality control, and the time left is what the same rate needs for the rest.

    Examples
    --------
    >>> progress = Progress(1000)
    >>> progress.line(0).startswith("0/1000 frames")
    True
    """

    def __init__(self, n_frames: int):
        self.n_frames = int(n_frames)
        self.start = time.perf_counter()

    def line(self, done: int) -> str:
        """``"<done>/<total> frames, <rate> frames/s, ~<eta> left"`` after ``done`` frames."""
        elapsed = time.perf_counter() - self.start
        if done <= 0 or elapsed <= 0:
            return f"{done}/{self.n_frames} frames"
        rate = done / elapsed
        left = (self.n_frames - done) / rate
        return f"{done}/{self.n_frames} frames, {rate:.1f} frames/s, ~{format_seconds(left)} left"


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"2 h 07 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
