# Stage 1: one job per recording, motion correction against a reference built from itself.


rule compensate:
    input:
        movie=raw_path,
    output:
        **stage1_qc_outputs(),
        h5=stage1_output("compensated.hdf5"),
        idx=stage1_output("idx.hdf"),
        average=stage1_output("temporal_average.npy"),
        status=stage1_output("status.json"),
    log:
        LOGS / "compensate" / "{rec}.log",
    benchmark:
        BENCH / "compensate" / "{rec}.tsv"
    conda:
        "../envs/flowreg.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        options=stage1_options,
    script:
        "../scripts/compensate.py"
