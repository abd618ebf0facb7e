"""Snakemake glue for rule regions_overview (logic: actspace.methods.regions.figures)."""

from actspace.jobs import job
from actspace.methods.regions.figures import overview_figures

with job(snakemake):
    overview_figures(
        list(snakemake.input.stores),
        snakemake.params.series,
        dict(snakemake.output.items()),
        snakemake.input.published,
    )
