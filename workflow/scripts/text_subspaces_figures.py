"""Snakemake glue for rule text_subspaces_figures (logic: actspace.plots)."""

from actspace.jobs import job
from actspace.plots import text_subspace_figures

with job(snakemake):
    text_subspace_figures(snakemake.input[0], **snakemake.output)
