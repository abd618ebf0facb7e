rule text_subspaces:
    input:
        model=model_dir,
        activations="results/activations/{model}/{corpus}.zarr",
        corpus="results/corpora/{model}/{corpus}.zarr",
    output:
        store=directory("results/text_subspaces/{model}/{corpus}.zarr"),
        generations="results/text_subspaces/{model}/{corpus}.generations.md",
    log:
        "results/logs/text_subspaces/{model}/{corpus}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=text_subspaces_settings(),
        device=DEVICE,
        code=code_hash("actspace.textsub"),
    script:
        "../scripts/text_subspaces.py"


rule text_subspaces_figures:
    input:
        "results/text_subspaces/{model}/{corpus}.zarr",
    output:
        **text_subspace_figures("{model}", "{corpus}"),
    log:
        "results/logs/text_subspaces_figures/{model}/{corpus}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.plots"),
    script:
        "../scripts/text_subspaces_figures.py"


rule text_subspaces_summary:
    input:
        all_text_subspace_stores(),
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
        code=code_hash("actspace.textsub"),
    script:
        "../scripts/text_subspaces_summary.py"
