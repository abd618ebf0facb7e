"""Snakemake glue for rule toy_search (logic: actspace.methods.toys.job)."""

from actspace.jobs import job
from actspace.methods.toys.job import toy_search_job

with job(snakemake):
    toy_search_job(snakemake.wildcards.toy, snakemake.params.entry, snakemake.output[0])
