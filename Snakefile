"""flowreg-session: motion-correct, align and mask every recording of a 2-photon session.

snakemake --cores all                      # the built-in demo session (config/config.yaml)
snakemake --cores all --configfile my.yaml # your data
snakemake --profile profiles/slurm         # on a cluster (also profiles/sge, profiles/pbs)
"""

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


# The same JSON Schema validates the Python API's SessionConfig (and fills in its defaults).
validate(config, "src/pyflowreg/session/session_config.schema.json")


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/stage1.smk"
include: "rules/stage2.smk"
include: "rules/stage3.smk"


rule all:
    default_target: True
    input:
        rules.session_mask.output,
        expand(rules.aligned_video.output.video, rec=RECORDINGS),
