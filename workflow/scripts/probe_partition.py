"""Snakemake glue for rule probe_partition (logic: actspace.methods.partition.probe_job)."""

from actspace.jobs import job
from actspace.methods.partition.probe_job import probe_job

with job(snakemake):
    probe_job(
        snakemake.input.activations,
        snakemake.input.partition,
        snakemake.output[0],
        snakemake.params.test_share,
        snakemake.params.seed,
        snakemake.params.sep,
        snakemake.params.n_tokens,
    )
