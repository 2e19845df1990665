# Stage 2: every recording's temporal average against the center's (fan-in on the center).


rule align_average:
    input:
        average=rules.compensate.output.average,
        center_average=center_average(),
    output:
        w=stage1_output("w_to_reference.npz"),
        info=stage1_output("w_to_reference.json"),
    log:
        LOGS / "align_average" / "{rec}.log",
    benchmark:
        BENCH / "align_average" / "{rec}.tsv"
    conda:
        "../envs/flowreg.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        stage2=STAGE2_PARAMS,
        center=CENTER,
    script:
        "../scripts/align_average.py"
