# Helpers shared by the rules: recordings, center, paths. Nothing here reads image data
# (headers only: frame counts, frame sizes).
import functools
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

SRC = Path(workflow.basedir) / "src"
# Jobs (local or on a cluster node) import the library from this checkout, ahead of anything
# else on PYTHONPATH (another package named pyflowreg, such as the reference implementation's,
# must not answer instead), and compile numba kernels into a cache in the working directory
# that every job can write and reuse.
if SRC.is_dir():
    JOB_PYTHONPATH = os.environ.setdefault("PYTHONPATH", str(SRC))
    if JOB_PYTHONPATH.split(os.pathsep)[0] != str(SRC):
        os.environ.update(PYTHONPATH=os.pathsep.join([str(SRC), JOB_PYTHONPATH]))
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(".numba_cache").resolve()))

from pyflowreg.io.fingerprint import member_files  # noqa: E402
from pyflowreg.io.recording import open_recording  # noqa: E402
from pyflowreg.motion_correction.segments import (
    segment_bounds,
    segment_names,
)  # noqa: E402
from pyflowreg.session.config import SessionConfig  # noqa: E402
from pyflowreg.session.stage1_compensate import check_recordings  # noqa: E402
from pyflowreg.session.stage2_between_avgs import stage2_params  # noqa: E402
from pyflowreg.session.stage3_valid_mask import ALIGNED_SUFFIX  # noqa: E402
from pyflowreg.motion_correction.qc import FIGURES as RECORDING_FIGURES  # noqa: E402
from pyflowreg.motion_correction.qc import QC_FILE  # noqa: E402
from pyflowreg.session.stale_lock import record_owner, release_stale_lock  # noqa: E402

# A run killed with SIGKILL leaves Snakemake's lock behind; the documented recovery command
# (--rerun-incomplete) must work without --unlock. Only the main process decides: cluster and
# subprocess jobs parse this file too, on other hosts, while the lock is legitimately held.
if workflow.is_main_process:
    release_stale_lock(".", log=logger.warning)
    record_owner(".")

SESSION = SessionConfig.from_dict(dict(config), source="workflow config")
if SESSION.scheduler == "array":
    raise WorkflowError(
        "config: scheduler 'array' is for array jobs of pyflowreg-session or run_stage1; "
        "Snakemake submits one job per recording itself (use a profile, e.g. --profile slurm)"
    )
DEMO_MARKER = SESSION.root_path / ".flowreg_demo"


def _demo_active():
    """Whether the demo recordings are generated; never into a folder of real data."""
    if not SESSION.demo.get("enabled", False):
        return False
    root = SESSION.root_path
    if root.is_dir() and any(root.iterdir()) and not DEMO_MARKER.exists():
        raise WorkflowError(
            f"config: demo.enabled is true but root {root} already holds files the demo did "
            "not write; set 'demo: {enabled: false}' to process them (the demo never writes "
            "into existing data)"
        )
    return True


DEMO = _demo_active()
if DEMO:
    # The demo's exports and metadata describe its synthetic recordings; they never reach a
    # run on real data (the demo refuses a root it did not write).
    SESSION.export = list(
        dict.fromkeys(SESSION.export + SESSION.demo.get("export", []))
    )
    SESSION.metadata = {**SESSION.demo.get("metadata", {}), **SESSION.metadata}


def _demo_files():
    n = SESSION.demo.get("n_recordings", 3)
    return [SESSION.root_path / f"rec_{i:02d}.tif" for i in range(n)]


def _discover():
    if DEMO:
        return _demo_files()
    try:
        return SESSION.discover_input_files()
    except (FileNotFoundError, ConfigError) as exc:
        raise WorkflowError(f"config: {exc}") from None


INPUT_FILES = _discover()
RAW = {p.stem: p for p in INPUT_FILES}
RECORDINGS = sorted(RAW)


