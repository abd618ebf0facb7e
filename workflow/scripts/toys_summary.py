"""Snakemake glue for rule toys_summary (logic: actspace.toys)."""

from actspace.jobs import job
from actspace.toys import toys_summary

with job(snakemake):
    toys_summary(snakemake.params.toys, dict(snakemake.input.items()), snakemake.output[0])
