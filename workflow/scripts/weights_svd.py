"""Snakemake glue for rule weights_svd (logic: actspace.weights_svd)."""

from actspace.jobs import job
from actspace.weights_svd import weights_svd_job

with job(snakemake):
    weights_svd_job(
        snakemake.input.model,
        snakemake.output.store,
        dict(zip(snakemake.params.kinds, snakemake.output.tables)),
        snakemake.output.queries,
        snakemake.output.edits,
        **snakemake.params.settings,
    )
