"""Snakemake glue for rule toys_summary (logic: actspace.methods.toys.summary)."""

from actspace.jobs import job
from actspace.methods.toys.summary import toys_summary
from actspace.store import write_json

with job(snakemake):
    summary = toys_summary(
        snakemake.params.toys,
        list(snakemake.input.metrics),
        list(snakemake.input.heads),
        snakemake.input.published,
    )
    write_json(summary, snakemake.output[0])
