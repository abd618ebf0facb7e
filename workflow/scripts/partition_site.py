"""Snakemake glue for rule partition_site (logic: actspace.methods.partition.job)."""

from actspace.jobs import job
from actspace.methods.partition.job import partition_job

with job(snakemake):
    partition_job(
        snakemake.input.activations,
        snakemake.output[0],
        snakemake.params.layer,
        snakemake.params.settings,
    )
