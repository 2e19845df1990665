"""Session Stage 3: the field of view valid in every recording, and aligned videos.

Per recording: the valid mask is the AND over time of its ``idx.hdf`` frames; it is warped into
the center's grid with ``imregister_binary`` (nearest neighbour AND the in-bounds mask of
``w_to_reference``). The session mask is the AND of the aligned masks. Outputs (in
``final_results``): ``<stem>_valid_idx.png``, ``<stem>_valid_idx_aligned.png``,
``final_valid_idx.png`` / ``.npz`` / ``.mat`` and ``aligned_<stem>.tif`` (or ``.hdf5``): every
compensated frame warped into the center's grid (cubic; pixels from outside the recording take
the reference average).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from pyflowreg.core.warping import align_sequence, imregister_binary
from pyflowreg.io import (
    atomic_output,
    atomic_save_npz,
    completed_frame_count,
    open_movie,
    open_movie_writer,
)
from pyflowreg.motion_correction.compensate import IDX_FILE, STATUS_FILE, compensated_path
from pyflowreg.session.backend import with_backend_threads
from pyflowreg.session.config import SessionConfig
from pyflowreg.session.qc import excluded_recordings, stage1_alpha, write_session_qc
from pyflowreg.session.stage2_between_avgs import (
    W_FILE,
    MissingStageOutput,
    array_digest,
    load_average,
)

FINAL_STEM = "final_valid_idx"
ALIGNED_SUFFIX = {"TIFF": ".tif", "HDF5": ".hdf5"}


def temporal_valid_mask(idx_path: Path, chunk_frames: int = 256) -> np.ndarray:
    """AND over time of a recording's per-frame valid masks (idx.hdf) -> (H, W) bool."""
    idx_path = Path(idx_path)
    if completed_frame_count(idx_path) is None:
        raise MissingStageOutput(
            f"recording {idx_path.parent.name}: Stage 1 output {idx_path} is missing or "
            "incomplete; run stage 1 first"
        )
    with open_movie(idx_path) as reader:
        mask = np.ones(reader.frame_shape, dtype=bool)
        for t0 in range(0, reader.n_frames, chunk_frames):
            batch = reader.read(t0, min(reader.n_frames, t0 + chunk_frames))
            mask &= (batch[..., 0] != 0).all(axis=0)
    return mask


def load_displacement(folder: Path, recording_name: str = "") -> np.ndarray:
    """A recording's Stage 2 field ``w_to_reference.npz`` as (H, W, 2) float32."""
    path = Path(folder) / W_FILE
    if not path.is_file():
        raise MissingStageOutput(
            f"recording {recording_name or Path(folder).name}: Stage 2 output {path} is missing; "
            "run stage 2 first"
        )
    with np.load(path) as data:
        return np.stack([data["u"], data["v"]], axis=-1).astype(np.float32)


def save_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit PNG with values 0 and 255 (atomically)."""
    with atomic_output(path) as tmp:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp, format="PNG")


def align_mask(per_seq_mask: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Warp a recording's valid mask into the center's grid (bool (H, W))."""
    return imregister_binary(per_seq_mask, w[..., 0], w[..., 1])


def export_aligned_video(
    compensated: Path,
    w: np.ndarray,
    reference_average: np.ndarray,
    out_path: Path,
    *,
    chunk_frames: int = 256,
    resume: bool = True,
) -> Path:
    """Warp every frame of ``compensated`` into the center's grid and write ``out_path``.

    Skipped when ``resume`` and ``out_path`` is complete with the same frame count and its
    sidecar ``<out_path>.json`` records the same inputs: the Stage 1 run that wrote the
    compensated movie (digest of its ``status.json``), the displacement field and the reference
    average (digests).
    """
    out_path = Path(out_path)
    sidecar = out_path.with_name(out_path.name + ".json")
    status = Path(compensated).parent / STATUS_FILE
    provenance = {
        "stage1_status_sha1": (
            hashlib.sha1(status.read_bytes()).hexdigest() if status.is_file() else None
        ),
        "w_sha1": array_digest(w),
        "reference_sha1": array_digest(reference_average),
    }
    with open_movie(compensated) as reader:
        n_frames = reader.n_frames
        if resume and completed_frame_count(out_path) == n_frames and sidecar.is_file():
            try:
                if json.loads(sidecar.read_text()) == provenance:
                    return out_path
            except (OSError, json.JSONDecodeError):
                pass
        sidecar.unlink(missing_ok=True)
        reference = reference_average
        if reference.ndim == 2:
            reference = reference[..., None]
        with open_movie_writer(
            out_path, reader.frame_shape, reader.n_channels, np.float32, n_frames=n_frames
        ) as writer:
            for t0 in range(0, n_frames, chunk_frames):
                t1 = min(n_frames, t0 + chunk_frames)
                writer.write(align_sequence(reader.read(t0, t1), w, reference))
    with atomic_output(sidecar) as tmp:
        Path(tmp).write_text(json.dumps(provenance))
    return out_path


