"""Accuracy against synthetic ground truth, on the set-ups of the acceptance tests.

Usage: python benchmarks/accuracy.py

Prints the Stage 1 end-point error (256^2 x 200 noisy frames, quality preset) and, for two
5-recording sessions (192^2 x 30, 12 px rigid + 2.5 px non-rigid between recordings), the
Stage 2 end-point error per recording next to the rigid shift's, and the session mask's Dice
against the true common field of view. Takes about 3 minutes on 2 cores.
"""

import json
import tempfile
from pathlib import Path

import h5py
import numpy as np

from pyflowreg.motion_correction import compensate_recording
from pyflowreg.session import SessionConfig
from pyflowreg.session.stage1_compensate import run_stage1
from pyflowreg.session.stage2_between_avgs import run_stage2
from pyflowreg.session.stage3_valid_mask import run_stage3
from pyflowreg.synthetic import SyntheticRecording, make_session, write_recording, write_session

with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    rec = SyntheticRecording(
        256,
        256,
        200,
        rigid_amplitude=6.0,
        nonrigid_amplitude=1.5,
        photons_per_unit=100,
        read_noise=0.01,
        seed=11,
    )
    movie = write_recording(rec, d / "movie.tif", dtype="uint16", scale=100.0)
    out = compensate_recording(
        {"quality_setting": "quality", "save_w": True, "n_workers": 2},
        input_file=movie,
        output_path=d / "out",
    )
    with h5py.File(out / "w.hdf5") as f:
        w = np.stack([f["u"][()], f["v"][()]], -1)
    diff = w - rec.flow_all()
    offset = diff.mean(axis=(0, 1, 2))
    epe = np.linalg.norm(diff - offset, axis=-1).mean(axis=(1, 2))
    print(
        f"stage1 256x256x200 quality: EPE mean {epe.mean():.3f} px "
        f"(frames {epe.min():.3f}-{epe.max():.3f}), "
        f"reference offset {np.linalg.norm(offset):.3f} px"
    )

    for seed in (0, 1):
        s = make_session(
            5, 192, 192, 30, between_rigid_amplitude=12.0, between_nonrigid_amplitude=2.5, seed=seed
        )
        root = d / f"sess{seed}"
        write_session(s, root, pattern="rec_{:02d}.tif")
        cfg = SessionConfig(
            root=str(root), pattern="rec_*.tif", quality_setting="balanced", n_workers=2
        )
        run_stage1(cfg)
        mid, center, fields = run_stage2(cfg)
        final = run_stage3(cfg, mid, fields)
        truth = s.common_valid_mask()
        dice = 2 * (final & truth).sum() / (final.sum() + truth.sum())
        res = []
        for r, p in enumerate(cfg.discover_input_files()):
            if r == mid:
                continue
            info = json.loads((cfg.output_folder(p) / "w_to_reference.json").read_text())
            e = np.linalg.norm(fields[r] - s.between_flow[r], axis=-1).mean()
            er = np.linalg.norm(np.array(info["rigid_shift"]) - s.between_flow[r], axis=-1).mean()
            res.append(f"{e:.3f} (rigid {er:.2f}, kept {info['kept']})")
        print(
            f"session seed {seed} 192x192x30 balanced: stage2 EPE "
            + "; ".join(res)
            + f"; Dice {dice:.4f}"
        )
