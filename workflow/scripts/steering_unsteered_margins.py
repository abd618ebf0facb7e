"""Snakemake glue for rule steering_unsteered_margins (logic: actspace.methods.steering.margins)."""

from actspace.jobs import job
from actspace.methods.steering.margins import margins_job

with job(snakemake):
    margins_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.input.melbo,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.tokens,
    )
