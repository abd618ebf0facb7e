from actspace.methods.toys.spec import searched_toys, trained_toys


rule train_toy:
    output:
        model=directory("results/toys/{toy}/model"),
        checkpoints=directory("results/toys/{toy}/checkpoints"),
        metrics="results/toys/{toy}/metrics.csv",
        history="results/toys/{toy}/training_log.csv",
        heads="results/toys/{toy}/heads.csv",
    log:
        "results/logs/train_toy/{toy}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        entry=lambda wildcards: config["toys"]["specs"][wildcards.toy],
        code=code_hash("actspace.methods.toys.job"),
    script:
        "../scripts/train_toy.py"


rule toy_figures:
    input:
        model=rules.train_toy.output.model,
        metrics=rules.train_toy.output.metrics,
        history=rules.train_toy.output.history,
        published=PUBLISHED,
    output:
        training=figure("results/toys/{toy}/figures/training.png", "toys/training"),
        attention=figure("results/toys/{toy}/figures/attention.png", "toys/attention"),
        pdf=pdf_of("results/toys/{toy}/figures", "training", "attention"),
    log:
        "results/logs/toy_figures/{toy}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        entry=lambda wildcards: config["toys"]["specs"][wildcards.toy],
        code=code_hash("actspace.methods.toys.figures"),
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
        entry=lambda wildcards: config["toys"]["specs"][wildcards.toy],
        code=code_hash("actspace.methods.toys.job"),
    script:
        "../scripts/toy_search.py"


rule toys_summary:
    input:
        metrics=expand(rules.train_toy.output.metrics, toy=trained_toys(config)),
        heads=expand(rules.train_toy.output.heads, toy=trained_toys(config)),
        published=PUBLISHED,
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
        toys=trained_toys(config),
        code=code_hash("actspace.methods.toys.summary"),
    script:
        "../scripts/toys_summary.py"


rule toys:
    input:
        expand(rules.train_toy.output.metrics, toy=trained_toys(config)),
        expand(list(rules.toy_figures.output), toy=trained_toys(config)),
        rules.toys_summary.output if trained_toys(config) else [],
    localrule: True


# The architecture search is a named target, not part of `rule all` or `toys`: it serves no
# published figure or number and would be ~30 minutes of the default run on 2 CPU cores.
rule toy_searches:
    input:
        expand(rules.toy_search.output, toy=searched_toys(config)),
    localrule: True
