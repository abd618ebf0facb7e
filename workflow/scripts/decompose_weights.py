"""Snakemake glue for rule decompose_weights (logic: actspace.methods.weights_svd.job)."""

from actspace.jobs import job
from actspace.methods.weights_svd.job import weights_svd_job

with job(snakemake):
    weights_svd_job(
        snakemake.input.model,
        snakemake.output.store,
        snakemake.output.tables,
        snakemake.output.queries,
        snakemake.output.edits,
        snakemake.params.settings,
    )