def write_session_bundle(
    out_dir: Path,
    *,
    final_valid: np.ndarray,
    aligned_valid_masks: np.ndarray,
    per_seq_valid_masks: np.ndarray,
    displacement_fields: np.ndarray,
    temporal_averages: np.ndarray,
    compensated_h5_paths: list[str],
    reference_average: np.ndarray,
    middle_idx: int,
) -> None:
    """Write ``final_valid_idx.png``, ``.npz`` (0-based middle_idx) and ``.mat`` (1-based)."""
    out_dir = Path(out_dir)
    bundle = {
        "final_valid": final_valid.astype(bool),
        "aligned_valid_masks": aligned_valid_masks.astype(bool),
        "per_seq_valid_masks": per_seq_valid_masks.astype(bool),
        "displacement_fields_u": displacement_fields[..., 0].astype(np.float32),
        "displacement_fields_v": displacement_fields[..., 1].astype(np.float32),
        "temporal_averages": temporal_averages.astype(np.float32),
        "compensated_h5_paths": np.array(compensated_h5_paths, dtype=str),
        "reference_average": reference_average.astype(np.float32),
        "middle_idx": np.int64(middle_idx),
    }
    atomic_save_npz(out_dir / f"{FINAL_STEM}.npz", **bundle)
    mat = dict(bundle)
    mat["middle_idx"] = np.int64(middle_idx + 1)  # MATLAB indexing
    mat["compensated_h5_paths"] = np.array(compensated_h5_paths, dtype=object)
    # Imported here: scipy.io costs a seventh of a second, and only the session-mask job
    # writes a .mat file.
    import scipy.io

    with atomic_output(out_dir / f"{FINAL_STEM}.mat") as tmp:
        scipy.io.savemat(tmp, mat, do_compression=True)
    save_mask_png(out_dir / f"{FINAL_STEM}.png", final_valid)


def recording_masks(idx_path: Path, w: np.ndarray, out_dir: Path, stem: str):
    """Valid mask of one recording and its version in the center's grid; writes both PNGs.

    Returns (per_seq_mask, aligned_mask), both (H, W) bool.
    """
    mask = temporal_valid_mask(idx_path)
    if mask.shape != w.shape[:2]:
        raise ValueError(
            f"recording {stem}: valid mask {mask.shape} and displacement {w.shape[:2]} differ "
            "in size"
        )
    aligned = align_mask(mask, w)
    save_mask_png(Path(out_dir) / f"{stem}_valid_idx.png", mask)
    save_mask_png(Path(out_dir) / f"{stem}_valid_idx_aligned.png", aligned)
    return mask, aligned


def load_mask_png(path: Path) -> np.ndarray:
    """A mask PNG written by :func:`save_mask_png` as (H, W) bool."""
    with Image.open(path) as image:
        return np.asarray(image) > 0


