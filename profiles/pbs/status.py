#!/usr/bin/env python3
"""Job status for snakemake-executor-plugin-cluster-generic on PBS/Torque (and PBS Pro).

Usage: status.py JOBID      (the id qsub printed, e.g. "123.server" or "123")
Prints exactly one line: running | success | failed   (what the plugin expects), exit code 0.

How the answer is found:
1. `qstat -f JOBID` (Torque; also Slurm's Torque wrappers used in CI): job_state C (Torque,
   completed) or F (PBS Pro, finished) -> exit_status / Exit_status 0 = success, else failed;
   any other state (Q, R, H, W, T, S, E = exiting, B) -> running.
2. The job is unknown to qstat: try `qstat -x -f JOBID` (PBS Pro keeps finished jobs in its
   history only with -x; Torque keeps them only for keep_completed seconds).
3. Slurm backend fallback, ONLY when Slurm's tools are on PATH (i.e. the PBS commands are
   Slurm's Torque wrappers, as in CI): the wrappers forget a job after Slurm's MinJobAge and
   the unpatched wrapper qstat prints no exit_status. Then `scontrol show job N` (JobState,
   ExitCode) and, if Slurm accounting works, `sacct -X -j N` answer instead.
4. Still unknown: answer "running" for at most PBS_STATUS_GRACE seconds (default 120) after
   the job was first found missing (a server hiccup, a job just being purged), then "failed"
   with a note on stderr. On a real Torque server set keep_completed (e.g.
   `qmgr -c "set server keep_completed = 300"`), otherwise finished jobs vanish at once and
   cannot be told apart from lost ones. The first-missing time is kept in a marker file
   under .snakemake/cluster-status/ (the workflow's working directory) or $TMPDIR.

Only the Python standard library; every scheduler command has a 30 s timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

GRACE = float(os.environ.get("PBS_STATUS_GRACE", "120"))
CMD_TIMEOUT = 30

# Slurm states (scontrol JobState / sacct State, first word)
SLURM_DONE_OK = {"COMPLETED"}
SLURM_DONE_BAD = {
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
}


def run(*cmd: str) -> subprocess.CompletedProcess | None:
    """Run a command; None if it cannot be run or times out."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None


def marker_path(jobid: str) -> str:
    if os.path.isdir(".snakemake"):
        d = os.path.join(".snakemake", "cluster-status")
    else:
        d = os.path.join(tempfile.gettempdir(), "snakemake-cluster-status")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, f"pbs-{os.getuid()}-{re.sub(r'[^A-Za-z0-9_.-]', '_', jobid)}")


def clear_marker(jobid: str) -> None:
    try:
        os.unlink(marker_path(jobid))
    except OSError:
        pass


def unknown(jobid: str, why: str) -> str:
    """Bounded grace: "running" until GRACE seconds after the job was first unknown."""
    path = marker_path(jobid)
    now = time.time()
    try:
        first = os.path.getmtime(path)
        if now - first > GRACE + 3600:  # left over from an aborted run: start afresh
            raise OSError
    except OSError:
        with open(path, "w") as fh:
            fh.write(why + "\n")
        os.utime(path, (now, now))
        first = now
    if now - first <= GRACE:
        return "running"
    clear_marker(jobid)
    print(
        f"status.py: PBS job {jobid}: {why} for more than {GRACE:.0f}s -> reporting failed",
        file=sys.stderr,
    )
    return "failed"


def parse_qstat_f(text: str) -> dict[str, str]:
    """`key = value` attributes of `qstat -f` (continuation lines are ignored)."""
    attrs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep:
            attrs[key.strip().lower()] = value.strip()
    return attrs


def from_qstat(jobid: str) -> str | None:
    """running/success/failed from qstat -f (or -x -f); None if qstat does not know the job;
    "unknown-exit" if the job finished but qstat shows no exit status."""
    for args in (("-f",), ("-x", "-f")):
        p = run("qstat", *args, jobid)
        if p is None or p.returncode != 0 or "job_state" not in p.stdout:
            continue
        attrs = parse_qstat_f(p.stdout)
        state = attrs.get("job_state", "").upper()
        if state not in ("C", "F"):
            return "running"
        code = attrs.get("exit_status")
        if code is None:
            return "unknown-exit"
        return "success" if code.strip() == "0" else "failed"
    return None


def from_slurm(jobid: str) -> str | None:
    """Ask the Slurm backend behind the Torque wrappers; None if it cannot tell."""
    num = jobid.split(".")[0]
    if not num.isdigit() or shutil.which("scontrol") is None:
        return None
    p = run("scontrol", "-o", "show", "job", num)
    if p is not None and p.returncode == 0:
        m = re.search(r"\bJobState=(\S+)", p.stdout)
        e = re.search(r"\bExitCode=(\d+):(\d+)", p.stdout)
        if m:
            state = m.group(1)
            if state in SLURM_DONE_OK:
                return "success" if e is None or e.groups() == ("0", "0") else "failed"
            return "failed" if state in SLURM_DONE_BAD else "running"
    if shutil.which("sacct") is not None:
        p = run("sacct", "-n", "-X", "-P", "-j", num, "-o", "State,ExitCode")
        if p is not None and p.returncode == 0 and p.stdout.strip():
            state, _, code = p.stdout.strip().splitlines()[-1].partition("|")
            state = state.split()[0] if state else ""
            if state in SLURM_DONE_OK:
                return "success" if code in ("", "0:0") else "failed"
            if state in SLURM_DONE_BAD:
                return "failed"
            return "running"
    return None


def status(jobid: str) -> str:
    jobid = jobid.strip()
    answer = from_qstat(jobid)
    if answer in ("running", "success", "failed"):
        clear_marker(jobid)
        return answer
    backend = from_slurm(jobid)
    if backend is not None:
        clear_marker(jobid)
        return backend
    if answer == "unknown-exit":
        # finished, no exit status anywhere: let snakemake judge by the outputs
        print(
            f"status.py: PBS job {jobid} completed without exit_status; "
            "assuming success (snakemake still checks its outputs)",
            file=sys.stderr,
        )
        clear_marker(jobid)
        return "success"
    return unknown(jobid, "unknown to qstat" + (" and Slurm" if shutil.which("scontrol") else ""))


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        print("usage: status.py JOBID", file=sys.stderr)
        return 2
    print(status(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
