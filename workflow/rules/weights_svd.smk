rule decompose_weights:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
    output:
        store=directory("results/weights_svd/{model}/svd.zarr"),
        tables=directory("results/weights_svd/{model}/tokens"),
        queries="results/weights_svd/{model}/queries.csv",
        edits="results/weights_svd/{model}/edits.csv",
    log:
        "results/logs/decompose_weights/{model}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=0,
    params:
        settings=settings_of("weights_svd"),
        code=code_hash("actspace.methods.weights_svd.job"),
    script:
        "../scripts/decompose_weights.py"


rule weights_svd_figures:
    input:
        store=rules.decompose_weights.output.store,
        tables=rules.decompose_weights.output.tables,
        edits=rules.decompose_weights.output.edits,
        published=PUBLISHED,
    output:
        tokens=figure("results/weights_svd/{model}/figures/tokens.png", "weights_svd/tokens"),
        spectra=figure("results/weights_svd/{model}/figures/spectra.png", "weights_svd/spectra"),
        coherence=figure(
            "results/weights_svd/{model}/figures/coherence.png", "weights_svd/coherence"
        ),
        edits=figure("results/weights_svd/{model}/figures/edits.png", "weights_svd/edits"),
        pdf=pdf_of("results/weights_svd/{model}/figures", "tokens", "spectra", "coherence", "edits"),
    log:
        "results/logs/weights_svd_figures/{model}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.weights_svd.figures"),
    script:
        "../scripts/weights_svd_figures.py"


rule weights_svd_summary:
    input:
        stores=expand(rules.decompose_weights.output.store, model=config["weights_svd"]["models"]),
        published=PUBLISHED,
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
        code=code_hash("actspace.methods.weights_svd.summary"),
    script:
        "../scripts/weights_svd_summary.py"


rule weights_svd:
    input:
        expand(list(rules.weights_svd_figures.output), model=config["weights_svd"]["models"]),
        expand(rules.decompose_weights.output.queries, model=config["weights_svd"]["models"]),
        rules.weights_svd_summary.output,
    localrule: True
