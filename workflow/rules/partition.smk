from actspace.methods.partition import sites as partition_sites


wildcard_constraints:
    layer=r"\d+",
    block=r"\d+",
    stop=r"(\.stop\d+)?",  # '' for the published schedule, '.stop2' for stop at 2


rule partition_site:
    input:
        activations=rules.capture_residuals.output[0],
    output:
        directory("results/partition/{model}/{corpus}/L{layer}{stop}.zarr"),
    log:
        "results/logs/partition_site/{model}/{corpus}/L{layer}{stop}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=config["resources"]["mem_mb"],
        gpu=0,
    params:
        layer=lambda wildcards: int(wildcards.layer),
        settings=lambda wildcards: partition_sites.site_settings(
            config, wildcards.model, wildcards.corpus, int(wildcards.layer), wildcards.stop
        ),
        code=code_hash("actspace.methods.partition.job"),
    script:
        "../scripts/partition_site.py"


rule subspace_circuit:
    input:
        model=rules.materialise_model.output[0],
        check=rules.check_model.output[0],
        activations=rules.capture_residuals.output[0],
        partition_in=lambda wildcards: expand(
            rules.partition_site.output[0], layer=int(wildcards.block), allow_missing=True
        ),
        partition_out=lambda wildcards: expand(
            rules.partition_site.output[0], layer=int(wildcards.block) + 1, allow_missing=True
        ),
    output:
        directory("results/partition/{model}/{corpus}/circuit_B{block}{stop}.zarr"),
    log:
        "results/logs/subspace_circuit/{model}/{corpus}/B{block}{stop}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=model_mem_mb,
        gpu=0,
    params:
        block=lambda wildcards: int(wildcards.block),
        n_streams=config.get("partition", {}).get("circuit_streams"),
        code=code_hash("actspace.methods.partition.job"),
    script:
        "../scripts/subspace_circuit.py"


rule probe_partition:
    input:
        activations=rules.capture_residuals.output[0],
        partition=rules.partition_site.output[0],
    output:
        "results/partition/{model}/{corpus}/probes_L{layer}{stop}.csv",
    log:
        "results/logs/probe_partition/{model}/{corpus}/L{layer}{stop}.log",
    conda:
        ENV
    threads: THREADS
    resources:
        mem_mb=config["resources"]["mem_mb"],
        gpu=0,
    params:
        test_share=config.get("partition", {}).get("probe_test_share"),
        seed=config.get("partition", {}).get("seed"),
        sep=lambda wildcards: partition_sites.probe_separator(config, wildcards.corpus),
        n_tokens=lambda wildcards: partition_sites.probe_tokens(config, wildcards.corpus),
        code=code_hash("actspace.methods.partition.probe_job"),
    script:
        "../scripts/probe_partition.py"


rule partition_figures:
    input:
        rules.partition_site.output[0],
        published=PUBLISHED,
    output:
        figure("results/partition/{model}/{corpus}/figures/L{layer}{stop}.png", "partition/site"),
        pdf=pdf_of("results/partition/{model}/{corpus}/figures", "L{layer}{stop}"),
    log:
        "results/logs/partition_figures/{model}/{corpus}/L{layer}{stop}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.partition.figures"),
    script:
        "../scripts/partition_figures.py"


rule circuit_figure:
    input:
        rules.subspace_circuit.output[0],
    output:
        figure(
            "results/partition/{model}/{corpus}/figures/circuit_B{block}{stop}.png",
            "partition/circuit",
        ),
        pdf=pdf_of("results/partition/{model}/{corpus}/figures", "circuit_B{block}{stop}"),
    log:
        "results/logs/circuit_figure/{model}/{corpus}/B{block}{stop}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.partition.figures"),
    script:
        "../scripts/circuit_figure.py"


rule probe_figure:
    input:
        rules.probe_partition.output[0],
    output:
        figure(
            "results/partition/{model}/{corpus}/figures/probes_L{layer}{stop}.png",
            "partition/probes",
        ),
        pdf=pdf_of("results/partition/{model}/{corpus}/figures", "probes_L{layer}{stop}"),
    log:
        "results/logs/probe_figure/{model}/{corpus}/L{layer}{stop}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        gpu=0,
    params:
        code=code_hash("actspace.methods.partition.figures"),
    script:
        "../scripts/probe_figure.py"


rule partition_summary:
    input:
        stores=[
            expand(rules.partition_site.output[0], **job)
            for job in partition_sites.partitions(config)
        ],
        probes=[
            expand(rules.probe_partition.output[0], **job)
            for job in partition_sites.probed(config)
        ],
        circuits=[
            expand(rules.subspace_circuit.output[0], **job)
            for job in partition_sites.circuits(config)
        ],
        published=PUBLISHED,
    output:
        "results/summary/partition.json",
    log:
        "results/logs/partition_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        gpu=0,
    params:
        known_circuit=partition_sites.known_circuit_streams(config),
        code=code_hash("actspace.methods.partition.summary"),
    script:
        "../scripts/partition_summary.py"


rule partition:
    input:
        [
            expand(list(rules.partition_figures.output), **job)
            for job in partition_sites.partitions(config)
        ],
        [expand(list(rules.probe_figure.output), **job) for job in partition_sites.probed(config)],
        [
            expand(list(rules.circuit_figure.output), **job)
            for job in partition_sites.circuits(config)
        ],
        rules.partition_summary.output if partition_sites.sites(config) else [],
    localrule: True
