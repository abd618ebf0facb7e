"""Snakemake glue for rule steering_summary (logic: actspace.methods.steering.summary)."""

from actspace.jobs import job
from actspace.methods.steering.summary import steering_summary
from actspace.store import write_json

with job(snakemake):
    summary = steering_summary(
        list(snakemake.input.melbo),
        list(snakemake.input.vectors),
        list(snakemake.input.unsteered),
        list(snakemake.input.generations),
        list(snakemake.input.sweeps),
        list(snakemake.input.margins),
        snakemake.input.published,
    )
    write_json(summary, snakemake.output[0])
