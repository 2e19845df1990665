"""Stage 3 for one recording: valid mask and its aligned version (rule recording_mask)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.session.stage3_valid_mask import load_displacement, recording_masks

w = load_displacement(Path(snakemake.input.w).parent)
stem = Path(snakemake.input.idx).parent.name
recording_masks(snakemake.input.idx, w, Path(snakemake.output.mask).parent, stem)
