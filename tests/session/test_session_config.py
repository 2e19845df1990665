"""SessionConfig: files, validation, path resolution, center selection and array task ids."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pyflowreg.session import ConfigError, SessionConfig, get_array_task_id
from pyflowreg.session.config import ARRAY_TASK_VARIABLES, session_schema

TOML = """
root = "{root}"
pattern = "rec_*.tif"
center = "rec_01.tif"
output_root = "comp"
final_results = "final"
resume = false
scheduler = "array"
flow_backend = "flowreg"
cc_upsample = 8
sigma_smooth = 5.0
alpha_between = 20.0
iterations_between = 50
quality_setting = "fast"
n_workers = 2
segment_frames = 64
align_chunk_size = 16
align_output_format = "HDF5"
exclude_misaligned = true
recordings = ["rec_00.tif", "rec_02.tif"]
nwb_series = "raw"
export = ["suite2p"]

[metadata]
imaging_rate = 30.0

[demo]
enabled = false
n_recordings = 2
height = 32
width = 40
frames = 6
seed = 3

[backend_params]
numba_threads = 1

[flow_options]
alpha = 2.0
buffer_size = 50
"""

YAML = """
root: {root}
pattern: rec_*.tif
center: rec_01.tif
output_root: comp
final_results: final
resume: false
scheduler: array
flow_backend: flowreg
cc_upsample: 8
sigma_smooth: 5.0
alpha_between: 20.0
iterations_between: 50
quality_setting: fast
n_workers: 2
segment_frames: 64
align_chunk_size: 16
align_output_format: HDF5
exclude_misaligned: true
recordings: [rec_00.tif, rec_02.tif]
nwb_series: raw
export: [suite2p]
metadata:
  imaging_rate: 30.0
demo:
  enabled: false
  n_recordings: 2
  height: 32
  width: 40
  frames: 6
  seed: 3
backend_params:
  numba_threads: 1
flow_options:
  alpha: 2.0
  buffer_size: 50
