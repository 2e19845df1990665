"""ScanImage channel de-interleaving.

tifffile cannot write the binary ScanImage BigTIFF header, so the files here carry the
ScanImage settings the way ScanImage also stores them per page (Software tag for
ScanImage 2016+, ImageDescription for ScanImage 3); tifffile flags both as ScanImage.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pyflowreg.io import deinterleave_pages, open_movie, scanimage_layout
from pyflowreg.io.scanimage import ScanImageLayout, parse_scanimage_text

SI_2016 = """SI.LINE_FORMAT_VERSION = 1
SI.VERSION_MAJOR = '2016b'
SI.hChannels.channelSave = [1;2]
SI.hChannels.channelsActive = [1;2]
SI.hFastZ.enable = false
SI.hStackManager.numSlices = 1
"""


def interleaved_pages(n_frames, n_channels, h=6, w=5, n_planes=1):
    """Pages in ScanImage order; pixel value encodes (t, plane, channel)."""
    pages = np.empty((n_frames, n_planes, n_channels, h, w), np.int16)
    for t in range(n_frames):
        for z in range(n_planes):
            for c in range(n_channels):
                pages[t, z, c] = 100 * t + 10 * z + c
    return pages.reshape(-1, h, w)


def write_si(path, pages, *, software=None, description=None):
    tifffile.imwrite(
        path,
        pages,
        software=software,
        description=description,
        metadata=None,
        photometric="minisblack",
    )


def test_deinterleave_pages():
    pages = interleaved_pages(4, 3)
    movie = deinterleave_pages(pages, 3)
    assert movie.shape == (4, 6, 5, 3)
    for t in range(4):
        for c in range(3):
            assert np.all(movie[t, ..., c] == 100 * t + c)
    np.testing.assert_array_equal(deinterleave_pages(pages, 1)[..., 0], pages)
    with pytest.raises(ValueError, match="11 pages cannot be split into 3"):
        deinterleave_pages(pages[:11], 3)
    assert deinterleave_pages(pages[:11], 3, drop_incomplete=True).shape == (3, 6, 5, 3)


def test_scanimage_layout_from_settings():
    # tifffile's scanimage_metadata['FrameData'] style (already parsed)
    assert scanimage_layout({"SI.hChannels.channelSave": [[1], [2]]}) == ScanImageLayout(2, 1)
    assert scanimage_layout({"SI.hChannels.channelSave": 3}) == ScanImageLayout(1, 1)
    assert scanimage_layout({"SI.VERSION_MAJOR": "2020"}) is None
    fast = {
        "SI.hChannels.channelSave": [1, 2],
        "SI.hFastZ.enable": True,
        "SI.hStackManager.numSlices": 4,
    }
    assert scanimage_layout(fast) == ScanImageLayout(2, 4)
    slow = dict(fast, **{"SI.hFastZ.enable": False})
    assert scanimage_layout(slow) == ScanImageLayout(2, 1)
    text = parse_scanimage_text(SI_2016 + "scanimage.SI4.channelsSave = [1;3;4]\n")
    assert text["SI.hChannels.channelSave"] == [1, 2]
    assert text["SI.hFastZ.enable"] is False
    assert text["SI.VERSION_MAJOR"] == "2016b"
    assert scanimage_layout({"SI4.channelsSave": text["SI4.channelsSave"]}).n_channels == 3
    assert scanimage_layout(parse_scanimage_text("state.acq.numberOfChannelsSave=2")) == (
        ScanImageLayout(2, 1)
    )


def test_scanimage_2016_tiff_is_deinterleaved(tmp_path):
    path = tmp_path / "si.tif"
    write_si(path, interleaved_pages(7, 2), software=SI_2016)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_scanimage
    with open_movie(path) as reader:
        assert reader.is_scanimage
        assert reader.shape == (7, 6, 5, 2)
        movie = reader.read()
        np.testing.assert_array_equal(reader.read(2, 5), movie[2:5])
    for t in range(7):
        for c in range(2):
            assert np.all(movie[t, ..., c] == 100 * t + c)


def test_scanimage3_description(tmp_path):
    path = tmp_path / "si3.tif"
    lines = ["state.configPath='C:\\cfg'", "state.acq.numberOfChannelsSave=3"]
    desc = "\r\n".join([*lines, "state.acq.numberOfFrames=4"])  # ScanImage 3 uses CR LF
    write_si(path, interleaved_pages(4, 3), description=desc)
    with open_movie(path) as reader:
        assert reader.shape == (4, 6, 5, 3)
        assert np.all(reader.read_frame(3)[..., 2] == 302)


def test_scanimage_incomplete_last_frame_is_dropped(tmp_path):
    path = tmp_path / "aborted.tif"
    write_si(path, interleaved_pages(5, 2)[:-1], software=SI_2016)
    with pytest.warns(UserWarning, match=r"aborted\.tif.*last 1 ScanImage pages"):
        reader = open_movie(path)
    with reader:
        assert reader.shape == (4, 6, 5, 2)


def test_scanimage_fast_z_volume_needs_plane(tmp_path):
    software = SI_2016.replace("SI.hFastZ.enable = false", "SI.hFastZ.enable = true").replace(
        "numSlices = 1", "numSlices = 3"
    )
    path = tmp_path / "volume.tif"
    write_si(path, interleaved_pages(4, 2, n_planes=3), software=software)
    with pytest.raises(ValueError, match=r"volume\.tif.*plane="):
        open_movie(path)
    with open_movie(path, plane=2) as reader:
        assert reader.shape == (4, 6, 5, 2)
        movie = reader.read()
    assert np.all(movie[3, ..., 1] == 300 + 20 + 1)


def test_scanimage_without_channel_metadata_warns(tmp_path):
    path = tmp_path / "si_nometa.tif"
    write_si(path, interleaved_pages(3, 1), software="SI.VERSION_MAJOR = '2019'")
    with pytest.warns(UserWarning, match="without saved-channel metadata"):
        reader = open_movie(path)
    with reader:
        assert reader.shape == (3, 6, 5, 1)
