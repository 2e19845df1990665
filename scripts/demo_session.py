"""Write the synthetic demo session (rule demo_session)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

from pyflowreg.synthetic import make_session, write_session

demo = snakemake.params.demo
outputs = [Path(p) for p in snakemake.output.recordings]
# The marker goes first: a run killed while writing must still be recognised as the demo's.
Path(snakemake.output.marker).parent.mkdir(parents=True, exist_ok=True)
Path(snakemake.output.marker).write_text("written by the flowreg-session demo_session rule\n")
session = make_session(
    len(outputs), demo.get("height", 128), demo.get("width", 128), demo.get("frames", 60),
    seed=demo.get("seed", 0),
)
write_session(session, outputs[0].parent, pattern="rec_{:02d}.tif")
