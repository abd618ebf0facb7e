rule tokenize_corpus:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
    output:
        directory("results/corpora/{model}/{corpus}.zarr"),
    log:
        "results/logs/tokenize_corpus/{model}/{corpus}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        spec=corpus_spec,
        device=DEVICE,
        code=code_hash("actspace.data.corpora"),
    script:
        "../scripts/tokenize_corpus.py"
