"""Snakemake glue for rule text_subspaces_summary (logic: actspace.textsub)."""

from actspace.jobs import job
from actspace.summary import write_json
from actspace.textsub import text_subspaces_summary

with job(snakemake):
    write_json(text_subspaces_summary(list(snakemake.input)), snakemake.output[0])
