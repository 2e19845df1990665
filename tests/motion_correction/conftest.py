"""Shared fixtures of the motion-correction tests: small synthetic movies on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyflowreg.synthetic import SyntheticRecording, write_recording


@pytest.fixture
def write_movie(tmp_path):
    """Factory writing a small synthetic recording as uint16 TIFF; returns (path, recording)."""

    def make(
        name: str = "movie.tif", *, height: int = 64, width: int = 64, n_frames: int = 60,
        seed: int = 0, folder: Path | None = None, **kwargs,
    ) -> tuple[Path, SyntheticRecording]:
        kwargs.setdefault("rigid_amplitude", 3.0)
        kwargs.setdefault("nonrigid_amplitude", 1.0)
        rec = SyntheticRecording(height, width, n_frames, seed=seed, **kwargs)
        path = write_recording(rec, (folder or tmp_path) / name, dtype="uint16")
        return path, rec

    return make
