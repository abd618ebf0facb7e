"""Snakemake glue for rule regions_figures (logic: actspace.methods.regions.figures)."""

from actspace.jobs import job
from actspace.methods.regions.figures import run_figures

with job(snakemake):
    run_figures(snakemake.input.store, dict(snakemake.output.items()), snakemake.input.published)
