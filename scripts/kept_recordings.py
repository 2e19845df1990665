"""The recordings kept in the session under exclude_misaligned (checkpoint kept_recordings)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.io import atomic_output
from pyflowreg.session.qc import excluded_recordings

excluded = excluded_recordings(Path(snakemake.input.qc).parent.parent)
kept = [rec for rec in snakemake.params.recordings if rec not in excluded]
print(f"kept {kept}, left out {sorted(excluded)}", file=sys.stderr)
with atomic_output(snakemake.output.kept) as tmp:
    Path(tmp).write_text("".join(f"{rec}\n" for rec in kept))
