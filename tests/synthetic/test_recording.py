"""Synthetic recordings (pyflowreg.synthetic.recording): streams, ground truth, noise."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from pyflowreg.synthetic import SyntheticRecording
from pyflowreg.synthetic.fields import invert

MARGIN = 10  # px of interior used when comparing warped images


def interior(image):
    return image[MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.fixture(scope="module")
def recording():
    return SyntheticRecording(96, 80, 40, rigid_amplitude=3.0, nonrigid_amplitude=1.5, seed=7)


def test_same_seed_reproduces_frames_and_different_seed_differs():
    a = SyntheticRecording(48, 48, 5, seed=11)
    b = SyntheticRecording(48, 48, 5, seed=11)
    c = SyntheticRecording(48, 48, 5, seed=12)
    np.testing.assert_array_equal(a.observed(0, 5), b.observed(0, 5))
    np.testing.assert_array_equal(a.flow(0, 5), b.flow(0, 5))
    assert not np.allclose(a.observed(0, 5), c.observed(0, 5))


def test_streamed_chunks_equal_whole_range(recording):
    whole = recording.observed(0, 40)
    np.testing.assert_array_equal(recording.observed(0, 10), whole[:10])
    chunks = np.concatenate([frames for _, frames in recording.iter_observed(7)])
    np.testing.assert_array_equal(chunks, whole)
    np.testing.assert_array_equal(recording.clean(5, 9), recording.clean_all()[5:9])
    np.testing.assert_array_equal(recording.flow(30, 40), recording.flow_all()[30:])


def test_outputs_have_documented_shapes_and_dtypes(recording):
    assert recording.shape == (40, 96, 80, 1)
    for array, shape in [
        (recording.observed(2, 5), (3, 96, 80, 1)),
        (recording.clean(2, 5), (3, 96, 80, 1)),
        (recording.flow(2, 5), (3, 96, 80, 2)),
        (recording.displacement(2, 5), (3, 96, 80, 2)),
        (recording.clean_static(), (96, 80, 1)),
        (recording.observed(3, 3), (0, 96, 80, 1)),
    ]:
        assert array.shape == shape
        assert array.dtype == np.float32
    assert recording.rigid_flow.shape == (40, 2)
    assert recording.dff.shape == (40, recording.n_cells)
    with pytest.raises(ValueError):
        recording.observed(0, 41)


def test_second_channel_is_static_structural_view_of_same_scene():
    rec = SyntheticRecording(64, 64, 6, n_channels=2, rigid_amplitude=0.0,
                             nonrigid_amplitude=0.0, seed=2)
    clean = rec.clean_all()
    assert clean.shape == (6, 64, 64, 2)
    np.testing.assert_allclose(clean[0, ..., 1], clean[-1, ..., 1])  # no transients
    assert not np.allclose(clean[0, ..., 0], clean[-1, ..., 0])  # calcium activity
    assert np.corrcoef(clean[0, ..., 0].ravel(), clean[0, ..., 1].ravel())[0, 1] > 0.3


def test_intensities_lie_in_documented_brightness_ranges():
    rec = SyntheticRecording(256, 256, 50, photons_per_unit=None, read_noise=0.0, seed=4)
    static = rec.clean_static("baseline")[..., 0]
    background = np.percentile(static, 30)
    assert 0.08 < background < 0.4
    assert 0.3 < np.percentile(static, 99.5) < 0.9
    assert 1.0 < rec.clean_all().max() < 3.0
    inside = (rec.cell_centers >= 0).all(1) & (rec.cell_centers < 256).all(1)
    assert 40 <= inside.sum() <= 160


@pytest.mark.parametrize("rigid, nonrigid", [(4.0, 0.0), (3.0, 2.0), (0.0, 2.5)])
def test_ground_truth_flow_registers_observed_onto_clean(rigid, nonrigid, warp_backward):
    rec = SyntheticRecording(96, 96, 12, rigid_amplitude=rigid, nonrigid_amplitude=nonrigid,
                             seed=5)
    observed, clean, flow = rec.observed(0, 12, noise=False), rec.clean(0, 12), rec.flow(0, 12)
    dynamic_range = float(np.ptp(clean))
    for t in range(12):
        registered = warp_backward(observed[t, ..., 0], flow[t])
        error = np.abs(interior(registered - clean[t, ..., 0])).mean()
        assert error < 0.01 * dynamic_range
        unregistered = np.abs(interior(observed[t, ..., 0] - clean[t, ..., 0])).mean()
        assert error < 0.2 * unregistered or unregistered < 1e-3


def test_rigid_only_flow_is_exactly_minus_rigid_displacement():
    rec = SyntheticRecording(64, 64, 8, rigid_amplitude=3.0, nonrigid_amplitude=0.0, seed=1)
    flow = rec.flow(0, 8)
    np.testing.assert_allclose(flow, np.broadcast_to(rec.rigid_flow[:, None, None], flow.shape),
                               atol=1e-6)
    np.testing.assert_allclose(rec.displacement(0, 8), -flow, atol=1e-6)


@pytest.mark.parametrize("height, width", [(96, 80), (240, 208)])
def test_flow_matches_exact_pixelwise_inverse_of_displacement(height, width):
    rec = SyntheticRecording(height, width, 12, rigid_amplitude=3.0, nonrigid_amplitude=2.0,
                             seed=5)
    yy, xx = np.mgrid[:height, :width].astype(float)
    for t in (0, 5, 11):
        exact = np.stack(invert(rec._field(t), xx, yy), -1)
        np.testing.assert_allclose(rec.flow(t, t + 1)[0], exact, atol=5e-4)
        d = rec.displacement(t, t + 1)[0]
        for c in range(2):  # w(p) = -d(p + w(p))
            composed = ndi.map_coordinates(d[..., c], [yy + exact[..., 1], xx + exact[..., 0]],
                                           order=3)
            assert np.abs(interior(exact[..., c] + composed)).max() < 1e-3


def test_non_invertible_motion_is_rejected():
    with pytest.raises(ValueError):
        SyntheticRecording(64, 64, 5, nonrigid_amplitude=8.0, nonrigid_wavelength=20.0)


def test_observed_without_motion_or_noise_equals_clean():
    rec = SyntheticRecording(64, 64, 4, rigid_amplitude=0.0, nonrigid_amplitude=0.0, seed=9)
    np.testing.assert_allclose(rec.observed(0, 4, noise=False), rec.clean(0, 4), atol=2e-3)
    assert np.abs(rec.flow_all()).max() == 0


def test_motion_amplitudes_are_bounded_and_reached():
    rec = SyntheticRecording(80, 80, 200, rigid_amplitude=4.0, nonrigid_amplitude=0.0, seed=3)
    norms = np.hypot(*rec.rigid_flow.T)
    assert norms.max() <= 4.0 + 1e-5 and norms.max() > 3.99
    rec = SyntheticRecording(80, 80, 60, rigid_amplitude=0.0, nonrigid_amplitude=2.0, seed=3)
    d = rec.displacement(0, 60)
    assert 1.9 < np.hypot(d[..., 0], d[..., 1]).max() <= 2.0 * 1.01


def test_zero_mean_motion_option_controls_temporal_mean():
    kwargs = dict(rigid_amplitude=3.0, nonrigid_amplitude=1.5, seed=8)
    centred = SyntheticRecording(64, 64, 50, zero_mean_motion=True, **kwargs)
    np.testing.assert_allclose(centred.displacement(0, 50).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(centred.rigid_flow.mean(0), 0.0, atol=1e-5)
    assert np.abs(centred.flow(0, 50).mean(0)).max() < 0.25  # second order for the inverse
    drifting = SyntheticRecording(64, 64, 50, zero_mean_motion=False, **kwargs)
    assert np.abs(drifting.displacement(0, 50).mean(0)).max() > 0.2


def test_clean_static_is_time_average_of_clean(recording):
    np.testing.assert_allclose(recording.clean_static(), recording.clean_all().mean(0), atol=1e-5)
    with pytest.raises(ValueError):
        recording.clean_static("median")


def test_noise_variance_matches_shot_plus_read_model():
    ppu, read = 50.0, 0.02
    rec = SyntheticRecording(128, 128, 4, photons_per_unit=ppu, read_noise=read, seed=6)
    noisy, mean = rec.observed(0, 4), rec.observed(0, 4, noise=False)
    residual = (noisy - mean).ravel()
    intensity = np.maximum(mean, 0).ravel()
    assert abs(residual.mean()) < 2e-3
    for low, high in [(0.1, 0.2), (0.3, 0.6), (0.8, 2.0)]:
        sel = (intensity >= low) & (intensity < high)
        expected = intensity[sel].mean() / ppu + read**2
        assert residual[sel].var() == pytest.approx(expected, rel=0.1)
    only_read = SyntheticRecording(64, 64, 2, photons_per_unit=None, read_noise=read, seed=6)
    residual = only_read.observed(0, 2) - only_read.observed(0, 2, noise=False)
    assert residual.std() == pytest.approx(read, rel=0.05)


def test_valid_mask_matches_definition(recording):
    flow = recording.flow_all()
    yy, xx = np.mgrid[:96, :80]
    x, y = xx + flow[..., 0], yy + flow[..., 1]
    expected = ((x >= 0) & (x <= 79) & (y >= 0) & (y <= 95)).all(0)
    np.testing.assert_array_equal(recording.valid_mask(), expected)
