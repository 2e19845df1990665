"""Write the synthetic demo session (rule demo_session)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")

from pyflowreg.synthetic import make_session, write_session

demo = snakemake.params.demo
outputs = [Path(p) for p in snakemake.output.recordings]
session = make_session(
    len(outputs), demo.get("height", 128), demo.get("width", 128), demo.get("frames", 60),
    seed=demo.get("seed", 0),
)
write_session(session, outputs[0].parent, pattern="rec_{:02d}.tif")
Path(snakemake.output.marker).write_text("written by the flowreg-session demo_session rule\n")
