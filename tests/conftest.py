"""Fixtures shared by every test folder: where the real 2-photon recordings are, a folder built
once for all xdist workers, and the grouping of tests that share an expensive fixture."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from collections.abc import Callable
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


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` that ``build(folder)`` fills, built once per test run for all workers.

    A session-scoped fixture runs once in every xdist worker that needs it; for a whole workflow
    run that is minutes of CPU twice over. The workers share the parent of their temporary base
    folder: the first to get the lock builds there, the others wait and reuse the result. A
    marker written after the build says the folder is complete; a build that failed leaves none,
    so the next worker starts it again from an empty folder.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, complete = root / name, root / f"{name}.complete"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            complete.touch()
    return folder


@pytest.fixture(scope="session")
def build_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    """:func:`built_once` for this run: ``build_once(name, build) -> folder``."""
    return lambda name, build: built_once(tmp_path_factory, name, build)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Run the tests of a module that share a module- or class-scoped fixture (and its
    parameter) on one xdist worker.

    With ``--dist loadgroup`` ungrouped tests are spread one by one, so two tests of one
    expensive fixture (a workflow run, a 512 px correction) would often land on both workers
    and each worker would compute it. Grouping them computes it once; tests that already name
    their group keep it. Runs before xdist turns the marks into node ids.
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        fixture_info = getattr(item, "_fixtureinfo", None)
        if fixture_info is None:
            continue
        shared = sorted(
            name for name, definitions in fixture_info.name2fixturedefs.items()
            if definitions[-1].scope in ("module", "class")
        )
        if not shared:
            continue
        name = shared[0]
        callspec = getattr(item, "callspec", None)
        param = callspec.indices[name] if callspec is not None and name in callspec.params else ""
        # No "]" in the name: xdist takes a node id's "@" suffix as its group only when the
        # suffix follows the last "]".
        item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}.{name}.{param}"))
