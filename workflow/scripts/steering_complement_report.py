"""Snakemake glue for rule steering_complement_report (logic: actspace.methods.steering.summary
and .figures)."""

from actspace.jobs import figure_outputs, job
from actspace.methods.steering.figures import ortho_figures
from actspace.methods.steering.summary import complement_summary

with job(snakemake):
    complement_summary(
        snakemake.input.vectors,
        snakemake.input.unsteered,
        snakemake.output.summary,
        snakemake.input.published,
    )
    figures = {k: v for k, v in figure_outputs(snakemake).items() if k != "summary"}
    ortho_figures(
        snakemake.input.vectors, snakemake.input.unsteered, figures, snakemake.input.published
    )
