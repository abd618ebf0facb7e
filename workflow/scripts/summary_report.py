"""Snakemake glue for rule summary_report (logic: actspace.reporting.page)."""

from actspace.jobs import job
from actspace.reporting.page import assemble

with job(snakemake):
    assemble(
        list(snakemake.input),
        snakemake.output.markdown,
        snakemake.output.page,
        snakemake.output.table,
    )
