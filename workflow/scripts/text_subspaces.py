"""Snakemake glue for rule text_subspaces (logic: actspace.textsub)."""

from actspace.jobs import job
from actspace.textsub import text_subspaces_job

with job(snakemake):
    text_subspaces_job(
        snakemake.input.model,
        snakemake.input.activations,
        snakemake.input.corpus,
        snakemake.output.store,
        snakemake.output.generations,
        device=snakemake.params.device,
        **snakemake.params.settings,
    )
