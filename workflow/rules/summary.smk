rule capture_summary:
    input:
        all_capture_stores(),
    output:
        "results/summary/capture.json",
    log:
        "results/logs/capture_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        gpu=0,
    params:
        code=code_hash("actspace.summary"),
    script:
        "../scripts/capture_summary.py"


rule summary_report:
    input:
        "results/summary/capture.json",
        "results/summary/text_subspaces.json",
        "results/summary/weights_svd.json",
        toys_summary_json(),
    output:
        "results/summary.md",
    log:
        "results/logs/summary_report.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        gpu=0,
    params:
        code=code_hash("actspace.summary"),
    script:
        "../scripts/summary_report.py"