def combine_session(
    out_dir: Path,
    *,
    per_seq_masks: list[np.ndarray],
    aligned_masks: list[np.ndarray],
    displacement_fields: list[np.ndarray],
    averages: list[np.ndarray],
    compensated_paths: list[Path],
    middle_idx: int,
    exclude_misaligned: bool = False,
    log=None,
) -> np.ndarray:
    """AND the aligned masks into the session mask and write the bundle; returns the mask.

    Also writes the session quality control (``qc/session.json``, coverage map, figures; see
    :mod:`pyflowreg.session.qc`). With ``exclude_misaligned``, recordings whose alignment is
    not ok are left out of the AND (the bundle's per-recording arrays still hold them all).
    """
    report = write_session_qc(
        out_dir, stems=[Path(p).parent.name for p in compensated_paths], averages=averages,
        fields=displacement_fields, aligned_masks=aligned_masks, middle_idx=middle_idx,
        exclude_misaligned=exclude_misaligned,
        stage1=[stage1_alpha(Path(p).parent) for p in compensated_paths], log=log,
    )
    kept = [m for m, entry in zip(aligned_masks, report["recordings"].values(), strict=True)
            if not entry["excluded"]]
    final = np.logical_and.reduce(kept)
    reference_average = averages[middle_idx]
    squeeze = reference_average.shape[2] == 1
    stack_avg = np.stack(averages)
    write_session_bundle(
        out_dir,
        final_valid=final,
        aligned_valid_masks=np.stack(aligned_masks),
        per_seq_valid_masks=np.stack(per_seq_masks),
        displacement_fields=np.stack(displacement_fields),
        temporal_averages=stack_avg[..., 0] if squeeze else stack_avg,
        compensated_h5_paths=[str(p) for p in compensated_paths],
        reference_average=reference_average[..., 0] if squeeze else reference_average,
        middle_idx=middle_idx,
    )
    return final


@with_backend_threads
def run_stage3(
    config: SessionConfig,
    middle_idx: int | None = None,
    displacement_fields: list[np.ndarray] | None = None,
    *,
    export_videos: bool = True,
) -> np.ndarray:
    """Compute the session's valid field of view and export the aligned videos.

    Parameters
    ----------
    config : SessionConfig
    middle_idx : int, optional
        0-based index of the center recording (as returned by ``run_stage2``); resolved from
        the config when omitted.
    displacement_fields : list of (H, W, 2) arrays, optional
        Stage 2 fields per recording; read from ``w_to_reference.npz`` when omitted.
    export_videos : bool, default True
        Also write ``aligned_<stem>`` videos.

    Returns
    -------
    final_mask : (H, W) bool
    """
    config.validate()
    files = config.discover_input_files()
    if middle_idx is None:
        middle_idx, _ = config.resolve_center(files)
    folders = [config.output_folder(p) for p in files]
    if displacement_fields is None:
        displacement_fields = [
            load_displacement(f, p.name) for f, p in zip(folders, files, strict=True)
        ]
    if len(displacement_fields) != len(files):
        raise ValueError(
            f"{len(displacement_fields)} displacement fields for {len(files)} recordings"
        )
    out_dir = config.final_results_path
    out_dir.mkdir(parents=True, exist_ok=True)
    masks = [
        recording_masks(folder / IDX_FILE, w, out_dir, path.stem)
        for path, folder, w in zip(files, folders, displacement_fields, strict=True)
    ]
    averages = [load_average(f, p.name) for f, p in zip(folders, files, strict=True)]
    final = combine_session(
        out_dir,
        per_seq_masks=[m[0] for m in masks],
        aligned_masks=[m[1] for m in masks],
        displacement_fields=list(displacement_fields),
        averages=averages,
        compensated_paths=[compensated_path(f) for f in folders],
        middle_idx=middle_idx,
        exclude_misaligned=config.exclude_misaligned,
    )
    if export_videos:
        suffix = ALIGNED_SUFFIX[config.align_output_format]
        excluded = excluded_recordings(out_dir)
        for path, folder, w in zip(files, folders, displacement_fields, strict=True):
            if path.stem in excluded:
                # A video from an earlier run must not suggest the recording is in the session.
                (out_dir / f"aligned_{path.stem}{suffix}").unlink(missing_ok=True)
                continue
            export_aligned_video(
                compensated_path(folder), w, averages[middle_idx],
                out_dir / f"aligned_{path.stem}{suffix}",
                chunk_frames=config.align_chunk_size, resume=config.resume,
            )
    return final
