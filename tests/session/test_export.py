"""Session exports: the suite2p plane and the NWB file, from real sessions after Stages 1-3."""

from __future__ import annotations

import json
import math
import shutil
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import tifffile

import pyflowreg.io
from pyflowreg.io import is_temporary_path, open_movie
from pyflowreg.io.base import MovieReader
from pyflowreg.session import SessionConfig
from pyflowreg.session.config import ConfigError
from pyflowreg.session.export_nwb import NWB_FILE, export_nwb
from pyflowreg.session.export_suite2p import export_suite2p
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3
from pyflowreg.synthetic import SyntheticRecording, make_session, write_recording, write_session

H, W, T = 48, 64, 36
STEMS = ("rec_00", "rec_01", "rec_02")
START = "2026-03-01T10:00:00+01:00"
RATE = 30.0
# Test values for a synthetic session; the location is an Allen CCF name, as nwbinspector asks
# of mouse data.
METADATA = {
    "session_description": "Synthetic session of the export tests",
    "session_start_time": START,
    "identifier": "flowreg-export-test",
    "experimenter": ["Doe, Jane"],
    "institution": "Test Institute",
    "lab": "Test Lab",
    "experiment_description": "Export of a synthetic session",
    "imaging_rate": RATE,
    "indicator": "GCaMP6f",
    "excitation_lambda": 920.0,
    "emission_lambda": 510.0,
    "location": "VISp",
    "device": "Test two-photon microscope",
    "subject": {"subject_id": "mouse-1", "species": "Mus musculus", "sex": "F", "age": "P90D",
                "strain": "C57BL/6J", "description": "test subject"},
}
EXPORTS = ("session.nwb", "suite2p")
# Each worker builds only the session its group needs.
SMALL = pytest.mark.xdist_group("export_small")
OTHER = pytest.mark.xdist_group("export_other")


def _config(root: Path, **overrides) -> SessionConfig:
    values = dict(root=str(root), pattern="rec_*.tif", quality_setting="fast", n_workers=2,
                  metadata=METADATA)
    values.update(overrides)
    return SessionConfig(**values)


def _run_stages(config: SessionConfig) -> None:
    run_stage1(config, log=lambda message: None)
    run_stage2(config)
    run_stage3(config)


def _quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> SessionConfig:
    """Three recordings of 36 frames of 48 x 64 pixels after Stages 1-3."""
    root = tmp_path_factory.mktemp("export_session")
    write_session(make_session(3, H, W, T, between_rigid_amplitude=4.0,
                               between_nonrigid_amplitude=1.0, rigid_amplitude=1.5,
                               nonrigid_amplitude=0.5, seed=1), root)
    config = _config(root)
    _run_stages(config)
    return config


@pytest.fixture(scope="module")
def exported(small) -> dict:
    """Both exports of the small session, with what they logged."""
    messages: list[str] = []
    ops = export_suite2p(small, log=messages.append)
    nwb = export_nwb(small, log=messages.append)
    return {"ops": ops, "nwb": nwb, "log": messages}


@pytest.fixture
def small_copy(small, tmp_path) -> Path:
    """A private copy of the small session without its exports (for tests that write)."""
    root = tmp_path / "session"
    shutil.copytree(small.root_path, root, ignore=shutil.ignore_patterns(*EXPORTS))
    return root


def _videos(config: SessionConfig, stems=STEMS) -> list[np.ndarray]:
    """Channel 1 of the aligned videos, (T, H, W)."""
    videos = []
    for stem in stems:
        with open_movie(config.final_results_path / f"aligned_{stem}.tif") as reader:
            videos.append(reader.read()[..., 0])
    return videos


def _bundle(config: SessionConfig) -> dict:
    with np.load(config.final_results_path / "final_valid_idx.npz") as data:
        return {key: data[key] for key in data.files}


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def _load_ops(path: Path) -> dict:
    return np.load(path, allow_pickle=True).item()


