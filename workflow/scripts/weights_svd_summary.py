"""Snakemake glue for rule weights_svd_summary (logic: actspace.methods.weights_svd.summary)."""

from actspace.jobs import job
from actspace.methods.weights_svd.summary import weights_svd_summary
from actspace.store import write_json

with job(snakemake):
    summary = weights_svd_summary(list(snakemake.input.stores), snakemake.input.published)
    write_json(summary, snakemake.output[0])
