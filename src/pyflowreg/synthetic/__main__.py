"""Command line: ``python -m pyflowreg.synthetic OUTDIR [--n-recordings N ...]``.

Writes a synthetic session (:func:`~pyflowreg.synthetic.make_session`) as TIFFs plus
``ground_truth.npz`` (:func:`~pyflowreg.synthetic.write_session`) and prints the recordings'
paths.
"""

from __future__ import annotations

import argparse

from pyflowreg.synthetic.session import make_session
from pyflowreg.synthetic.writers import write_session


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line) and write the session.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name.
    """
    parser = argparse.ArgumentParser(prog="python -m pyflowreg.synthetic",
                                     description="Write a synthetic 2-photon session.")
    parser.add_argument("outdir")
    parser.add_argument("--n-recordings", type=int, default=3)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--dtype", choices=("uint16", "float32"), default="uint16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    session = make_session(args.n_recordings, args.height, args.width, args.frames,
                           seed=args.seed, n_channels=args.channels)
    for path in write_session(session, args.outdir, dtype=args.dtype):
        print(path)


if __name__ == "__main__":
    main()
