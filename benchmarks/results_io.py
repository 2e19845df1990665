"""Run metadata and result files shared by the benchmark scripts.

Every script calls :func:`start` first thing in ``main`` (the load average it records must be
the machine's before the benchmark adds its own) and :func:`write` at the end::

    meta = results_io.start()
    ...
    results_io.write(args.json, "stage1", meta, {"runs": rows}, params=vars(args))

The file holds ``{"benchmark", "command", "meta", "results"}``: ``meta`` says which code ran
where (commit, dirty tree, library path, machine, versions, load average at start and end),
``results`` every figure the script prints, one record per row or case. Figures of other tools
quoted in the project's requirements live in ``reference_figures.json`` beside this module,
never in a result file: results are measurements only.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REFERENCE_FIGURES = HERE / "reference_figures.json"


def git_state(folder: Path) -> dict:
    """Commit of the checkout holding ``folder`` and whether tracked files differ from it.

    Untracked files (benchmark caches, outputs) are not counted: they change no code that runs.
    A folder outside any git checkout (an exported tree) gives ``None`` for both.
    """
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "numba"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed from the repository root: ``python benchmarks/x.py args``."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *argv[1:]])


def start(argv: list[str] | None = None) -> dict:
    """Metadata of this run; call it before any work so the load average is the machine's."""
    load = os.getloadavg()
    try:
        import pyflowreg

        library = Path(pyflowreg.__file__).resolve().parent
    except ImportError:
        library = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "argv": list(sys.argv if argv is None else argv),
        "python_executable": sys.executable,
        "git": git_state(HERE),
        # The library that ran can be another checkout's (PYTHONPATH, benchmarks/compare.py).
        "pyflowreg": {"path": str(library) if library else None,
                      **(git_state(library) if library else {"commit": None, "dirty": None})},
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "memory_gib": memory_gib(),
            "loadavg_start": [round(x, 2) for x in load],
            "platform": platform.platform(),
        },
        "versions": _versions(),
        "environment": {k: os.environ[k] for k in sorted(os.environ)
                        if k.startswith(("NUMBA_", "OMP_", "FLOWREG_"))},
    }


def _plain(value):
    """JSON-safe copy: numpy scalars and arrays, paths, tuples; NaN and inf become null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_plain(v) for v in items]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def document(benchmark: str, meta: dict, results, params: dict | None = None) -> dict:
    meta = dict(meta)
    meta["machine"] = dict(meta["machine"], loadavg_end=[round(x, 2) for x in os.getloadavg()])
    if params is not None:
        meta["params"] = params
    return _plain({"benchmark": benchmark, "command": meta.pop("command"), "meta": meta,
                   "results": results})


def write(path: Path | str | None, benchmark: str, meta: dict, results,
          params: dict | None = None) -> dict:
    """Write the result file atomically (a reader never sees half a file); return its content."""
    doc = document(benchmark, meta, results, params)
    if path is None:
        return doc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the result from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return doc


def read(path: Path | str) -> dict:
    return json.loads(Path(path).read_text())


def reference_figures(benchmark: str | None = None) -> list[dict]:
    """Quoted figures of other tools (not measured here), optionally of one benchmark."""
    entries = read(REFERENCE_FIGURES)["entries"]
    return [e for e in entries if benchmark is None or e["benchmark"] == benchmark]


def find_reference(benchmark: str, **inputs) -> dict | None:
    """The quoted entry measured on exactly these inputs (size, frames, preset, ...), if any."""
    for entry in reference_figures(benchmark):
        if all(entry["input"].get(k) == v for k, v in inputs.items()):
            return entry
    return None
