"""Snakemake glue for rule steering_generations (logic: actspace.methods.steering.job)."""

from actspace.jobs import job
from actspace.methods.steering.job import generations_job

with job(snakemake):
    generations_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.input.melbo,
        snakemake.input.vectors,
        snakemake.output.jsonl,
        snakemake.output.markdown,
        snakemake.params.device,
        snakemake.params.settings,
    )
