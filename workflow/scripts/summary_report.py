"""Snakemake glue for rule summary_report (logic: actspace.summary)."""

from actspace.jobs import job
from actspace.summary import assemble

with job(snakemake):
    assemble(list(snakemake.input), snakemake.output[0])
