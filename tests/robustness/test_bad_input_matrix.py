"""Bad input, one table: every case through the API, the CLI and (where it applies) the workflow.

Each row builds a small session folder (three 32x32 recordings of 6 frames), breaks it one way,
and states what every face must do: the API raises the given exception type, the CLI exits with
its documented status (``pyflowreg-session --help``: 2 bad input or config, 3 an output could
not be written), the workflow exits non-zero, and each names the file or key and the cause in
its message. Afterwards nothing of the bad recording and no session result may exist; a
session-level error (geometry, names, config) leaves the output folders without any file.
Recordings finished before a per-recording error may stay: they are valid.

The last rows must *work*: a session under a path with spaces and non-ASCII letters.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import yaml

from pyflowreg.io import atomic_save_npy, open_movie, write_array
from pyflowreg.session import ConfigError, SessionConfig, cli
from pyflowreg.session.cli import EXIT_BAD_INPUT, EXIT_WRITE_FAILED
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3
from pyflowreg.synthetic import make_session, write_session

REPO = Path(__file__).resolve().parents[2]
SHAPE, FRAMES, N_REC = (32, 32), 6, 3
STEMS = [f"rec_{i:02d}" for i in range(N_REC)]
BASE = {"pattern": "rec_*", "quality_setting": "fast", "n_workers": 2}
SESSION_LEVEL = "session"  # a row's `bad` when nothing at all may be written


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """One bad input. ``make(root)`` breaks the session folder and returns config overrides."""

    id: str
    make: Callable[[Path], dict]
    words: tuple[str, ...]  # the message names these (file or key, and the cause)
    bad: str | None  # stem whose outputs must not appear, SESSION_LEVEL, or None (must work)
    faces: tuple[str, ...] = ("api", "cli")
    error: type = ValueError
    exit_code: int = EXIT_BAD_INPUT
    cli_args: tuple[str, ...] = ()
    cli_env: dict = field(default_factory=dict)
    cli_config: str | None = None  # pass this (missing) config file instead of the real one
    workflow_bad: str | None = None  # `bad` for the workflow, where a job (not parsing) fails


def _frames(root: Path, stem: str) -> np.ndarray:
    return tifffile.imread(root / f"{stem}.tif")


def _replace(root: Path, stem: str, path_name: str, writer) -> None:
    """Replace recording ``stem`` by a file ``path_name`` written by ``writer(path, frames)``."""
    frames = _frames(root, stem)
    (root / f"{stem}.tif").unlink()
    writer(root / path_name, frames)


def _tif(path: Path, frames: np.ndarray) -> None:
    tifffile.imwrite(path, frames, photometric="minisblack")


def corrupt(root):
    (root / "rec_01.tif").write_bytes(
        np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    )
    return {}


def truncated(root):
    path = root / "rec_01.tif"
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return {}


def zero_bytes(root):
    (root / "rec_01.tif").write_bytes(b"")
    return {}


def truncated_h5(root):
    def write(path, frames):
        with h5py.File(path, "w") as f:
            f["ch1"] = frames
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    _replace(root, "rec_01", "rec_01.h5", write)
    return {}


def h5_without_movie(root):
    def write(path, frames):
        with h5py.File(path, "w") as f:
            f["timestamps"] = np.arange(len(frames), dtype=float)
    _replace(root, "rec_01", "rec_01.h5", write)
    return {}


def other_frame_size(root):
    _tif(root / "rec_02.tif", _frames(root, "rec_02")[:, :, :28])
    return {}


def other_channel_count(root):
    frames = _frames(root, "rec_02")
    tifffile.imwrite(root / "rec_02.tif", np.stack([frames, frames[:, ::-1]], axis=-1),
                     photometric="minisblack", planarconfig="contig")
    return {}


def one_frame(root):
    _tif(root / "rec_01.tif", _frames(root, "rec_01")[:1])
    return {}


def _float_with(value):
    def make(root):
        frames = _frames(root, "rec_01").astype(np.float32)
        frames[3, 10, 12] = value
        _tif(root / "rec_01.tif", frames)
        return {}
    return make


def _constant(value):
    def make(root):
        _tif(root / "rec_01.tif", np.full((FRAMES, *SHAPE), value, np.uint16))
        return {}
    return make


def _npy_of(dtype):
    def make(root):
        _replace(root, "rec_01", "rec_01.npy", lambda p, f: np.save(p, f.astype(dtype)))
        return {}
    return make


def one_dimensional_npy(root):
    _replace(root, "rec_01", "rec_01.npy", lambda p, f: np.save(p, f.ravel()[:50]))
    return {}


def tiny_frames(root):
    _tif(root / "rec_01.tif", np.ones((FRAMES, 1, 1), np.uint16))
    return {}


def same_stem(root):
    with h5py.File(root / "rec_01.h5", "w") as f:
        f["ch1"] = _frames(root, "rec_01")
    return {}


def _config(**values):
    return lambda root: values


def missing_root(root):
    return {"root": str(root.parent / "no_such_folder")}


def read_only_output(root):
    """output_root on a read-only bind mount (root ignores chmod, not a read-only mount)."""
    target = root.parent / "read_only_out"
    target.mkdir()
    _mount(["--bind", str(target), str(target)], target)
    _mount(["-o", "remount,bind,ro", str(target), str(target)], target)
    return {"output_root": str(target / "compensated_outputs"),
            "final_results": str(target / "final_results")}


MOUNTS: list[Path] = []


def _mount(args: list[str], target: Path) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}): needs root in a namespace "
                    "that allows mounts")
    if target not in MOUNTS:
        MOUNTS.append(target)


CASES = [
    Case("missing_root", missing_root, ("no_such_folder", "does not exist"), SESSION_LEVEL,
         faces=("api", "cli", "workflow"), error=FileNotFoundError),
    Case("empty_glob", _config(pattern="scan_*.tif"), ("scan_*.tif", "no recordings match"),
         SESSION_LEVEL, faces=("api", "cli", "workflow"), error=FileNotFoundError),
    Case("listed_recording_missing", _config(recordings=["rec_00.tif", "rec_09.tif"]),
         ("rec_09.tif", "not found"), SESSION_LEVEL, error=FileNotFoundError),
    Case("corrupt_tiff", corrupt, ("rec_01.tif", "not a readable TIFF"), SESSION_LEVEL),
    Case("truncated_tiff", truncated, ("rec_01.tif", "truncated"), SESSION_LEVEL),
    Case("zero_byte_tiff", zero_bytes, ("rec_01.tif", "empty (0 bytes)"), SESSION_LEVEL),
    Case("truncated_hdf5", truncated_h5, ("rec_01.h5", "not a readable HDF5"), SESSION_LEVEL),
    Case("hdf5_without_movie_dataset", h5_without_movie, ("rec_01.h5", "no 3-D/4-D"),
         SESSION_LEVEL),
    Case("different_frame_sizes", other_frame_size, ("rec_02.tif", "(32, 28)", "frame size"),
         SESSION_LEVEL, faces=("api", "cli", "workflow")),
    Case("different_channel_counts", other_channel_count, ("rec_02.tif", "2", "channels"),
         SESSION_LEVEL, faces=("api", "cli", "workflow")),
    Case("one_frame_recording", one_frame, ("rec_01.tif", "1 frame", "at least 2"),
         SESSION_LEVEL),
    Case("nan_in_float_input", _float_with(np.nan), ("rec_01.tif", "frame 3", "NaN"), "rec_01"),
    Case("inf_in_float_input", _float_with(np.inf), ("rec_01.tif", "frame 3", "inf"), "rec_01"),
    Case("all_zero_recording", _constant(0), ("rec_01.tif", "flow is undefined"), SESSION_LEVEL,
         faces=("api", "cli", "workflow"), workflow_bad="rec_01"),
    Case("constant_recording", _constant(1234), ("rec_01.tif", "1234", "flow is undefined"),
         SESSION_LEVEL),
    Case("complex_dtype", _npy_of(np.complex64), ("rec_01.npy", "complex"), SESSION_LEVEL),
    Case("boolean_dtype", _npy_of(bool), ("rec_01.npy", "bool"), SESSION_LEVEL),
    Case("one_dimensional_array", one_dimensional_npy, ("rec_01.npy", "not a movie"),
         SESSION_LEVEL),
    Case("frames_below_2x2", tiny_frames, ("rec_01.tif", "smaller than the minimum"),
         SESSION_LEVEL),
    Case("same_stem_tif_and_h5", same_stem, ("rec_01.h5", "rec_01.tif", "share a file stem"),
         SESSION_LEVEL, faces=("api", "cli", "workflow"), error=ConfigError),
    Case("center_does_not_exist", _config(center="rec_07.tif"),
         ("rec_07.tif", "matches no recording"), SESSION_LEVEL,
         faces=("api", "cli", "workflow"), error=ConfigError),
    Case("misspelled_key", _config(quality_seting="fast"),
         ("quality_seting", "did you mean 'quality_setting'"), SESSION_LEVEL,
         faces=("api", "cli", "workflow"), error=ConfigError),
    Case("unknown_key", _config(colour="green"), ("colour", "unknown key"), SESSION_LEVEL,
         faces=("api", "cli"), error=ConfigError),
    Case("misspelled_flow_option", _config(flow_options={"alpah": 2.0}),
         ("alpah", "did you mean 'alpha'"), SESSION_LEVEL, faces=("api", "cli", "workflow"),
         error=ConfigError),
    Case("misspelled_nested_key", _config(demo={"enabeld": False}),
         ("enabeld", "did you mean 'enabled'"), SESSION_LEVEL, faces=("api", "workflow"),
         error=ConfigError),
    Case("value_not_allowed", _config(quality_setting="best"), ("quality_setting", "best"),
         SESSION_LEVEL, faces=("api", "cli", "workflow"), error=ConfigError),
    Case("wrong_type", _config(cc_upsample="four"), ("cc_upsample", "four"), SESSION_LEVEL,
         error=ConfigError),
    Case("array_task_outside_session", _config(), ("array task id 7", "1..3"), SESSION_LEVEL,
         faces=("cli",), cli_args=("--array-job",), cli_env={"SLURM_ARRAY_TASK_ID": "7"}),
    Case("config_file_missing", _config(), ("missing.toml", "not found"), SESSION_LEVEL,
         faces=("cli",), cli_config="missing.toml"),
    Case("read_only_output_folder", read_only_output, ("Read-only file system",), SESSION_LEVEL,
         error=OSError, exit_code=EXIT_WRITE_FAILED),
]


# --------------------------------------------------------------------------- running a face
@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_input_source")
    session = make_session(N_REC, *SHAPE, FRAMES, between_rigid_amplitude=2.0,
                           between_nonrigid_amplitude=0.5, rigid_amplitude=1.0,
                           nonrigid_amplitude=0.3, seed=5)
    write_session(session, folder, ground_truth_flows=False)
    (folder / "ground_truth.npz").unlink()
    return folder


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("numba_cache")


@pytest.fixture(autouse=True)
def _unmount():
    yield
    while MOUNTS:
        subprocess.run(["umount", str(MOUNTS.pop())], check=False)


def _env(numba_cache: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SNAKEMAKE_") and k not in ("SLURM_ARRAY_TASK_ID", "SGE_TASK_ID",
                                                           "PBS_ARRAY_INDEX", "PBS_ARRAYID")}
    env.update(NUMBA_CACHE_DIR=str(numba_cache), PYTHONPATH=str(REPO / "src"), **extra)
    return env


def _session_values(root: Path, overrides: dict) -> dict:
    values = dict(BASE, root=str(root))
    values.update(overrides)
    return values


def run_api(values: dict) -> BaseException | None:
    try:
        config = SessionConfig.from_dict(values, source="session")
        run_stage1(config, log=lambda message: None)
        middle_idx, _, fields = run_stage2(config)
        run_stage3(config, middle_idx, fields)
    except Exception as exc:  # the table states the type each case must raise
        return exc
    return None


def run_cli(values: dict, case: Case, workdir: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``pyflowreg-session`` in this process (its ``main``, as the console script calls it)."""
    config = workdir / "session.yaml"
    config.write_text(yaml.safe_dump(values))
    if case.cli_config:
        config = workdir / case.cli_config
    for name in ("SLURM_ARRAY_TASK_ID", "SGE_TASK_ID", "PBS_ARRAY_INDEX", "PBS_ARRAYID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in case.cli_env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = cli.main([str(config), *case.cli_args])
    return code, capsys.readouterr().err


def run_workflow(values: dict, workdir: Path, numba_cache: Path):
    values = {k: v for k, v in values.items() if k != "n_workers"}
    values.setdefault("demo", {"enabled": False})
    (workdir / "config.yaml").write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
         str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2"],
        cwd=workdir, env=_env(numba_cache), capture_output=True, text=True, timeout=300,
    )
    logs = "\n".join(p.read_text() for p in sorted((workdir / "logs").rglob("*.log")))
    return result, result.stdout + result.stderr + logs


