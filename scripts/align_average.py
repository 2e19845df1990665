"""Stage 2 for one recording: its temporal average against the center's (rule align_average)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.core.threads import set_numba_threads
from pyflowreg.session.stage2_between_avgs import align_to_center, load_average

set_numba_threads(snakemake.threads)
folder = Path(snakemake.output.w).parent
center = snakemake.params.center
align_to_center(
    load_average(Path(snakemake.input.center_average).parent, center),
    load_average(folder),
    folder,
    snakemake.params.stage2,
    is_center=(folder.name == center),
    center_name=center,
    resume=False,
)
