# Stage 2: every recording's temporal average against the center's (fan-in on the center),
# and, in the same job, the recording's valid mask and its version in the center's grid.


rule align_recording:
    input:
        average=rules.compensate.output.average,
        center_average=center_average(),
        idx=rules.compensate.output.idx,
    output:
        w=stage1_output("w_to_reference.npz"),
        info=stage1_output("w_to_reference.json"),
        mask=str(FINAL / "{rec}_valid_idx.png"),
        aligned=str(FINAL / "{rec}_valid_idx_aligned.png"),
    log:
        LOGS / "align_recording" / "{rec}.log",
    benchmark:
        BENCH / "align_recording" / "{rec}.tsv"
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
        "../scripts/align_recording.py"
