"""Stage 3 for one recording: compensated frames warped into the center's grid."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.core.threads import set_job_threads
from pyflowreg.session.stage2_between_avgs import load_average
from pyflowreg.session.stage3_valid_mask import (
    export_aligned_video,
    load_displacement,
)

set_job_threads(snakemake.threads)
export_aligned_video(
    snakemake.input.h5,
    load_displacement(Path(snakemake.input.w).parent),
    load_average(Path(snakemake.input.center_average).parent),
    snakemake.output.video,
    chunk_frames=snakemake.params.chunk_frames,
    resume=False,
)
