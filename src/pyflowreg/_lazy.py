"""Package namespaces that import a submodule only when one of its names is first used.

A workflow job imports the one function it runs; if every package ``__init__`` imported all of
its submodules, each job would also load the optical-flow solver, the quality control and the
session stages it never calls, and that start-up cost is paid once per job (docs/scaling.md).
"""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, names_by_submodule: dict[str, tuple[str, ...]]):
    """``__all__``, ``__getattr__`` and ``__dir__`` of ``package``, which exports the names of
    each of its submodules as ``{submodule: names}`` lists them."""
    submodule_of = {name: sub for sub, names in names_by_submodule.items() for name in names}

    def __getattr__(name: str):
        try:
            submodule = submodule_of[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(submodule_of))

    return sorted(submodule_of), __getattr__, __dir__
