"""Where the benchmark scripts find the real 2-photon recordings of the real models.

The library reads them from a folder it is given (``data_dir`` of
:func:`pyflowreg.synthetic.make_benchmark_recording`); this module chooses that folder for the
scripts: ``--real-data DIR``, else ``$FLOWREG_REAL_DATA``, else ``shared/data/real`` beside
the repository (or beside one of its parent folders, where a git worktree's main checkout
sits).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ENV = "FLOWREG_REAL_DATA"
REPOSITORY = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """Folder of the real recordings (see the module docstring).

    When no candidate exists, the place beside the repository, so the library's error names
    where the recordings were expected.
    """
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    for folder in REPOSITORY.parents:
        candidate = folder / "shared" / "data" / "real"
        if candidate.is_dir():
            return candidate
    return REPOSITORY.parent / "shared" / "data" / "real"


def add_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--real-data DIR`` to a script's options."""
    parser.add_argument("--real-data", type=Path, metavar="DIR",
                        help=f"folder of the real recordings (default: ${ENV}, else "
                             "shared/data/real beside the repository)")


def apply(args: argparse.Namespace) -> None:
    """Make ``--real-data``, if given, the folder of this run and of the processes it starts."""
    if args.real_data is not None:
        os.environ[ENV] = str(args.real_data)
