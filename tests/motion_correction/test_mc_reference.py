"""Which frames make the reference: the default window, clipping, explicit lists, errors."""

from __future__ import annotations

import numpy as np
import pytest

from pyflowreg.io import open_movie
from pyflowreg.motion_correction import OFOptions, build_reference, reference_frame_indices

DEFAULT_WINDOW = [50, 500]


def _check_distinct_in_range(indices: np.ndarray, n_frames: int) -> None:
    assert np.issubdtype(indices.dtype, np.integer)
    assert len(np.unique(indices)) == len(indices), "duplicated reference frames"
    assert indices.min() >= 0 and indices.max() < n_frames


def test_short_recording_uses_every_frame_once():
    indices = reference_frame_indices(60, DEFAULT_WINDOW)
    _check_distinct_in_range(indices, 60)
    np.testing.assert_array_equal(np.sort(indices), np.arange(60))


def test_recording_shorter_than_window_end_keeps_450_distinct_frames():
    indices = reference_frame_indices(480, DEFAULT_WINDOW)
    _check_distinct_in_range(indices, 480)
    assert len(indices) == 450
    # The window slides towards the start instead of repeating frames: still contiguous.
    np.testing.assert_array_equal(np.sort(indices), np.arange(indices.min(), indices.min() + 450))


def test_long_recording_uses_frames_50_to_499():
    indices = reference_frame_indices(1000, DEFAULT_WINDOW)
    np.testing.assert_array_equal(indices, np.arange(50, 500))


@pytest.mark.parametrize("n_frames", [2, 3, 49, 50, 51, 499, 500, 501])
def test_default_window_never_duplicates(n_frames):
    indices = reference_frame_indices(n_frames, DEFAULT_WINDOW)
    _check_distinct_in_range(indices, n_frames)
    assert len(indices) == min(450, n_frames)


def test_window_beyond_the_recording_is_clipped():
    indices = reference_frame_indices(100, [200, 300])
    _check_distinct_in_range(indices, 100)
    assert len(indices) == 100


def test_explicit_list_is_used_sorted_without_duplicates():
    np.testing.assert_array_equal(reference_frame_indices(100, [7, 3, 9, 3, 0]), [0, 3, 7, 9])
    np.testing.assert_array_equal(reference_frame_indices(100, [99, 10, 20]), [10, 20, 99])


def test_explicit_list_outside_recording_raises():
    with pytest.raises(ValueError, match="100"):
        reference_frame_indices(100, [0, 5, 100])


def test_options_reject_negative_or_empty_reference_frames():
    for bad in ([], [-1, 3, 5], [10, 5], "50:500"):
        with pytest.raises(ValueError, match="reference_frames"):
            OFOptions(reference_frames=bad)


def test_build_reference_on_short_movie_uses_each_frame_once(tmp_path):
    rng = np.random.default_rng(0)
    movie = tmp_path / "short.npy"
    np.save(movie, rng.random((60, 32, 32)).astype(np.float32))
    options = OFOptions(quality_setting="fast", reference_passes=1, n_workers=2)
    with open_movie(movie) as reader:
        reference = build_reference(reader, options)
    _check_distinct_in_range(reference.frame_indices, 60)
    np.testing.assert_array_equal(reference.frame_indices, np.arange(60))
    assert reference.image.shape == (32, 32, 1)
    assert reference.passes == 1


def test_build_reference_with_explicit_frames_averages_those_frames(tmp_path):
    frames = np.zeros((20, 16, 16), dtype=np.float32)
    frames[[2, 5, 11]] = np.arange(16, dtype=np.float32)[None, None, :]  # equal frames
    movie = tmp_path / "explicit.npy"
    np.save(movie, frames)
    options = OFOptions(quality_setting="fast", reference_frames=[11, 2, 5], n_workers=2)
    with open_movie(movie) as reader:
        reference = build_reference(reader, options)
    np.testing.assert_array_equal(reference.frame_indices, [2, 5, 11])
    # The chosen frames are identical, so the reference must be that frame (no zero frames).
    np.testing.assert_allclose(reference.image[..., 0], frames[2], atol=1e-3)


def test_reference_uses_at_most_max_frames_evenly_spread(tmp_path):
    from pyflowreg.motion_correction.reference import evenly_spaced

    picked = evenly_spaced(np.arange(50, 500), 100)
    assert picked.size == 100 and picked[0] == 50 and picked[-1] == 499
    assert np.unique(np.diff(picked)).size <= 2  # even spacing, up to rounding
    np.testing.assert_array_equal(evenly_spaced(np.arange(7), 100), np.arange(7))
