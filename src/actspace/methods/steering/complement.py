"""MELBO-ortho over the whole orthogonal complement of theta_0 (named target
``steering_complement``, outside the default run).

The published run searched all 2047 directions orthogonal to theta_0 in Qwen1.5-1.8B-Chat
and found 1558 non-zero vectors, the first ~700 with low KL (Goldman-Wetzler 2024,
``shared/papers/003``). The default run searches ``ortho.n_max`` of them for time; this job
searches all ``d_model - 1`` with the run's other ortho settings (same theta_0, seed and
blocks, so its first vectors are the default run's, bit for bit, up to the last full block)
and resumes from its checkpoint after every block when killed (a run of hours).

Store ``results/steering/{model}/{run}/complement.zarr``: the arrays of ``vectors.zarr``
(:mod:`actspace.methods.steering.job`); its summary and figures:
:func:`actspace.methods.steering.summary.complement_summary`,
:func:`actspace.methods.steering.figures.ortho_figures`.
"""

from __future__ import annotations

from typing import Any

from actspace.methods.steering.job import ortho_job
from actspace.store import open_store


def complement_settings(ortho: dict[str, Any], d_model: int, combination_ns: list[int]) -> dict:
    """A run's ortho settings searching the whole complement (``n_max = d_model - 1``), with
    the complement's grid of combinations."""
    return {**ortho, "n_max": d_model - 1, "combination_ns": list(combination_ns)}


def complement_job(
    model_dir: str,
    corpus_store: str,
    melbo_store: str,
    out: str,
    device: str,
    settings: dict,
    combination_ns: list[int],
) -> None:
    """MELBO-ortho (:func:`~actspace.methods.steering.job.ortho_job`) up to d_model - 1
    vectors: until the complement is exhausted or the norms collapse."""
    d_model = int(open_store(melbo_store).attrs["d_model"])
    ortho_job(
        model_dir,
        corpus_store,
        melbo_store,
        out,
        device,
        complement_settings(settings, d_model, combination_ns),
    )
