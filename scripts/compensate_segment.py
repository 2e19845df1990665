"""Stage 1 of a split recording, step 2: one segment of frames (rule compensate_segment)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.motion_correction.segments import compensate_segment
from pyflowreg.session.config import job_recording

compensate_segment(
    dict(snakemake.params.options, n_workers=snakemake.threads),
    input_file=job_recording(snakemake.config, snakemake.wildcards.rec, snakemake.input.movie),
    output_path=Path(snakemake.input.prepared).parent.parent,
    segment=int(snakemake.wildcards.seg),
    resume=False,  # Snakemake decided this job must run
    log=lambda message: print(message, file=sys.stderr, flush=True),
)
