"""Stage 1 of a split recording, step 3: the outputs of rule compensate from the segments."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.motion_correction.segments import join_segments
from pyflowreg.session.config import job_recording

join_segments(
    dict(snakemake.params.options, n_workers=snakemake.threads),
    input_file=job_recording(snakemake.config, snakemake.wildcards.rec, snakemake.input.movie),
    output_path=Path(snakemake.output.h5).parent,
    log=lambda message: print(message, file=sys.stderr, flush=True),
)
