"""Bad input: clear errors, raised before outputs are written where possible."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pyflowreg.session import ConfigError, SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1, run_stage1_array
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3


def _config(root, **overrides) -> SessionConfig:
    values = dict(root=str(root), pattern="rec_*.tif", quality_setting="fast", n_workers=2)
    values.update(overrides)
    return SessionConfig(**values)


def _quiet(message: str) -> None:
    pass


def _write_movie(path, shape, seed=0):
    rng = np.random.default_rng(seed)
    tifffile.imwrite(path, rng.uniform(100, 1000, shape).astype(np.uint16),
                     photometric="minisblack")
    return path


# ------------------------------------------------------------------------- inputs
def test_missing_root_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_folder"
    config = _config(missing)
    for run in (run_stage1, run_stage2, run_stage3):
        with pytest.raises(FileNotFoundError, match="no_such_folder"):
            run(config)


def test_empty_glob_is_an_error_naming_pattern_and_root(tmp_path):
    _write_movie(tmp_path / "movie.tif", (4, 16, 16))
    config = _config(tmp_path, pattern="rec_*.tif")
    with pytest.raises(FileNotFoundError) as info:
        run_stage1(config)
    assert "rec_*.tif" in str(info.value) and str(tmp_path) in str(info.value)


def test_missing_listed_recording_is_an_error_naming_it(tmp_path):
    _write_movie(tmp_path / "rec_00.tif", (4, 16, 16))
    config = _config(tmp_path, recordings=["rec_00.tif", "rec_07.tif"])
    with pytest.raises(FileNotFoundError, match="rec_07.tif"):
        run_stage1(config)


def test_recordings_of_different_frame_size_fail_before_any_output(tmp_path):
    _write_movie(tmp_path / "rec_00.tif", (6, 48, 48), seed=0)
    _write_movie(tmp_path / "rec_01.tif", (6, 48, 48), seed=1)
    _write_movie(tmp_path / "rec_02.tif", (6, 40, 48), seed=2)
    config = _config(tmp_path)
    with pytest.raises(ValueError) as info:
        run_stage1(config, log=_quiet)
    message = str(info.value)
    assert "rec_02.tif" in message and "(40, 48)" in message and "(48, 48)" in message
    assert not config.output_root_path.exists()


def test_unreadable_recording_fails_before_any_output(tmp_path):
    _write_movie(tmp_path / "rec_00.tif", (6, 32, 32))
    (tmp_path / "rec_01.tif").write_bytes(b"this is not a tiff file")
    config = _config(tmp_path)
    with pytest.raises((ValueError, OSError)):
        run_stage1(config, log=_quiet)
    assert not config.output_root_path.exists()


def test_single_frame_recording_is_an_error_naming_it(tmp_path):
    _write_movie(tmp_path / "rec_00.tif", (6, 32, 32))
    _write_movie(tmp_path / "rec_01.tif", (1, 32, 32))
    config = _config(tmp_path)
    with pytest.raises(ValueError, match="rec_01.tif"):
        run_stage1(config, log=_quiet)
    assert not config.output_root_path.exists()


def test_bad_center_fails_stage1_before_any_output(small_root):
    config = _config(small_root, center="rec_99.tif")
    with pytest.raises(ConfigError, match="rec_99.tif"):
        run_stage1(config, log=_quiet)
    assert not config.output_root_path.exists()


def test_array_task_outside_the_session_is_an_error(small_root):
    config = _config(small_root)
    with pytest.raises(ConfigError, match="1..3"):
        run_stage1_array(config, task_id=4, log=_quiet)
    assert not config.output_root_path.exists()


def test_array_task_checks_the_whole_session_before_any_output(tmp_path):
    """A frame-size mismatch elsewhere in the session stops every task, as in the workflow."""
    _write_movie(tmp_path / "rec_00.tif", (6, 48, 48), seed=0)
    _write_movie(tmp_path / "rec_01.tif", (6, 48, 48), seed=1)
    _write_movie(tmp_path / "rec_02.tif", (6, 40, 48), seed=2)
    config = _config(tmp_path)
    with pytest.raises(ValueError, match="rec_02.tif"):
        run_stage1_array(config, task_id=1, log=_quiet)
    with pytest.raises(ConfigError, match="rec_99.tif"):
        run_stage1_array(_config(tmp_path, center="rec_99.tif", pattern="rec_0[01].tif"),
                         task_id=1, log=_quiet)
    assert not config.output_root_path.exists()


def test_unreadable_recording_fails_only_its_own_array_task(tmp_path):
    _write_movie(tmp_path / "rec_00.tif", (6, 32, 32), seed=0)
    (tmp_path / "rec_01.tif").write_bytes(b"this is not a tiff file")
    config = _config(tmp_path)
    with pytest.raises((ValueError, OSError), match="rec_01.tif"):
        run_stage1_array(config, task_id=2, log=_quiet)
    assert not (config.output_root_path / "rec_01").exists()
    folder = run_stage1_array(config, task_id=1, log=_quiet)
    assert (folder / "status.json").is_file()


def test_array_job_without_task_id_is_an_error(small_root, monkeypatch):
    for name in ("SLURM_ARRAY_TASK_ID", "SGE_TASK_ID", "PBS_ARRAY_INDEX", "PBS_ARRAYID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SGE_TASK_ID", "undefined")
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_ID"):
        run_stage1_array(_config(small_root), log=_quiet)


def test_flow_options_assigned_after_construction_are_checked_before_stage1(small_root):
    """Stage 3 needs idx.hdf: dropping it must fail at once, not after all of Stage 1."""
    config = _config(small_root)
    config.flow_options = {"save_valid_idx": False}  # as the API reference's examples do
    with pytest.raises(ConfigError, match="save_valid_idx"):
        run_stage1(config, log=_quiet)
    assert not config.output_root_path.exists()


# ------------------------------------------------------------------------- missing stage outputs
def test_stage2_without_stage1_names_the_recording_and_stage1(small_root):
    config = _config(small_root)
    with pytest.raises(FileNotFoundError) as info:
        run_stage2(config)
    message = str(info.value).lower()
    assert "rec_00" in message and "stage 1" in message


def test_partial_stage1_then_stage2_and_stage3_name_what_is_missing(small_root):
    config = _config(small_root)
    # array tasks 1 and 3 only: recording rec_01 has no Stage 1 output
    run_stage1_array(config, task_id=1, log=_quiet)
    run_stage1_array(config, task_id=3, log=_quiet)
    assert sorted(p.name for p in config.output_root_path.iterdir()) == ["rec_00", "rec_02"]
    with pytest.raises(FileNotFoundError) as info:
        run_stage2(config)
    message = str(info.value).lower()
    assert "rec_01" in message and "stage 1" in message

    # Stage 3 before Stage 2: names a recording and Stage 2
    run_stage1_array(config, task_id=2, log=_quiet)
    with pytest.raises(FileNotFoundError) as info:
        run_stage3(config)
    message = str(info.value).lower()
    assert "rec_00" in message and "stage 2" in message

    # Stage 2 done, one field lost: Stage 3 names that recording
    run_stage2(config)
    (config.output_folder(small_root / "rec_02.tif") / "w_to_reference.npz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        run_stage3(config)
    message = str(info.value).lower()
    assert "rec_02" in message and "stage 2" in message
    assert not (config.final_results_path / "final_valid_idx.npz").exists()

    # Stage 1 idx lost: Stage 3 names the recording and Stage 1
    run_stage2(config)
    (config.output_folder(small_root / "rec_01.tif") / "idx.hdf").unlink()
    with pytest.raises(FileNotFoundError) as info:
        run_stage3(config)
    message = str(info.value).lower()
    assert "rec_01" in message and "stage 1" in message


# ------------------------------------------------------------------------- config files
def test_bad_toml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('root = "/data"\npattern = [unclosed\n')
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_file(path)
    assert "TOML" in str(info.value) and str(path) in str(info.value)


def test_bad_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("root: /data\npattern: [unclosed\n  center: : x\n")
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_file(path)
    assert "YAML" in str(info.value) and str(path) in str(info.value)


def test_unknown_key_in_a_file_lists_the_known_keys(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(f'root = "{tmp_path}"\ncentre = "rec_01.tif"\n')
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_file(path)
    message = str(info.value)
    assert "centre" in message and "center" in message
