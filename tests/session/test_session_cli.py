"""The ``pyflowreg-session`` console script, run as a subprocess like a user or scheduler would."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pyflowreg.session import cli

STEMS = ("rec_00", "rec_01", "rec_02")
STAGE1_FILES = ("compensated.hdf5", "idx.hdf", "temporal_average.npy", "reference.npy",
                "status.json")
STAGE2_FILES = ("w_to_reference.npz", "w_to_reference.json")
OLD = 1_000_000_000


def _values(root, **extra) -> dict:
    values = {"root": str(root), "pattern": "rec_*.tif", "quality_setting": "fast",
              "n_workers": 2}
    values.update(extra)
    return values


def _write_yaml(path, values: dict):
    lines = [f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {str(v).lower()}"
             if isinstance(v, bool) else f"{k}: {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _stage1_done(root, stem) -> bool:
    folder = root / "compensated_outputs" / stem
    return all((folder / n).is_file() for n in STAGE1_FILES)


def _stage2_done(root, stem) -> bool:
    folder = root / "compensated_outputs" / stem
    return all((folder / n).is_file() for n in STAGE2_FILES)


def _stage3_done(root) -> bool:
    out = root / "final_results"
    names = ["final_valid_idx.png", "final_valid_idx.npz", "final_valid_idx.mat"]
    for stem in STEMS:
        names += [f"{stem}_valid_idx.png", f"{stem}_valid_idx_aligned.png", f"aligned_{stem}.tif"]
    return all((out / n).is_file() for n in names)


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_cli_runs_stage_1_then_2_then_3(small_root, tmp_path, run_cli, write_toml, fmt):
    values = _values(small_root)
    if fmt == "toml":
        config = write_toml(tmp_path / "session.toml", values)
    else:
        config = _write_yaml(tmp_path / "session.yaml", values)

    result = _ok(run_cli(config, "--stage", "1"))
    assert "stage 1 done" in result.stdout
    assert all(_stage1_done(small_root, s) for s in STEMS)
    assert not any(_stage2_done(small_root, s) for s in STEMS)
    assert not (small_root / "final_results").exists()

    result = _ok(run_cli(config, "--stage", "2"))
    assert "stage 2 done: aligned to center rec_01 (recording 2 of 3)" in result.stdout
    assert all(_stage2_done(small_root, s) for s in STEMS)
    # The center is named by its stem, as the workflow names it (same provenance, same resume).
    for stem in STEMS:
        info = json.loads((small_root / "compensated_outputs" / stem / STAGE2_FILES[1]).read_text())
        assert info["provenance"]["center"] == "rec_01"
    assert not (small_root / "final_results").exists()

    result = _ok(run_cli(config, "--stage", "3"))
    assert "stage 3 done" in result.stdout
    assert _stage3_done(small_root)
    with np.load(small_root / "final_results" / "final_valid_idx.npz") as bundle:
        assert int(bundle["middle_idx"]) == 1


def test_cli_without_stage_runs_all_stages_and_no_resume_recomputes(
    small_root, tmp_path, run_cli, write_toml
):
    config = write_toml(tmp_path / "session.toml", _values(small_root))
    result = _ok(run_cli(config))
    for stage in (1, 2, 3):
        assert f"stage {stage} done" in result.stdout
    assert all(_stage1_done(small_root, s) and _stage2_done(small_root, s) for s in STEMS)
    assert _stage3_done(small_root)

    # resume (the default) keeps the Stage 2 fields; --no-resume recomputes them
    fields = [small_root / "compensated_outputs" / s / "w_to_reference.npz" for s in STEMS]
    for f in fields:
        os.utime(f, (OLD, OLD))
    _ok(run_cli(config, "--stage", "2"))
    assert all(int(f.stat().st_mtime) == OLD for f in fields)
    _ok(run_cli(config, "--stage", "2", "--no-resume"))
    assert all(int(f.stat().st_mtime) != OLD for f in fields)


@pytest.mark.parametrize(
    ("variable", "task_id", "stem"),
    [("SLURM_ARRAY_TASK_ID", "1", "rec_00"), ("SGE_TASK_ID", "3", "rec_02"),
     ("PBS_ARRAY_INDEX", "2", "rec_01")],
)
def test_cli_array_job_processes_the_recording_of_the_task(
    small_root, tmp_path, run_cli, write_toml, clean_env, variable, task_id, stem
):
    config = write_toml(tmp_path / "session.toml", _values(small_root, scheduler="array"))
    _ok(run_cli(config, "--array-job", env=clean_env(**{variable: task_id})))
    folders = sorted(p.name for p in (small_root / "compensated_outputs").iterdir())
    assert folders == [stem]
    assert _stage1_done(small_root, stem)
    assert not (small_root / "final_results").exists()


def test_cli_array_job_with_task_outside_the_session_fails(
    small_root, tmp_path, run_cli, write_toml, clean_env
):
    config = write_toml(tmp_path / "session.toml", _values(small_root))
    result = run_cli(config, "--array-job", env=clean_env(SLURM_ARRAY_TASK_ID="4"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "4" in lines[0]
    assert not (small_root / "compensated_outputs").exists()


def test_cli_help_lists_the_options(run_cli):
    result = _ok(run_cli("--help"))
    for option in ("--stage", "--array-job", "--no-resume", "config"):
        assert option in result.stdout


def test_cli_bad_config_exits_nonzero_with_one_line_error(tmp_path, run_cli, write_toml):
    config = write_toml(tmp_path / "session.toml", {"root": str(tmp_path), "cc_upsampel": 4})
    result = run_cli(config, "--stage", "1")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cc_upsampel" in lines[0]
    assert "Traceback" not in result.stderr


# In-process variants (same code path, no interpreter start-up) for more kinds of bad input.
@pytest.mark.parametrize(
    ("text", "suffix", "fragment"),
    [
        ('root = "{root}"\ncc_upsample = "four"\n', ".toml", "cc_upsample"),
        ('root = "{root}"\npattern = [unclosed\n', ".toml", "TOML"),
        ("root: {root}\npattern: [unclosed\n", ".yaml", "YAML"),
        ("root: {root}\nextra_key: 1\n", ".yml", "extra_key"),
        ('root = "{root}/missing"\n', ".toml", "missing"),
        ('root = "{root}"\npattern = "nothing_*.tif"\n', ".toml", "nothing_"),
        ('root = "{root}"\n', ".json", ".json"),
    ],
)
def test_cli_main_reports_bad_input_in_one_line(tmp_path, capsys, text, suffix, fragment):
    path = tmp_path / f"session{suffix}"
    path.write_text(text.format(root=tmp_path))
    assert cli.main([str(path), "--stage", "1"]) != 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyflowreg-session: error:")
    assert fragment in lines[0]


def test_cli_main_missing_config_file(tmp_path, capsys):
    assert cli.main([str(tmp_path / "absent.toml")]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "absent.toml" in lines[0]


def test_cli_main_rejects_array_job_for_other_stages(tmp_path, capsys, write_toml):
    config = write_toml(tmp_path / "session.toml", {"root": str(tmp_path)})
    assert cli.main([str(config), "--array-job", "--stage", "2"]) != 0
    assert "--array-job" in capsys.readouterr().err


def test_cli_rejects_an_unknown_stage(tmp_path):
    with pytest.raises(SystemExit) as info:
        cli.main([str(tmp_path / "s.toml"), "--stage", "4"])
    assert info.value.code != 0


def test_cli_export_without_a_start_time_stops_before_stage_1(small_root, tmp_path, run_cli,
                                                              write_toml):
    config = write_toml(tmp_path / "s.toml", _values(small_root))
    result = run_cli(config, "--export", "nwb", "suite2p")
    assert result.returncode == 2, result.stderr
    assert "session_start_time" in result.stderr
    assert not (small_root / "compensated_outputs").exists()
