rule train_toy:
    output:
        model=directory(toy_outputs("{toy}")["model"]),
        checkpoints=directory(toy_outputs("{toy}")["checkpoints"]),
        metrics=toy_outputs("{toy}")["metrics"],
        history=toy_outputs("{toy}")["history"],
        heads=toy_outputs("{toy}")["heads"],
    log:
        "results/logs/train_toy/{toy}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        entry=toy_entry,
        code=code_hash("actspace.toys"),
    script:
        "../scripts/train_toy.py"


rule toy_figures:
    input:
        model=toy_outputs("{toy}")["model"],
        metrics=toy_outputs("{toy}")["metrics"],
        history=toy_outputs("{toy}")["history"],
    output:
        **toy_figure_paths("{toy}"),
    log:
        "results/logs/toy_figures/{toy}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        entry=toy_entry,
        code=code_hash("actspace.toys", "actspace.plots"),
    script:
        "../scripts/toy_figures.py"


rule toy_search:
    output:
        "results/toys/{toy}/search.csv",
    log:
        "results/logs/toy_search/{toy}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        entry=toy_entry,
        code=code_hash("actspace.toys"),
    script:
        "../scripts/toy_search.py"


rule toys_summary:
    input:
        unpack(toys_summary_inputs),
    output:
        "results/summary/toys.json",
    log:
        "results/logs/toys_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        gpu=0,
    params:
        toys=trained_toys(),
        code=code_hash("actspace.toys"),
    script:
        "../scripts/toys_summary.py"
