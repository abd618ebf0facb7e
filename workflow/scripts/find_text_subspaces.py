"""Snakemake glue for rule find_text_subspaces (logic: actspace.methods.text_subspaces.job)."""

from actspace.jobs import job
from actspace.methods.text_subspaces.job import text_subspaces_job

with job(snakemake):
    text_subspaces_job(
        snakemake.input.model,
        snakemake.input.activations,
        snakemake.input.corpus,
        snakemake.output.store,
        snakemake.output.generations,
        snakemake.params.device,
        snakemake.params.settings,
    )
