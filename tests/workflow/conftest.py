"""Shared helpers of the workflow tests: they run the real ``snakemake`` CLI in a subprocess.

Every test works in its own temporary working directory holding ``config.yaml`` and the
recordings under ``data/`` (``root: data``, relative, so a copied workdir, ``.snakemake/``
metadata included, stays valid). The full runs are expensive (~10-30 s each on 2 cores), so a
few are shared through session-scoped fixtures and copied with ``shutil.copytree``.

numba kernels are compiled into one cache shared by every run (``NUMBA_CACHE_DIR``; the
workflow only sets it when it is not set already), so only the first run pays for compiling.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from pyflowreg.synthetic import make_session, write_session

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"

pytest.importorskip("snakemake")

ROOT = "data"  # recordings folder, relative to the workdir
SHAPE = (48, 48)
FRAMES = 8
N_BASE = 3  # recordings of the shared full run; its center is rec_01 (ceil(3/2)-th)
RUN_TIMEOUT = 300

# Every key the tests rely on is set here: the workflow's own config/config.yaml is resolved
# against the working directory, so with --directory <tmp> only this file configures the run.
BASE_CONFIG = {
    "root": ROOT,
    "pattern": "rec_*.tif",
    "center": None,
    "output_root": "compensated_outputs",
    "final_results": "final_results",
    "quality_setting": "fast",
    "flow_options": {},
    "cc_upsample": 4,
    "sigma_smooth": 6.0,
    "alpha_between": 25.0,
    "iterations_between": 100,
    "align_chunk_size": 256,
    "align_output_format": "TIFF",
    "demo": {"enabled": False},
}

DEMO_CONFIG = dict(
    BASE_CONFIG,
    root="demo_data",
    demo={"enabled": True, "n_recordings": 3, "height": 48, "width": 48, "frames": 8, "seed": 0},
)

STAGE1_FILES = ("compensated.hdf5", "idx.hdf", "temporal_average.npy", "status.json")
STAGE2_FILES = ("w_to_reference.npz", "w_to_reference.json")
PER_RECORDING_RULES = ("compensate", "align_recording", "aligned_video")


def rec_name(i: int) -> str:
    return f"rec_{i:02d}"


# --------------------------------------------------------------------------- running snakemake
@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-80:])
        return f"snakemake exited {self.returncode} after {self.elapsed:.1f} s:\n{tail}"


class Snakemake:
    """Runs ``snakemake -s <repo>/Snakefile --directory <workdir> --configfile ...``."""

    def __init__(self, numba_cache: Path):
        self.env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), PYTHONUNBUFFERED="1")
        for key in [k for k in self.env if k.startswith("SNAKEMAKE_")]:
            del self.env[key]

    @staticmethod
    def command(workdir: Path, *args: str, configfile: Path | None = None) -> list[str]:
        configfile = configfile or workdir / "config.yaml"
        return [
            sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE),
            "--directory", str(workdir), "--configfile", str(configfile),
            "--cores", "2", *args,
        ]

    def __call__(self, workdir: Path, *args: str, configfile: Path | None = None,
                 timeout: float = RUN_TIMEOUT) -> Result:
        start = time.monotonic()
        proc = subprocess.run(
            self.command(workdir, *args, configfile=configfile), cwd=workdir, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def ok(self, workdir: Path, *args: str, **kwargs) -> Result:
        result = self(workdir, *args, **kwargs)
        assert result.returncode == 0, result.describe()
        return result

    def popen(self, workdir: Path, *args: str) -> subprocess.Popen:
        """Start a run in its own process group (so the test can SIGKILL all of it)."""
        with open(workdir / "killed_run.log", "w") as log:
            return subprocess.Popen(
                self.command(workdir, *args), cwd=workdir, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def snakemake(tmp_path_factory) -> Snakemake:
    return Snakemake(tmp_path_factory.mktemp("numba_cache"))


# --------------------------------------------------------------------------- parsing the output
_JOB_STATS = re.compile(r"^Job stats:\n.*?\n-+\s+-+\n(.*?)^total\s+(\d+)", re.M | re.S)
_JOB_BLOCK = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:[ \t]+\S.*(?:\n|$))*)", re.M)
_WILDCARD = re.compile(r"^\s+wildcards: rec=([^,\s]+)", re.M)


def job_counts(result: Result) -> Counter:
    """Rule -> number of jobs from snakemake's first 'Job stats' table (empty if none)."""
    match = _JOB_STATS.search(result.output)
    if not match:
        assert "Nothing to be done" in result.output, result.describe()
        return Counter()
    counts = Counter()
    for line in match.group(1).strip().splitlines():
        name, count = line.split()
        counts[name] = int(count)
    assert sum(counts.values()) == int(match.group(2))
    return counts


