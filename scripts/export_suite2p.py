"""Session export for suite2p, <final_results>/suite2p/plane0/ (rule export_suite2p)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

from pyflowreg.session.config import SessionConfig
from pyflowreg.session.export_suite2p import export_suite2p

config = SessionConfig.from_dict(dict(snakemake.params.config), source="workflow config")
ops = export_suite2p(config, log=lambda message: print(message, file=sys.stderr, flush=True))
if ops.resolve() != Path(snakemake.output.ops).resolve():
    raise RuntimeError(f"export wrote {ops}, the rule expects {snakemake.output.ops}")
