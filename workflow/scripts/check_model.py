"""Snakemake glue for rule check_model (logic: actspace.models.equivalence)."""

from actspace.jobs import job
from actspace.models.equivalence import check_job

with job(snakemake):
    check_job(
        snakemake.input.model,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.settings,
    )
