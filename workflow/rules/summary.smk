rule summary_report:
    input:
        method_summaries(),
    output:
        markdown="results/summary.md",
        page=report("results/summary.html", caption="../report/summary.rst", category="Summary"),
        table="results/summary.json",
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


rule figures:
    input:
        figure_targets(),
    localrule: True
