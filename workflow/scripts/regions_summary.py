"""Snakemake glue for rule regions_summary (logic: actspace.methods.regions.summary)."""

from actspace.jobs import job
from actspace.methods.regions.summary import regions_summary
from actspace.store import write_json

with job(snakemake):
    summary = regions_summary(
        list(snakemake.input.stores), snakemake.params.toys, snakemake.input.published
    )
    write_json(summary, snakemake.output[0])
