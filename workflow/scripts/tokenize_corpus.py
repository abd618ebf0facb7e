"""Snakemake glue for rule tokenize_corpus (logic: actspace.corpora)."""

from actspace.corpora import build_corpus
from actspace.jobs import job

with job(snakemake):
    build_corpus(
        snakemake.wildcards.corpus,
        snakemake.params.spec,
        snakemake.input.model,
        snakemake.output[0],
        device=snakemake.params.device,
    )
