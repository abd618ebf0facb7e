"""Snakemake glue for rule toy_figures (logic: actspace.methods.toys.figures)."""

from actspace.jobs import job
from actspace.methods.toys.figures import toy_figures_job

with job(snakemake):
    toy_figures_job(
        snakemake.wildcards.toy, snakemake.params.entry, **snakemake.input, **snakemake.output
    )
