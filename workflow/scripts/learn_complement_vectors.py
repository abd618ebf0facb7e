"""Snakemake glue for rule learn_complement_vectors (logic: actspace.methods.steering.complement)."""

from actspace.jobs import job
from actspace.methods.steering.complement import complement_job

with job(snakemake):
    complement_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.input.melbo,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.settings,
        snakemake.params.complement["combination_ns"],
    )
