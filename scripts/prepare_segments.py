"""Stage 1 of a split recording, step 1: reference and smoothness weight (rule prepare_segments)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.motion_correction.segments import prepare_segments
from pyflowreg.session.config import job_recording

prepare_segments(
    dict(snakemake.params.options, n_workers=snakemake.threads),
    input_file=job_recording(snakemake.config, snakemake.wildcards.rec, snakemake.input.movie),
    output_path=Path(snakemake.output.prepared).parent.parent,
    segment_frames=snakemake.params.segment_frames,
    resume=False,  # Snakemake decided this job must run
    log=lambda message: print(message, file=sys.stderr, flush=True),
)