def _stage1_threads():
    """Threads of an unsplit Stage 1 job: a local run's cores shared out over the recordings
    (1 to 4), 2 on a cluster.

    Two frame workers in one process cost more CPU than one (2-30 % on a short recording,
    depending on the machine) and gain less wall time than a second recording's job on the
    other core, which runs at about full speed beside the first
    (benchmarks/recording_profile.py, docs/scaling.md);
    beyond 4 threads a job gains little (the serial share of a job is about 37 %). On a
    cluster each job gets its own cores, and the job's own Snakemake process (not the main
    one) must arrive at the same count, so there it stays fixed. --set-threads overrides it.
    """
    if not workflow.is_main_process or workflow.nodes is not None:
        return 2
    # Without --cores (a command that runs no job: --report, --lint) there is nothing to share.
    try:
        cores = workflow.cores
    except WorkflowError:
        return 2
    return max(1, min(4, cores // max(1, len(RECORDINGS))))


STAGE1_THREADS = _stage1_threads()
try:
    CENTER_INDEX, CENTER_FILE = SESSION.resolve_center(INPUT_FILES)
except ConfigError as exc:
    raise WorkflowError(f"config: {exc}") from None
CENTER = CENTER_FILE.stem
# A session error (recordings of different frame size or channel count) stops the run before
# any job writes; a recording that cannot be read is left to its own job, which names it, so
# --keep-going still finishes the others. Headers only, and only in the main process.
if workflow.is_main_process and not DEMO:
    try:
        check_recordings(INPUT_FILES, skip_unreadable=True)
    except ValueError as exc:
        raise WorkflowError(f"config: {exc}") from None
OUT = SESSION.output_root_path
FINAL = SESSION.final_results_path
LOGS = Path("logs")
BENCH = LOGS / "benchmarks"  # per-rule timings, kept apart from the benchmarks/ scripts
VIDEO_SUFFIX = ALIGNED_SUFFIX[SESSION.align_output_format]
STAGE2_PARAMS = stage2_params(SESSION)


wildcard_constraints:
    rec="|".join(map(re.escape, RECORDINGS)) if RECORDINGS else "[^/]+",


def raw_path(wildcards):
    """The files of a recording: one movie, the files of a multi-file recording, or every
    file of a .zarr store (Snakemake sees an edit inside a store only through its files).
    """
    files = [str(path) for _, path in member_files(RAW[wildcards.rec])]
    return files[0] if len(files) == 1 else files


def stage1_inputs(wildcards):
    """The raw recording; with segment_frames also its preparation and every segment."""
    if not SESSION.segment_frames:
        return {"movie": raw_path(wildcards)}
    statuses = [
        stage1_output(f"segments/{segment_names(k)['status']}", wildcards.rec)
        for k in range(n_segments(wildcards.rec))
    ]
    return {
        "movie": raw_path(wildcards),
        "prepared": stage1_output("segments/prepared.pkl", wildcards.rec),
        "segments": statuses,
    }


@functools.cache
def n_segments(rec):
    """Segments of a recording: from its header, or from the demo's settings before the demo
    job has written it."""
    if DEMO:
        n_frames = SESSION.demo.get("frames", 60)
    else:
        with open_recording(RAW[rec]) as reader:
            n_frames = reader.n_frames
    return len(segment_bounds(n_frames, SESSION.segment_frames))


def segment_outputs():
    """Files of one segment job (wildcard seg: the 4-digit segment index)."""
    names = segment_names("{seg}")
    keep = ["compensated", "idx", "sums", "status"]
    if SESSION.stage1_options().save_w:
        keep.append("w")
    return {key: stage1_output(f"segments/{names[key]}") for key in keep}


def stage1_options(wildcards):
    """Stage 1 options as a plain dict (what params: tracks for reruns)."""
    return SESSION.stage1_options().to_dict()


def stage1_output(name, rec="{rec}"):
    return str(OUT / rec / name)


def center_average():
    return stage1_output("temporal_average.npy", CENTER)


def stage1_qc_outputs():
    """Quality-control files of rule compensate, figures flagged for the report.

    None when flow_options turns qc off, so the rule's outputs match what Stage 1 writes.
    """
    if not SESSION.stage1_options().qc:
        return {}
    outputs = {"qc": stage1_output(QC_FILE)}
    for name, filename in RECORDING_FIGURES.items():
        outputs[f"qc_{name}"] = report(
            stage1_output(filename),
            caption=f"../report/recording_{name}.rst",
            category="Recordings",
            subcategory="{rec}",
            labels={"recording": "{rec}", "figure": name.replace("_", " ")},
        )
    return outputs


def session_figure(filename, name):
    """A session QC figure, flagged for the report."""
    return report(
        str(FINAL / "qc" / filename),
        caption=f"../report/session_{name}.rst",
        category="Session",
        labels={"figure": name.replace("_", " ")},
    )


def aligned_videos(wildcards):
    """Aligned videos of the recordings kept in the session mask.

    With exclude_misaligned the set is known only after the checkpoint kept_recordings.
    """
    recordings = RECORDINGS
    if SESSION.exclude_misaligned:
        kept = Path(checkpoints.kept_recordings.get().output.kept).read_text().split()
        recordings = [rec for rec in RECORDINGS if rec in kept]
    return expand(rules.aligned_video.output.video, rec=recordings)
