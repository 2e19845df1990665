"""Stage 3 final job: the session mask bundle (rule session_mask)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.session.stage2_between_avgs import load_average
from pyflowreg.session.stage3_valid_mask import (
    combine_session,
    load_displacement,
    load_mask_png,
)

inp = snakemake.input
final = combine_session(
    Path(snakemake.output.npz).parent,
    per_seq_masks=[load_mask_png(p) for p in inp.masks],
    aligned_masks=[load_mask_png(p) for p in inp.aligned],
    displacement_fields=[load_displacement(Path(p).parent) for p in inp.w],
    averages=[load_average(Path(p).parent) for p in inp.averages],
    compensated_paths=[Path(p) for p in inp.h5],
    middle_idx=snakemake.params.middle_idx,
    exclude_misaligned=snakemake.params.exclude_misaligned,
    log=lambda message: print(message, file=sys.stderr, flush=True),
)
print(f"{int(final.sum())} of {final.size} pixels valid in every recording", file=sys.stderr)
