"""Snakemake glue for rule probe_partition (logic: actspace.methods.partition.job)."""

from actspace.jobs import job
from actspace.methods.partition.job import probe_job

with job(snakemake):
    probe_job(
        snakemake.input.activations,
        snakemake.input.partition,
        snakemake.output[0],
        snakemake.params.test_share,
        snakemake.params.seed,
        snakemake.params.sep,
    )
