"""Stage 1 for one recording (rule compensate)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.motion_correction import compensate_recording
from pyflowreg.session.config import job_recording

options = dict(snakemake.params.options, n_workers=snakemake.threads)
compensate_recording(
    options,
    input_file=job_recording(snakemake.config, snakemake.wildcards.rec, snakemake.input.movie),
    output_path=Path(snakemake.output.h5).parent,
    resume=False,  # Snakemake decided this job must run
    log=lambda message: print(message, file=sys.stderr, flush=True),
)