def _binary(ops: dict) -> np.ndarray:
    return np.memmap(ops["reg_file"], dtype=np.int16, mode="r",
                     shape=(ops["nframes"], ops["Ly"], ops["Lx"]))


def _read_nwb(path: Path):
    from pynwb import NWBHDF5IO

    return NWBHDF5IO(str(path), mode="r")


# ------------------------------------------------------------------------------ suite2p
@SMALL
def test_suite2p_binary_holds_the_aligned_videos_cropped_to_the_session_mask(small, exported):
    ops = _load_ops(exported["ops"])
    y0, y1, x0, x1 = _bounding_box(_bundle(small)["final_valid"])
    assert tuple(ops["flowreg_crop"]) == (y0, y1, x0, x1)
    assert (ops["Ly"], ops["Lx"]) == (y1 - y0, x1 - x0)
    assert Path(ops["reg_file"]).stat().st_size == ops["nframes"] * ops["Ly"] * ops["Lx"] * 2
    data = _binary(ops)
    videos = [video[:, y0:y1, x0:x1] for video in _videos(small)]
    scale = ops["flowreg_int16_scale"]
    assert ops["flowreg_int16_offset"] == 0.0
    # The largest magnitude maps to the int16 limit: the whole range is used, nothing clipped.
    peak = max(float(np.abs(v).max()) for v in videos)
    assert scale == pytest.approx(32767 / peak)
    assert int(np.abs(data).max()) == 32767
    assert list(ops["frames_per_file"]) == [T] * 3 and sum(ops["frames_per_file"]) == len(data)
    parts = np.split(np.asarray(data), np.cumsum(ops["frames_per_file"])[:-1])
    for part, video in zip(parts, videos, strict=True):
        np.testing.assert_allclose(part / scale, video, rtol=0, atol=0.5001 / scale)
    np.testing.assert_allclose(ops["meanImg"], np.asarray(data, np.float64).mean(axis=0),
                               rtol=1e-6)


@SMALL
def test_ops_holds_what_suite2p_reads_to_detect_without_registering(small, exported):
    ops = _load_ops(exported["ops"])
    final = small.final_results_path
    plane = final / "suite2p" / "plane0"
    assert exported["ops"] == plane / "ops.npy"
    assert ops["do_registration"] == 0 and ops["keep_movie_raw"] is False
    assert (ops["nchannels"], ops["nplanes"], ops["functional_chan"]) == (1, 1, 1)
    assert list(ops["yrange"]) == [0, ops["Ly"]] and list(ops["xrange"]) == [0, ops["Lx"]]
    assert ops["fs"] == RATE
    assert ops["reg_file"] == str(plane / "data.bin") and ops["ops_path"] == str(plane / "ops.npy")
    assert (ops["save_path"], ops["save_path0"], ops["save_folder"]) == (
        str(plane), str(final), "suite2p")
    assert ops["data_path"] == [str(final)]
    assert ops["filelist"] == [str(final / f"aligned_{stem}.tif") for stem in STEMS]
    assert ops["flowreg_recordings"] == list(STEMS)
    assert list(ops["frames_per_folder"]) == [ops["nframes"]]
    assert ops["meanImg"].dtype == np.float32 and ops["meanImg"].shape == (ops["Ly"], ops["Lx"])
    y0, y1, x0, x1 = ops["flowreg_crop"]
    np.testing.assert_array_equal(ops["flowreg_valid_mask"],
                                  _bundle(small)["final_valid"][y0:y1, x0:x1])
    # suite2p 0.14's run_plane refuses fewer than 50 frames; this session has 108.
    assert ops["nframes"] >= 50


@SMALL
def test_an_unknown_frame_rate_is_left_to_suite2p_and_said_so(small_copy):
    messages: list[str] = []
    ops = _load_ops(export_suite2p(_config(small_copy, metadata={}), log=messages.append))
    assert "fs" not in ops
    assert any("no 'fs'" in m and "imaging_rate" in m for m in messages)


