"""Snakemake glue for rule capture_summary (logic: actspace.capture)."""

from actspace.capture import capture_summary
from actspace.jobs import job
from actspace.summary import write_json

with job(snakemake):
    write_json(capture_summary(list(snakemake.input)), snakemake.output[0])
