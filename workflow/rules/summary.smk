rule summary_report:
    input:
        method_summaries(),
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
        code=code_hash("actspace.reporting.page"),
    script:
        "../scripts/summary_report.py"
