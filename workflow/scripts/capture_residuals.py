"""Snakemake glue for rule capture_residuals (logic: actspace.methods.capture.job)."""

from actspace.jobs import job
from actspace.methods.capture.job import capture_job

with job(snakemake):
    capture_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.settings,
    )
