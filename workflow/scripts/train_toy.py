"""Snakemake glue for rule train_toy (logic: actspace.toys)."""

from actspace.jobs import job
from actspace.toys import train_toy_job

with job(snakemake):
    train_toy_job(snakemake.wildcards.toy, snakemake.params.entry, **snakemake.output)
