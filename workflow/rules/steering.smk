from actspace.methods.steering import runs as steering_runs


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def steering_corpus(wildcards):
    """The tokenised prompts of a steering run."""
    return expand(
        rules.tokenize_corpus.output[0],
        model=wildcards.model,
        corpus=steering_runs.run_corpus(config, wildcards.run),
    )[0]


def steering_settings(part):
    """Params function: one part of a run's settings (a change reruns only its jobs)."""
    return lambda wildcards: steering_runs.run_settings(config, wildcards.run, part)


def per_steering_run(pattern):
    """``pattern`` for every configured steering run."""
    return [expand(pattern, **target)[0] for target in steering_runs.run_targets(config)]


rule learn_melbo:
    input:
        model=rules.materialise_model.output[0],
        corpus=steering_corpus,
    output:
        directory("results/steering/{model}/{run}/melbo.zarr"),
    log:
        "results/logs/learn_melbo/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=steering_settings("melbo"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/learn_melbo.py"


rule steering_radius_sweep:
    input:
        model=rules.materialise_model.output[0],
        corpus=steering_corpus,
    output:
        "results/steering/{model}/{run}/radius_sweep.csv",
    log:
        "results/logs/steering_radius_sweep/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        melbo=steering_settings("melbo"),
        sweep=steering_settings("sweep"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/steering_radius_sweep.py"


rule learn_orthogonal_vectors:
    input:
        model=rules.materialise_model.output[0],
        corpus=steering_corpus,
        melbo=rules.learn_melbo.output[0],
    output:
        directory("results/steering/{model}/{run}/vectors.zarr"),
    log:
        "results/logs/learn_orthogonal_vectors/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=steering_settings("ortho"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/learn_orthogonal_vectors.py"


rule steering_generations:
    input:
        model=rules.materialise_model.output[0],
        corpus=steering_corpus,
        melbo=rules.learn_melbo.output[0],
        vectors=rules.learn_orthogonal_vectors.output[0],
    output:
        jsonl="results/steering/{model}/{run}/generations.jsonl",
        markdown="results/steering/{model}/{run}/generations.md",
    log:
        "results/logs/steering_generations/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=steering_settings("generate"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/steering_generations.py"


rule export_steering_vectors:
    input:
        melbo=rules.learn_melbo.output[0],
        vectors=rules.learn_orthogonal_vectors.output[0],
    output:
        "results/steering/{model}/{run}/vectors.safetensors",
    log:
        "results/logs/export_steering_vectors/{model}/{run}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/export_steering_vectors.py"


rule steering_figures:
    input:
        melbo=rules.learn_melbo.output[0],
        vectors=rules.learn_orthogonal_vectors.output[0],
        sweep=rules.steering_radius_sweep.output[0],
    output:
        kl="results/steering/{model}/{run}/figures/kl.png",
        norms="results/steering/{model}/{run}/figures/norms.png",
        combinations="results/steering/{model}/{run}/figures/combinations.png",
        melbo="results/steering/{model}/{run}/figures/melbo.png",
    log:
        "results/logs/steering_figures/{model}/{run}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.steering.figures"),
    script:
        "../scripts/steering_figures.py"


rule steering_summary:
    input:
        melbo=per_steering_run(rules.learn_melbo.output[0]),
        vectors=per_steering_run(rules.learn_orthogonal_vectors.output[0]),
        generations=per_steering_run(rules.steering_generations.output.jsonl),
        sweeps=per_steering_run(rules.steering_radius_sweep.output[0]),
        published=PUBLISHED,
    output:
        "results/summary/steering.json",
    log:
        "results/logs/steering_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.steering.summary"),
    script:
        "../scripts/steering_summary.py"


rule steering:
    input:
        per_steering_run(list(rules.steering_figures.output)),
        per_steering_run(list(rules.steering_generations.output)),
        per_steering_run(rules.export_steering_vectors.output[0]),
        rules.steering_summary.output,
