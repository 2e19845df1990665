"""Fixtures shared by every test folder: where the real 2-photon recordings are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA_ENV = "FLOWREG_REAL_DATA"
REPOSITORY = Path(__file__).resolve().parents[1]


def find_real_data() -> Path:
    """Folder of the real recordings: ``$FLOWREG_REAL_DATA`` if set, else the first
    ``shared/data/real`` beside the repository or beside one of its parent folders (a git
    worktree sits deeper than the main checkout). If there is none, the place beside the
    repository, so a message can name it."""
    if os.environ.get(REAL_DATA_ENV):
        return Path(os.environ[REAL_DATA_ENV])
    for folder in REPOSITORY.parents:
        candidate = folder / "shared" / "data" / "real"
        if candidate.is_dir():
            return candidate
    return REPOSITORY.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder of the real 2-photon recordings (see its README.md); skips the test without it.

    The recordings are not part of the repository: they sit in ``shared/data/real`` beside it,
    or wherever ``FLOWREG_REAL_DATA`` points.
    """
    folder = find_real_data()
    if not folder.is_dir():
        pytest.skip(f"real data not available: {folder} (expected beside the repository, or "
                    f"set {REAL_DATA_ENV})")
    return folder