# ------------------------------------------------------------------------------ NWB
@SMALL
def test_nwb_series_hold_the_aligned_videos_and_the_stage1_rigid_shifts(small, exported):
    videos = _videos(small)
    with _read_nwb(exported["nwb"]) as io:
        nwbfile = io.read()
        ophys = nwbfile.processing["ophys"]
        for stem, video in zip(STEMS, videos, strict=True):
            series = ophys[f"aligned_{stem}"]
            assert series.neurodata_type == "TwoPhotonSeries"
            # NWB orders image axes (frame, x, y): each frame is stored transposed.
            assert series.data.shape == (T, W, H) and list(series.dimension[:]) == [W, H]
            np.testing.assert_array_equal(series.data[:].transpose(0, 2, 1), video)
            assert series.data.compression == "gzip"
            assert (series.rate, series.starting_time) == (RATE, 0.0)
            assert series.imaging_plane.name == "ImagingPlane"
            per_frame = json.loads(
                (small.output_folder(Path(f"{stem}.tif")) / "qc.json").read_text())["per_frame"]
            rigid = ophys[f"stage1_rigid_shift_{stem}"]
            assert rigid.unit == "pixels" and rigid.rate == RATE
            np.testing.assert_array_equal(
                rigid.data[:], np.array([per_frame["rigid_u"], per_frame["rigid_v"]],
                                        dtype=np.float32).T)


@SMALL
@pytest.mark.skipif(not hasattr(pyflowreg.io, "NWBMovieReader"),
                    reason="NWB input (pyflowreg.io.NWBMovieReader) is not available")
def test_nwb_export_reads_back_as_the_aligned_videos_through_the_nwb_reader(small, exported):
    for stem, video in zip(STEMS, _videos(small), strict=True):
        with pyflowreg.io.NWBMovieReader(exported["nwb"], series=f"aligned_{stem}") as reader:
            assert reader.rate == RATE
            np.testing.assert_array_equal(reader.read()[..., 0], video)


@SMALL
def test_nwb_metadata_are_the_configs(exported):
    with _read_nwb(exported["nwb"]) as io:
        nwbfile = io.read()
        assert nwbfile.session_start_time == datetime.fromisoformat(START)
        assert nwbfile.identifier == METADATA["identifier"]
        assert nwbfile.session_description == METADATA["session_description"]
        assert list(nwbfile.experimenter) == METADATA["experimenter"]
        assert (nwbfile.institution, nwbfile.lab, nwbfile.experiment_description) == (
            METADATA["institution"], METADATA["lab"], METADATA["experiment_description"])
        subject = nwbfile.subject
        assert {key: getattr(subject, key) for key in METADATA["subject"]} == METADATA["subject"]
        plane = nwbfile.imaging_planes["ImagingPlane"]
        assert (plane.indicator, plane.location) == (METADATA["indicator"], METADATA["location"])
        assert plane.excitation_lambda == METADATA["excitation_lambda"]
        assert plane.optical_channel[0].emission_lambda == METADATA["emission_lambda"]
        assert plane.device.description == METADATA["device"]
    assert [m for m in exported["log"] if "written as NaN" in m or "'unknown'" in m] == []


