rule capture_residuals:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=rules.tokenize_corpus.output[0],
    output:
        directory("results/activations/{model}/{corpus}.zarr"),
    log:
        "results/logs/capture_residuals/{model}/{corpus}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=settings_of("capture"),
        device=DEVICE,
        code=code_hash("actspace.methods.capture.job"),
    script:
        "../scripts/capture_residuals.py"


rule capture_summary:
    input:
        stores=per_model_and_corpus("capture", rules.capture_residuals.output[0]),
        checks=expand(rules.check_model.output[0], model=models_in_use(config)),
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
        code=code_hash("actspace.methods.capture.summary"),
    script:
        "../scripts/capture_summary.py"


rule capture:
    input:
        rules.capture_summary.input.stores,
        rules.capture_summary.output,
    localrule: True
