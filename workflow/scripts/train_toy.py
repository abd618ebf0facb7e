"""Snakemake glue for rule train_toy (logic: actspace.methods.toys.job)."""

from actspace.jobs import job
from actspace.methods.toys.job import train_toy_job

with job(snakemake):
    train_toy_job(snakemake.wildcards.toy, snakemake.params.entry, **snakemake.output)
