"""Snakemake glue for rule weights_svd_summary (logic: actspace.weights_svd)."""

from actspace.jobs import job
from actspace.summary import write_json
from actspace.weights_svd import weights_svd_summary

with job(snakemake):
    write_json(weights_svd_summary(list(snakemake.input)), snakemake.output[0])
