"""Recognise and remove the Snakemake lock a killed run left behind, never a live run's lock.

Snakemake locks a working directory with ``.snakemake/locks/<n>.input.lock`` and
``<n>.output.lock`` and deletes the folder when the run ends. A run killed with SIGKILL (a node
lost, ``kill -9``, an out-of-memory killer) cannot, and the next run then refuses to start until
``snakemake --unlock``. The lock files do not say who wrote them, so every main ``snakemake``
process of the workflow records itself at parse time, before Snakemake takes the lock, as
``.snakemake/locks/flowreg_owner.<host>.<pid>.json``. A later run can then tell a stale lock
(every recorded owner on this host is gone) from a live one (an owner still runs, or runs on
another host where this process cannot look), and only removes the first.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LockVerdict", "OWNER_PREFIX", "check_lock", "record_owner", "release_stale_lock"]

OWNER_PREFIX = "flowreg_owner."


@dataclass(frozen=True)
class LockVerdict:
    """What :func:`check_lock` found in a ``.snakemake/locks`` folder.

    Attributes
    ----------
    lock_files : list of Path
        Snakemake's own ``<n>.input.lock`` / ``<n>.output.lock`` files.
    stale : bool
        True when the lock files exist and every recorded owner is a dead process on this host.
    reason : str
        One sentence explaining the verdict (for the log).
    """

    lock_files: list[Path]
    stale: bool
    reason: str


def _host() -> str:
    return socket.gethostname()


def _lock_files(lock_dir: Path) -> list[Path]:
    return sorted(
        p for p in lock_dir.glob("*.lock")
        if p.is_file() and p.name.split(".")[0].isdigit()
        and p.name.split(".")[1] in ("input", "output")
    )


def _owner_records(lock_dir: Path) -> list[tuple[Path, dict]]:
    records = []
    for path in sorted(lock_dir.glob(f"{OWNER_PREFIX}*.json")):
        try:
            records.append((path, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            # Killed while writing its record: that process never got as far as locking.
            records.append((path, {}))
    return records


def _is_live_snakemake(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is a running snakemake process working in ``workdir`` (this host).

    The command line and working directory are checked because a dead run's pid may have been
    reused by an unrelated process.
    """
    proc = Path("/proc") / str(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        cwd = Path(os.readlink(proc / "cwd"))
    except FileNotFoundError:
        return False
    except PermissionError:
        return True  # someone else's process: cannot prove it is not ours
    if "snakemake" not in cmdline:
        return False
    try:
        return cwd.resolve() == workdir.resolve()
    except OSError:
        return True


def check_lock(workdir: str | os.PathLike = ".", *, own_pid: int | None = None) -> LockVerdict:
    """Decide whether the Snakemake lock of ``workdir`` belongs to a run that no longer exists.

    Parameters
    ----------
    workdir : path-like, default "."
        Snakemake working directory (the one holding ``.snakemake/``).
    own_pid : int, optional
        This process's pid (default ``os.getpid()``); its own record never counts as an owner.

    Returns
    -------
    LockVerdict
        ``stale`` only when lock files exist, at least one owner record exists, and every
        recorded owner ran on this host and is no longer a running snakemake process in
        ``workdir``. A lock without any record (a run of another workflow or tool) is never
        called stale.
    """
    workdir = Path(workdir)
    lock_dir = workdir / ".snakemake" / "locks"
    own_pid = os.getpid() if own_pid is None else own_pid
    lock_files = _lock_files(lock_dir) if lock_dir.is_dir() else []
    if not lock_files:
        return LockVerdict([], False, "no lock")
    host = _host()
    owners = [
        record for path, record in _owner_records(lock_dir)
        if not (record.get("host") == host and record.get("pid") == own_pid)
    ]
    if not owners:
        return LockVerdict(lock_files, False, "the lock records no owner, so it may be live")
    for record in owners:
        if record.get("host") not in (None, host):
            return LockVerdict(
                lock_files, False,
                f"the lock may be held by snakemake pid {record.get('pid')} on host "
                f"{record['host']}, which cannot be checked from {host}",
            )
        pid = record.get("pid")
        if isinstance(pid, int) and _is_live_snakemake(pid, workdir):
            return LockVerdict(lock_files, False, f"snakemake pid {pid} on {host} still runs")
    pids = sorted(str(r.get("pid")) for r in owners if r.get("pid") is not None)
    return LockVerdict(
        lock_files, True,
        f"the run that took it (pid {', '.join(pids) or 'unknown'} on {host}) no longer exists",
    )


def release_stale_lock(workdir: str | os.PathLike = ".", *, log=None) -> bool:
    """Remove the lock of ``workdir`` if :func:`check_lock` calls it stale.

    Removes Snakemake's lock files and the dead owners' records, nothing else (incomplete-job
    markers stay, so ``--rerun-incomplete`` still reruns the killed jobs).

    Returns
    -------
    bool
        True if a stale lock was removed.
    """
    verdict = check_lock(workdir)
    log = log or (lambda message: None)
    if not verdict.lock_files:
        _prune_dead_records(Path(workdir))
        return False
    if not verdict.stale:
        log(f"flowreg: keeping the lock in .snakemake/locks: {verdict.reason}")
        return False
    lock_dir = Path(workdir) / ".snakemake" / "locks"
    own = f"{OWNER_PREFIX}{_host()}.{os.getpid()}.json"
    for path in verdict.lock_files:
        path.unlink(missing_ok=True)
    for path, _ in _owner_records(lock_dir):
        if path.name != own:
            path.unlink(missing_ok=True)
    log(
        f"flowreg: removed a stale lock in .snakemake/locks: {verdict.reason} (killed); "
        "the jobs it left unfinished are rerun with --rerun-incomplete"
    )
    return True


def _prune_dead_records(workdir: Path) -> None:
    # Runs that took no lock (dry runs, --lint) leave their record; drop those of dead ones.
    lock_dir = workdir / ".snakemake" / "locks"
    if not lock_dir.is_dir():
        return
    host = _host()
    for path, record in _owner_records(lock_dir):
        pid = record.get("pid")
        if record.get("host") == host and isinstance(pid, int) and pid != os.getpid() \
                and not _is_live_snakemake(pid, workdir):
            path.unlink(missing_ok=True)


def record_owner(workdir: str | os.PathLike = ".") -> Path:
    """Record this process as a possible owner of the lock it is about to take.

    Written atomically (temporary name, then rename) so a reader never sees half a record.
    Records of finished runs disappear with Snakemake's lock folder; those of killed runs are
    removed by :func:`release_stale_lock`.
    """
    lock_dir = Path(workdir) / ".snakemake" / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    host, pid = _host(), os.getpid()
    path = lock_dir / f"{OWNER_PREFIX}{host}.{pid}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"host": host, "pid": pid, "workdir": str(Path(workdir).resolve())}))
    os.replace(tmp, path)
    return path
