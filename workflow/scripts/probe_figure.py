"""Snakemake glue for rule probe_figure (logic: actspace.methods.partition.figures)."""

from actspace.jobs import job
from actspace.methods.partition.figures import probe_figure

with job(snakemake):
    probe_figure(snakemake.input[0], snakemake.output[0])
