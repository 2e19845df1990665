"""Entry points of the flowreg-session distribution that check which ``pyflowreg`` they import.

The reference implementation of the method is published on PyPI as ``pyflowreg`` and is
imported under the same name as this library. Installed into one environment, the two write
into one ``pyflowreg`` folder, and ``import pyflowreg`` may find the other package. This module
lives outside that name, so the command-line entry point and the workflow can say so before
anything runs, instead of failing later with an ImportError or running the other package.
"""

from __future__ import annotations

import sys

DISTRIBUTION = "flowreg-session"
EXIT_BAD_INPUT = 2  # as pyflowreg.session.cli: an environment that cannot run is bad input


class ShadowedError(ImportError):
    """``import pyflowreg`` found a package other than this distribution's."""


def own_pyflowreg():
    """Import ``pyflowreg`` and check that it is this distribution's.

    Returns
    -------
    module
        The imported ``pyflowreg`` package.

    Raises
    ------
    ShadowedError
        If ``pyflowreg`` is missing or is another distribution's package (typically the
        reference implementation's PyPI package ``pyflowreg``); the message names where it was
        found and what to do.

    Examples
    --------
    >>> own_pyflowreg().__distribution__
    'flowreg-session'
    """
    try:
        import pyflowreg
    except ImportError as exc:
        raise ShadowedError(
            f"the package pyflowreg cannot be imported ({exc}); install {DISTRIBUTION} with "
            "`pip install -e .` from its repository") from None
    if getattr(pyflowreg, "__distribution__", None) != DISTRIBUTION:
        location = getattr(pyflowreg, "__file__", None) or list(getattr(pyflowreg, "__path__", []))
        raise ShadowedError(
            f"`import pyflowreg` found {location}, which is not {DISTRIBUTION}'s package but "
            "another one of the same name (the reference implementation on PyPI is also "
            f"called pyflowreg). The two cannot share one environment: use a separate virtual "
            f"environment for {DISTRIBUTION} (pip uninstall pyflowreg, then reinstall "
            f"{DISTRIBUTION}).")
    return pyflowreg


def main(argv: list[str] | None = None) -> int:
    """The ``pyflowreg-session`` command: :func:`pyflowreg.session.cli.main` once checked."""
    try:
        own_pyflowreg()
    except ShadowedError as exc:
        print(f"pyflowreg-session: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from pyflowreg.session.cli import main as cli_main

    return cli_main(argv)
