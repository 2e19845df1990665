"""Benchmark recordings with exact ground truth: motion models x photon levels, and real tissue.

:func:`make_benchmark_recording` is the one entry point used by ``benchmarks/accuracy.py`` and
the tests. Each model is a :class:`BenchmarkRecording`: a source of motion-free frames (the
synthetic tissue of :mod:`pyflowreg.synthetic.scene`, or frames of a real recording) moved by
a :class:`~pyflowreg.synthetic.motion.MotionField`, plus photon noise.

Models
------
``"smooth"``
    Wide deformation: smooth modes of 60-100 px features, 2 px, plus a rigid drift of 5 px
    (timescale 15 frames). All rows of a frame are acquired at once.
``"smooth_wide"``
    The same with modes as wide as the frame (wavelength twice its size): deformation that
    128 px blocks can follow, and that wants a smoothness weight growing with the frame.
``"local"``
    Local deformation of 15-30 px features up to 3 px (timescale 8 frames) on a fast rigid
    motion of 4 px (timescale 3 frames, up to ~1 px per frame), with line scanning over the
    whole frame period (``line_fraction=1``): the fast motion bends every frame. The local
    field fills the frame, so every pixel deforms: a stress case, harder than
    ``"local_patches"``.
``"local_patches"``
    The same, with the local deformation (still up to 3 px) confined to patches (10 per
    256 x 256 px; Gaussian envelopes of sigma 25 px, clipped at 1), so most of the frame
    barely deforms. It is the local case of the accuracy goals in ``benchmarks/accuracy.py``;
    ``benchmarks/suite2p_baseline.py`` measures suite2p on the same recordings.
``"jitter"``
    A slow drift of 2 px, a breathing-like periodic motion (4 px, mostly along y, one sharp
    peak every 20-40 frames) that also compresses the tissue (1 px wide non-rigid part), and
    independent per-frame rigid jumps of 0.6 px per axis (sharp frame-to-frame changes).
``"real"``, ``"real_sima"``
    Frames of a real recording (``thunder_mouse_vs1``, 64 x 64, or the very noisy SIMA
    ``example.tif``, 128 x 256; both without motion of their own; see
    :mod:`pyflowreg.synthetic.real_data`) moved by a rigid drift of 2 px and smooth modes of
    1 px with features the size of the frame, keeping their own noise (``photons_per_unit`` is
    ignored). The frame is cropped by a margin larger than the motion so every observed pixel
    shows real tissue. They need the folder of the real recordings (``data_dir``).
``"real_tiled"``
    The ``thunder_mouse_vs1`` frames mirrored into a 512 x 512 mosaic
    (:func:`~pyflowreg.synthetic.real_data.mirrored_mosaic`), moved like ``"real"``: real
    texture, noise and activity at their own sampling in a frame of the size most 2-photon
    labs record (no real 512 x 512 recording with a licence that allows redistribution is at
    hand). The mosaic repeats every 128 px.

Photon level
------------
Synthetic tissue is scaled so the time-mean frame averages :data:`MEAN_BRIGHTNESS` (0.45):
``photons_per_unit=100`` gives about 45 photons per pixel per frame, ``10`` about 4.5. Noise is
``Poisson(ppu * I) / ppu`` plus Gaussian read noise of ``read_noise_photons`` (default 5)
photons, i.e. ``5 / ppu`` brightness units. ``write_recording(rec, path)`` stores
``rec.count_scale * I + rec.count_offset`` as uint16: photon counts plus a dark offset of
:data:`DARK_OFFSET_COUNTS`, so the read noise is not clipped at zero (real models: their own
counts).

All motion is zero-mean over time, so a reference re-centred on the frames' mean position
lands on the motion-free geometry that the ground-truth flows register onto.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage as ndi

from pyflowreg.synthetic import streams
from pyflowreg.synthetic.fields import grid_max_norm, smooth_modes
from pyflowreg.synthetic.motion import MotionField, local_field
from pyflowreg.synthetic.real_data import (
    REAL_RECORDINGS,
    TILED_SIZE,
    RealSource,
    load_real_frames,
    mirrored_mosaic,
)
from pyflowreg.synthetic.recording import SyntheticRecording, WholeRecording, add_noise
from pyflowreg.synthetic.scene import SPLINE_MARGIN, make_scene
from pyflowreg.synthetic.traces import breathing_trace, drift_trace, jitter_trace

__all__ = [
    "BENCHMARK_MODELS",
    "DARK_OFFSET_COUNTS",
    "MEAN_BRIGHTNESS",
    "BenchmarkRecording",
    "SceneSource",
    "make_benchmark_recording",
]

MEAN_BRIGHTNESS = 0.45
"""Mean of the time-mean synthetic frame: 100 photons per unit give 45 photons per pixel."""
DARK_OFFSET_COUNTS = 100.0
"""Stored dark offset (counts): the read noise (5 counts) never reaches zero."""
BENCHMARK_MODELS = ("smooth", "smooth_wide", "local", "local_patches", "jitter", "real",
                    "real_sima", "real_tiled")
"""Every model :func:`make_benchmark_recording` knows."""


class SceneSource:
    """Synthetic tissue with calcium activity, brightness scaled to :data:`MEAN_BRIGHTNESS`.

    The motion-free frame source of the synthetic models: a motionless, noise-free
    :class:`~pyflowreg.synthetic.SyntheticRecording` whose tissue a
    :class:`BenchmarkRecording` moves by its own motion.

    Parameters
    ----------
    height, width, n_frames, n_channels : int
        Size of the recording.
    pad : int
        Canvas border (px): at least the motion's peak plus
        :data:`~pyflowreg.synthetic.scene.SPLINE_MARGIN`.
    seed : int
        Seed of the tissue and its activity.

    Attributes
    ----------
    gain : numpy.float32
        Brightness factor applied to the tissue.
    """

    def __init__(self, height, width, n_frames, n_channels, pad, seed):
        scene = make_scene(streams.rng(seed, streams.SCENE), (height, width), pad, n_channels)
        self._base = SyntheticRecording(height, width, n_frames, n_channels=n_channels,
                                        rigid_amplitude=0.0, nonrigid_amplitude=0.0,
                                        photons_per_unit=None, read_noise=0.0, seed=seed,
                                        scene=scene)
        mean = self._base.clean_static()
        self.gain = np.float32(MEAN_BRIGHTNESS / float(mean.mean()))
        self._mean = mean * self.gain

    def clean(self, t: int) -> np.ndarray:
        """Motion-free frame ``t`` (H, W, C)."""
        return self._base.clean(t, t + 1)[0] * self.gain

    def warped(self, t: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Frame ``t`` sampled at ``q + (dx, dy)``, (H, W, C)."""
        frame = self._base.render(t, dx.astype(np.float32), dy.astype(np.float32))
        return frame * self.gain

    def mean(self) -> np.ndarray:
        """Time mean of the motion-free frames (H, W, C)."""
        return self._mean.copy()