@SMALL
def test_nwb_images_and_tables_equal_the_session_files(small, exported):
    final = small.final_results_path
    bundle = _bundle(small)
    report = json.loads((final / "qc" / "session.json").read_text())
    with _read_nwb(exported["nwb"]) as io:
        ophys = io.read().processing["ophys"]
        images = ophys["session_images"]
        np.testing.assert_array_equal(images["session_mask"].data[:].T,
                                      bundle["final_valid"].astype(np.uint8))
        np.testing.assert_array_equal(images["coverage"].data[:].T,
                                      np.load(final / "qc" / "coverage.npy"))
        np.testing.assert_array_equal(images["reference_average"].data[:].T,
                                      bundle["reference_average"])
        for stem in STEMS:
            with np.load(small.output_folder(Path(f"{stem}.tif")) / "w_to_reference.npz") as w:
                for key in ("u", "v"):
                    np.testing.assert_array_equal(
                        images[f"w_to_reference_{key}_{stem}"].data[:].T, w[key])
        table = ophys["recording_qc"].to_dataframe().set_index("recording")
        for stem in STEMS:
            entry = report["recordings"][stem]
            row = table.loc[stem]
            assert row["alignment_score"] == pytest.approx(entry["alignment_score"])
            assert row["fov_cost_px"] == entry["fov_cost_px"]
            assert bool(row["excluded"]) == entry["excluded"]
            assert [row["rigid_shift_u_px"], row["rigid_shift_v_px"]] == entry["rigid_shift_px"]
            stage1 = json.loads(
                (small.output_folder(Path(f"{stem}.tif")) / "qc.json").read_text())
            assert row["stage1_corr_corrected_median"] == pytest.approx(
                stage1["corr_corrected_median"])
            assert row["stage1_n_outlier_frames"] == len(stage1["outlier_frames"])
        session = ophys["session_qc"].to_dataframe().iloc[0]
        assert session["center"] == report["center"] == "rec_01"
        assert session["session_mask_px"] == report["session_mask_px"]
        assert [session[f"mask_{k}"] for k in ("y0", "y1", "x0", "x1")] == list(
            _bounding_box(bundle["final_valid"]))


@SMALL
def test_nwbinspector_reports_no_critical_or_best_practice_violation(exported):
    from nwbinspector import inspect_nwbfile

    # The inspector validates the file against the NWB schema first; a failure is reported
    # above CRITICAL.
    messages = list(inspect_nwbfile(nwbfile_path=str(exported["nwb"]),
                                    importance_threshold="BEST_PRACTICE_VIOLATION"))
    # check_data_orientation flags a series with fewer frames than pixels along a side. These
    # recordings have 36 frames of 64 x 48 pixels with time first, as the schema orders them;
    # the message is about their shortness, so it is set aside for exactly these series.
    orientation = [m for m in messages if m.check_function_name == "check_data_orientation"]
    assert sorted(m.object_name for m in orientation) == [f"aligned_{s}" for s in STEMS]
    rest = [f"{m.importance.name} {m.check_function_name} {m.object_name}: {m.message}"
            for m in messages if m not in orientation]
    assert rest == []


@SMALL
def test_metadata_missing_from_the_config_are_missing_from_the_file(small_copy):
    from nwbinspector import inspect_nwbfile

    config = _config(small_copy, metadata={"session_start_time": START, "imaging_rate": RATE})
    messages: list[str] = []
    path = export_nwb(config, log=messages.append)
    with _read_nwb(path) as io:
        nwbfile = io.read()
        assert nwbfile.subject is None
        assert nwbfile.experimenter is None and nwbfile.institution is None
        assert nwbfile.lab is None and nwbfile.experiment_description is None
        # What the schema requires and nobody stated is written as unknown, never made up.
        plane = nwbfile.imaging_planes["ImagingPlane"]
        assert (plane.indicator, plane.location) == ("unknown", "unknown")
        assert math.isnan(plane.excitation_lambda)
        assert math.isnan(plane.optical_channel[0].emission_lambda)
        assert plane.device.description is None
        assert "flowreg-session" in nwbfile.session_description
        assert all(stem in nwbfile.session_description for stem in STEMS)
        uuid.UUID(nwbfile.identifier)
    assert any("indicator not known" in m for m in messages)
    missing = [m.check_function_name for m in inspect_nwbfile(
        nwbfile_path=str(path), select=["check_subject_exists"], skip_validate=True)]
    assert missing == ["check_subject_exists"]  # DANDI needs the subject: it is not invented


