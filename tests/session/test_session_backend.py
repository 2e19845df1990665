"""``scheduler`` and ``backend_params`` do what config/README.md says, in the API and the CLI."""

from __future__ import annotations

import numba
import pytest
from threadpoolctl import threadpool_info

from pyflowreg.session import ConfigError, SessionConfig
from pyflowreg.session import stage2_between_avgs as stage2
from pyflowreg.session.config import ARRAY_TASK_VARIABLES
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import run_stage2

FAST = {"quality_setting": "fast", "n_workers": 2}


def _config(root, **overrides) -> SessionConfig:
    values = dict(root=str(root), pattern="rec_*.tif", **FAST)
    values.update(overrides)
    return SessionConfig(**values)


@pytest.fixture
def no_task(monkeypatch):
    for name in ARRAY_TASK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _stage1_folders(root) -> list[str]:
    out = root / "compensated_outputs"
    return sorted(p.name for p in out.iterdir()) if out.is_dir() else []


# --------------------------------------------------------------------------- backend_params
@pytest.mark.parametrize("entry", ["device", "n_worker", "threads"])
def test_unknown_backend_params_entry_is_an_error_naming_it(small_root, entry):
    with pytest.raises(ConfigError, match=rf"unknown key\(s\) \['{entry}'\] in 'backend_params'"):
        _config(small_root, backend_params={entry: 1})


def test_backend_params_n_workers_sets_stage1_workers(small_root):
    config = _config(small_root, n_workers=None, backend_params={"n_workers": 1})
    assert config.stage1_options().n_workers == 1
    assert _config(small_root, n_workers=None).stage1_options().n_workers is None


def test_backend_params_n_workers_contradicting_n_workers_is_an_error(small_root):
    with pytest.raises(ConfigError, match="backend_params.*n_workers is 2.*is 1"):
        _config(small_root, n_workers=2, backend_params={"n_workers": 1})
    _config(small_root, n_workers=2, backend_params={"n_workers": 2})  # agreeing: fine


def test_backend_params_numba_threads_drive_stage2_and_are_restored(small_root, monkeypatch):
    config = _config(small_root, backend_params={"numba_threads": 1})
    run_stage1(config)
    seen = []
    real = stage2.get_displacement

    def recording(*args, **kwargs):
        seen.append(numba.get_num_threads())
        seen_blas.append(blas_threads())
        return real(*args, **kwargs)

    seen_blas = []
    monkeypatch.setattr(stage2, "get_displacement", recording)
    before, blas_before = numba.get_num_threads(), blas_threads()
    run_stage2(config)
    assert seen and set(seen) == {1}
    assert all(threads <= {1} for threads in seen_blas)  # <=: a numpy without BLAS has none
    assert numba.get_num_threads() == before and blas_threads() == blas_before
    if numba.config.NUMBA_NUM_THREADS > 1:  # and without the setting, every thread is used
        seen.clear()
        run_stage2(_config(small_root, resume=False))
        assert set(seen) == {before}


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


# --------------------------------------------------------------------------- scheduler
def test_scheduler_array_makes_run_stage1_correct_only_the_task_recording(small_root, no_task):
    no_task.setenv("SGE_TASK_ID", "2")
    folders = run_stage1(_config(small_root, scheduler="array"))
    assert [p.name for p in folders] == ["rec_01"]
    assert _stage1_folders(small_root) == ["rec_01"]


def test_scheduler_array_without_a_task_id_is_an_error_before_any_output(small_root, no_task):
    with pytest.raises(ConfigError, match="no array task id"):
        run_stage1(_config(small_root, scheduler="array"))
    assert _stage1_folders(small_root) == []


def test_scheduler_local_ignores_a_task_id(small_root, no_task):
    no_task.setenv("SLURM_ARRAY_TASK_ID", "1")
    run_stage1(_config(small_root))
    assert _stage1_folders(small_root) == ["rec_00", "rec_01", "rec_02"]


def test_cli_with_scheduler_array_runs_stage1_of_the_task_only(
    small_root, tmp_path, run_cli, write_toml, clean_env
):
    config = write_toml(tmp_path / "session.toml",
                        dict(root=str(small_root), pattern="rec_*.tif", scheduler="array",
                             **FAST))
    result = run_cli(config, env=clean_env(SLURM_ARRAY_TASK_ID="3"))
    assert result.returncode == 0, result.stderr
    assert _stage1_folders(small_root) == ["rec_02"]
    assert "--stage 2" in result.stdout
    assert not (small_root / "final_results").exists()
    result = run_cli(config, env=clean_env())
    assert result.returncode == 2
    assert "no array task id" in result.stderr
