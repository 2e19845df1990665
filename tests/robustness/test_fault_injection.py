"""A small seeded run of ``benchmarks/fault_injection.py``: SIGKILL the workflow, the CLI and
``run_stage1_array`` mid-run, recover as docs/recovery.md says, compare with an uninterrupted
run.

The full figures (30+ workflow trials over every rule) come from running the script itself;
this keeps one trial per face in the suite so a regression in recovery fails a test.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real snakemake and CLI runs, killed and rerun


@pytest.fixture(scope="module")
def fi():
    spec = importlib.util.spec_from_file_location(
        "fault_injection", REPO / "benchmarks" / "fault_injection.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(fi, tmp_path_factory):
    # A session of one recording keeps every rule (and the Stage 2 self-alignment) at the
    # fewest jobs; the numba cache is the checkout's own, so kernels compile once per machine.
    return fi.make_setup(tmp_path_factory.mktemp("faults"), n_recordings=1, size=32, frames=6,
                         numba_cache=REPO / ".numba_cache")


def _check(summary):
    assert summary.trials >= 1
    assert summary.recovered == summary.trials, summary.report()
    assert summary.mismatched == 0, summary.report()


def test_killed_workflow_recovers_with_the_readme_command_and_equals_an_uninterrupted_run(
    fi, setup, monkeypatch
):
    # one trial, aimed at Stage 2 (after Stage 1 of some recordings, before the masks)
    monkeypatch.setattr(fi, "TARGET_RULES", ("align_recording",))
    summary = fi.workflow_trials(setup, 1, random.Random(0))
    _check(summary)
    assert summary.kills, summary.report()
    assert summary.lock_removed == 1, summary.report()  # no --unlock was needed


def test_killed_cli_and_array_task_recover_and_equal_an_uninterrupted_run(fi, setup):
    rng = random.Random(1)
    reference = fi.cli_reference(setup)
    _check(fi.cli_trials(setup, 1, rng, reference))
    _check(fi.array_trials(setup, 1, rng, reference))