@SMALL
@pytest.mark.parametrize(("metadata", "match"), [
    ({"imaging_rate": RATE}, "session_start_time is required"),
    ({"session_start_time": "2026-03-01T10:00:00", "imaging_rate": RATE}, "no time zone"),
    ({"session_start_time": "first of March", "imaging_rate": RATE}, "not an ISO 8601"),
    ({"session_start_time": START}, "imaging_rate is required"),
])
def test_nwb_export_refuses_to_guess_start_time_or_frame_rate(small_copy, metadata, match):
    with pytest.raises(ConfigError, match=match):
        export_nwb(_config(small_copy, metadata=metadata), log=_quiet)
    assert not (small_copy / "final_results" / NWB_FILE).exists()


def _export_files(final: Path) -> dict[str, bytes]:
    names = [final / NWB_FILE, final / "suite2p" / "plane0" / "data.bin",
             final / "suite2p" / "plane0" / "ops.npy"]
    return {p.name: p.read_bytes() for p in names if p.exists()}


@SMALL
@pytest.mark.parametrize("previous", [False, True], ids=["fresh", "over-previous"])
@pytest.mark.parametrize(("export", "batches_before_failure"), [
    # 5 batches of 8 frames per recording; the suite2p export reads every video once for the
    # scale (15 batches) before it writes data.bin: the failure comes while data.bin is written.
    (export_suite2p, 17),
    (export_nwb, 2),
], ids=["suite2p", "nwb"])
def test_a_failure_mid_stream_leaves_no_export_to_trust(small_copy, monkeypatch, export,
                                                        batches_before_failure, previous):
    config = _config(small_copy)
    final = config.final_results_path
    if previous:
        export(config, chunk_frames=8, log=_quiet)
    before = _export_files(final)
    served = [0]
    iter_batches = MovieReader.iter_batches

    def failing(self, batch_size, **kwargs):
        for batch in iter_batches(self, batch_size, **kwargs):
            if served[0] == batches_before_failure:
                raise RuntimeError("killed mid-stream")
            served[0] += 1
            yield batch

    monkeypatch.setattr(MovieReader, "iter_batches", failing)
    with pytest.raises(RuntimeError, match="killed mid-stream"):
        export(config, chunk_frames=8, log=_quiet)
    assert served[0] == batches_before_failure
    # Nothing new under a real name: no export, or the previous complete one unchanged.
    assert _export_files(final) == before
    assert bool(before) == previous
    assert [p for p in final.rglob("*") if is_temporary_path(p)] == []


@SMALL
def test_recordings_left_out_of_the_session_are_left_out_of_the_exports(small_copy):
    # A fourth recording of another tissue sample does not align and is excluded.
    other = SyntheticRecording(H, W, T, rigid_amplitude=1.5, nonrigid_amplitude=0.5, seed=4242)
    write_recording(other, small_copy / "rec_03.tif")
    config = _config(small_copy, exclude_misaligned=True)
    _run_stages(config)
    report = json.loads((config.final_results_path / "qc" / "session.json").read_text())
    assert report["excluded"] == ["rec_03"]
    ops = _load_ops(export_suite2p(config, log=_quiet))
    assert ops["flowreg_recordings"] == list(STEMS) and list(ops["frames_per_file"]) == [T] * 3
    y0, y1, x0, x1 = _bounding_box(_bundle(config)["final_valid"])
    assert tuple(ops["flowreg_crop"]) == (y0, y1, x0, x1)
    with _read_nwb(export_nwb(config, log=_quiet)) as io:
        ophys = io.read().processing["ophys"]
        assert sorted(n for n in ophys.data_interfaces if n.startswith("aligned_")) == [
            f"aligned_{s}" for s in STEMS]
        table = ophys["recording_qc"].to_dataframe().set_index("recording")
        assert bool(table.loc["rec_03", "excluded"]) and not table.loc[list(STEMS)].excluded.any()


# ------------------------------------------------------------------------------ memory
def _peak_bytes(export, config: SessionConfig) -> int:
    tracemalloc.start()
    try:
        export(config, chunk_frames=16, log=_quiet)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@OTHER
