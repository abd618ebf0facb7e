"""Snakemake glue for rule capture_summary (logic: actspace.methods.capture.summary)."""

from actspace.jobs import job
from actspace.methods.capture.summary import capture_summary
from actspace.store import write_json

with job(snakemake):
    write_json(
        capture_summary(list(snakemake.input.stores), list(snakemake.input.checks)),
        snakemake.output[0],
    )
