"""Stage 2 for one recording, its temporal average against the center's, and the recording's
valid masks of Stage 3 (rule align_recording).

One job for both: the masks need nothing but this recording's idx.hdf and the field just
computed, and a job of its own would cost more to start than the masks cost to make.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.core.threads import set_job_threads
from pyflowreg.session.stage2_between_avgs import align_to_center, load_average
from pyflowreg.session.stage3_valid_mask import recording_masks

set_job_threads(snakemake.threads)
folder = Path(snakemake.output.w).parent
center = snakemake.params.center
w = align_to_center(
    load_average(Path(snakemake.input.center_average).parent, center),
    load_average(folder),
    folder,
    snakemake.params.stage2,
    is_center=(folder.name == center),
    center_name=center,
    resume=False,
)
recording_masks(snakemake.input.idx, w, Path(snakemake.output.mask).parent, folder.name)
