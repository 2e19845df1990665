"""flowreg-session: motion-correct, align and mask every recording of a 2-photon session.

snakemake --cores all                      # the built-in demo session (config/config.yaml)
snakemake --cores all --configfile my.yaml # your data
snakemake --profile profiles/slurm         # on a cluster (also profiles/sge, profiles/pbs)
"""

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


# The same JSON Schema validates the Python API's SessionConfig. The library's check runs first
# for a one-line message naming the key; Snakemake's validate then fills in the defaults.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from pyflowreg.session.config import ConfigError, validate_config_dict

try:
    validate_config_dict(dict(config), "workflow config")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, "src/pyflowreg/session/session_config.schema.json")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/stage1.smk"
include: "rules/stage2.smk"
include: "rules/stage3.smk"
include: "rules/export.smk"


rule all:
    default_target: True
    input:
        rules.session_mask.output,
        aligned_videos,
        export_outputs(),
