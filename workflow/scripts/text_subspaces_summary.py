"""Snakemake glue for rule text_subspaces_summary (logic: actspace.methods.text_subspaces.summary)."""

from actspace.jobs import job
from actspace.methods.text_subspaces.summary import text_subspaces_summary
from actspace.store import write_json

with job(snakemake):
    summary = text_subspaces_summary(list(snakemake.input.stores), snakemake.input.published)
    write_json(summary, snakemake.output[0])
