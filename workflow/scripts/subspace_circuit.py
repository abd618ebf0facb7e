"""Snakemake glue for rule subspace_circuit (logic: actspace.methods.partition.job)."""

from actspace.jobs import job
from actspace.methods.partition.job import circuit_job

with job(snakemake):
    circuit_job(
        snakemake.input.model,
        snakemake.input.activations,
        snakemake.input.partition_in[0],
        snakemake.input.partition_out[0],
        snakemake.params.block,
        snakemake.output[0],
        snakemake.params.n_streams,
    )
