"""Snakemake glue for rule weights_svd_figures (logic: actspace.methods.weights_svd.figures)."""

from actspace.jobs import figure_outputs, job
from actspace.methods.weights_svd.figures import weights_svd_figures

with job(snakemake):
    weights_svd_figures(
        snakemake.input.store,
        snakemake.input.tables,
        snakemake.input.edits,
        **figure_outputs(snakemake),
        published=snakemake.input.published,
    )