def test_export_memory_stays_well_below_the_video_size_of_a_long_recording(tmp_path):
    import pynwb  # noqa: F401  (its import is not the export's memory)

    source = tmp_path / "source"
    write_session(make_session(1, 32, 48, 60, seed=2), source)
    root = tmp_path / "long"
    root.mkdir()
    frames = tifffile.imread(source / "rec_00.tif")
    tifffile.imwrite(root / "rec_00.tif", np.concatenate([frames] * 10))  # 600 frames
    config = _config(root)
    _run_stages(config)
    video_bytes = 600 * 32 * 48 * 4  # the aligned video, float32
    for export in (export_suite2p, export_nwb):
        export(config, log=_quiet)  # first use: lazy imports and caches
        peak = _peak_bytes(export, config)
        assert peak < video_bytes / 4, (export.__name__, peak, video_bytes)


# ------------------------------------------------------------------------------ NWB input
def _write_nwb_input(path: Path, frames: np.ndarray, start: datetime, starting_time: float):
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries

    nwbfile = NWBFile(session_description="NWB input of the export tests",
                      identifier=f"input-{path.stem}", session_start_time=start, lab="NWB Lab",
                      subject=Subject(subject_id="nwb-mouse", species="Mus musculus", sex="M",
                                      age="P60D"))
    plane = nwbfile.create_imaging_plane(
        name="plane", device=nwbfile.create_device("scope"), excitation_lambda=940.0,
        optical_channel=OpticalChannel(name="green", description="green", emission_lambda=520.0),
        indicator="GCaMP8m", location="VISp", imaging_rate=15.0,
    )
    nwbfile.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", imaging_plane=plane,
                                            data=frames, unit="a.u.", rate=15.0,
                                            starting_time=starting_time))
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)


@OTHER
@pytest.mark.skipif(not hasattr(pyflowreg.io, "nwb_session_metadata"),
                    reason="NWB input (pyflowreg.io.nwb_session_metadata) is not available")
def test_an_nwb_inputs_metadata_and_frame_times_win_over_the_config(tmp_path):
    height, width, n_frames = 32, 48, 24  # small: the metadata and frame times are under test
    sources = write_session(make_session(2, height, width, n_frames, seed=3), tmp_path / "tif")
    root = tmp_path / "nwb"
    root.mkdir()
    start = datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    for k, source in enumerate(sources):  # the second recording starts 5 min later
        frames = tifffile.imread(source).transpose(0, 2, 1)  # the schema's (frame, x, y)
        _write_nwb_input(root / f"rec_{k:02d}.nwb", frames, start + timedelta(minutes=5 * k),
                         starting_time=2.0)
    config = _config(root, pattern="rec_*.nwb", metadata={
        "session_start_time": "2020-01-01T00:00:00+00:00", "imaging_rate": 99.0,
        "indicator": "GCaMP6s", "institution": "Config Institute",
        "subject": {"subject_id": "config-mouse"},
    })
    _run_stages(config)
    assert _load_ops(export_suite2p(config, log=_quiet))["fs"] == 15.0
    videos = _videos(config, stems=("rec_00", "rec_01"))
    with _read_nwb(export_nwb(config, log=_quiet)) as io:
        nwbfile = io.read()
        assert nwbfile.session_start_time == start  # the earliest input's
        assert nwbfile.subject.subject_id == "nwb-mouse" and nwbfile.lab == "NWB Lab"
        assert nwbfile.institution == "Config Institute"  # stated by no input: the config's
        assert nwbfile.identifier not in ("input-rec_00", "input-rec_01")
        plane = nwbfile.imaging_planes["ImagingPlane"]
        assert (plane.indicator, plane.excitation_lambda) == ("GCaMP8m", 940.0)
        ophys = nwbfile.processing["ophys"]
        for k, video in enumerate(videos):
            series = ophys[f"aligned_rec_{k:02d}"]
            assert video.shape == (n_frames, height, width)
            assert series.rate == 15.0
            assert series.starting_time == pytest.approx(2.0 + 300.0 * k)
            np.testing.assert_array_equal(series.data[:].transpose(0, 2, 1), video)
