"""Stage 1's noise fit against the generator's true photon gain, and on the real recordings.

The benchmark recordings are stored as a detector stores them (``k`` counts per photon, a dark
offset, integers): the variance at mean ``x`` is ``k (x - offset) + k^2 5^2 + 1/12``. The grid
covers dim light (10 photons per unit, read-noise limited), motion that would pass for noise
(``jitter``: a rigid jump of about a pixel between consecutive frames) and frame sizes;
``benchmarks/noise_model.py`` runs the full grid at 256 and 512 px.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pyflowreg.motion_correction.reference import fit_recording_noise
from pyflowreg.synthetic import REAL_RECORDINGS, make_benchmark_recording

READ_NOISE = 5.0  # photons, the generator's default


class _Stored:
    """A benchmark recording read as a detector with ``k`` counts per photon stores it."""

    def __init__(self, rec, k: float, offset: float):
        self.rec, self.n_frames = rec, rec.n_frames
        self.scale, self.offset = k * rec.photons_per_unit, offset

    def read(self, t0, t1):
        return np.round(np.clip(self.rec.observed(t0, t1) * self.scale + self.offset, 0, 65535))


class _Frames:
    def __init__(self, frames):
        self.frames, self.n_frames = frames, len(frames)

    def read(self, t0, t1):
        return self.frames[t0:t1]


def _fit(model, photons, size, k=1.0, offset=100.0):
    rec = make_benchmark_recording(model, photons_per_unit=photons, height=size, width=size,
                                   n_frames=64, seed=1)
    (fit,) = fit_recording_noise(_Stored(rec, k, offset))
    return fit


@pytest.mark.parametrize("photons, tolerance", [(10, 0.2), (100, 0.1), (1000, 0.1)])
@pytest.mark.parametrize("model", ["smooth", "jitter"])
def test_gain_matches_the_generator(model, photons, tolerance):
    fit = _fit(model, photons, 192)
    assert fit.plausible, fit.as_dict()
    assert fit.gain == pytest.approx(1.0, rel=tolerance), fit.as_dict()
    true_intercept = READ_NOISE**2 + 1 / 12 - 100.0
    # The intercept extrapolates the line to zero counts, 100 counts below the data.
    assert fit.intercept == pytest.approx(true_intercept, abs=tolerance * 100 + 5), fit.as_dict()


def test_gain_follows_the_detector_and_a_large_frame():
    fit = _fit("jitter", 100, 384, k=4.0)
    assert fit.plausible and fit.gain == pytest.approx(4.0, rel=0.05), fit.as_dict()


def test_clipped_dim_recording_is_measured_without_a_line():
    # No dark offset at 10 photons per unit: the read noise of every dim pixel is clipped at
    # zero. No line describes that, but the variances are measured.
    fit = _fit("smooth", 10, 192, offset=0.0)
    assert not fit.plausible and fit.measured and fit.kind == "bins", fit.as_dict()


@pytest.mark.parametrize("model", sorted(REAL_RECORDINGS))
def test_real_recordings_give_a_photon_model(model, real_data_dir):
    relative, *_ = REAL_RECORDINGS[model]
    frames = tifffile.imread(real_data_dir / relative).astype(np.float64)[..., None]
    (fit,) = fit_recording_noise(_Frames(frames))
    assert fit.plausible, fit.as_dict()
    assert fit.relative_residual < 0.25, fit.as_dict()
