"""Snakemake glue for rule toy_figures (logic: actspace.methods.toys.figures)."""

from actspace.jobs import figure_outputs, job
from actspace.methods.toys.figures import toy_figures_job

with job(snakemake):
    toy_figures_job(
        snakemake.wildcards.toy,
        snakemake.params.entry,
        **snakemake.input,
        **figure_outputs(snakemake),
    )
