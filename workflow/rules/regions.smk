from actspace.methods.regions import runs as regions_runs


rule find_stable_regions:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=rules.tokenize_corpus.output[0],
        checkpoints=lambda w: regions_runs.checkpoints_input(
            config, w.model, rules.train_toy.output.checkpoints
        ),
    output:
        directory("results/regions/{model}/{corpus}.zarr"),
    log:
        "results/logs/find_stable_regions/{model}/{corpus}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=regions_runs.settings(config),
        device=DEVICE,
        code=code_hash("actspace.methods.regions.job"),
    script:
        "../scripts/find_stable_regions.py"


rule regions_figures:
    input:
        store=rules.find_stable_regions.output[0],
        published=PUBLISHED,
    output:
        curves=figure("results/regions/{model}/{corpus}/figures/curves.png", "regions/curves"),
        sharpness=figure(
            "results/regions/{model}/{corpus}/figures/sharpness.png", "regions/sharpness"
        ),
        slices=figure("results/regions/{model}/{corpus}/figures/slices.png", "regions/slices"),
        animation=figure("results/regions/{model}/{corpus}/figures/slices.gif", "regions/animation"),
        pdf=pdf_of("results/regions/{model}/{corpus}/figures", "curves", "sharpness", "slices"),
    log:
        "results/logs/regions_figures/{model}/{corpus}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.regions.figures"),
    script:
        "../scripts/regions_figures.py"


rule regions_overview:
    input:
        stores=regions_runs.per_run(config, rules.find_stable_regions.output[0]),
        published=PUBLISHED,
    output:
        training=figure("results/regions/figures/training.png", "regions/training"),
        sizes=figure("results/regions/figures/sizes.png", "regions/sizes"),
        pdf=pdf_of("results/regions/figures", "training", "sizes"),
    log:
        "results/logs/regions_overview.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        series=regions_runs.series(config),
        code=code_hash("actspace.methods.regions.figures"),
    script:
        "../scripts/regions_overview.py"


rule regions_summary:
    input:
        stores=regions_runs.per_run(config, rules.find_stable_regions.output[0]),
        published=PUBLISHED,
    output:
        "results/summary/regions.json",
    log:
        "results/logs/regions_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        gpu=0,
    params:
        toys=regions_runs.toy_runs(config),
        code=code_hash("actspace.methods.regions.summary"),
    script:
        "../scripts/regions_summary.py"


rule regions:
    input:
        regions_runs.per_run(config, list(rules.regions_figures.output)),
        rules.regions_overview.output,
        rules.regions_summary.output,
    localrule: True