"""

EXPECTED = {
    "pattern": "rec_*.tif", "center": "rec_01.tif", "output_root": "comp",
    "final_results": "final", "resume": False, "scheduler": "array", "flow_backend": "flowreg",
    "cc_upsample": 8, "sigma_smooth": 5.0, "alpha_between": 20.0, "iterations_between": 50,
    "quality_setting": "fast", "n_workers": 2, "segment_frames": 64, "align_chunk_size": 16,
    "align_output_format": "HDF5", "exclude_misaligned": True,
    "backend_params": {"numba_threads": 1},
    "flow_options": {"alpha": 2.0, "buffer_size": 50},
    "recordings": ["rec_00.tif", "rec_02.tif"],
    "nwb_series": "raw", "export": ["suite2p"], "metadata": {"imaging_rate": 30.0},
    "demo": {"enabled": False, "n_recordings": 2, "height": 32, "width": 40, "frames": 6,
             "seed": 3},
}


def _touch(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def _check_loaded(config: SessionConfig, root: Path) -> None:
    # "every key": the files above set each key of the schema to a non-default value.
    assert set(EXPECTED) | {"root"} == set(session_schema()["properties"])
    assert Path(config.root) == root
    for key, value in EXPECTED.items():
        assert getattr(config, key) == value, key


# ------------------------------------------------------------------------- files
def test_from_toml_reads_every_key(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text(TOML.format(root=tmp_path))
    _check_loaded(SessionConfig.from_toml(path), tmp_path)


def test_from_yaml_reads_every_key(tmp_path):
    path = tmp_path / "session.yml"
    path.write_text(YAML.format(root=tmp_path))
    _check_loaded(SessionConfig.from_yaml(path), tmp_path)


@pytest.mark.parametrize("suffix", [".toml", ".yml", ".yaml", ".TOML"])
def test_from_file_chooses_the_format_by_suffix(tmp_path, suffix):
    path = tmp_path / f"session{suffix}"
    text = TOML if suffix.lower() == ".toml" else YAML
    path.write_text(text.format(root=tmp_path))
    config = SessionConfig.from_file(path)
    _check_loaded(config, tmp_path)
    assert config == SessionConfig.from_file(str(path))


def test_from_file_rejects_an_unknown_suffix(tmp_path):
    path = tmp_path / "session.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match=r"\.json"):
        SessionConfig.from_file(path)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        SessionConfig.from_file(tmp_path / "nope.toml")


def test_minimal_config_takes_the_documented_defaults(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(f'root = "{tmp_path}"\n')
    config = SessionConfig.from_toml(path)
    assert config.pattern == "*.tif"
    assert config.center is None
    assert config.output_root == "compensated_outputs"
    assert config.final_results == "final_results"
    assert config.resume is True
    assert config.scheduler == "local"
    assert config.flow_backend == "flowreg"
    assert config.cc_upsample == 4
    assert config.sigma_smooth == 6.0
    assert config.alpha_between == 25.0
    assert config.iterations_between == 100
    assert config.align_output_format == "TIFF"
    # ... and every other key: the documented default is the schema's (config/README.md table)
    for key, spec in session_schema()["properties"].items():
        if key != "root":
            assert getattr(config, key) == spec["default"], key


def test_to_dict_round_trips(tmp_path):
    path = tmp_path / "session.toml"
    path.write_text(TOML.format(root=tmp_path))
    config = SessionConfig.from_toml(path)
    assert SessionConfig(**config.to_dict()) == config
    assert SessionConfig.from_dict(config.to_dict()) == config


# ------------------------------------------------------------------------- paths
def test_relative_output_paths_resolve_against_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the root: relative outputs must not land in the cwd
    root = tmp_path / "data"
    config = SessionConfig(root=str(root), output_root="out/comp", final_results="final")
    assert config.output_root_path == root / "out" / "comp"
    assert config.final_results_path == root / "final"
    assert config.output_folder(root / "rec_03.tif") == root / "out" / "comp" / "rec_03"


def test_absolute_output_paths_are_kept(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    config = SessionConfig(root=str(tmp_path / "data"), output_root=str(elsewhere / "c"),
                           final_results=str(elsewhere / "f"))
    assert config.output_root_path == elsewhere / "c"
    assert config.final_results_path == elsewhere / "f"


def test_relative_output_paths_in_a_config_file_resolve_against_root(tmp_path):
    root = tmp_path / "data"
    path = tmp_path / "s.yaml"
    path.write_text(f"root: {root}\noutput_root: comp\nfinal_results: ../results\n")
    config = SessionConfig.from_file(path)
    assert config.output_root_path == root / "comp"
    assert config.final_results_path.resolve() == (tmp_path / "results").resolve()


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize("loader", ["dict", "toml", "yaml"])
def test_unknown_keys_are_errors_naming_the_key(tmp_path, loader):
    if loader == "dict":
        with pytest.raises(ConfigError, match="cc_upsampel"):
            SessionConfig.from_dict({"root": str(tmp_path), "cc_upsampel": 4})
        return
    path = tmp_path / f"s.{loader}"
    sep = " = " if loader == "toml" else ": "
    quote = '"' if loader == "toml" else ""
    path.write_text(f"root{sep}{quote}{tmp_path}{quote}\ncc_upsampel{sep}4\n")
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_file(path)
    assert "cc_upsampel" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("cc_upsample", "4"),
        ("cc_upsample", 2.5),
        ("cc_upsample", True),
        ("iterations_between", 0),
        ("sigma_smooth", "six"),
        ("sigma_smooth", -1.0),
        ("alpha_between", 0),
        ("resume", "yes"),
        ("pattern", 5),
        ("center", 3),
        ("scheduler", "cluster"),
        ("flow_backend", "nonexistent"),
        ("quality_setting", "best"),
        ("n_workers", 0),
        ("align_chunk_size", "many"),
        ("align_output_format", "PNG"),
        ("backend_params", "cuda"),
        ("flow_options", ["fast"]),
        ("recordings", 5),
        ("recordings", ""),
        ("nwb_series", ""),
        ("export", ["csv"]),
        ("metadata", {"subject": {"sex": "X"}}),
        ("metadata", {"imaging_rate": 0}),
    ],
)
def test_wrong_types_and_values_are_errors_naming_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        SessionConfig.from_dict({"root": str(tmp_path), key: value})
    with pytest.raises(ConfigError, match=key):
        SessionConfig(root=str(tmp_path), **{key: value})


def test_missing_root_key_is_an_error_naming_root(tmp_path):
    with pytest.raises(ConfigError, match="root"):
        SessionConfig.from_dict({"pattern": "*.tif"})


def test_a_config_that_is_not_a_mapping_is_an_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("- root\n- pattern\n")
    with pytest.raises(ConfigError, match="mapping"):
        SessionConfig.from_file(path)


@pytest.mark.parametrize(
    ("flow_options", "fragment"),
    [
        ({"alpah": 2.0}, "alpah"),
        ({"save_valid_idx": False}, "save_valid_idx"),
        ({"output_format": "TIFF"}, "output_format"),
    ],
)
def test_bad_flow_options_are_errors_naming_flow_options(tmp_path, flow_options, fragment):
    with pytest.raises(ConfigError) as info:
        SessionConfig(root=str(tmp_path), flow_options=flow_options)
    assert "flow_options" in str(info.value) and fragment in str(info.value)


def test_flow_options_override_quality_setting(tmp_path):
    config = SessionConfig(root=str(tmp_path), quality_setting="quality",
                           flow_options={"quality_setting": "fast"}, n_workers=1)
    options = config.stage1_options()
    assert options.quality_setting == "fast"
    assert options.save_valid_idx and options.output_format == "HDF5"


def test_lower_case_align_output_format_is_accepted(tmp_path):
    assert SessionConfig(root=str(tmp_path), align_output_format="hdf5").align_output_format \
        == "HDF5"


# ------------------------------------------------------------------------- recordings & center
def test_recordings_are_sorted_by_name_and_filtered_by_pattern(tmp_path):
    _touch(tmp_path, ["rec_10.tif", "rec_02.tif", "rec_1.tif", "rec_notes.txt",
                      "rec_truth.npz", "other.tif"])
    files = SessionConfig(root=str(tmp_path), pattern="rec_*").discover_input_files()
    assert [p.name for p in files] == ["rec_02.tif", "rec_1.tif", "rec_10.tif"]


def test_explicit_recordings_replace_the_pattern(tmp_path):
    _touch(tmp_path, ["a.tif", "b.tif", "c.tif"])
    config = SessionConfig(root=str(tmp_path), recordings=["c.tif", "a.tif"])
    assert [p.name for p in config.discover_input_files()] == ["a.tif", "c.tif"]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_default_center_is_the_lexicographic_middle(tmp_path, n):
    # created in reverse order, numbered so that numeric and lexicographic order differ
    names = [f"rec_{k}.tif" for k in (9, 10, 11, 12, 13, 14)[:n]][::-1]
    _touch(tmp_path, names)
    ordered = sorted(names)
    index, path = SessionConfig(root=str(tmp_path), pattern="rec_*.tif").resolve_center()
    assert index == math.ceil(n / 2) - 1
    assert path.name == ordered[index]


def test_explicit_center_is_found_by_file_name(tmp_path):
    _touch(tmp_path, ["a.tif", "b.tif", "c.tif", "d.tif"])
    index, path = SessionConfig(root=str(tmp_path), center="d.tif").resolve_center()
    assert (index, path.name) == (3, "d.tif")


def test_center_matching_no_recording_is_an_error_listing_them(tmp_path):
    _touch(tmp_path, ["a.tif", "b.tif", "c.tif"])
    config = SessionConfig(root=str(tmp_path), center="z.tif")
    with pytest.raises(ConfigError) as info:
        config.resolve_center()
    message = str(info.value)
    assert "z.tif" in message
    assert all(name in message for name in ("a.tif", "b.tif", "c.tif"))


# ------------------------------------------------------------------------- array task ids
@pytest.fixture
def no_task_env(monkeypatch):
    for name in ARRAY_TASK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", ["SLURM_ARRAY_TASK_ID", "SGE_TASK_ID", "PBS_ARRAY_INDEX"])
def test_array_task_id_is_read_from_each_scheduler_variable(no_task_env, variable):
    no_task_env.setenv(variable, "3")
    assert get_array_task_id() == 3


def test_array_task_id_is_none_outside_an_array_job(no_task_env):
    assert get_array_task_id() is None


def test_sge_undefined_task_id_counts_as_absent(no_task_env):
    no_task_env.setenv("SGE_TASK_ID", "undefined")
    assert get_array_task_id() is None
    no_task_env.setenv("PBS_ARRAY_INDEX", "2")
    assert get_array_task_id() == 2


def test_slurm_task_id_wins_over_others(no_task_env):
    no_task_env.setenv("SGE_TASK_ID", "5")
    no_task_env.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert get_array_task_id() == 1


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_invalid_array_task_id_is_an_error_naming_the_variable(no_task_env, value):
    no_task_env.setenv("SLURM_ARRAY_TASK_ID", value)
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID"):
        get_array_task_id()


def test_segment_frames_must_be_a_multiple_of_the_chunk(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'segment_frames': segment_frames 100 is not a "
                                          r"multiple of chunk_frames \(32\)"):
        SessionConfig(root=tmp_path, segment_frames=100)
    assert SessionConfig(root=tmp_path, segment_frames=96,
                         flow_options={"chunk_frames": 48}).segment_frames == 96