def assert_nothing_written(values: dict, case: Case, bad: str | None = None) -> None:
    config_root = Path(values.get("root", ""))
    out = Path(values.get("output_root", config_root / "compensated_outputs"))
    final = Path(values.get("final_results", config_root / "final_results"))
    files = lambda folder: sorted(p for p in folder.rglob("*") if p.is_file())  # noqa: E731
    assert not files(final), f"{case.id}: a session result was written: {files(final)}"
    bad = bad or case.bad
    if bad == SESSION_LEVEL:
        assert not files(out), f"{case.id}: outputs written: {files(out)}"
    else:
        assert not files(out / bad), f"{case.id}: outputs of {bad}: {files(out)}"


def _has_words(message: str, words) -> list[str]:
    return [w for w in words if w.lower() not in message.lower()]


def _prepare(case: Case, source: Path, tmp_path: Path) -> tuple[dict, Path]:
    root = tmp_path / "data"
    shutil.copytree(source, root)
    return _session_values(root, case.make(root)), tmp_path


# --------------------------------------------------------------------------- the tests
API_CASES = [c for c in CASES if "api" in c.faces]
CLI_CASES = [c for c in CASES if "cli" in c.faces]
WORKFLOW_CASES = [c for c in CASES if "workflow" in c.faces]


