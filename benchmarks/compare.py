"""A/B comparison of one benchmark between another commit (the base) and this checkout.

Usage:
    python benchmarks/compare.py --base REF [--rounds N] [--metric KEY] [--json PATH] \\
        -- benchmarks/<script>.py <its arguments>

    python benchmarks/compare.py --base HEAD --rounds 2 -- benchmarks/stage1.py \\
        --sizes 256 --frames 200 --presets balanced

``REF`` is a commit (anything ``git rev-parse`` takes; exported with ``git archive`` into a
temporary folder, so the repository and its worktrees stay untouched) or the folder of another
checkout. The script then runs alternately from the base and from this checkout, in ABBA order
(base, this, this, base, ... for ``--rounds`` pairs) so that a drift of the machine's load
weighs on both sides alike. Each run is a child process whose ``pyflowreg`` comes from its own
checkout's ``src`` (``PYTHONPATH``); the child checks ``pyflowreg.__file__`` before the script
starts, and the run's result file names the library it used, because an installed
``pyflowreg`` would otherwise answer silently. Each side has its own ``NUMBA_CACHE_DIR``, and
one warm-up run per side comes first and is discarded, so neither numba's compilation nor the
writing of cached benchmark inputs is measured.

When the base's script writes no result file of ``benchmarks/results_io.py`` (a commit older
than it), this checkout's script runs with the base's ``src`` on ``PYTHONPATH`` instead; the
output says so. Scripts that put their own checkout's ``src`` on the path of their children
(``fault_injection.py``) cannot be compared that way.

``--metric`` is a dotted key from the result file's top (``results.first_call.cold_cache_s``)
or the key of a per-row figure (``cpu_s_per_frame``, the default; ``fps``, ``epe_mean``), read
from every record of ``results`` that has it; records are told apart by their non-figure
fields (size, preset, model, ...). Printed: each run's value, the mean per side, and the ratio
this / base of the means with the range (min-max) of the per-round ratios this_i / base_i.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_data  # noqa: E402  (where the real recordings are)
import results_io  # noqa: E402  (run metadata and the result file)

REPO = results_io.REPO

# Runs in each child: the library must come from the side's own src, then the script runs as
# `python script.py args` would run it.
WRAPPER = r"""
import runpy, sys
from pathlib import Path
src, script = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
import pyflowreg
here = Path(pyflowreg.__file__).resolve()
if src not in here.parents:
    sys.exit(f"compare.py: pyflowreg came from {here}, not from {src}")
sys.argv = [str(script), *sys.argv[3:]]
sys.path.insert(0, str(script.parent))
runpy.run_path(str(script), run_name="__main__")
"""
# Figures with a fractional value that still name a case rather than measure it.
LABEL_FLOATS = {"photons"}


def export_base(ref: str, folder: Path) -> tuple[Path, dict]:
    """The base checkout: a folder as given, or commit ``ref`` exported below ``folder``."""
    given = Path(ref)
    if given.is_dir():
        if not (given / "src" / "pyflowreg" / "__init__.py").is_file():
            sys.exit(f"--base {ref}: no src/pyflowreg there")
        return given.resolve(), {"ref": ref, **results_io.git_state(given)}
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"--base {ref}: not a commit of {REPO} ({done.stderr.strip()})")
    commit = done.stdout.strip()
    archive = folder / "base.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive),
                    commit], check=True)
    root = folder / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    archive.unlink()
    return root, {"ref": ref, "commit": commit, "dirty": False}


def writes_result_file(script: Path) -> bool:
    """Whether a checkout's script writes a results_io result file with --json."""
    return (script.is_file() and (script.parent / "results_io.py").is_file()
            and '"--json"' in script.read_text() and "results_io" in script.read_text())


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(record: dict, key: str) -> str:
    parts = []
    for name in sorted(record):
        value = record[name]
        if name == key or isinstance(value, dict):
            continue
        if isinstance(value, float) and name not in LABEL_FLOATS:
            continue
        if isinstance(value, list) and not all(isinstance(v, int) for v in value):
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{name}={value}")
    return " ".join(parts)


