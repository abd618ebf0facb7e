"""Snakemake glue for rule toy_search (logic: actspace.toys)."""

from actspace.jobs import job
from actspace.toys import toy_search_job

with job(snakemake):
    toy_search_job(snakemake.wildcards.toy, snakemake.params.entry, snakemake.output[0])
