"""Snakemake glue for rule tokenize_corpus (logic: actspace.data.corpora)."""

from actspace.data.corpora import build_corpus
from actspace.jobs import job

with job(snakemake):
    build_corpus(
        snakemake.wildcards.corpus,
        snakemake.params.spec,
        snakemake.input.model,
        snakemake.output[0],
        snakemake.params.device,
    )
