rule weights_svd:
    input:
        model=model_dir,
    output:
        store=directory("results/weights_svd/{model}/svd.zarr"),
        tables=expand("results/weights_svd/{{model}}/tokens_{kind}.csv", kind=WEIGHT_KINDS),
        queries="results/weights_svd/{model}/queries.csv",
        edits="results/weights_svd/{model}/edits.csv",
    log:
        "results/logs/weights_svd/{model}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=0,
    params:
        kinds=WEIGHT_KINDS,
        settings=weights_svd_settings(),
        code=code_hash("actspace.weights_svd"),
    script:
        "../scripts/weights_svd.py"


rule weights_svd_figures:
    input:
        store="results/weights_svd/{model}/svd.zarr",
        tables=expand("results/weights_svd/{{model}}/tokens_{kind}.csv", kind=WEIGHT_KINDS),
        edits="results/weights_svd/{model}/edits.csv",
    output:
        **weights_svd_figure_paths("{model}"),
    log:
        "results/logs/weights_svd_figures/{model}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        kinds=WEIGHT_KINDS,
        code=code_hash("actspace.plots"),
    script:
        "../scripts/weights_svd_figures.py"


rule weights_svd_summary:
    input:
        expand("results/weights_svd/{model}/svd.zarr", model=config["weights_svd"]["models"]),
    output:
        "results/summary/weights_svd.json",
    log:
        "results/logs/weights_svd_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        gpu=0,
    params:
        code=code_hash("actspace.weights_svd"),
    script:
        "../scripts/weights_svd_summary.py"
