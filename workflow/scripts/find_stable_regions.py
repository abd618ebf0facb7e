"""Snakemake glue for rule find_stable_regions (logic: actspace.methods.regions.job)."""

from actspace.jobs import job
from actspace.methods.regions.job import regions_job

with job(snakemake):
    regions_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.input.checkpoints[0] if snakemake.input.checkpoints else None,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.settings,
    )