def metric_values(doc: dict, key: str) -> dict[str, float]:
    """``{row label: value}`` of ``key`` in one result file (see the module docstring)."""
    if "." in key:
        node = doc
        for part in key.split("."):
            if isinstance(node, list):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise KeyError(f"{key}: no {part!r} in the result file")
        if _is_number(node):
            return {key: float(node)}
        if isinstance(node, list) and all(_is_number(v) for v in node):
            return {f"{key}[{i}]": float(v) for i, v in enumerate(node)}
        raise KeyError(f"{key} is not a number or a list of numbers")
    found: dict[str, float] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            if _is_number(node.get(key)):
                label = f"{path}: {_label(node, key)}".rstrip(": ")
                n, unique = 2, label
                while unique in found:  # records that differ only in figures: number them
                    unique, n = f"{label} #{n}", n + 1
                found[unique] = float(node[key])
            for name in sorted(node):
                if isinstance(node[name], dict | list):
                    walk(node[name], f"{path}.{name}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(doc.get("results"), "results")
    if not found:
        raise KeyError(f"no record of the results has a numeric {key!r}")
    return found


def run_side(side: dict, args: list[str], out: Path, log: Path) -> dict:
    """One run of the side's script; its result file, checked for the library it used."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(side["src"]), NUMBA_CACHE_DIR=str(side["numba_cache"]))
    # An exported base sits in a temporary folder, where no real recordings lie beside it.
    env.setdefault("FLOWREG_REAL_DATA", str(real_data.real_data_dir()))
    command = [sys.executable, "-c", WRAPPER, str(side["src"]), str(side["script"]), *args,
               "--json", str(out)]
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-15:])
        sys.exit(f"{side['name']} run failed (exit {done.returncode}), log {log}:\n{tail}")
    doc = results_io.read(out)
    used = Path(doc["meta"]["pyflowreg"]["path"]).resolve()
    if side["src"].resolve() not in used.parents:
        sys.exit(f"{side['name']} run used pyflowreg from {used}, not from {side['src']}")
    return doc


def summarise(values: dict[str, list[dict[str, float]]]) -> list[dict]:
    rows = []
    for label in values["base"][0]:
        base = [v[label] for v in values["base"]]
        this = [v[label] for v in values["this"]]
        per_round = [t / b if b else math.nan for t, b in zip(this, base, strict=True)]
        base_mean, this_mean = sum(base) / len(base), sum(this) / len(this)
        rows.append({"row": label, "base": base, "this": this, "base_mean": base_mean,
                     "this_mean": this_mean,
                     "ratio": this_mean / base_mean if base_mean else math.nan,
                     "round_ratios": per_round, "ratio_min": min(per_round),
                     "ratio_max": max(per_round)})
    return rows


def main(argv: list[str] | None = None) -> int:
    meta = results_io.start(None if argv is None else [__file__, *argv])
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        sys.exit("usage: compare.py --base REF [options] -- <script>.py <its arguments>")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, metavar="REF",
                        help="commit to compare with, or the folder of another checkout")
    parser.add_argument("--rounds", type=int, default=2,
                        help="pairs of runs, alternating base-this and this-base (default 2)")
    parser.add_argument("--metric", default="cpu_s_per_frame",
                        help="dotted key, or the key of a per-row figure (default "
                             "cpu_s_per_frame)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write the runs, their values and the ratios here")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in this folder and keep it (base tree, logs, result files)")
    args = parser.parse_args(argv[:split])
    script_args = argv[split + 1:]
    if not script_args:
        sys.exit("no benchmark script given after --")
    if "--json" in script_args:
        sys.exit("compare.py sets --json of each run itself; drop it from the script's arguments")
    script = Path(script_args[0])
    script = (script if script.is_file() else REPO / "benchmarks" / script.name).resolve()
    try:
        relative = script.relative_to(REPO)
    except ValueError:
        sys.exit(f"{script_args[0]}: not a script of this checkout ({REPO})")

    work = args.keep or Path(tempfile.mkdtemp(prefix="flowreg-compare."))
    work.mkdir(parents=True, exist_ok=True)
    finished = False
    try:
        base_root, base_info = export_base(args.base, work)
        own = writes_result_file(base_root / relative)
        sides = {
            "base": {"name": "base", "src": base_root / "src",
                     "script": base_root / relative if own else REPO / relative,
                     "numba_cache": work / "numba_base"},
            "this": {"name": "this", "src": REPO / "src", "script": REPO / relative,
                     "numba_cache": work / "numba_this"},
        }
        this_info = results_io.git_state(REPO)
        mode = ("its own script" if own else
                f"this checkout's {relative} with the base's src on PYTHONPATH (the base's "
                "script writes no result file)")
        print(f"base: {args.base} = {base_info['commit'] or 'a folder outside git'}, {mode}")
        print(f"this: {REPO} = {this_info['commit']}"
              + (" with uncommitted changes" if this_info["dirty"] else ""))
        print(f"benchmark: {' '.join(script_args)}; metric {args.metric}; one warm-up run per "
              "side first, discarded (numba compilation, cached inputs); then rounds in ABBA "
              f"order: {args.rounds}")
        for side in sides.values():
            run_side(side, script_args[1:], work / f"warm_{side['name']}.json",
                     work / f"warm_{side['name']}.log")
        runs, values = [], {"base": [], "this": []}
        for round_ in range(args.rounds):
            order = ("base", "this") if round_ % 2 == 0 else ("this", "base")
            for name in order:
                stem = f"round{round_ + 1}_{name}"
                doc = run_side(sides[name], script_args[1:], work / f"{stem}.json",
                               work / f"{stem}.log")
                try:
                    got = metric_values(doc, args.metric)
                except KeyError as err:
                    sys.exit(f"--metric: {err.args[0]}")
                values[name].append(got)
                runs.append({"round": round_ + 1, "side": name, "values": got,
                             "loadavg_start": doc["meta"]["machine"]["loadavg_start"]})
                shown = ", ".join(f"{v:.4g}" for v in got.values())
                print(f"  round {round_ + 1} {name:>4}: {shown}  (load at start "
                      f"{doc['meta']['machine']['loadavg_start'][0]:.2f})", flush=True)
        if any(v.keys() != values["base"][0].keys() for v in values["base"] + values["this"]):
            sys.exit("the runs do not have the same rows of the metric; compare one case")
        rows = summarise(values)
        print(f"\n{args.metric}: mean per side of its runs ({args.rounds}); ratio this/base of "
              "the means [min-max of the per-round ratios]")
        for row in rows:
            print(f"  {row['row']}\n    base {row['base_mean']:.4g}, this {row['this_mean']:.4g}, "
                  f"this/base {row['ratio']:.3f} [{row['ratio_min']:.3f}-"
                  f"{row['ratio_max']:.3f}]")
        results_io.write(args.json, "compare", meta, {
            "base": {**base_info, "script": "own" if own else "this checkout's"},
            "this": {"path": str(REPO), **this_info}, "benchmark": script_args,
            "metric": args.metric, "rounds": args.rounds, "order": "ABBA",
            "warm_up": "one run per side, discarded", "spread": "min-max of per-round ratios",
            "runs": runs, "rows": rows,
        }, params=vars(args))
        finished = True
    finally:
        if args.keep is None and finished:
            shutil.rmtree(work, ignore_errors=True)
        elif not finished:
            print(f"work folder kept for its logs: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
