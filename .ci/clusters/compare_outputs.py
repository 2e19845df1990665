"""Check that two runs of the workflow produced the same science outputs.

    python .ci/clusters/compare_outputs.py [--float-rtol R] REFERENCE_DIR OTHER_DIR

Compares every result file below the two session folders (Stage 1 movies, masks, averages,
Stage 2 fields, Stage 3 bundle, PNGs, aligned videos and the NWB and suite2p exports) array by
array, exactly. Run
metadata that legitimately differs (timings in status.json, absolute paths, log files, how a
run was split into segments) is ignored. With ``--float-rtol``, floating-point arrays and
JSON numbers may differ by that relative amount (sums added in another order); integer
arrays, masks and images stay exact. Exits 1 and names the first differing file otherwise.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import tifffile
from PIL import Image

# Timings, the input's modification time (each run writes its own demo recordings) and the
# digest of a status.json that holds them differ between identical runs.
RUN_SPECIFIC_JSON_KEYS = {
    "seconds", "frames_per_second", "numba_threads", "python", "stage1_status_sha1", "segments",
}
RUN_SPECIFIC_INPUT_KEYS = {"path", "mtime_ns"}
PATH_KEYS = {"compensated_h5_paths"}
# The suite2p export's ops hold absolute paths of the run's folder.
OPS_PATH_KEYS = {"reg_file", "ops_path", "save_path", "save_path0", "save_folder", "data_path",
                 "filelist"}
# An NWB file names itself with a new identifier and its creation date on every write.
NWB_RUN_SPECIFIC = {"identifier", "file_create_date"}


def nwb_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an NWB file by its path, but the run's own identifier and date."""
    found: dict[str, np.ndarray] = {}

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Dataset) and name.rsplit("/", 1)[-1] not in NWB_RUN_SPECIFIC \
                and h5py.check_dtype(ref=item.dtype) is None:
            found[name] = np.asarray(item[()])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = np.load(path, allow_pickle=path.name == "ops.npy")
        if data.dtype == object:  # suite2p's ops: a dict
            ops = data.item()
            return {k: np.asarray(v) for k, v in ops.items() if k not in OPS_PATH_KEYS}
        return {"": data}
    if suffix == ".bin":
        return {"": np.fromfile(path, dtype=np.int16)}
    if suffix == ".nwb":
        return nwb_arrays(path)
    if suffix == ".npz":
        with np.load(path) as data:
            return {k: data[k] for k in data.files if k not in PATH_KEYS}
    if suffix in (".h5", ".hdf5", ".hdf"):
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
    if suffix in (".tif", ".tiff"):
        return {"": tifffile.imread(path)}
    if suffix == ".png":
        return {"": np.asarray(Image.open(path))}
    if suffix == ".mat":
        data = scipy.io.loadmat(path)
        return {k: v for k, v in data.items() if not k.startswith("__") and k not in PATH_KEYS}
    if suffix == ".json":
        doc = json.loads(path.read_text())
        if isinstance(doc, dict):
            doc = {k: v for k, v in doc.items() if k not in RUN_SPECIFIC_JSON_KEYS}
            for key in RUN_SPECIFIC_INPUT_KEYS:
                doc.get("input", {}).pop(key, None)
        return {"": np.array(json.dumps(doc, sort_keys=True)), "json": doc}
    return {}


def same(a, b, rtol: float) -> bool:
    """Exact, or within ``rtol`` for floating-point arrays and JSON numbers."""
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() \
            and all(same(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) \
            and all(same(x, y, rtol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and (a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=1e-6))
    if isinstance(a, np.ndarray) and a.dtype.kind == "f" and rtol > 0:
        return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=0, equal_nan=True)
    if isinstance(a, np.ndarray):
        # NaN is a stated "not known" (the NWB export's wavelengths), equal to itself here
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


def main(reference: str, other: str, rtol: float = 0.0) -> int:
    ref_root, other_root = Path(reference), Path(other)
    files = sorted(p.relative_to(ref_root) for p in ref_root.rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    compared = 0
    for rel in files:
        ref_arrays = arrays(ref_root / rel)
        if not ref_arrays:
            continue
        if not (other_root / rel).is_file():
            print(f"compare: {rel} is missing in {other_root}")
            return 1
        other_arrays = arrays(other_root / rel)
        if ref_arrays.keys() != other_arrays.keys():
            print(f"compare: {rel} holds {sorted(other_arrays)} instead of {sorted(ref_arrays)}")
            return 1
        for key, value in ref_arrays.items():
            if key == "json" and not rtol:
                continue  # the canonical text under "" is compared exactly
            if key == "" and "json" in ref_arrays and rtol:
                continue  # compared number by number under "json"
            if not same(value, other_arrays[key], rtol):
                print(f"compare: {rel} {key or ''} differs")
                return 1
        compared += 1
    print(f"compare: {compared} result files identical between {ref_root} and {other_root}")
    return 0 if compared else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    tolerance = 0.0
    if args[:1] == ["--float-rtol"] and len(args) > 1:
        tolerance = float(args[1])
        args = args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    sys.exit(main(*args, rtol=tolerance))
