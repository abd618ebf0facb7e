rule materialise_model:
    input:
        unpack(toy_model_input),
    output:
        directory("results/models/{model}"),
    log:
        "results/logs/materialise_model/{model}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=0,
    params:
        spec=model_spec,
        code=code_hash("actspace.models.sources"),
    script:
        "../scripts/materialise_model.py"
