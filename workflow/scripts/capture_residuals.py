"""Snakemake glue for rule capture_residuals (logic: actspace.capture)."""

from actspace.capture import capture_job
from actspace.jobs import job

with job(snakemake):
    capture_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.output[0],
        device=snakemake.params.device,
        **snakemake.params.settings,
    )