def test_the_table_has_at_least_25_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.id)
def test_api_raises_a_clear_error_and_writes_nothing(case, source, tmp_path):
    values, _ = _prepare(case, source, tmp_path)
    error = run_api(values)
    assert error is not None, f"{case.id}: the API accepted the bad input"
    assert isinstance(error, case.error), f"{case.id}: {type(error).__name__}: {error}"
    missing = _has_words(str(error), case.words)
    assert not missing, f"{case.id}: message lacks {missing}: {error}"
    assert_nothing_written(values, case)


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_exits_with_its_documented_code_and_writes_nothing(case, source, tmp_path,
                                                               monkeypatch, capsys):
    values, workdir = _prepare(case, source, tmp_path)
    code, stderr = run_cli(values, case, workdir, monkeypatch, capsys)
    assert code == case.exit_code, (case.id, code, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("pyflowreg-session: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    missing = _has_words(errors[0], case.words)
    assert not missing, f"{case.id}: message lacks {missing}: {errors[0]}"
    assert_nothing_written(values, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", WORKFLOW_CASES, ids=lambda c: c.id)
def test_workflow_fails_naming_the_problem_and_writes_nothing(case, source, tmp_path,
                                                             numba_cache):
    values, workdir = _prepare(case, source, tmp_path)
    result, text = run_workflow(values, workdir, numba_cache)
    assert result.returncode == 1, (case.id, result.returncode, text[-3000:])
    missing = _has_words(text, case.words)
    assert not missing, f"{case.id}: output lacks {missing}:\n{text[-3000:]}"
    assert "Traceback" not in result.stderr, text[-3000:]
    assert_nothing_written(values, case, case.workflow_bad)


# --------------------------------------------------------------------------- full disk
def test_full_disk_exits_3_leaves_nothing_trusted_and_a_rerun_completes(
    source, tmp_path, numba_cache
):
    """Outputs on a nearly full 2 MiB tmpfs: ``pyflowreg-session`` stops with status 3 naming
    the cause and the file; no temporary, no status.json of the recording being written, no
    half-written file under a real name; with space freed, the same command finishes."""
    disk = tmp_path / "small_disk"
    disk.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 40 * 1024))
    values, workdir = _prepare(Case("full_disk", _config(), (), None), source, tmp_path)
    values.update(output_root=str(disk / "out"), final_results=str(disk / "final"))
    config = workdir / "session.yaml"
    config.write_text(yaml.safe_dump(values))
    command = [sys.executable, "-m", "pyflowreg.session.cli", str(config)]

    # a subprocess, like a user's: h5py may abort the interpreter after a failed flush
    result = subprocess.run(command, env=_env(numba_cache), capture_output=True, text=True,
                            timeout=300)

    assert result.returncode == EXIT_WRITE_FAILED, result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith("pyflowreg-session: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], result.stderr
    assert str(disk / "out") in errors[0], errors[0]  # names the file being written
    written = sorted(p.relative_to(disk) for p in disk.rglob("*") if p.is_file())
    assert not [p for p in written if p.name.startswith(".")], written  # no temporaries
    finished = {p.parent.name for p in written if p.name == "status.json"}
    assert len(finished) < N_REC, "the disk was not full after all"
    # Resume trusts a folder only through status.json; files renamed into place before the
    # failure are complete (every frame readable), never half-written.
    for path in (disk / p for p in written if p.suffix in (".hdf5", ".hdf")):
        with open_movie(path) as reader:
            assert reader.n_frames == FRAMES and reader.read().shape[0] == FRAMES, path
    assert not (disk / "final").exists() or not any((disk / "final").rglob("*.npz"))

    filler.unlink()
    result = subprocess.run(command, env=_env(numba_cache), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert (disk / "final" / "final_valid_idx.npz").is_file()


def test_array_writes_on_a_full_disk_fail_as_write_errors_naming_the_file(tmp_path):
    """numpy's ``tofile`` reports a full disk as "N requested and M written", without errno:
    such an error would exit as bad input. Every array write goes through the file's own
    ``write``, so the error is ENOSPC and names the output."""
    disk = tmp_path / "tiny_disk"
    disk.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], disk)
    array = np.arange(100_000, dtype=np.float32)  # 400 kB

    with pytest.raises(OSError) as caught:
        atomic_save_npy(disk / "mean.npy", array)
    assert caught.value.errno == errno.ENOSPC, caught.value
    assert caught.value.filename == str(disk / "mean.npy")
    assert cli.exit_code(caught.value) == EXIT_WRITE_FAILED
    assert not list(disk.iterdir())  # the temporary is gone too

    with open(disk / "raw.bin", "wb") as fh, pytest.raises(OSError) as caught:
        write_array(fh, array)
    assert caught.value.errno == errno.ENOSPC, caught.value


# --------------------------------------------------------------------------- must work
ODD_FOLDER = "Maus 42 – Sitzung über Nacht"


@pytest.fixture(scope="module")
def odd_path_session(source, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("odd") / ODD_FOLDER / "Aufnahmen ä"
    folder.mkdir(parents=True)
    for stem in STEMS[:2]:
        shutil.copy2(source / f"{stem}.tif", folder / f"{stem} – é.tif")
    return folder


def _copy_odd(odd_path_session: Path, tmp_path: Path) -> Path:
    root = tmp_path / ODD_FOLDER / "Aufnahmen ä"
    shutil.copytree(odd_path_session, root)
    return root


def test_path_with_spaces_and_non_ascii_works_through_the_cli(odd_path_session, tmp_path,
                                                              monkeypatch, capsys):
    root = _copy_odd(odd_path_session, tmp_path)
    values = _session_values(root, {})
    code, stderr = run_cli(values, Case("odd", _config(), (), None), tmp_path, monkeypatch,
                           capsys)
    assert code == 0, stderr
    assert (root / "final_results" / "aligned_rec_00 – é.tif").is_file()
    assert (root / "compensated_outputs" / "rec_01 – é" / "status.json").is_file()


@pytest.mark.slow
def test_path_with_spaces_and_non_ascii_works_through_the_workflow(odd_path_session, tmp_path,
                                                                   numba_cache):
    root = _copy_odd(odd_path_session, tmp_path)
    result, text = run_workflow(_session_values(root, {}), tmp_path, numba_cache)
    assert result.returncode == 0, text[-3000:]
    assert (root / "final_results" / "final_valid_idx.npz").is_file()
    assert (root / "final_results" / "aligned_rec_01 – é.tif").is_file()
