"""Session exports for the next tool of a lab's analysis: NWB and suite2p (``export`` key)."""

from __future__ import annotations

from pathlib import Path

from pyflowreg.session.config import SessionConfig

__all__ = ["EXPORTS", "run_exports"]

#: Export name -> (module, function) writing it from a finished session.
EXPORTS = {
    "nwb": ("pyflowreg.session.export_nwb", "export_nwb"),
    "suite2p": ("pyflowreg.session.export_suite2p", "export_suite2p"),
}


def run_exports(config: SessionConfig, names: list[str] | None = None) -> list[Path]:
    """Write the exports ``names`` (default ``config.export``) of a session whose Stage 3 has run.

    Returns the paths written, in the order asked.
    """
    import importlib

    written = []
    for name in config.export if names is None else names:
        module, function = EXPORTS[name]
        written.append(getattr(importlib.import_module(module), function)(config))
    return written
