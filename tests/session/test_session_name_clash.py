"""The reference implementation's PyPI package is also imported as ``pyflowreg``.

A stand-in of that package (a ``pyflowreg`` folder and its ``pyflowreg-*.dist-info``, as pip
installs it) is put first on ``PYTHONPATH``. Where it shadows this library, the command refuses
with a message that says what happened; where it is merely installed beside it, importing this
library warns. (The workflow imports the library from its own checkout first:
``tests/workflow/test_workflow_name_clash.py``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _other_pyflowreg(folder: Path, *, with_package: bool) -> Path:
    """Install a stand-in of the reference implementation's distribution into ``folder``."""
    info = folder / "pyflowreg-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pyflowreg\nVersion: 0.1.0\n")
    if with_package:
        (folder / "pyflowreg").mkdir()
        (folder / "pyflowreg" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    return folder


def _env_with(folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(REPO / "src")])
    return env


def test_command_refuses_a_shadowing_pyflowreg_and_names_it(tmp_path, run_cli):
    other = _other_pyflowreg(tmp_path / "site", with_package=True)
    result = run_cli("--help", env=_env_with(other))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(other / "pyflowreg") in result.stderr
    assert "not flowreg-session's package" in result.stderr
    assert "separate virtual environment" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_warns_when_the_reference_distribution_is_installed_beside(tmp_path):
    other = _other_pyflowreg(tmp_path / "site", with_package=False)
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import pyflowreg; print(pyflowreg.__file__)"],
        capture_output=True, text=True, env=_env_with(other), timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(REPO / "src" / "pyflowreg" / "__init__.py")
    assert "NameClashWarning" in result.stderr
    assert str(other / "pyflowreg-0.1.0.dist-info") in result.stderr


def test_import_is_silent_without_the_reference_distribution():
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import pyflowreg"],
        capture_output=True, text=True, env=_env_with(REPO / "src"), timeout=120,
    )
    assert result.returncode == 0, result.stderr
