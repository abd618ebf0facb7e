"""Snakemake glue for rule weights_svd_figures (logic: actspace.plots)."""

from actspace.jobs import job
from actspace.plots import weights_svd_figures

with job(snakemake):
    weights_svd_figures(
        snakemake.input.store,
        dict(zip(snakemake.params.kinds, snakemake.input.tables)),
        snakemake.input.edits,
        **snakemake.output,
    )
