# Stage 1: one job per recording, motion correction against a reference built from itself.
# With segment_frames a recording runs as one preparation job (reference, smoothness weight),
# one job per segment of frames, and a join whose outputs are those of the unsplit job.


if SESSION.segment_frames:

    rule prepare_segments:
        input:
            movie=raw_path,
        output:
            prepared=stage1_output("segments/prepared.pkl"),
        log:
            LOGS / "prepare_segments" / "{rec}.log",
        benchmark:
            BENCH / "prepare_segments" / "{rec}.tsv"
        conda:
            "../envs/flowreg.yaml"
        threads: 2
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            options=stage1_options,
            segment_frames=SESSION.segment_frames,
        script:
            "../scripts/prepare_segments.py"

    rule compensate_segment:
        input:
            movie=raw_path,
            prepared=rules.prepare_segments.output.prepared,
        output:
            **segment_outputs(),
        log:
            LOGS / "compensate_segment" / "{rec}" / "{seg}.log",
        benchmark:
            BENCH / "compensate_segment" / "{rec}" / "{seg}.tsv"
        wildcard_constraints:
            seg=r"\d{4}",
        conda:
            "../envs/flowreg.yaml"
        threads: 2
        resources:
            mem_mb=2000,
            runtime=120,
        params:
            options=stage1_options,
        script:
            "../scripts/compensate_segment.py"


rule compensate:
    input:
        unpack(stage1_inputs),
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
    # A join only links the segments and merges their sums.
    threads: 1 if SESSION.segment_frames else STAGE1_THREADS
    resources:
        mem_mb=2000,
        runtime=30 if SESSION.segment_frames else 120,
    params:
        options=stage1_options,
    script:
        "../scripts/join_segments.py"
        if SESSION.segment_frames
        else "../scripts/compensate.py"
