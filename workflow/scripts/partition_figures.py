"""Snakemake glue for rule partition_figures (logic: actspace.methods.partition.figures)."""

from actspace.jobs import job
from actspace.methods.partition.figures import partition_figure

with job(snakemake):
    partition_figure(snakemake.input[0], snakemake.output[0], snakemake.input.published)
