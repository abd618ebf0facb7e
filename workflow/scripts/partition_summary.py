"""Snakemake glue for rule partition_summary (logic: actspace.methods.partition.summary)."""

from actspace.jobs import job
from actspace.methods.partition.summary import partition_summary
from actspace.store import write_json

with job(snakemake):
    summary = partition_summary(
        list(snakemake.input.stores),
        list(snakemake.input.probes),
        list(snakemake.input.circuits),
        snakemake.input.published,
        snakemake.params.known_circuit,
    )
    write_json(summary, snakemake.output[0])
