"""Recordings made of many files: sheets, folders, globs, ScanImage split files, Bruker folders."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile

from pyflowreg.io.fingerprint import fingerprint_matches, input_fingerprint
from pyflowreg.io.recording import (
    ConcatMovieReader,
    MovieSource,
    bruker_source,
    check_disjoint,
    group_scanimage_files,
    natural_key,
    open_recording,
    read_recordings_sheet,
)

H, W = 12, 10


def movie(n_frames, start=0, channels=1, dtype=np.uint16):
    """Frames whose pixels encode (frame, channel), so any misplaced frame shows."""
    t = np.arange(start, start + n_frames, dtype=np.float64)[:, None, None, None]
    c = np.arange(channels)[None, None, None, :]
    frames = np.broadcast_to(10 * t + c + np.zeros((1, H, W, 1)), (n_frames, H, W, channels))
    return frames.astype(dtype)


def imwrite(path, data):
    tifffile.imwrite(path, data, photometric="minisblack")  # 3 or 4 frames are not RGB


def write_parts(folder, counts, name="trial_{}.tif", start_index=1):
    folder.mkdir(parents=True, exist_ok=True)
    paths, t = [], 0
    for k, n in enumerate(counts):
        path = folder / name.format(k + start_index)
        imwrite(path, movie(n, t)[..., 0])
        paths.append(path)
        t += n
    return paths, movie(t)


def test_natural_order():
    names = ["f_10.tif", "f_2.tif", "f_1.tif"]
    assert sorted(names, key=natural_key) == ["f_1.tif", "f_2.tif", "f_10.tif"]


def test_concatenated_reads_cross_file_borders(tmp_path):
    paths, whole = write_parts(tmp_path, [4, 1, 7, 3])
    with open_recording(MovieSource.sequence("rec", paths)) as reader:
        assert isinstance(reader, ConcatMovieReader)
        assert reader.shape == (15, H, W, 1) and reader.dtype == np.uint16
        assert reader.file_frame_counts == [4, 1, 7, 3]
        np.testing.assert_array_equal(reader.read(), whole)
        np.testing.assert_array_equal(reader.read(3, 13), whole[3:13])
        np.testing.assert_array_equal(reader.read_frame(4), whole[4])
        batches = [b for b in reader.iter_batches(6)]
        np.testing.assert_array_equal(np.concatenate(batches), whole)
        assert len(reader._open) <= ConcatMovieReader.OPEN_FILES


def test_many_files_stream_without_holding_them(tmp_path):
    paths = []
    for k in range(40):  # 800 frames of 128x128 in 40 files: 26 MB
        paths.append(tmp_path / f"t_{k + 1}.tif")
        imwrite(paths[-1], np.full((20, 128, 128), k, np.uint16))
    with open_recording(MovieSource.sequence("rec", paths)) as reader:
        tracemalloc.start()
        for t0, t1 in reader.batch_bounds(25):
            assert reader.read(t0, t1)[0, 0, 0, 0] == t0 // 20
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        total = reader.n_frames * 128 * 128 * 2
        assert len(reader._open) <= ConcatMovieReader.OPEN_FILES
    assert peak < total / 8, (peak, total)  # a few batches, not the recording


def test_files_that_disagree_are_refused_naming_them(tmp_path):
    paths, _ = write_parts(tmp_path, [3, 3])
    odd = tmp_path / "trial_3.tif"
    imwrite(odd, np.zeros((3, H + 2, W), np.uint16))
    with pytest.raises(ValueError, match=r"trial_3\.tif has 14x10 frames.*one frame size"):
        open_recording(MovieSource.sequence("rec", [*paths, odd]))
    float_file = tmp_path / "trial_4.tif"
    imwrite(float_file, np.zeros((3, H, W), np.float32))
    with pytest.raises(ValueError, match=r"trial_4\.tif .*float32"):
        open_recording(MovieSource.sequence("rec", [*paths, float_file]))
    missing = tmp_path / "trial_9.tif"
    with pytest.raises(FileNotFoundError, match=r"trial_9\.tif"):
        open_recording(MovieSource.sequence("rec", [*paths, missing]))


def sheet(path, rows):
    path.write_text("recording\tpath\n" + "".join(f"{r}\t{p}\n" for r, p in rows))
    return path


def test_sheet_rows_folders_and_globs(tmp_path):
    write_parts(tmp_path / "a_parts", [3, 2, 4])
    write_parts(tmp_path / "b", [5, 5], name="b_{}.tif", start_index=9)  # b_9, b_10
    imwrite(tmp_path / "c.tif", movie(6)[..., 0])
    imwrite(tmp_path / "c_more.tif", movie(2, 6)[..., 0])
    rows = [("a", "a_parts"), ("b", "b/b_*.tif"), ("c", "c.tif"),
            ("c", str(tmp_path / "c_more.tif"))]
    sources = read_recordings_sheet(sheet(tmp_path / "s.tsv", rows), tmp_path)
    assert [s.stem for s in sources] == ["a", "b", "c"]
    assert [f.name for f in sources[0].files] == ["trial_1.tif", "trial_2.tif", "trial_3.tif"]
    assert [f.name for f in sources[1].files] == ["b_9.tif", "b_10.tif"]  # natural order
    with open_recording(sources[2]) as reader:
        np.testing.assert_array_equal(reader.read(), movie(8))
    back = MovieSource.from_dict(sources[1].to_dict())
    assert back == sources[1]


@pytest.mark.parametrize("text, message", [
    ("name\tfile\nx\ty.tif\n", "header 'recording<TAB>path'"),
    ("recording\tpath\nx y.tif\n", r"line 2: expected 'recording<TAB>path'"),
    ("recording\tpath\nx\tnothing.tif\n", r"line 2: file not found: .*nothing\.tif"),
    ("recording\tpath\nx\tno_*.tif\n", r"line 2: no file matches 'no_\*\.tif'"),
    ("recording\tpath\n", "lists no recordings"),
])
def test_sheet_errors_name_the_sheet_and_line(tmp_path, text, message):
    path = tmp_path / "s.tsv"
    path.write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
        read_recordings_sheet(path, tmp_path)
    assert "s.tsv" in str(info.value)


def test_gap_and_disorder_in_numbering_are_refused(tmp_path):
    paths, _ = write_parts(tmp_path / "gap", [2, 2, 2])
    paths[1].unlink()
    with pytest.raises(ValueError, match=r"gap in the file numbering between .*trial_1\.tif and "
                                         r".*trial_3\.tif \(numbers 2\.\.2 are missing\)"):
        read_recordings_sheet(sheet(tmp_path / "s.tsv", [("r", "gap")]), tmp_path)
    write_parts(tmp_path / "order", [2, 2])
    rows = [("r", "order/trial_2.tif"), ("r", "order/trial_1.tif")]
    with pytest.raises(ValueError, match=r"out of order: .*trial_1\.tif \(number 1\) comes after"):
        read_recordings_sheet(sheet(tmp_path / "s2.tsv", rows), tmp_path)


def test_one_file_in_two_recordings_is_refused(tmp_path):
    write_parts(tmp_path, [2, 2])
    rows = [("a", "trial_1.tif"), ("b", "trial_1.tif")]
    with pytest.raises(ValueError, match=r"trial_1\.tif is listed in recordings 'a' and 'b'"):
        read_recordings_sheet(sheet(tmp_path / "s.tsv", rows), tmp_path)
    with pytest.raises(ValueError, match="twice in recording 'a'"):
        check_disjoint([MovieSource.sequence("a", [tmp_path / "trial_1.tif"] * 2)])


def test_fingerprint_notices_an_added_removed_or_edited_file(tmp_path):
    paths, _ = write_parts(tmp_path, [3, 3, 3])
    source = MovieSource.sequence("rec", paths)
    recorded = input_fingerprint(source)
    assert [f["name"] for f in recorded["files"]] == [p.name for p in paths]
    assert fingerprint_matches(recorded, source)
    assert not fingerprint_matches(recorded, MovieSource.sequence("rec", paths[:2]))
    extra = tmp_path / "trial_4.tif"
    imwrite(extra, movie(3)[..., 0])
    assert not fingerprint_matches(recorded, MovieSource.sequence("rec", [*paths, extra]))
    data = tifffile.imread(paths[1])
    data[0, 0, 0] += 1
    imwrite(paths[1], data)
    assert not fingerprint_matches(recorded, source)


SI_HEADER = "SI.hChannels.channelSave = 1\nSI.VERSION_MAJOR = '2019'\n"


def write_scanimage(path, first_frame, n_frames, acquisition=1):
    with tifffile.TiffWriter(path) as tif:
        for t in range(n_frames):
            description = (f"frameNumbers = {first_frame + t}\n"
                           f"acquisitionNumbers = {acquisition}\n")
            tif.write(np.full((H, W), first_frame + t, np.int16), description=description,
                      software=SI_HEADER, metadata=None, contiguous=False, photometric="minisblack")


def test_scanimage_split_files_become_one_recording(tmp_path):
    for k, first in enumerate([1, 5, 9], start=1):
        write_scanimage(tmp_path / f"mouse1_{k:05d}.tif", first, 4)
    imwrite(tmp_path / "other.tif", movie(3)[..., 0])
    grouped = group_scanimage_files(sorted(tmp_path.glob("*.tif")))
    sources = [g for g in grouped if isinstance(g, MovieSource)]
    assert len(sources) == 1 and sources[0].stem == "mouse1"
    assert [f.name for f in sources[0].files] == [f"mouse1_{k:05d}.tif" for k in (1, 2, 3)]
    assert [g.name for g in grouped if not isinstance(g, MovieSource)] == ["other.tif"]
    with open_recording(sources[0]) as reader:
        np.testing.assert_array_equal(reader.read()[:, 0, 0, 0], np.arange(1, 13))


def test_scanimage_split_files_with_a_gap_are_refused(tmp_path):
    write_scanimage(tmp_path / "m_00001.tif", 1, 4)
    write_scanimage(tmp_path / "m_00002.tif", 9, 4)
    with pytest.raises(ValueError, match=r"m_00001\.tif ends at frame 4, m_00002\.tif starts "
                                         r"at frame 9"):
        group_scanimage_files(sorted(tmp_path.glob("*.tif")))


def test_scanimage_files_of_separate_acquisitions_stay_apart(tmp_path):
    write_scanimage(tmp_path / "m_00001.tif", 1, 4, acquisition=1)
    write_scanimage(tmp_path / "m_00002.tif", 1, 4, acquisition=2)
    grouped = group_scanimage_files(sorted(tmp_path.glob("*.tif")))
    assert not any(isinstance(g, MovieSource) for g in grouped)


def write_bruker(folder, n_frames, channels=(1, 2)):
    folder.mkdir(parents=True)
    frames = []
    for t in range(1, n_frames + 1):
        files = []
        for c in channels:
            name = f"{folder.name}_Cycle00001_Ch{c}_{t:06d}.ome.tif"
            imwrite(folder / name, np.full((H, W), 10 * t + c, np.uint16))
            files.append(f'<File channel="{c}" channelName="Ch{c}" page="1" '
                         f'filename="{name}" />')
        frames.append(f'<Frame relativeTime="{t}" index="{t}">{"".join(files)}</Frame>')
    (folder / f"{folder.name}.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<PVScan version="5.4">'
        f'<Sequence type="TSeries Timed Element" cycle="1">{"".join(frames)}</Sequence>'
        "</PVScan>\n")


def test_bruker_folder_is_one_recording_with_its_channels(tmp_path):
    write_bruker(tmp_path / "TSeries-001", 5)
    source = bruker_source(tmp_path / "TSeries-001")
    assert source.stem == "TSeries-001" and len(source.parts) == 5
    with open_recording(source) as reader:
        assert reader.shape == (5, H, W, 2)
        frames = reader.read()
    np.testing.assert_array_equal(frames[:, 0, 0, 0], 10 * np.arange(1, 6) + 1)
    np.testing.assert_array_equal(frames[:, 0, 0, 1], 10 * np.arange(1, 6) + 2)


def test_bruker_folder_with_a_missing_frame_file_is_refused(tmp_path):
    write_bruker(tmp_path / "TSeries-002", 3)
    (tmp_path / "TSeries-002" / "TSeries-002_Cycle00001_Ch2_000002.ome.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"frame 2 lists TSeries-002_Cycle00001_Ch2_"):
        bruker_source(tmp_path / "TSeries-002")


def test_session_pattern_finds_split_scanimage_files_and_bruker_folders(tmp_path):
    from pyflowreg.session import SessionConfig

    for k, first in enumerate([1, 5], start=1):
        write_scanimage(tmp_path / f"mouse1_{k:05d}.tif", first, 4)
    write_bruker(tmp_path / "TSeries-001", 4, channels=(1,))
    imwrite(tmp_path / "plain.tif", movie(4)[..., 0])
    config = SessionConfig(root=tmp_path, pattern="*")
    recordings = config.discover_input_files()
    assert [r.stem for r in recordings] == ["TSeries-001", "mouse1", "plain"]
    assert [len(r.files) if isinstance(r, MovieSource) else 1 for r in recordings] == [4, 2, 1]
    assert config.recording("mouse1") == recordings[1]


def test_real_folder_of_single_frame_files(real_data_dir, tmp_path):
    folder = real_data_dir / "sima_example" / "example-tiffs"
    if not folder.is_dir():
        pytest.skip(f"real data not available: {folder}")
    sources = read_recordings_sheet(sheet(tmp_path / "s.tsv", [("sima", str(folder))]), tmp_path)
    assert [f.name for f in sources[0].files] == ["0.tif", "1.tif", "2.tif"]
    with open_recording(sources[0]) as reader:
        assert reader.shape == (3, 173, 173, 1) and reader.dtype == np.uint16
        frames = reader.read()
    for t in range(3):
        np.testing.assert_array_equal(frames[t, ..., 0], tifffile.imread(folder / f"{t}.tif"))
