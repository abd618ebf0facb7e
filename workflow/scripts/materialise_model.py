"""Snakemake glue for rule materialise_model (logic: actspace.models.sources)."""

from actspace.jobs import job
from actspace.models.sources import materialise

with job(snakemake):
    materialise(snakemake.wildcards.model, snakemake.params.spec, snakemake.output[0])
