"""Fault injection: SIGKILL a run at a random moment, recover as the README says, compare.

    python benchmarks/fault_injection.py                    # 30 workflow, 10 CLI, 10 array trials
    python benchmarks/fault_injection.py --trials 5 --cli-trials 2 --array-trials 2 --seed 1
    python benchmarks/fault_injection.py --json out.json   # also the counts and run metadata

Three faces, each on a fresh copy of one small synthetic session (``--recordings`` x
``--size``² x ``--frames``, ``quality_setting: fast``):

* **workflow** — ``snakemake --cores 2`` is started in its own process group; each trial aims at
  one rule (``compensate``, ``align_recording``, ``aligned_video``,
  ``session_mask`` in turn), waits until a job of it starts, then a random fraction of that
  rule's job time measured in the uninterrupted run, and SIGKILLs the whole group. Recovery is
  the README's command, unchanged: ``snakemake --cores all --rerun-incomplete`` (no
  ``--unlock``), then ``snakemake -n`` must find nothing to do.
* **cli** — ``pyflowreg-session session.toml`` killed at a uniform random time within the
  uninterrupted run's duration; recovery: the same command again (resume is the default).
* **array** — ``run_stage1_array`` for a random task killed at a random time within its
  duration; recovery: the same task again.

Every result file of a recovered run is compared with the uninterrupted run's array by array
(``.ci/clusters/compare_outputs.py``: timings and run-specific digests ignored); any leftover
temporary, extra file or difference is a mismatch. Kills are counted per rule (per stage for
the CLI) by the jobs running at the moment of the kill, read from the killed run's log.
Exit status 1 if any trial mismatched or failed to recover. ``--json PATH`` writes every
printed count and the run's metadata (``benchmarks/results_io.py``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TARGET_RULES = ("compensate", "align_recording", "aligned_video", "session_mask")
ROOT = "data"
RUN_TIMEOUT = 600

sys.path.insert(0, str(REPO / "src"))
from pyflowreg.io import is_temporary_path  # noqa: E402
from pyflowreg.synthetic import make_session, write_session  # noqa: E402


def _load_compare():
    spec = importlib.util.spec_from_file_location(
        "compare_outputs", REPO / ".ci" / "clusters" / "compare_outputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare_outputs = _load_compare()

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_io  # noqa: E402  (run metadata and the result file)


# --------------------------------------------------------------------------- set-up
@dataclass
class Setup:
    """Where the pristine session lives and how every run is started."""

    source: Path  # pristine recordings
    work: Path  # trials go below here
    env: dict
    n_recordings: int

    def fresh_copy(self, name: str) -> Path:
        """A new folder ``work/name`` holding ``data/`` (the recordings) and the configs."""
        folder = self.work / name
        if folder.exists():
            shutil.rmtree(folder)
        data = folder / ROOT
        data.mkdir(parents=True)
        for path in sorted(self.source.glob("rec_*.tif")):
            shutil.copy2(path, data / path.name)
        (folder / "config.yaml").write_text(
            f"root: {ROOT}\npattern: 'rec_*.tif'\nquality_setting: fast\n"
            "demo: {enabled: false}\n"
        )
        (folder / "session.toml").write_text(
            f'root = "{data}"\npattern = "rec_*.tif"\nquality_setting = "fast"\nn_workers = 2\n'
        )
        return folder


def make_setup(work: Path, *, n_recordings: int = 3, size: int = 48, frames: int = 8,
               seed: int = 11, numba_cache: Path | None = None) -> Setup:
    """Write the synthetic session once; every run shares one numba cache (default in work)."""
    source = work / "source"
    session = make_session(
        n_recordings, size, size, frames, between_rigid_amplitude=3.0,
        between_nonrigid_amplitude=1.0, rigid_amplitude=1.0, nonrigid_amplitude=0.5, seed=seed,
    )
    write_session(session, source, ground_truth_flows=False)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache or work / "numba_cache"),
               PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    for key in [k for k in env if k.startswith("SNAKEMAKE_")]:
        del env[key]
    return Setup(source, work, env, n_recordings)


def snakemake_command(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(folder),
            "--configfile", str(folder / "config.yaml"), *args]


def cli_command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "pyflowreg.session.cli", str(folder / "session.toml")]


def array_command(folder: Path, task_id: int) -> list[str]:
    code = (
        "import sys; from pyflowreg.session import SessionConfig; "
        "from pyflowreg.session.stage1_compensate import run_stage1_array; "
        f"run_stage1_array(SessionConfig.from_file(sys.argv[1]), {task_id})"
    )
    return [sys.executable, "-c", code, str(folder / "session.toml")]


def run(command: list[str], folder: Path, env: dict, log: Path) -> int:
    with open(log, "w") as out:
        return subprocess.run(command, cwd=folder, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT).returncode


# --------------------------------------------------------------------------- comparing
def compare(reference: Path, other: Path, only: str | None = None) -> list[str]:
    """Every difference between two result trees (all of them, not just the first)."""
    problems = []
    ref_files = {p.relative_to(reference) for p in reference.rglob("*") if p.is_file()}
    other_files = {p.relative_to(other) for p in other.rglob("*") if p.is_file()}
    if only is not None:
        ref_files = {p for p in ref_files if only in p.parts}
        other_files = {p for p in other_files if only in p.parts}
    for rel in sorted(other_files):
        if is_temporary_path(rel):
            problems.append(f"{rel}: temporary file left behind")
        elif rel not in ref_files and not rel.name.startswith("."):
            problems.append(f"{rel}: not written by the uninterrupted run")
    for rel in sorted(ref_files):
        ref_arrays = compare_outputs.arrays(reference / rel)
        if not ref_arrays:
            continue
        if rel not in other_files:
            problems.append(f"{rel}: missing")
            continue
        try:
            other_arrays = compare_outputs.arrays(other / rel)
        except Exception as exc:  # an unreadable result is a mismatch, whatever the reason
            problems.append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if other_arrays.keys() != ref_arrays.keys():
            problems.append(f"{rel}: holds {sorted(other_arrays)}, expected {sorted(ref_arrays)}")
            continue
        for key, value in ref_arrays.items():
            if not compare_outputs.np.array_equal(value, other_arrays[key]):
                problems.append(f"{rel} {key}: differs")
    return problems


# --------------------------------------------------------------------------- reading logs
_JOB_START = re.compile(r"^(?:local)?rule (\w+):\n(?:[ \t]+.*\n)*?[ \t]+jobid: (\d+)", re.M)
_JOB_DONE = re.compile(r"^Finished jobid: (\d+)", re.M)


def running_rules(log_text: str) -> list[str]:
    """Rules of the jobs a snakemake log shows as started and not finished."""
    started = {jobid: rule for rule, jobid in _JOB_START.findall(log_text)}
    for jobid in _JOB_DONE.findall(log_text):
        started.pop(jobid, None)
    return sorted(rule for rule in started.values() if rule != "all")


def rule_seconds(folder: Path) -> dict[str, float]:
    """Median job time of each rule from Snakemake's benchmark files of a run."""
    times: dict[str, list[float]] = {}
    timings = folder / "logs" / "benchmarks"
    for tsv in timings.rglob("*.tsv"):
        rule = tsv.parent.name if tsv.parent != timings else tsv.stem
        with open(tsv) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        times.setdefault(rule, []).append(float(row["s"]))
    return {rule: sorted(v)[len(v) // 2] for rule, v in times.items()}


# --------------------------------------------------------------------------- trials
@dataclass
class Summary:
    face: str
    trials: int = 0
    kills: Counter = field(default_factory=Counter)
    recovered: int = 0
    mismatched: int = 0
    failures: list[str] = field(default_factory=list)
    lock_removed: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        kills = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) or "none"
        lines = [
            f"{self.face}: {self.trials} trials in {self.seconds:.0f} s; kills during: {kills}",
            f"{self.face}: recovered {self.recovered}/{self.trials}, "
            f"mismatched {self.mismatched}/{self.trials}"
            + (f", stale lock removed by the rerun {self.lock_removed}"
               if self.face == "workflow" else ""),
        ]
        lines += [f"{self.face}:   {failure}" for failure in self.failures]
        return "\n".join(lines)

    def record(self) -> dict:
        return {"face": self.face, "trials": self.trials, "kills": dict(sorted(self.kills.items())),
                "recovered": self.recovered, "mismatched": self.mismatched,
                "lock_removed": self.lock_removed if self.face == "workflow" else None,
                "seconds": self.seconds, "failures": list(self.failures)}

    def recovered_run(self, where: str, problems: list[str], folder: Path) -> None:
        """Count a rerun that finished: a mismatch keeps its folder for inspection."""
        self.recovered += 1
        if problems:
            self.mismatched += 1
            self.failures.append(f"{where}: {'; '.join(problems[:5])}")
        else:
            shutil.rmtree(folder)


def _start(command: list[str], folder: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=folder, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL the process group after ``seconds``; True if it had already finished."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass
    finally:
        finished = proc.poll() is not None
        _kill_group(proc)
    return finished


def _log_matches(log: Path, pattern: re.Pattern) -> bool:
    return pattern.search(log.read_text()) is not None


def _wait_for(predicate, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def workflow_reference(setup: Setup) -> tuple[Path, dict[str, float]]:
    folder = setup.fresh_copy("workflow_reference")
    rc = run(snakemake_command(folder, "--cores", "2"), folder, setup.env, folder / "run.log")
    if rc != 0:
        raise RuntimeError(f"uninterrupted workflow run failed, see {folder / 'run.log'}")
    return folder, rule_seconds(folder)


def workflow_trials(setup: Setup, n: int, rng: random.Random, reference=None) -> Summary:
    """SIGKILL ``snakemake --cores 2`` during each rule in turn; recover; compare."""
    t0 = time.monotonic()
    summary = Summary("workflow")
    reference_folder, seconds = reference or workflow_reference(setup)
    for trial in range(n):
        target = TARGET_RULES[trial % len(TARGET_RULES)]
        folder = setup.fresh_copy(f"workflow_{trial:03d}")
        log = folder / "killed_run.log"
        proc = _start(snakemake_command(folder, "--cores", "2"), folder, setup.env, log)
        try:
            pattern = re.compile(rf"^(local)?rule {target}:", re.M)
            started = _wait_for(partial(_log_matches, log, pattern), proc, RUN_TIMEOUT)
            if started:
                time.sleep(rng.uniform(0.0, 1.2) * seconds.get(target, 1.0))
        finally:
            _kill_group(proc)
        text = log.read_text()
        during = running_rules(text) if proc.returncode == -signal.SIGKILL else []
        summary.kills.update(set(during) or {"(between jobs)" if proc.returncode == -9
                                              else "(run had finished)"})
        summary.trials += 1
        had_lock = any((folder / ".snakemake" / "locks").glob("*.lock"))
        rerun_log = folder / "rerun.log"
        # The README's recovery command, exactly (plus where the workflow and config are).
        rc = run(snakemake_command(folder, "--cores", "all", "--rerun-incomplete"), folder,
                 setup.env, rerun_log)
        rerun_text = rerun_log.read_text()
        if had_lock and "removed a stale lock" in rerun_text:
            summary.lock_removed += 1
        where = f"trial {trial} (kill during {', '.join(during) or 'no job'})"
        if rc != 0:
            tail = " | ".join(rerun_text.strip().splitlines()[-3:])
            summary.failures.append(f"{where}: rerun exited {rc}: {tail}")
            continue
        dry = subprocess.run(snakemake_command(folder, "-n"), cwd=folder, env=setup.env,
                             capture_output=True, text=True, timeout=RUN_TIMEOUT)
        if "Nothing to be done" not in dry.stdout + dry.stderr:
            summary.failures.append(f"{where}: after the rerun, snakemake -n still plans jobs")
            continue
        summary.recovered_run(where, compare(reference_folder / ROOT, folder / ROOT), folder)
    summary.seconds = time.monotonic() - t0
    return summary


def _cli_stage(text: str) -> str:
    if "stage 2 done" in text:
        return "stage 3"
    if "stage 1 done" in text:
        return "stage 2"
    return "stage 1"


def cli_reference(setup: Setup) -> tuple[Path, float]:
    """The uninterrupted CLI run and its duration with a warm numba cache.

    A first run compiles the kernels; timing that one would put most random kill times after
    the end of a (faster) trial run.
    """
    duration = 0.0
    for name in ("cli_warm_up", "cli_reference"):
        folder = setup.fresh_copy(name)
        t = time.monotonic()
        rc = run(cli_command(folder), folder, setup.env, folder / "run.log")
        if rc != 0:
            raise RuntimeError(f"uninterrupted CLI run failed, see {folder / 'run.log'}")
        duration = time.monotonic() - t
    shutil.rmtree(setup.work / "cli_warm_up")
    return folder, duration


def cli_trials(setup: Setup, n: int, rng: random.Random, reference=None) -> Summary:
    """SIGKILL ``pyflowreg-session`` at a random moment; run the same command again; compare."""
    t0 = time.monotonic()
    summary = Summary("cli")
    reference_folder, duration = reference or cli_reference(setup)
    for trial in range(n):
        folder = setup.fresh_copy(f"cli_{trial:03d}")
        log = folder / "killed_run.log"
        proc = _start(cli_command(folder), folder, setup.env, log)
        finished = _kill_after(proc, rng.uniform(0.0, duration))
        summary.kills["(run had finished)" if finished else _cli_stage(log.read_text())] += 1
        summary.trials += 1
        rc = run(cli_command(folder), folder, setup.env, folder / "rerun.log")
        if rc != 0:
            summary.failures.append(f"trial {trial}: rerun exited {rc}")
            continue
        summary.recovered_run(f"trial {trial}", compare(reference_folder / ROOT, folder / ROOT),
                              folder)
    summary.seconds = time.monotonic() - t0
    return summary


def array_trials(setup: Setup, n: int, rng: random.Random, reference=None) -> Summary:
    """SIGKILL ``run_stage1_array`` for a random task; run the task again; compare its folder."""
    t0 = time.monotonic()
    summary = Summary("array")
    reference_folder, _ = reference or cli_reference(setup)
    timing = setup.fresh_copy("array_timing")
    t = time.monotonic()
    if run(array_command(timing, 1), timing, setup.env, timing / "run.log") != 0:
        raise RuntimeError(f"uninterrupted array task failed, see {timing / 'run.log'}")
    duration = time.monotonic() - t
    for trial in range(n):
        task_id = rng.randint(1, setup.n_recordings)
        stem = f"rec_{task_id - 1:02d}"
        folder = setup.fresh_copy(f"array_{trial:03d}")
        proc = _start(array_command(folder, task_id), folder, setup.env,
                      folder / "killed_run.log")
        finished = _kill_after(proc, rng.uniform(0.0, duration))
        summary.kills["(task had finished)" if finished else f"task {task_id}"] += 1
        summary.trials += 1
        rc = run(array_command(folder, task_id), folder, setup.env, folder / "rerun.log")
        if rc != 0:
            summary.failures.append(f"trial {trial} (task {task_id}): rerun exited {rc}")
            continue
        problems = compare(reference_folder / ROOT / "compensated_outputs",
                           folder / ROOT / "compensated_outputs", only=stem)
        # Stage 2 files are not written by Stage 1: only the Stage 1 set is expected here.
        problems = [p for p in problems if "w_to_reference" not in p]
        summary.recovered_run(f"trial {trial} (task {task_id})", problems, folder)
    summary.seconds = time.monotonic() - t0
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="workflow trials (default 30)")
    parser.add_argument("--cli-trials", type=int, default=10)
    parser.add_argument("--array-trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recordings", type=int, default=3)
    parser.add_argument("--size", type=int, default=48, help="frame height and width, pixels")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every count and the run's metadata here")
    meta = results_io.start(None if argv is None else [__file__, *argv])
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    work = args.keep or Path(tempfile.mkdtemp(prefix="flowreg-faults."))
    work.mkdir(parents=True, exist_ok=True)
    print(f"fault injection: seed {args.seed}, {args.recordings} recordings of {args.size}x"
          f"{args.size} x {args.frames} frames, work folder {work}", flush=True)
    setup = make_setup(work, n_recordings=args.recordings, size=args.size, frames=args.frames)
    summaries = []
    if args.trials:
        summaries.append(workflow_trials(setup, args.trials, rng))
        print(summaries[-1].report(), flush=True)
    if args.cli_trials or args.array_trials:
        reference = cli_reference(setup)
        if args.cli_trials:
            summaries.append(cli_trials(setup, args.cli_trials, rng, reference))
            print(summaries[-1].report(), flush=True)
        if args.array_trials:
            summaries.append(array_trials(setup, args.array_trials, rng, reference))
            print(summaries[-1].report(), flush=True)
    bad = sum(s.trials - s.recovered + s.mismatched for s in summaries)
    if args.keep is None and not bad:
        shutil.rmtree(work)
    print(f"total: {sum(s.trials for s in summaries)} trials, {bad} failed or mismatched")
    results_io.write(args.json, "fault_injection", meta,
                     {"faces": [s.record() for s in summaries],
                      "total": {"trials": sum(s.trials for s in summaries),
                                "failed_or_mismatched": bad}},
                     params=vars(args))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
