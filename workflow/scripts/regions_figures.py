"""Snakemake glue for rule regions_figures (logic: actspace.methods.regions.figures)."""

from actspace.jobs import figure_outputs, job
from actspace.methods.regions.figures import run_figures

with job(snakemake):
    run_figures(snakemake.input.store, figure_outputs(snakemake), snakemake.input.published)
