"""Snakemake glue for rule toy_figures (logic: actspace.toys, actspace.plots)."""

from actspace.jobs import job
from actspace.toys import toy_figures_job

with job(snakemake):
    toy_figures_job(
        snakemake.wildcards.toy, snakemake.params.entry, **snakemake.input, **snakemake.output
    )
