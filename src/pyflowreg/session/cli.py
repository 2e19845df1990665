"""Command line: ``pyflowreg-session CONFIG [--stage 1|2|3] [--array-job] [--array-tasks]
[--no-resume] [--export FORMAT ...]``."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from pyflowreg.session.config import SessionConfig

EXIT_BAD_INPUT = 2
EXIT_WRITE_FAILED = 3
# Errors of the output side (disk full, read-only or forbidden folder), not of the input.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
EXIT_CODES_HELP = """exit status:
  0  every requested stage finished
  1  unexpected internal error (a bug: please report the traceback)
  2  bad input or config: the message names the file or key and what is wrong; nothing of
     the bad recording and no session result was written (also for bad command-line use)
  3  an output could not be written (disk full, read-only or forbidden folder): the message
     names the file; no half-written file is left under a real name, rerun when fixed"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyflowreg-session",
        description=(
            "Motion-correct every recording of a 2-photon session (stage 1), align them to the "
            "center recording (stage 2) and compute the field of view valid in all of them, "
            "with aligned videos (stage 3)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="session config file (.toml, .yml or .yaml)")
    parser.add_argument(
        "--stage", type=int, choices=(1, 2, 3),
        help="run only this stage (default: all three in order)",
    )
    parser.add_argument(
        "--array-job", action="store_true",
        help="stage 1 for the one recording (with segment_frames: the one segment) of this "
        "array task (SLURM_ARRAY_TASK_ID, SGE_TASK_ID or PBS_ARRAY_INDEX, 1-based)",
    )
    parser.add_argument(
        "--array-tasks", action="store_true",
        help="print the number of stage 1 array tasks (recordings, or their segments with "
        "segment_frames) and exit, e.g. for sbatch --array=1-N",
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="recompute even if complete outputs exist"
    )
    parser.add_argument(
        "--export", nargs="*", choices=("nwb", "suite2p"), metavar="FORMAT",
        help="after stage 3, write these session exports (nwb, suite2p) instead of the "
        "config's 'export' list; '--export' alone writes none",
    )
    return parser


def run(args: argparse.Namespace) -> None:
    from pyflowreg.session.stage1_compensate import run_stage1, run_stage1_array, stage1_tasks
    from pyflowreg.session.stage2_between_avgs import run_stage2
    from pyflowreg.session.stage3_valid_mask import run_stage3

    config = SessionConfig.from_file(args.config)
    if args.export is not None:
        config.export = list(dict.fromkeys(args.export))
    if args.no_resume:
        config.resume = False
    if args.array_tasks:
        print(len(stage1_tasks(config)))
        return
    if args.array_job:
        if args.stage not in (None, 1):
            raise ValueError("--array-job runs stage 1 only; drop --stage or use --stage 1")
        folder = run_stage1_array(config)
        print(f"stage 1 done: {folder}")
        return
    if config.scheduler == "array" and args.stage in (None, 1):
        # An array task corrects its recording; the session stages wait for every task.
        folder = run_stage1_array(config)
        print(f"stage 1 done: {folder}")
        if args.stage is None:
            print(f"scheduler = 'array': run 'pyflowreg-session {Path(args.config).name} "
                  "--stage 2' and '--stage 3' once every array task has finished")
        return
    stages = (args.stage,) if args.stage else (1, 2, 3)
    if 3 in stages and "nwb" in config.export:
        # A start time and frame times that are known nowhere stop the run now, not after
        # hours of Stages 1-3.
        from pyflowreg.session.export_nwb import check_nwb_metadata

        check_nwb_metadata(config)
    if 1 in stages:
        folders = run_stage1(config)
        print(f"stage 1 done: {len(folders)} recording(s) in {config.output_root_path}")
    if 2 in stages:
        middle_idx, center, fields = run_stage2(config)
        print(f"stage 2 done: aligned to center {center.stem} (recording {middle_idx + 1} of "
              f"{len(fields)})")
    if 3 in stages:
        final = run_stage3(config)
        print(
            f"stage 3 done: {int(final.sum())} of {final.size} pixels valid in every recording; "
            f"results in {config.final_results_path}"
        )
        if config.export:
            from pyflowreg.session.exports import run_exports

            for path in run_exports(config):
                print(f"export written: {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"pyflowreg-session: error: {message}", file=sys.stderr)
        code = exit_code(exc)
        if code == EXIT_WRITE_FAILED and argv is None:
            # An HDF5 file whose final flush failed (disk full) cannot be closed; the HDF5
            # library then crashes the interpreter at exit (SIGSEGV instead of status 3).
            # Its temporary is already deleted, so skip the library's exit handlers.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    return 0


def exit_code(exc: BaseException) -> int:
    """The documented exit status of an error (see ``EXIT_CODES_HELP``)."""
    if isinstance(exc, OSError) and _os_errno(exc) in _WRITE_ERRNOS:
        return EXIT_WRITE_FAILED
    return EXIT_BAD_INPUT


def _os_errno(exc: OSError) -> int | None:
    # h5py and tifffile wrap the operating system's error; its number may only be in the text.
    if exc.errno is not None:
        return exc.errno
    text = str(exc)
    for number in _WRITE_ERRNOS:
        if f"errno = {number}," in text or os.strerror(number) in text:
            return number
    return None


if __name__ == "__main__":
    sys.exit(main())
