"""The profile commands of the README as typed: ``--profile slurm`` (after the documented install)
and ``--profile profiles/slurm`` (from the repository root), for slurm, sge and pbs.

No scheduler runs here, so Snakemake is asked for a dry run (``-n``), which loads and applies
the whole profile (executor plugin, resources, status command); CI runs the demo through real
schedulers with the same profiles (``.ci/run``). The dry runs start from a copy of the
repository's workflow files as a fresh clone holds them: in the clone itself, a demo the user
has already run would leave nothing to do, and the answer would depend on that history.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

INSTALL = "profiles/install.py"
PROFILES = ("slurm", "sge", "pbs")
# What a fresh clone needs to run the workflow from its root (no outputs of earlier runs).
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "profiles", "envs", "report", "src")


def _install(wf, config_home, *args):
    return subprocess.run(
        [sys.executable, str(wf.REPO / INSTALL), *args], capture_output=True, text=True,
        env=_env(wf, config_home), cwd=wf.REPO, timeout=60,
    )


def _env(wf, config_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_")}
    env["XDG_CONFIG_HOME"] = str(config_home)  # Snakemake's user folder: <this>/snakemake
    return env


def _dry_run(wf, config_home, cwd, profile):
    """``snakemake --profile PROFILE -n`` as a user types it, from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", profile, "-n"],
        capture_output=True, text=True, env=_env(wf, config_home), cwd=cwd, timeout=300,
    )


@pytest.fixture(scope="module")
def fresh_root(tmp_path_factory, wf):
    """A repository root as a fresh clone has it: the workflow's files and nothing run yet."""
    root = tmp_path_factory.mktemp("clone")
    for name in WORKFLOW_FILES:
        source = wf.REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, root / name)
    return root


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wf, fresh_root):
    config_home = tmp_path_factory.mktemp("xdg_config")
    before = _dry_run(wf, config_home, fresh_root, "slurm")
    assert before.returncode != 0 and "no profile.yaml (or config.yaml) found" in before.stderr
    result = _install(wf, config_home)
    assert result.returncode == 0, result.stderr
    return config_home


def test_install_copies_the_three_cluster_profiles(installed, wf):
    for name in PROFILES:
        source, target = wf.REPO / "profiles" / name, installed / "snakemake" / name
        names = sorted(p.name for p in source.iterdir() if p.name != "__pycache__")
        assert sorted(p.name for p in target.iterdir()) == names
        for file_name in names:
            assert (target / file_name).read_bytes() == (source / file_name).read_bytes()
    assert not (installed / "snakemake" / "local").exists()


@pytest.mark.parametrize("name", PROFILES)
def test_bare_profile_name_works_after_install(installed, wf, fresh_root, name):
    result = _dry_run(wf, installed, fresh_root, name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Using profile {name} for setting default command line arguments" in result.stdout \
        + result.stderr
    assert "This was a dry-run" in result.stdout + result.stderr


def test_profile_path_from_repository_root_works(tmp_path, wf, fresh_root):
    # The lookup of a path is the same for every profile (and CI runs each by absolute path
    # through a real scheduler), so one suffices here.
    name = "slurm"
    result = _dry_run(wf, tmp_path, fresh_root, f"profiles/{name}")  # nothing installed
    assert result.returncode == 0, result.stdout + result.stderr
    assert "This was a dry-run" in result.stdout + result.stderr


def test_reinstall_of_identical_profiles_is_a_no_op(installed, wf):
    result = _install(wf, installed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already installed") == len(PROFILES)


def test_install_refuses_to_overwrite_a_different_profile(tmp_path, wf):
    own = tmp_path / "snakemake" / "sge"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("executor: cluster-generic  # the lab's own\n")
    result = _install(wf, tmp_path)
    assert result.returncode == 1
    assert str(own) in result.stderr and "not overwriting" in result.stderr
    assert (own / "config.yaml").read_text() == "executor: cluster-generic  # the lab's own\n"
    assert sorted(p.name for p in own.iterdir()) == ["config.yaml"]
    # All or nothing: the profiles without a conflict were not installed either.
    assert sorted(p.name for p in (tmp_path / "snakemake").iterdir()) == ["sge"]
