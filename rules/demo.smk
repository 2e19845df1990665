# The built-in demo: a synthetic session written by a job (never at parse time).


if DEMO:

    rule demo_session:
        output:
            recordings=[str(p) for p in INPUT_FILES],
            marker=str(DEMO_MARKER),
            truth=str(SESSION.root_path / "ground_truth.npz"),
        log:
            LOGS / "demo_session.log",
        benchmark:
            BENCH / "demo_session.tsv"
        conda:
            "../envs/flowreg.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            demo=SESSION.demo,
        script:
            "../scripts/demo_session.py"
