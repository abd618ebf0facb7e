"""Snakemake glue for rule steering_radius_sweep (logic: actspace.methods.steering.job)."""

from actspace.jobs import job
from actspace.methods.steering.job import radius_sweep_job

with job(snakemake):
    radius_sweep_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.melbo,
        snakemake.params.sweep,
    )
