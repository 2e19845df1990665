"""The workflow runs its own checkout's library when another ``pyflowreg`` comes first.

The reference implementation's PyPI package is also imported as ``pyflowreg``. A stand-in of
it (package folder and ``pyflowreg-*.dist-info``) first on ``PYTHONPATH`` must neither replace
the library in the main process nor in the jobs' scripts, and the run says that it is there.
"""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.slow  # a real (tiny) run


def test_jobs_import_the_checkouts_library_before_another_pyflowreg(
    tmp_path, snakemake, recordings_source, wf
):
    other = tmp_path / "site"
    (other / "pyflowreg").mkdir(parents=True)
    (other / "pyflowreg" / "__init__.py").write_text("raise ImportError('the other pyflowreg')\n")
    (other / "pyflowreg-0.1.0.dist-info").mkdir()
    (other / "pyflowreg-0.1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pyflowreg\nVersion: 0.1.0\n")
    workdir = wf.make_workdir(tmp_path / "wd", recordings_source, 1)
    env = dict(snakemake.env, PYTHONPATH=str(other))
    result = subprocess.run(snakemake.command(workdir), cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=wf.RUN_TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "NameClashWarning" in output
    assert (wf.final_dir(workdir) / "final_valid_idx.npz").is_file()
    job_log = (workdir / "logs" / "compensate" / "rec_00.log").read_text()
    assert "NameClashWarning" in job_log and "the other pyflowreg" not in job_log
