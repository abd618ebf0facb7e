"""Snakemake glue for rule steering_unsteered_kl (logic: actspace.methods.steering.baseline)."""

from actspace.jobs import job
from actspace.methods.steering.baseline import unsteered_kl_job

with job(snakemake):
    unsteered_kl_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.input.vectors,
        snakemake.output[0],
        snakemake.params.device,
    )
