from actspace.methods.steering import runs as steering_runs


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9._-]*",


rule learn_melbo:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
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
        settings=lambda w: steering_runs.run_settings(config, w.run, "melbo"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/learn_melbo.py"


rule steering_radius_sweep:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
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
        melbo=lambda w: steering_runs.run_settings(config, w.run, "melbo"),
        sweep=lambda w: steering_runs.run_settings(config, w.run, "sweep"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/steering_radius_sweep.py"


rule steering_unsteered_margins:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
        melbo=rules.learn_melbo.output[0],
    output:
        "results/steering/{model}/{run}/unsteered_margins.csv",
    log:
        "results/logs/steering_unsteered_margins/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        tokens=lambda w: steering_runs.run_settings(config, w.run, "sweep")["tokens"],
        device=DEVICE,
        code=code_hash("actspace.methods.steering.margins"),
    script:
        "../scripts/steering_unsteered_margins.py"


rule learn_orthogonal_vectors:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
        melbo=rules.learn_melbo.output[0],
        base_file=lambda w: steering_runs.base_file(config, w.run),
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
        settings=lambda w: steering_runs.run_settings(config, w.run, "ortho"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.job"),
    script:
        "../scripts/learn_orthogonal_vectors.py"


rule steering_unsteered_kl:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
        vectors=rules.learn_orthogonal_vectors.output[0],
    output:
        directory("results/steering/{model}/{run}/unsteered_kl.zarr"),
    log:
        "results/logs/steering_unsteered_kl/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        device=DEVICE,
        code=code_hash("actspace.methods.steering.baseline"),
    script:
        "../scripts/steering_unsteered_kl.py"


rule steering_generations:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
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
        settings=lambda w: steering_runs.run_settings(config, w.run, "generate"),
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
        unsteered=rules.steering_unsteered_kl.output[0],
        sweep=rules.steering_radius_sweep.output[0],
        published=PUBLISHED,
    output:
        kl=figure("results/steering/{model}/{run}/figures/kl.png", "steering/kl"),
        norms=figure("results/steering/{model}/{run}/figures/norms.png", "steering/norms"),
        combinations=figure(
            "results/steering/{model}/{run}/figures/combinations.png", "steering/combinations"
        ),
        melbo=figure("results/steering/{model}/{run}/figures/melbo.png", "steering/melbo"),
        pdf=pdf_of("results/steering/{model}/{run}/figures", "kl", "norms", "combinations", "melbo"),
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
        melbo=steering_runs.per_run(config, rules.learn_melbo.output[0]),
        vectors=steering_runs.per_run(config, rules.learn_orthogonal_vectors.output[0]),
        unsteered=steering_runs.per_run(config, rules.steering_unsteered_kl.output[0]),
        generations=steering_runs.per_run(config, rules.steering_generations.output.jsonl),
        sweeps=steering_runs.per_run(config, rules.steering_radius_sweep.output[0]),
        margins=steering_runs.per_run(config, rules.steering_unsteered_margins.output[0]),
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
        steering_runs.per_run(config, list(rules.steering_figures.output)),
        steering_runs.per_run(config, list(rules.steering_generations.output)),
        steering_runs.per_run(config, rules.export_steering_vectors.output[0]),
        rules.steering_summary.output,
    localrule: True


rule learn_complement_vectors:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        corpus=lambda w: steering_runs.corpus_input(config, w, rules.tokenize_corpus.output[0]),
        melbo=rules.learn_melbo.output[0],
        base_file=lambda w: steering_runs.base_file(config, w.run),
    output:
        directory("results/steering/{model}/{run}/complement.zarr"),
    log:
        "results/logs/learn_complement_vectors/{model}/{run}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=GPUS,
    params:
        settings=lambda w: steering_runs.run_settings(config, w.run, "ortho"),
        complement=lambda w: steering_runs.run_settings(config, w.run, "complement"),
        device=DEVICE,
        code=code_hash("actspace.methods.steering.complement"),
    script:
        "../scripts/learn_complement_vectors.py"


rule steering_complement_report:
    input:
        vectors=rules.learn_complement_vectors.output[0],
        unsteered=rules.steering_unsteered_kl.output[0],
        published=PUBLISHED,
    output:
        summary="results/steering/{model}/{run}/complement.json",
        kl=figure(
            "results/steering/{model}/{run}/figures/complement_kl.png", "steering/complement_kl"
        ),
        norms=figure(
            "results/steering/{model}/{run}/figures/complement_norms.png",
            "steering/complement_norms",
        ),
        combinations=figure(
            "results/steering/{model}/{run}/figures/complement_combinations.png",
            "steering/complement_combinations",
        ),
        pdf=pdf_of(
            "results/steering/{model}/{run}/figures",
            "complement_kl",
            "complement_norms",
            "complement_combinations",
        ),
    log:
        "results/logs/steering_complement_report/{model}/{run}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.steering.summary", "actspace.methods.steering.figures"),
    script:
        "../scripts/steering_complement_report.py"


# MELBO-ortho over all d_model - 1 directions (hours on a CPU): a named target, outside `all`
rule steering_complement:
    input:
        steering_runs.per_run(config, list(rules.steering_complement_report.output)),
    localrule: True
