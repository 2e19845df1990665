"""Shared fixtures of the session tests: small synthetic sessions written once, copied per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyflowreg.synthetic import make_session, write_session

ARRAY_TASK_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SGE_TASK_ID", "PBS_ARRAY_INDEX", "PBS_ARRAYID")

# A tiny 3-recording session: enough for every contract / CLI test, seconds per stage.
SMALL_SHAPE = (64, 64)
SMALL_FRAMES = 8
SMALL_RECORDINGS = ("rec_00.tif", "rec_01.tif", "rec_02.tif")
SMALL_CENTER = "rec_01.tif"  # lexicographic middle of three

# Config values keeping Stage 1 quick on a 2-core machine.
FAST = {"quality_setting": "fast", "n_workers": 2}


@pytest.fixture(scope="session")
def small_session_source(tmp_path_factory):
    """(folder, SyntheticSession) of the tiny session, written once per test run."""
    folder = tmp_path_factory.mktemp("small_session_source")
    session = make_session(
        3, *SMALL_SHAPE, SMALL_FRAMES,
        between_rigid_amplitude=4.0, between_nonrigid_amplitude=1.0,
        rigid_amplitude=1.5, nonrigid_amplitude=0.5, seed=1,
    )
    paths = write_session(session, folder)
    assert [p.name for p in paths] == list(SMALL_RECORDINGS)
    return folder, session


def _copy_recordings(source: Path, dest: Path) -> Path:
    """Copy the recordings (not the ground truth) of a written session into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SMALL_RECORDINGS:
        shutil.copy2(source / name, dest / name)
    return dest


@pytest.fixture
def clean_env():
    """``clean_env(**extra)``: os.environ without array-task variables, plus ``extra``."""
    return _clean_env


@pytest.fixture
def run_cli():
    """``run_cli(*args, env=None, cwd=None)``: run the console script, return CompletedProcess."""
    return _run_cli


@pytest.fixture
def write_toml():
    """``write_toml(path, values)``: write a TOML config (one level of tables)."""
    return _write_toml


@pytest.fixture
def small_root(small_session_source, tmp_path) -> Path:
    """A fresh folder holding only the three recordings of the tiny session."""
    return _copy_recordings(small_session_source[0], tmp_path / "data")


@pytest.fixture
def copy_small_session(small_session_source):
    """``copy_small_session(dest)``: copy the tiny session's recordings into ``dest``."""
    return lambda dest: _copy_recordings(small_session_source[0], Path(dest))


def _clean_env(**extra: str) -> dict:
    """The environment without any array-task variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ARRAY_TASK_VARIABLES}
    env.update(extra)
    return env


def _session_cli() -> list[str]:
    """Command of the installed console script ``pyflowreg-session``."""
    candidate = Path(sys.executable).with_name("pyflowreg-session")
    if candidate.is_file():
        return [str(candidate)]
    found = shutil.which("pyflowreg-session")
    assert found, "console script pyflowreg-session is not installed"
    return [found]


def _run_cli(*args, env: dict | None = None, cwd: Path | None = None, timeout: float = 600):
    """Run ``pyflowreg-session ARGS`` and return the CompletedProcess (text mode)."""
    return subprocess.run(
        [*_session_cli(), *map(str, args)],
        capture_output=True, text=True, env=env if env is not None else _clean_env(),
        cwd=cwd, timeout=timeout, check=False,
    )


def _write_toml(path: Path, values: dict) -> Path:
    """Write a flat (plus one level of tables) TOML file from ``values``."""
    lines, tables = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
