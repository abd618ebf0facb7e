"""Snakemake glue for rule text_subspaces_figures (logic: actspace.methods.text_subspaces.figures)."""

from actspace.jobs import job
from actspace.methods.text_subspaces.figures import text_subspace_figures

with job(snakemake):
    text_subspace_figures(snakemake.input[0], **snakemake.output)
