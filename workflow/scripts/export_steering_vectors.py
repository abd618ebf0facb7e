"""Snakemake glue for rule export_steering_vectors (logic: actspace.methods.steering.job)."""

from actspace.jobs import job
from actspace.methods.steering.job import export_vectors_job

with job(snakemake):
    export_vectors_job(
        snakemake.input.melbo,
        snakemake.input.vectors,
        snakemake.wildcards.model,
        snakemake.output[0],
    )
