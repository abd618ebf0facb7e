"""Snakemake glue for rule learn_melbo (logic: actspace.methods.steering.job)."""

from actspace.jobs import job
from actspace.methods.steering.job import melbo_job

with job(snakemake):
    melbo_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.wildcards.run,
        snakemake.params.settings,
    )
