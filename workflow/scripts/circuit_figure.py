"""Snakemake glue for rule circuit_figure (logic: actspace.methods.partition.figures)."""

from actspace.jobs import job
from actspace.methods.partition.figures import circuit_figure

with job(snakemake):
    circuit_figure(snakemake.input[0], snakemake.output[0])
