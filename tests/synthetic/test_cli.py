"""Command line of the generator: ``python -m pyflowreg.synthetic OUTDIR``."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from pyflowreg.synthetic.__main__ import main


def test_command_line_writes_session(tmp_path, capsys):
    main([str(tmp_path), "--n-recordings", "2", "--height", "32", "--width", "32",
         "--frames", "4", "--seed", "1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ground_truth.npz", "rec_00.tif", "rec_01.tif"]
    assert "rec_01.tif" in capsys.readouterr().out


def test_module_runs_as_a_program(tmp_path):
    out = tmp_path / "session"
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "pyflowreg.synthetic", str(out),
         "--n-recordings", "2", "--height", "24", "--width", "32", "--frames", "3",
         "--channels", "2", "--dtype", "float32", "--seed", "4"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.split()]
    assert [p.name for p in paths] == ["rec_00.tif", "rec_01.tif"]
    frames = tifffile.imread(paths[1])
    assert frames.shape == (3, 24, 32, 2) and frames.dtype == np.float32
    with np.load(out / "ground_truth.npz") as truth:
        assert truth["between_flow"].shape == (2, 24, 32, 2)
        assert truth["flow"].shape == (2, 3, 24, 32, 2)
