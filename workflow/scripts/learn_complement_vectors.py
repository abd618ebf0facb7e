"""Snakemake glue for rule learn_complement_vectors (logic: actspace.methods.steering.complement)."""

from actspace.jobs import job
from actspace.methods.steering.complement import complement_job

with job(snakemake):
    complement_job(
        model_dir=snakemake.input.model,
        corpus_store=snakemake.input.corpus,
        melbo_store=snakemake.input.melbo,
        out=snakemake.output[0],
        device=snakemake.params.device,
        settings=snakemake.params.settings,
        combination_ns=snakemake.params.complement["combination_ns"],
    )
