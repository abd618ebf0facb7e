rule find_text_subspaces:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        activations=rules.capture_residuals.output[0],
        corpus=rules.tokenize_corpus.output[0],
    output:
        store=directory("results/text_subspaces/{model}/{corpus}.zarr"),
        generations="results/text_subspaces/{model}/{corpus}.generations.md",
    log:
        "results/logs/find_text_subspaces/{model}/{corpus}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=settings_of("text_subspaces"),
        device=DEVICE,
        code=code_hash("actspace.methods.text_subspaces.job"),
    script:
        "../scripts/find_text_subspaces.py"


rule text_subspaces_figures:
    input:
        store=rules.find_text_subspaces.output.store,
        published=PUBLISHED,
    output:
        spectrum=figure(
            "results/text_subspaces/{model}/figures/{corpus}.spectrum.png",
            "text_subspaces/spectrum",
        ),
        nll=figure("results/text_subspaces/{model}/figures/{corpus}.nll.png", "text_subspaces/nll"),
        overlap=figure(
            "results/text_subspaces/{model}/figures/{corpus}.overlap.png", "text_subspaces/overlap"
        ),
        usage=figure(
            "results/text_subspaces/{model}/figures/{corpus}.usage.png", "text_subspaces/usage"
        ),
        pdf=pdf_of(
            "results/text_subspaces/{model}/figures",
            "{corpus}.spectrum",
            "{corpus}.nll",
            "{corpus}.overlap",
            "{corpus}.usage",
        ),
    log:
        "results/logs/text_subspaces_figures/{model}/{corpus}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.text_subspaces.figures"),
    script:
        "../scripts/text_subspaces_figures.py"


rule text_subspaces_summary:
    input:
        stores=per_model_and_corpus("text_subspaces", rules.find_text_subspaces.output.store),
        published=PUBLISHED,
    output:
        "results/summary/text_subspaces.json",
    log:
        "results/logs/text_subspaces_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.text_subspaces.summary"),
    script:
        "../scripts/text_subspaces_summary.py"


rule text_subspaces:
    input:
        per_model_and_corpus("text_subspaces", list(rules.text_subspaces_figures.output)),
        per_model_and_corpus("text_subspaces", rules.find_text_subspaces.output.generations),
        rules.text_subspaces_summary.output,
    localrule: True
