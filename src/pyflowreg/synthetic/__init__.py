"""Seeded synthetic 2-photon recordings and sessions with exact ground-truth motion.

Conventions
-----------
* Frames are float32 arrays ``(T, H, W, C)`` in brightness units (background ~0.1-0.4,
  resting neurons ~0.3-0.7, active neurons up to ~2). Single images are ``(H, W, C)``.
* A flow field ``w`` is float32 ``(H, W, 2)`` in pixels; ``w[..., 0] = u`` (x, columns),
  ``w[..., 1] = v`` (y, rows). Displacement vectors elsewhere are also ordered ``(x, y)``.
* Registration convention: ``w`` registers ``moving`` onto ``fixed`` when
  ``moving(y + v, x + u) ~= fixed(y, x)``. For a recording, ``flow[t]`` satisfies
  ``observed_t(y + v, x + u) ~= clean_t(y, x)``.
* Everything is drawn from seeded streams (:mod:`~pyflowreg.synthetic.streams`): the same
  arguments give the same arrays, and any frame range renders the same frames however the
  recording is chunked.

Modules
-------
:mod:`~pyflowreg.synthetic.scene`
    Tissue (neuropil, somata, vessels, PSF, vignetting) and its spline renderer.
:mod:`~pyflowreg.synthetic.fields`
    Static smooth displacement fields and their inverses.
:mod:`~pyflowreg.synthetic.recording`
    :class:`SyntheticRecording` (tissue, smooth motion, calcium activity, noise).
:mod:`~pyflowreg.synthetic.pair`
    :func:`make_image_pair` for optical-flow tests.
:mod:`~pyflowreg.synthetic.session`
    :func:`make_session`: recordings of one field of view with between-recording warps.
:mod:`~pyflowreg.synthetic.writers`
    TIFF writers and the demo session; ``python -m pyflowreg.synthetic OUTDIR`` writes a
    session.
:mod:`~pyflowreg.synthetic.traces`, :mod:`~pyflowreg.synthetic.motion`
    Temporal traces and time-varying fields (local deformation, line scan) of the benchmark.
:mod:`~pyflowreg.synthetic.benchmark`, :mod:`~pyflowreg.synthetic.real_data`
    :func:`make_benchmark_recording`: the accuracy benchmark's motion models on synthetic
    tissue or on real frames. The real models read the real recordings from a folder the
    caller passes as ``data_dir``; the package never looks for that folder itself.

Examples
--------
>>> import tempfile
>>> from pyflowreg.synthetic import make_image_pair, make_session, write_session
>>> session = make_session(2, 32, 32, 4, seed=1)
>>> rec = session.recordings[0]
>>> rec.observed_all().shape, rec.flow_all().shape, session.between_flow.shape
((4, 32, 32, 1), (4, 32, 32, 2), (2, 32, 32, 2))
>>> with tempfile.TemporaryDirectory() as folder:
...     [path.name for path in write_session(session, folder)]
['rec_00.tif', 'rec_01.tif']
>>> fixed, moving, w_true = make_image_pair(32, 32, max_displacement=2.0, seed=1)
>>> fixed.shape, w_true.shape, w_true.dtype
((32, 32), (32, 32, 2), dtype('float32'))
"""

from pyflowreg.synthetic.benchmark import (
    BENCHMARK_MODELS,
    MEAN_BRIGHTNESS,
    BenchmarkRecording,
    make_benchmark_recording,
)
from pyflowreg.synthetic.fields import smooth_modes
from pyflowreg.synthetic.motion import LocalField, MotionField, local_field
from pyflowreg.synthetic.pair import make_image_pair
from pyflowreg.synthetic.real_data import REAL_RECORDINGS, load_real_frames
from pyflowreg.synthetic.recording import SyntheticRecording
from pyflowreg.synthetic.session import SyntheticSession, make_session
from pyflowreg.synthetic.traces import breathing_trace, drift_trace, jitter_trace
from pyflowreg.synthetic.writers import write_demo_session, write_recording, write_session

__all__ = [
    "BENCHMARK_MODELS",
    "MEAN_BRIGHTNESS",
    "REAL_RECORDINGS",
    "BenchmarkRecording",
    "LocalField",
    "MotionField",
    "SyntheticRecording",
    "SyntheticSession",
    "breathing_trace",
    "drift_trace",
    "jitter_trace",
    "load_real_frames",
    "local_field",
    "make_benchmark_recording",
    "make_image_pair",
    "make_session",
    "smooth_modes",
    "write_demo_session",
    "write_recording",
    "write_session",
]
