"""Fixtures shared by every test folder: where the real 2-photon recordings are."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def _benchmark_real_data():
    """``benchmarks/real_data.py``, the one place that says where the real recordings are
    (``$FLOWREG_REAL_DATA``, else ``shared/data/real`` beside the repository)."""
    spec = importlib.util.spec_from_file_location("benchmark_real_data",
                                                  REPOSITORY / "benchmarks" / "real_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_lookup = _benchmark_real_data()
REAL_DATA_ENV = _lookup.ENV
find_real_data = _lookup.real_data_dir


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
