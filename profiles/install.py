"""Install this repository's cluster profiles where ``snakemake --profile NAME`` finds them.

Usage (from the repository root):
    python profiles/install.py                 # slurm, sge, pbs into Snakemake's user folder
    python profiles/install.py slurm           # only some
    python profiles/install.py --dest /etc/xdg/snakemake   # site-wide (needs write access)

Snakemake looks up a bare profile name in the current directory, then in its user config folder
(``$XDG_CONFIG_HOME/snakemake``, by default ``~/.config/snakemake``) and its site folder
(``/etc/xdg/snakemake``). After the install, ``snakemake --profile slurm`` works from any
directory. A profile folder that already exists is never overwritten: when its files are the
same, it is reported as installed; when they differ, nothing at all is installed and the command
exits with status 1 naming the folder (remove or rename it first to update).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLUSTER_PROFILES = ("slurm", "sge", "pbs")


def user_profile_folder() -> Path:
    """Snakemake's user config folder, as Snakemake itself computes it."""
    try:
        from snakemake.common import get_appdirs
    except ImportError:  # Snakemake not installed here: the XDG rule it follows on Linux/macOS
        base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
        return Path(base) / "snakemake"
    return Path(get_appdirs().user_config_dir)


def _same_files(source: Path, target: Path) -> bool:
    comparison = filecmp.dircmp(source, target, ignore=["__pycache__"])
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(source, target, comparison.common_files,
                                           shallow=False)
    return not mismatch and not errors


def install(names: list[str], dest: Path) -> int:
    """Copy the named profiles into ``dest``; return the exit status (0 ok, 1 refused)."""
    plan, conflicts = [], []
    for name in names:
        source, target = HERE / name, dest / name
        if not (source / "config.yaml").is_file():
            print(f"error: {source} is not a profile of this repository", file=sys.stderr)
            return 1
        if target.exists():
            if target.is_dir() and _same_files(source, target):
                print(f"{name}: already installed in {target}, unchanged")
            else:
                conflicts.append(target)
        else:
            plan.append((source, target))
    if conflicts:
        for target in conflicts:
            print(f"error: {target} already exists and differs from {HERE / target.name}; "
                  "not overwriting it (remove or rename it to install this one)",
                  file=sys.stderr)
        print("nothing was installed", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    for source, target in plan:
        # Copy next to the target and rename, so an interrupted install leaves no half profile.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=dest))
        try:
            shutil.copytree(source, staging / target.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
            os.rename(staging / target.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        print(f"{target.name}: installed in {target} (use: snakemake --profile {target.name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(CLUSTER_PROFILES),
                        help=f"profiles to install (default: {' '.join(CLUSTER_PROFILES)})")
    parser.add_argument("--dest", type=Path, default=None,
                        help="folder to install into (default: Snakemake's user config folder)")
    args = parser.parse_args(argv)
    return install(args.names, args.dest or user_profile_folder())


if __name__ == "__main__":
    sys.exit(main())
