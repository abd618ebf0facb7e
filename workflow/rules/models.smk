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


# Every job that runs a model depends on its check: the adapter's hook sites against
# transformers' own outputs (actspace.models.equivalence); a failure stops that model's jobs.
rule check_model:
    input:
        model=rules.materialise_model.output[0],
    output:
        "results/checks/{model}.json",
    log:
        "results/logs/check_model/{model}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=config["check"],
        device=DEVICE,
        code=code_hash("actspace.models.equivalence"),
    script:
        "../scripts/check_model.py"
