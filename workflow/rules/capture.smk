rule capture_residuals:
    input:
        model=model_dir,
        corpus="results/corpora/{model}/{corpus}.zarr",
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
        settings=capture_settings(),
        device=DEVICE,
        code=code_hash("actspace.capture"),
    script:
        "../scripts/capture_residuals.py"
