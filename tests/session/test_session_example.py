"""The API examples run as written (paths replaced).

* The "Complete Example" of the session API reference: that reference is the project's
  specification (``session_api_reference.md``, kept outside this repository), so its example is
  copied below verbatim between the markers.
* The Python example of README.md's "Python API and CLI" section, read from README.md itself,
  so the test fails when the README's example changes into something that does not run.
"""

import re
from pathlib import Path

import numpy as np  # the example uses ``np`` without importing it

REPO = Path(__file__).resolve().parents[2]


def test_complete_example_of_api_reference_runs_as_written(small_root, capsys):
    root = small_root
    # ---- begin: Complete Example (session API reference, "Complete Example"), paths replaced --
    from pyflowreg.session import SessionConfig
    from pyflowreg.session.stage1_compensate import run_stage1
    from pyflowreg.session.stage2_between_avgs import run_stage2
    from pyflowreg.session.stage3_valid_mask import run_stage3

    # Configure session
    config = SessionConfig(
        root=f"{root}/",
        pattern="rec_*.tif",
        center="rec_01.tif",
        output_root="compensated",
        final_results="results",
        resume=True,
        flow_backend="flowreg",
        cc_upsample=4,
        sigma_smooth=6.0,
        alpha_between=25.0,
        iterations_between=100
    )

    # Stage 1: Motion correct each recording
    print("Running Stage 1...")
    config.flow_options = {
        "quality_setting": "balanced",
        "save_valid_idx": True,
        "save_w": False,
    }
    output_folders = run_stage1(config)

    # Stage 2: Align temporal averages
    print("Running Stage 2...")
    middle_idx, center_file, displacement_fields = run_stage2(config)

    # Stage 3: Compute final valid mask
    print("Running Stage 3...")
    final_mask = run_stage3(config, middle_idx, displacement_fields)

    print(f"Final valid region: {np.sum(final_mask)} pixels")
    # ---- end of the example ------------------------------------------------------------------

    out = capsys.readouterr().out
    assert f"Final valid region: {int(final_mask.sum())} pixels" in out
    names = ["rec_00", "rec_01", "rec_02"]
    assert [p.resolve() for p in output_folders] == [
        (root / "compensated" / n).resolve() for n in names
    ]
    for folder in output_folders:
        for name in ("compensated.hdf5", "idx.hdf", "temporal_average.npy", "reference.npy",
                     "status.json", "w_to_reference.npz", "w_to_reference.json"):
            assert (folder / name).is_file(), folder / name
        assert not (folder / "w.hdf5").exists()  # save_w False
    assert middle_idx == 1
    assert center_file.name == "rec_01.tif"
    assert len(displacement_fields) == 3
    assert all(w.shape == (64, 64, 2) and w.dtype == np.float32 for w in displacement_fields)
    assert not displacement_fields[1].any()  # the center is its own reference
    assert final_mask.shape == (64, 64) and final_mask.dtype == bool
    assert 0 < final_mask.sum() < final_mask.size
    results = root / "results"
    for name in ("final_valid_idx.png", "final_valid_idx.npz", "final_valid_idx.mat",
                 *(f"{n}_valid_idx.png" for n in names),
                 *(f"{n}_valid_idx_aligned.png" for n in names),
                 *(f"aligned_{n}.tif" for n in names)):
        assert (results / name).is_file(), name
    with np.load(results / "final_valid_idx.npz") as bundle:
        np.testing.assert_array_equal(bundle["final_valid"], final_mask)


def _readme_python_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API and CLI"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md's Python API section lost its python example"
    return match.group(1)


def test_readme_python_example_runs_as_written(small_root, tmp_path, monkeypatch, write_toml):
    code = _readme_python_example()
    assert 'SessionConfig.from_file("session.toml")' in code
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    write_toml(workdir / "session.toml",
               {"root": str(small_root), "pattern": "rec_*.tif", "n_workers": 2})
    monkeypatch.chdir(workdir)
    namespace = {}
    exec(compile(code, "README.md example", "exec"), namespace)
    final_mask = namespace["final_mask"]
    assert final_mask.shape == (64, 64) and final_mask.dtype == bool
    assert 0 < final_mask.sum() < final_mask.size
    assert namespace["center_file"].name == "rec_01.tif"
    results = small_root / "final_results"
    with np.load(results / "final_valid_idx.npz") as bundle:
        np.testing.assert_array_equal(bundle["final_valid"], final_mask)
    for stem in ("rec_00", "rec_01", "rec_02"):
        assert (results / f"aligned_{stem}.tif").is_file()
