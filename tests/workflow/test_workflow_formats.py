"""Recordings that are not one TIFF each, through the workflow and the CLI.

One session of three recordings given three ways at once, through a recordings sheet:
``rec_00`` as three trial TIFFs in a folder, ``rec_01`` as an NWB file (written with pynwb) and
``rec_02`` as a Zarr store (written with zarr). The workflow's and the CLI's results equal
those of the same frames given as one TIFF per recording; an edit to one file of a recording
reruns that recording only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pyflowreg.io import open_movie
from pyflowreg.synthetic import make_session

pytestmark = pytest.mark.slow  # full snakemake runs

H, W, FRAMES = 48, 48, 10
STEMS = ("rec_00", "rec_01", "rec_02")
COMPARED = ("compensated.hdf5", "idx.hdf")


def _frames():
    session = make_session(3, H, W, FRAMES, between_rigid_amplitude=3.0,
                           between_nonrigid_amplitude=1.0, rigid_amplitude=1.0,
                           nonrigid_amplitude=0.5, seed=31)
    return [np.rint(np.clip(rec.observed_all()[..., 0] * rec.photons_per_unit, 0, 65535))
            .astype(np.uint16) for rec in session.recordings]


def _imwrite(path, frames):
    tifffile.imwrite(path, frames, photometric="minisblack")


def _write_nwb(path, frames):
    from datetime import UTC, datetime

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries

    nwb = NWBFile(session_description="flowreg-session format test", identifier="rec_01",
                  session_start_time=datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    device = nwb.create_device(name="microscope")
    channel = OpticalChannel(name="green", description="GCaMP", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(
        name="plane", optical_channel=channel, description="L2/3", device=device,
        excitation_lambda=920.0, imaging_rate=30.0, indicator="GCaMP6f", location="V1")
    stored = np.ascontiguousarray(frames.transpose(0, 2, 1))  # the schema's (frame, x, y)
    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", data=stored, imaging_plane=plane,
                                        rate=30.0, unit="n.a."))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _write_zarr(path, frames):
    import zarr

    store = zarr.open_array(str(path), mode="w", shape=frames.shape, chunks=(4, H, W),
                            dtype=frames.dtype)
    store[:] = frames


def _run_cli(workdir, snakemake):
    """``pyflowreg-session config.yaml`` in ``workdir``, as a lab runs it."""
    script = Path(sys.executable).with_name("pyflowreg-session")
    command = str(script) if script.is_file() else shutil.which("pyflowreg-session")
    proc = subprocess.run([command, "config.yaml"], cwd=workdir, env=snakemake.env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def formats(tmp_path_factory, snakemake, wf):
    """(TIFF workdir after the CLI, mixed workdir after the workflow, mixed after the CLI)."""
    frames = _frames()
    base = tmp_path_factory.mktemp("formats")
    tiff = base / "tiff"
    (tiff / wf.ROOT).mkdir(parents=True)
    for stem, movie in zip(STEMS, frames, strict=True):
        _imwrite(tiff / wf.ROOT / f"{stem}.tif", movie)
    mixed = base / "mixed"
    data = mixed / wf.ROOT
    (data / "trials").mkdir(parents=True)
    for k, (a, b) in enumerate([(0, 4), (4, 5), (5, FRAMES)], start=1):
        _imwrite(data / "trials" / f"rec_00_trial_{k}.tif", frames[0][a:b])
    _write_nwb(data / "rec_01.nwb", frames[1])
    _write_zarr(data / "rec_02.zarr", frames[2])
    (data / "recordings.tsv").write_text(
        "recording\tpath\nrec_00\ttrials\nrec_01\trec_01.nwb\nrec_02\trec_02.zarr\n")
    mixed_cli = shutil.copytree(mixed, base / "mixed_cli")
    wf.write_config(tiff, pattern="rec_*.tif")
    exports = {"recordings": "recordings.tsv", "export": ["nwb", "suite2p"],
               "metadata": {"imaging_rate": 30.0}}
    wf.write_config(mixed, **exports)
    wf.write_config(mixed_cli, **exports)
    _run_cli(tiff, snakemake)
    result = snakemake.ok(mixed)
    counts = wf.job_counts(result)
    assert (counts["compensate"], counts["export_nwb"], counts["export_suite2p"]) == (3, 1, 1)
    _run_cli(mixed_cli, snakemake)
    return tiff, mixed, mixed_cli


def _same_results(wf, a, b):
    for stem in STEMS:
        for name in COMPARED:
            with open_movie(wf.stage1_dir(a, stem) / name) as x, \
                    open_movie(wf.stage1_dir(b, stem) / name) as y:
                np.testing.assert_array_equal(x.read(), y.read(), err_msg=f"{stem}/{name}")
        np.testing.assert_array_equal(
            tifffile.imread(wf.final_dir(a) / f"aligned_{stem}.tif"),
            tifffile.imread(wf.final_dir(b) / f"aligned_{stem}.tif"))
    np.testing.assert_array_equal(wf.load_final_mask(a)["final_valid"],
                                  wf.load_final_mask(b)["final_valid"])


def test_workflow_on_files_nwb_and_zarr_equals_one_tiff_each(formats, wf):
    tiff, mixed, _ = formats
    _same_results(wf, tiff, mixed)


def test_cli_on_files_nwb_and_zarr_equals_one_tiff_each(formats, wf):
    tiff, _, mixed_cli = formats
    _same_results(wf, tiff, mixed_cli)


def test_workflow_and_cli_write_equal_exports_with_the_nwb_inputs_facts(formats, wf):
    from pynwb import NWBHDF5IO

    _, mixed, mixed_cli = formats
    binaries = [(wf.final_dir(w) / "suite2p" / "plane0" / "data.bin").read_bytes()
                for w in (mixed, mixed_cli)]
    assert binaries[0] == binaries[1]
    with NWBHDF5IO(str(wf.final_dir(mixed) / "session.nwb"), "r") as io:
        nwb = io.read()
        # rec_01.nwb states when the session started; the other inputs state nothing
        assert nwb.session_start_time.isoformat() == "2026-01-05T10:00:00+00:00"
        assert nwb.subject is None  # known nowhere: left out, never invented
        series = nwb.processing["ophys"]["aligned_rec_01"]
        aligned = tifffile.imread(wf.final_dir(mixed) / "aligned_rec_01.tif")
        np.testing.assert_array_equal(series.data[:].transpose(0, 2, 1), aligned)
        assert series.rate == 30.0


def test_editing_one_file_of_a_recording_reruns_only_that_recording(formats, wf, snakemake,
                                                                    tmp_path):
    workdir = wf.clone(formats[1], tmp_path / "wd")
    wf.rewrite_recording(workdir / wf.ROOT / "trials" / "rec_00_trial_2.tif")
    planned = wf.planned_jobs(snakemake.ok(workdir, "-n"))
    assert {rec for _, rec in planned if rec} == {"rec_00"}, planned
    import zarr

    store = zarr.open_array(str(workdir / wf.ROOT / "rec_02.zarr"), mode="r+")
    store[9] = store[9] // 2  # rewrites one chunk file inside the store
    planned = wf.planned_jobs(snakemake.ok(workdir, "-n"))
    assert {rec for _, rec in planned if rec} == {"rec_00", "rec_02"}, planned
