"""Session export to NWB, <final_results>/session.nwb (rule export_nwb)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.session.config import SessionConfig
from pyflowreg.session.export_nwb import export_nwb

config = SessionConfig.from_dict(dict(snakemake.params.config), source="workflow config")
path = export_nwb(config, log=lambda message: print(message, file=sys.stderr, flush=True))
if path.resolve() != Path(snakemake.output.nwb).resolve():
    raise RuntimeError(f"export wrote {path}, the rule expects {snakemake.output.nwb}")
