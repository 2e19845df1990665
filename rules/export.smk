# Session exports (config key export): an NWB file and a suite2p plane, both from the aligned
# videos of the recordings kept in the session and the session mask. Rule all asks for
# export_outputs().
import functools

from pyflowreg.session.export_nwb import NWB_FILE, check_nwb_metadata  # noqa: E402
from pyflowreg.session.export_suite2p import (  # noqa: E402
    BINARY_FILE,
    OPS_FILE,
    export_targets,
    plane_folder,
)

# The config keys the exports read; a change to one of them reruns the exports.
EXPORT_CONFIG = {
    key: value
    for key, value in SESSION.to_dict().items()
    if key
    in (
        "root",
        "pattern",
        "recordings",
        "nwb_series",
        "output_root",
        "final_results",
        "align_output_format",
        "align_chunk_size",
        "exclude_misaligned",
        "metadata",
    )
}
# What both exports read: the session mask and QC, and the videos of the kept recordings.
EXPORT_INPUTS = {
    "npz": rules.session_mask.output.npz,
    "qc": rules.session_mask.output.qc,
    "coverage": rules.session_mask.output.coverage,
    "videos": aligned_videos,
}
# The files of the exports config["export"] asks for (for rule all).
export_outputs = functools.partial(export_targets, SESSION)

# An NWB file needs a start time and frame times, which flowreg-session never guesses: a
# config without them stops here, before any job runs. Config and NWB input headers only.
if "nwb" in SESSION.export and workflow.is_main_process:
    try:
        check_nwb_metadata(SESSION, INPUT_FILES)
    except (ConfigError, ValueError) as exc:
        raise WorkflowError(f"config: {exc}") from None


if "nwb" in SESSION.export:

    rule export_nwb:
        input:
            **EXPORT_INPUTS,
            w=expand(rules.align_recording.output.w, rec=RECORDINGS),
            # the per-frame rigid shift of Stage 1 (absent with flow_options qc: false)
            stage1_qc=(
                expand(rules.compensate.output.qc, rec=RECORDINGS)
                if SESSION.stage1_options().qc
                else []
            ),
        output:
            nwb=str(FINAL / NWB_FILE),
        log:
            LOGS / "export_nwb.log",
        benchmark:
            BENCH / "export_nwb.tsv"
        conda:
            "../envs/flowreg.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            config=EXPORT_CONFIG,
        script:
            "../scripts/export_nwb.py"


if "suite2p" in SESSION.export:

    rule export_suite2p:
        input:
            **EXPORT_INPUTS,
        output:
            data=str(plane_folder(SESSION) / BINARY_FILE),
            ops=str(plane_folder(SESSION) / OPS_FILE),
        log:
            LOGS / "export_suite2p.log",
        benchmark:
            BENCH / "export_suite2p.tsv"
        conda:
            "../envs/flowreg.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=60,
        params:
            config=EXPORT_CONFIG,
        script:
            "../scripts/export_suite2p.py"
