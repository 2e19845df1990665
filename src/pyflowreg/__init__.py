"""flowreg-session: variational optical-flow registration of 2-photon recordings and sessions."""

import os
import sys
import warnings

# numba's OpenMP threading layer busy-waits between parallel regions by default. The solver runs
# thousands of short regions per frame, and on a node shared with other jobs (or a Snakemake run
# with several jobs per machine) the spinning threads steal the cores the work needs: measured
# here, 2 threads fell from 14 to 0.4 frames/s with one other busy process. Passive waiting costs
# nothing measurable on an idle machine. Set before numba starts its threads; a value the user
# chose is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.7.0"
# Which distribution this ``pyflowreg`` is: the reference implementation's PyPI package uses the
# same import name (see flowreg_session.own_pyflowreg, which checks this marker).
__distribution__ = "flowreg-session"
REFERENCE_DISTRIBUTION = "pyflowreg"


class NameClashWarning(UserWarning):
    """The reference implementation's ``pyflowreg`` is installed in the same environment."""


def _installed_reference() -> str | None:
    """Metadata folder of the reference implementation's distribution on ``sys.path``, if any.

    A listing of each path entry rather than ``importlib.metadata``: this runs at every import
    of the package (every workflow job), and the listing costs well under a millisecond.
    """
    prefix = REFERENCE_DISTRIBUTION + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.lower().startswith(prefix) and name.endswith((".dist-info", ".egg-info")):
                return os.path.join(entry, name)
    return None


def _warn_if_reference_installed() -> None:
    found = _installed_reference()
    if found is None:
        return
    warnings.warn(
        f"{found}: the reference implementation's distribution {REFERENCE_DISTRIBUTION} is "
        f"installed beside {__distribution__} in this environment; both install the import "
        "package pyflowreg, so one overwrites the other's files and imports may mix them. "
        "Install them in separate virtual environments (docs/api.md).",
        NameClashWarning, stacklevel=2)


_warn_if_reference_installed()
