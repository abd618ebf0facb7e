"""Snakemake glue for rule steering_figures (logic: actspace.methods.steering.figures)."""

from actspace.jobs import figure_outputs, job
from actspace.methods.steering.figures import steering_figures

with job(snakemake):
    steering_figures(
        snakemake.input.melbo,
        snakemake.input.vectors,
        snakemake.input.unsteered,
        snakemake.input.sweep,
        figure_outputs(snakemake),
        snakemake.input.published,
    )