class BenchmarkRecording(WholeRecording):
    """Streamable recording: motion-free frames moved by a :class:`MotionField`, plus noise.

    Same frame interface as :class:`pyflowreg.synthetic.SyntheticRecording` (``observed``,
    ``iter_observed``, ``clean``, ``flow`` and their ``_all`` forms, ``shape``), so
    :func:`pyflowreg.synthetic.write_recording` writes it. Noise is seeded per frame.

    Parameters
    ----------
    source : SceneSource or RealSource
        Motion-free frames: ``clean(t)``, ``warped(t, dx, dy)`` and ``mean()``.
    motion : MotionField
        Rendering displacement of every frame; sets the size and the number of frames.
    model : str
        Name of the motion model.
    n_channels : int
        Channels of the source.
    photons_per_unit, read_noise : float or None, float
        Added noise (:func:`~pyflowreg.synthetic.recording.add_noise`).
    count_scale, count_offset : float
        Brightness-to-stored-count factor and dark offset.
    seed : int
        Seed of the noise.

    Attributes
    ----------
    model : str
        Name of the motion model.
    motion : MotionField
        The rendering displacement; ``flow`` is its inverse.
    photons_per_unit : float or None
        Photons per brightness unit (None: no added shot noise).
    read_noise : float
        Gaussian read noise, brightness units.
    count_scale, count_offset : float
        Brightness-to-stored-count factor and dark offset for ``write_recording``.
    """

    def __init__(self, source, motion: MotionField, *, model: str, n_channels: int = 1,
                 photons_per_unit: float | None = None, read_noise: float = 0.0,
                 count_scale: float = 1.0, count_offset: float = 0.0, seed: int = 0):
        self._source, self.motion, self.model = source, motion, model
        self.height, self.width = motion.height, motion.width
        self.n_frames, self.n_channels = motion.n_frames, int(n_channels)
        self.photons_per_unit, self.read_noise = photons_per_unit, float(read_noise)
        self.count_scale, self.count_offset = float(count_scale), float(count_offset)
        self.seed = int(seed)
        yy, xx = np.mgrid[: self.height, : self.width].astype(float)
        self._grid = (yy, xx)
        self._valid = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Movie shape (T, H, W, C)."""
        return (self.n_frames, self.height, self.width, self.n_channels)

    def _frames(self, t0: int, t1: int) -> range:
        if not 0 <= t0 <= t1 <= self.n_frames:
            raise ValueError(f"frame range [{t0}, {t1}) outside [0, {self.n_frames}]")
        return range(t0, t1)

    def _stack(self, t0, t1, frame, channels) -> np.ndarray:
        frames = self._frames(t0, t1)
        out = np.empty((len(frames), self.height, self.width, channels), np.float32)
        for i, t in enumerate(frames):
            out[i] = frame(t)
        return out

    def displacement(self, t0: int, t1: int) -> np.ndarray:
        """Rendering displacements ``D_t`` (n, H, W, 2) float32: ``observed = clean(q + D)``."""
        yy, xx = self._grid
        return self._stack(t0, t1, lambda t: np.stack(self.motion.displacement(t, xx, yy), -1), 2)

    def flow(self, t0: int, t1: int) -> np.ndarray:
        """Ground-truth flows (n, H, W, 2) float32: ``observed_t(y + v, x + u) = clean_t(y, x)``."""
        return self._stack(t0, t1, self.motion.flow, 2)

    def clean(self, t0: int, t1: int) -> np.ndarray:
        """Motion-free, noise-free frames (n, H, W, C) float32 (real data: its own frames)."""
        return self._stack(t0, t1, self._source.clean, self.n_channels)

    def observed(self, t0: int, t1: int, *, noise: bool = True) -> np.ndarray:
        """Moved (and, if ``noise``, noisy) frames (n, H, W, C) float32."""
        yy, xx = self._grid

        def frame(t):
            img = self._source.warped(t, *self.motion.displacement(t, xx, yy))
            if noise:
                img = add_noise(img, streams.rng(self.seed, streams.BENCHMARK_NOISE, t),
                                self.photons_per_unit, self.read_noise)
            return img

        return self._stack(t0, t1, frame, self.n_channels)

    def clean_static(self) -> np.ndarray:
        """Motion-free mean image (H, W, C) float32: the time mean of :meth:`clean` (noise-free
        for synthetic tissue; for real data the mean of its own frames)."""
        return self._source.mean()

    def valid_mask(self, chunk_frames: int = 64) -> np.ndarray:
        """(H, W) bool: pixels whose sample ``p + flow_t(p)`` lies in the frame at every t."""
        if self._valid is None:
            valid = np.ones((self.height, self.width), bool)
            yy, xx = self._grid
            for t0 in range(0, self.n_frames, chunk_frames):
                w = self.flow(t0, min(t0 + chunk_frames, self.n_frames))
                x, y = xx + w[..., 0], yy + w[..., 1]
                valid &= ((x >= 0) & (x <= self.width - 1) & (y >= 0)
                          & (y <= self.height - 1)).all(0)
            self._valid = valid
        return self._valid.copy()


def _no_modes(n_times):
    return np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.zeros((n_times, 0))


def _wide_modes(rng, n_times, height, width, *, wavelength, peak, timescale, pulse=None):
    """Smooth modes with zero-mean traces whose largest norm over the frame is ``peak`` px."""
    wavevec, phase, vec = smooth_modes(rng, wavelength)
    if pulse is None:
        coeff = _smooth_noise(rng, (n_times, len(phase)), timescale)
    else:  # every mode follows the breathing pulse, with its own sign and weight
        coeff = (pulse - pulse[:-1].mean())[:, None] * rng.uniform(0.5, 1.0, len(phase)) \
            * rng.choice([-1.0, 1.0], len(phase))
    top = grid_max_norm(wavevec, phase, vec, coeff, height, width)
    return wavevec, phase, vec, coeff * (peak / top if top > 0 else 0.0)


def _smooth_noise(rng, shape, timescale):
    """Gaussian-smoothed noise along axis 0, as strong at the ends as in the middle, zero mean."""
    extra = int(np.ceil(3 * timescale))
    noise = rng.standard_normal((shape[0] + 2 * extra, *shape[1:]))
    series = ndi.gaussian_filter1d(noise, timescale, axis=0)[extra : extra + shape[0]]
    return series - series[:-1].mean(0)


def _motion_for(model, rng, height, width, n_times) -> MotionField:
    motion = _draw_motion(model, rng, height, width, n_times)
    # Zero mean over the frames' own time samples 0 .. T-1 (the last sample only serves the
    # line scan of the last frame).
    rigid = motion.rigid - motion.rigid[:-1].mean(0)
    return dataclasses.replace(motion, rigid=rigid)


def _patches(model, height, width) -> int:
    """Patches of local deformation: 10 per 256 x 256 px for ``local_patches``, else none."""
    if model != "local_patches":
        return 0
    return max(1, round(10 * height * width / 256**2))


def _draw_motion(model, rng, height, width, n_times) -> MotionField:
    if model == "smooth":
        rigid = drift_trace(rng, n_times, peak=5.0, timescale=15.0)
        modes = _wide_modes(rng, n_times, height, width, wavelength=160.0, peak=2.0,
                            timescale=15.0)
        return MotionField(height, width, rigid, *modes)
    if model == "smooth_wide":
        rigid = drift_trace(rng, n_times, peak=5.0, timescale=15.0)
        modes = _wide_modes(rng, n_times, height, width, wavelength=2.0 * max(height, width),
                            peak=2.0, timescale=15.0)
        return MotionField(height, width, rigid, *modes)
    if model in ("local", "local_patches"):
        rigid = drift_trace(rng, n_times, peak=4.0, timescale=3.0)
        local = local_field(rng, height, width, n_times, peak=3.0, feature_sigma=6.0,
                            timescale=8.0, reach=8.0,
                            patches=_patches(model, height, width))
        return MotionField(height, width, rigid, *_no_modes(n_times), local=local,
                           line_fraction=1.0)
    if model == "jitter":
        period = rng.uniform(20.0, 40.0)
        pulse = breathing_trace(rng, n_times, period=period, sharpness=5.0)
        angle = np.pi / 2 + rng.uniform(-0.4, 0.4)  # breathing moves the tissue mostly along y
        breath = (pulse - pulse[:-1].mean())[:, None] * (4.0 * np.array([np.cos(angle),
                                                                         np.sin(angle)]))
        rigid = drift_trace(rng, n_times, peak=2.0, timescale=20.0) + breath
        rigid += jitter_trace(rng, n_times, sigma=0.6)
        modes = _wide_modes(rng, n_times, height, width, wavelength=160.0, peak=1.0,
                            timescale=0.0, pulse=pulse)
        return MotionField(height, width, rigid, *modes)
    if model in REAL_RECORDINGS:
        rigid = drift_trace(rng, n_times, peak=2.0, timescale=15.0)
        modes = _wide_modes(rng, n_times, height, width, wavelength=2.0 * max(height, width),
                            peak=1.0, timescale=15.0)
        return MotionField(height, width, rigid, *modes)
    raise ValueError(f"unknown benchmark model {model!r}; one of {BENCHMARK_MODELS}")


def make_benchmark_recording(
    model: str, *, photons_per_unit: float | None = 100.0, height: int | None = 256,
    width: int | None = 256, n_frames: int | None = 200, seed: int = 0,
    read_noise_photons: float = 5.0, n_channels: int = 1, data_dir=None,
) -> BenchmarkRecording:
    """A benchmark recording of one motion model with exact ground-truth flows.

    Parameters
    ----------
    model : one of BENCHMARK_MODELS
        Motion model (see the module docstring).
    photons_per_unit : float or None
        Photons per brightness unit (about 3 to 1000; mean signal ``0.45 * ppu`` photons per
        pixel per frame); None: noise-free. Ignored by the real models (own noise).
    height, width : int or None
        Frame size (px) of synthetic models. Real models use the recording's own size minus
        the crop margin (None) and refuse other sizes.
    n_frames : int or None
        Frames; for real models at most the recording's own count (None: all of them).
    seed : int
        Seed of tissue, motion and noise.
    read_noise_photons : float
        Gaussian read noise (photons = counts).
    n_channels : int
        Channels of synthetic tissue (channel >= 1 structural).
    data_dir : str or Path, optional
        Folder of the real recordings (see :func:`~pyflowreg.synthetic.load_real_frames`);
        needed by the real models only.

    Returns
    -------
    BenchmarkRecording

    Raises
    ------
    FileNotFoundError
        For a real model whose folder or recording is absent.
    ValueError
        For an unknown model, impossible sizes, or a real model without ``data_dir``.

    Examples
    --------
    >>> rec = make_benchmark_recording("local", photons_per_unit=10, height=64, width=64,
    ...                                n_frames=5)
    >>> rec.observed_all().shape, rec.flow_all().shape
    ((5, 64, 64, 1), (5, 64, 64, 2))
    """
    rng = streams.rng(seed, streams.BENCHMARK_MOTION)
    if model in REAL_RECORDINGS:
        frames = load_real_frames(model, data_dir)
        margin = 6  # motion peak (2 px drift + 1 px modes, re-centred) + cubic-spline support
        if model == "real_tiled":
            count = len(frames) if n_frames is None else max(1, min(int(n_frames), len(frames)))
            frames = mirrored_mosaic(frames[:count], TILED_SIZE + 2 * margin)
        own = (frames.shape[1] - 2 * margin, frames.shape[2] - 2 * margin)
        if (height, width) not in ((None, None), own):
            raise ValueError(f"model {model!r} has frames of {own[0]} x {own[1]} px (real "
                             f"recording minus a {margin} px margin); got {height} x {width}")
        n_frames = len(frames) if n_frames is None else int(n_frames)
        if not 1 <= n_frames <= len(frames):
            raise ValueError(f"model {model!r} has {len(frames)} real frames; asked for "
                             f"{n_frames}")
        motion = _motion_for(model, rng, *own, n_frames + 1)
        rec = BenchmarkRecording(RealSource(frames[:n_frames], margin), motion, model=model,
                                 seed=seed)
        reach = max(float(np.abs(rec.displacement(t, t + 1)).max()) for t in range(n_frames))
        if reach > margin - 2:  # guards the constants above: every sample must be real tissue
            raise AssertionError(f"crop margin {margin} px too small for {reach:.2f} px motion")
        return rec
    if model not in BENCHMARK_MODELS:
        raise ValueError(f"unknown benchmark model {model!r}; one of {BENCHMARK_MODELS}")
    if height is None or width is None or n_frames is None:
        raise ValueError(f"model {model!r} needs height, width and n_frames")
    height, width, n_frames = int(height), int(width), int(n_frames)
    if min(height, width) < 8 or n_frames < 1:
        raise ValueError("need height, width >= 8 and n_frames >= 1")
    motion = _motion_for(model, rng, height, width, n_frames + 1)
    pad = int(np.ceil(motion.peak())) + 2 + SPLINE_MARGIN
    source = SceneSource(height, width, n_frames, n_channels, pad, seed)
    if photons_per_unit is None:
        noise = {"photons_per_unit": None, "read_noise": 0.0, "count_scale": 1000.0}
    else:
        ppu = float(photons_per_unit)
        if ppu <= 0:
            raise ValueError("photons_per_unit must be positive")
        noise = {"photons_per_unit": ppu, "read_noise": read_noise_photons / ppu,
                 "count_scale": ppu}
    return BenchmarkRecording(source, motion, model=model, n_channels=n_channels, seed=seed,
                              count_offset=DARK_OFFSET_COUNTS, **noise)
