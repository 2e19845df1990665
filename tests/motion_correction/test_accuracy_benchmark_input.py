"""``benchmarks/accuracy.py`` refuses inputs whose uint16 counts saturate, instead of measuring
the clipping (a 1e5 photons-per-unit case clips 17 % of its counts), and runs another
checkout's Stage 1 (``--engine``) on its own inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyflowreg

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy.py"


def _run(tmp_path, photons: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWREG_BENCH_OUT": str(tmp_path)}
    return subprocess.run(
        [sys.executable, str(BENCHMARK), "--models", "smooth", "--photons", photons,
         "--presets", "fast", "--size", "48", "--frames", "6", "--no-quote", *extra],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_a_photon_level_that_saturates_uint16_stops_before_any_figure(tmp_path):
    result = _run(tmp_path, "100000")
    assert result.returncode != 0
    assert "saturate at 65535" in result.stderr and "smooth at 100000 photons" in result.stderr
    # The case is left incomplete (no truth.npz, no movie), so a later run does not reuse it.
    assert not list(tmp_path.rglob("truth.npz")) and not list(tmp_path.rglob("*.tif"))
    # ... and a second run (cached movie or not) refuses again.
    assert _run(tmp_path, "100000").returncode != 0


def test_a_photon_level_within_uint16_is_measured(tmp_path):
    result = _run(tmp_path, "100")
    assert result.returncode == 0, result.stderr
    row = [line for line in result.stdout.splitlines() if line.split()[:2] == ["smooth", "100"]]
    assert len(row) == 1 and float(row[0].split()[4]) < 1.0  # EPE column, px


def test_another_engine_runs_on_the_same_input(tmp_path):
    # This checkout's own library stands in for an older one: same input, so the same figures.
    here = _run(tmp_path, "100", "--json", str(tmp_path / "here.json"))
    assert here.returncode == 0, here.stderr
    src = Path(pyflowreg.__file__).resolve().parents[1]
    there = _run(tmp_path, "100", "--engine", str(src), "--json", str(tmp_path / "there.json"))
    assert there.returncode == 0, there.stderr
    rows = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("here", "there")]
    assert rows[1]["meta"]["engine"] == str(src)
    (mine,), (theirs,) = rows[0]["results"]["cases"], rows[1]["results"]["cases"]
    assert abs(mine["epe_mean"] - theirs["epe_mean"]) < 0.01
    assert theirs["cpu_s_per_frame"] > 0  # the child process's CPU time was counted
    # A path without the library fails loudly instead of measuring the wrong engine.
    missing = _run(tmp_path, "100", "--engine", str(tmp_path / "nowhere"))
    assert missing.returncode != 0
