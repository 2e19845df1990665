"""A killed run's Snakemake lock is removed by the next run; a live run's lock never is.

The unit tests build ``.snakemake/locks`` by hand with real processes as owners (a dead one, a
live one whose command line names snakemake, a live unrelated one that reuses a pid). The last
test locks a working directory with a real running ``snakemake`` and checks that a second run
is refused and the lock survives.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyflowreg.session.stale_lock import (
    OWNER_PREFIX,
    check_lock,
    record_owner,
    release_stale_lock,
)
from pyflowreg.synthetic import make_session, write_session

REPO = Path(__file__).resolve().parents[2]


def _lock(workdir: Path, *owners: dict) -> Path:
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text(f"{workdir}/data/rec_00.tif\n")
    (locks / "0.output.lock").write_text(f"{workdir}/data/final_results/final_valid_idx.npz\n")
    incomplete = workdir / ".snakemake" / "incomplete"
    incomplete.mkdir()
    (incomplete / "marker").write_text("{}")
    for owner in owners:
        name = f"{OWNER_PREFIX}{owner['host']}.{owner['pid']}.json"
        (locks / name).write_text(json.dumps(owner))
    return locks


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def sleeper(tmp_path):
    """``sleeper(*argv_tail)``: a live process in tmp_path whose command line ends with it."""
    procs = []

    def start(*tail: str) -> int:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *tail],
                                cwd=tmp_path)
        procs.append(proc)
        # Popen can return while the kernel is still setting up the new program's arguments
        # (its command line then reads empty): wait until it shows the real one.
        cmdline = Path("/proc") / str(proc.pid) / "cmdline"
        deadline = time.monotonic() + 10
        while tail and tail[0].encode() not in cmdline.read_bytes():
            assert time.monotonic() < deadline, "sleeper did not start"
            time.sleep(0.01)
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_lock_of_a_dead_run_on_this_host_is_removed_with_its_record(tmp_path):
    locks = _lock(tmp_path, {"host": socket.gethostname(), "pid": _dead_pid()})
    messages = []
    assert check_lock(tmp_path).stale
    assert release_stale_lock(tmp_path, log=messages.append)
    assert sorted(p.name for p in locks.iterdir()) == []
    # incomplete markers stay: --rerun-incomplete must still rerun the killed jobs
    assert (tmp_path / ".snakemake" / "incomplete" / "marker").is_file()
    assert len(messages) == 1 and "removed a stale lock" in messages[0]


def test_lock_of_a_live_snakemake_in_this_directory_is_kept(tmp_path, sleeper):
    pid = sleeper("snakemake", "--cores", "2")
    locks = _lock(tmp_path, {"host": socket.gethostname(), "pid": pid})
    messages = []
    verdict = check_lock(tmp_path)
    assert not verdict.stale and str(pid) in verdict.reason
    assert not release_stale_lock(tmp_path, log=messages.append)
    assert (locks / "0.input.lock").is_file() and (locks / "0.output.lock").is_file()
    assert "keeping the lock" in messages[0]


def test_a_reused_pid_of_an_unrelated_process_does_not_keep_the_lock(tmp_path, sleeper):
    pid = sleeper("not-the-workflow")
    _lock(tmp_path, {"host": socket.gethostname(), "pid": pid})
    assert check_lock(tmp_path).stale


def test_lock_recorded_by_another_host_is_kept(tmp_path):
    locks = _lock(tmp_path, {"host": "login-node-2.example", "pid": _dead_pid()})
    verdict = check_lock(tmp_path)
    assert not verdict.stale and "login-node-2.example" in verdict.reason
    assert not release_stale_lock(tmp_path)
    assert (locks / "0.input.lock").is_file()


def test_lock_without_any_owner_record_is_kept(tmp_path):
    locks = _lock(tmp_path)
    assert not check_lock(tmp_path).stale
    assert not release_stale_lock(tmp_path)
    assert (locks / "0.output.lock").is_file()


def test_own_record_is_not_an_owner_and_records_of_dead_dry_runs_are_pruned(tmp_path):
    own = record_owner(tmp_path)
    host, pid = socket.gethostname(), _dead_pid()
    dead = own.with_name(f"{OWNER_PREFIX}{host}.{pid}.json")
    dead.write_text(json.dumps({"host": host, "pid": pid}))
    assert check_lock(tmp_path).lock_files == []  # records alone are not a lock
    release_stale_lock(tmp_path)
    assert own.is_file() and not dead.exists()


@pytest.mark.slow
def test_a_running_workflow_keeps_its_lock_against_a_second_run(tmp_path):
    """Real snakemake: while run 1 holds the lock, run 2 (the recovery command of
    docs/recovery.md) is refused with Snakemake's lock error and the lock stays; run 1 is then
    stopped."""
    session = make_session(2, 32, 32, 6, seed=3)
    write_session(session, tmp_path / "data", ground_truth_flows=False)
    (tmp_path / "config.yaml").write_text(
        "root: data\npattern: 'rec_*.tif'\nquality_setting: fast\ndemo: {enabled: false}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    env.update(PYTHONPATH=str(REPO / "src"), NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    base = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
            str(tmp_path), "--configfile", str(tmp_path / "config.yaml")]
    locks = tmp_path / ".snakemake" / "locks"
    with open(tmp_path / "run1.log", "w") as log:
        run1 = subprocess.Popen([*base, "--cores", "1"], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(locks.glob("*.lock")):
            assert run1.poll() is None, (tmp_path / "run1.log").read_text()
            assert time.monotonic() < deadline, "run 1 never took the lock"
            time.sleep(0.05)
        run2 = subprocess.run([*base, "--cores", "all", "--rerun-incomplete"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        still_running = run1.poll() is None
    finally:
        os.killpg(run1.pid, 9)
        run1.wait()
    assert still_running, "run 1 ended before run 2 checked the lock; nothing was tested"
    output = run2.stdout + run2.stderr
    assert run2.returncode != 0, output
    assert "keeping the lock" in output and "still runs" in output, output
    assert "cannot be locked" in output.lower() or "LockException" in output, output
    assert "removed a stale lock" not in output
