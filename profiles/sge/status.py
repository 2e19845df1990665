#!/usr/bin/env python3
"""Job status for snakemake-executor-plugin-cluster-generic on (Son of / Open) Grid Engine.

Usage: status.py JOBID      (the id `qsub -terse` printed)
Prints exactly one line: running | success | failed   (what the plugin expects), exit code 0.

How the answer is found:
1. `qstat -j JOBID` knows the job (pending, running, held, ...): "running", except when the
   `qstat` listing shows an error state (E, e.g. Eqw): such a job will never run -> "failed".
2. The job left qmaster: read its accounting record, `qacct -j JOBID`, and take the LAST
   record (ids can repeat after a cell is rebuilt): success iff `failed` is 0 and
   `exit_status` is 0.
3. No accounting record yet: qacct lags behind qstat (records are buffered for
   reporting_params accounting_flush_time, 15 s by default; before the very first record
   qacct prints "no jobs running since startup" on STDOUT and exits 1). We answer "running"
   for at most SGE_STATUS_GRACE seconds (default 120) after the job was first found missing,
   then "failed" with a note on stderr. The same bounded grace covers a qmaster that does not
   answer for a moment. The first-missing time is kept in a marker file under
   .snakemake/cluster-status/ (the workflow's working directory) or
   $TMPDIR/snakemake-cluster-status/.

Only the Python standard library; every scheduler command has a 30 s timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

GRACE = float(os.environ.get("SGE_STATUS_GRACE", "120"))
CMD_TIMEOUT = 30


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
    return os.path.join(d, f"sge-{os.getuid()}-{re.sub(r'[^A-Za-z0-9_.-]', '_', jobid)}")


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
        f"status.py: SGE job {jobid}: {why} for more than {GRACE:.0f}s -> reporting failed",
        file=sys.stderr,
    )
    return "failed"


def queue_state(jobid: str) -> str | None:
    """State letters of the job in the qstat listing (e.g. 'r', 'qw', 'Eqw'), None if absent."""
    p = run("qstat", "-u", "*")
    if p is None or p.returncode != 0:
        return None
    for line in p.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == jobid:
            return fields[4]
    return None


def accounting(jobid: str) -> dict[str, str] | None:
    """Fields of the last qacct record of the job, or None if there is none (yet)."""
    p = run("qacct", "-j", jobid)
    if p is None or p.returncode != 0:
        return None  # includes "no jobs running since startup" / "job id N not found"
    record: dict[str, str] = {}
    for line in p.stdout.splitlines():
        if line.startswith("====="):
            record = {}  # a new record starts: keep only the last one
            continue
        key, _, value = line.partition(" ")
        if key:
            record[key] = value.strip()
    return record if "exit_status" in record else None


def status(jobid: str) -> str:
    jobid = jobid.strip().split(".")[0]  # "123" or array form "123.1-3:1"
    p = run("qstat", "-j", jobid)
    if p is not None and p.returncode == 0:
        clear_marker(jobid)
        state = queue_state(jobid) or ""
        if "E" in state:
            print(
                f"status.py: SGE job {jobid} is in error state {state} "
                f"(see `qstat -j {jobid}`; remove it with `qdel {jobid}`)",
                file=sys.stderr,
            )
            return "failed"
        return "running"

    record = accounting(jobid)
    if record is not None:
        clear_marker(jobid)
        failed = record.get("failed", "1").split()[0]
        exit_status = record.get("exit_status", "1").split()[0]
        return "success" if failed == "0" and exit_status == "0" else "failed"

    out = "" if p is None else (p.stdout + p.stderr)
    if p is not None and "do not exist" in out:
        return unknown(jobid, "left the queue but has no qacct record")
    return unknown(jobid, "qstat failed: " + (out.strip().splitlines() or ["no answer"])[-1])


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        print("usage: status.py JOBID", file=sys.stderr)
        return 2
    print(status(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
