"""Package namespaces that import a submodule only when one of its names is first used.

A workflow job imports the one function it runs; if every package ``__init__`` imported all of
its submodules, each job would also load the optical-flow solver, the quality control and the
session stages it never calls, and that start-up cost is paid once per job (docs/scaling.md).
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``package`` exporting ``{name: submodule}``."""

    def __getattr__(name: str):
        try:
            submodule = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(exports))

    return __getattr__, __dir__