def planned_jobs(result: Result) -> set[tuple[str, str | None]]:
    """``{(rule, rec or None)}`` of the jobs snakemake scheduled (dry-run) or started (run)."""
    jobs = set()
    for rule, body in _JOB_BLOCK.findall(result.output):
        wildcard = _WILDCARD.search(body)
        jobs.add((rule, wildcard.group(1) if wildcard else None))
    return jobs


def jobs_for(recs, rules=PER_RECORDING_RULES) -> set[tuple[str, str | None]]:
    return {(rule, rec) for rule in rules for rec in recs}


FINAL_JOBS = {("session_mask", None), ("all", None)}


# --------------------------------------------------------------------------- workdirs
def write_config(workdir: Path, base: dict | None = None, **overrides) -> Path:
    config = dict(BASE_CONFIG if base is None else base, **overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


@pytest.fixture(scope="session")
def recordings_source(tmp_path_factory) -> Path:
    """Folder with rec_00.tif .. rec_03.tif of one tiny synthetic session (written once)."""
    folder = tmp_path_factory.mktemp("recordings_source")
    session = make_session(
        4, *SHAPE, FRAMES, between_rigid_amplitude=3.0, between_nonrigid_amplitude=1.0,
        rigid_amplitude=1.0, nonrigid_amplitude=0.5, seed=11,
    )
    write_session(session, folder, pattern="rec_{:02d}.tif", ground_truth_flows=False)
    return folder


def make_workdir(path: Path, source: Path, n: int, **config) -> Path:
    """A workdir with the first ``n`` recordings of ``source`` in data/ and a config."""
    data = path / ROOT
    data.mkdir(parents=True)
    for i in range(n):
        shutil.copy2(source / f"{rec_name(i)}.tif", data / f"{rec_name(i)}.tif")
    write_config(path, **config)
    return path


def clone(workdir: Path, dest: Path) -> Path:
    """Copy a workdir including .snakemake/ metadata (mtimes preserved)."""
    shutil.copytree(workdir, dest, symlinks=True)
    return dest


def rewrite_recording(path: Path) -> None:
    """Give a recording different content (same shape and dtype) and a new mtime."""
    frames = tifffile.imread(path)
    tifffile.imwrite(path, np.ascontiguousarray(np.roll(frames, 3, axis=-1)[::-1]),
                     photometric="minisblack")
    later = time.time() + 2
    os.utime(path, (later, later))


def stage1_dir(workdir: Path, rec: str, root: str = ROOT) -> Path:
    return workdir / root / "compensated_outputs" / rec


def final_dir(workdir: Path, root: str = ROOT) -> Path:
    return workdir / root / "final_results"


def load_final_mask(workdir: Path, root: str = ROOT) -> dict[str, np.ndarray]:
    with np.load(final_dir(workdir, root) / "final_valid_idx.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="session")
def base_run(build_once, snakemake, recordings_source) -> Path:
    """Workdir after one complete, uninterrupted run on rec_00..rec_02 (do not modify).

    Made once for all test workers (see ``build_once``)."""
    def run(folder: Path) -> None:
        workdir = make_workdir(folder / "wd", recordings_source, N_BASE)
        result = snakemake.ok(workdir)
        counts = job_counts(result)
        assert counts["compensate"] == N_BASE and counts["session_mask"] == 1, result.describe()
        (workdir / "run.log").write_text(result.output)

    return build_once("base_run", run) / "wd"


@pytest.fixture(scope="session")
def wf():
    """This module: the helpers and constants above (test files cannot import conftest)."""
    return sys.modules[__name__]
