"""Snakemake glue for rule capture_summary (logic: actspace.summary)."""

from actspace.jobs import job
from actspace.summary import capture_summary, write_json

with job(snakemake):
    write_json(capture_summary(list(snakemake.input)), snakemake.output[0])
