"""Snakemake glue for rule text_subspaces_figures (logic: actspace.methods.text_subspaces.figures)."""

from actspace.jobs import figure_outputs, job
from actspace.methods.text_subspaces.figures import text_subspace_figures

with job(snakemake):
    text_subspace_figures(
        snakemake.input.store, **figure_outputs(snakemake), published=snakemake.input.published
    )
