# Stage 3: aligned videos per recording and one job for the session mask (each recording's
# valid masks come from align_recording).


rule aligned_video:
    input:
        h5=rules.compensate.output.h5,
        w=rules.align_recording.output.w,
        center_average=center_average(),
    output:
        video=str(FINAL / f"aligned_{{rec}}{VIDEO_SUFFIX}"),
    log:
        LOGS / "aligned_video" / "{rec}.log",
    benchmark:
        BENCH / "aligned_video" / "{rec}.tsv"
    conda:
        "../envs/flowreg.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        chunk_frames=SESSION.align_chunk_size,
    script:
        "../scripts/aligned_video.py"


rule session_mask:
    input:
        masks=expand(rules.align_recording.output.mask, rec=RECORDINGS),
        aligned=expand(rules.align_recording.output.aligned, rec=RECORDINGS),
        w=expand(rules.align_recording.output.w, rec=RECORDINGS),
        averages=expand(rules.compensate.output.average, rec=RECORDINGS),
        h5=expand(rules.compensate.output.h5, rec=RECORDINGS),
        # read for the session QC: how each recording chose its smoothness weight
        status=expand(rules.compensate.output.status, rec=RECORDINGS),
    output:
        png=str(FINAL / "final_valid_idx.png"),
        npz=str(FINAL / "final_valid_idx.npz"),
        mat=str(FINAL / "final_valid_idx.mat"),
        qc=str(FINAL / "qc" / "session.json"),
        coverage=str(FINAL / "qc" / "coverage.npy"),
        aligned_averages=session_figure("aligned_averages.png", "aligned_averages"),
        overlays=session_figure("overlays.png", "overlays"),
        coverage_png=session_figure("coverage.png", "coverage"),
    log:
        LOGS / "session_mask.log",
    benchmark:
        BENCH / "session_mask.tsv"
    conda:
        "../envs/flowreg.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        middle_idx=CENTER_INDEX,
        exclude_misaligned=SESSION.exclude_misaligned,
    script:
        "../scripts/session_mask.py"


# Only with exclude_misaligned: the aligned videos to make are known once session_mask has
# scored every recording's alignment, so rule all asks this checkpoint for them.
if SESSION.exclude_misaligned:

    checkpoint kept_recordings:
        input:
            qc=rules.session_mask.output.qc,
        output:
            kept=str(FINAL / "qc" / "kept_recordings.txt"),
        log:
            LOGS / "kept_recordings.log",
        benchmark:
            BENCH / "kept_recordings.tsv"
        conda:
            "../envs/flowreg.yaml"
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        params:
            recordings=RECORDINGS,
        script:
            "../scripts/kept_recordings.py"
