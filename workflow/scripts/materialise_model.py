"""Snakemake glue for rule materialise_model (logic: actspace.models.sources)."""

from actspace.jobs import job
from actspace.models.sources import materialise

with job(snakemake):
    toy_dir = getattr(snakemake.input, "toy", None)
    materialise(snakemake.wildcards.model, snakemake.params.spec, snakemake.output[0], toy_dir)
