"""Snakemake glue for rule learn_orthogonal_vectors (logic: actspace.methods.steering.job)."""

from actspace.jobs import job
from actspace.methods.steering.job import ortho_job

with job(snakemake):
    ortho_job(
        snakemake.input.model,
        snakemake.input.corpus,
        snakemake.input.melbo,
        snakemake.output[0],
        snakemake.params.device,
        snakemake.params.settings,
    )
