"""The unsteered prompts' KL to theta_0: the level below which an orthogonal vector's KL no
longer says "theta_0's effect" rather than "hardly any effect".

MELBO-ortho scores theta_i by KL(P_i || P_0) at each prompt's last token, against a random
control of theta_i's norm (Goldman-Wetzler 2024, ``shared/papers/003``). When theta_0 itself
moves the distribution little, a vector of small norm sits close to P_0 merely because it
sits close to the unsteered P; so the complement's late vectors, whose norms shrink, can beat
their (equally small) controls without carrying theta_0's effect. This job stores
KL(P_unsteered || P_0) (and the other direction) per prompt, so the summaries and figures
count vectors against that level too.

A job of its own (not part of :func:`~actspace.methods.steering.job.ortho_job`), so that
adding it left the stored MELBO-ortho runs, hours for the whole complement, current.

Store ``results/steering/{model}/{run}/unsteered_kl.zarr``: ``kl_i_to_0`` (P,)
KL(P_unsteered || P_0) per prompt (the orientation of the vectors' ``kl_i_to_0``),
``kl_0_to_i`` (P,) the other direction; attrs: their means, theta_0's norm, the blocks.
"""

from __future__ import annotations

import torch

from actspace.methods.steering.job import batch_of, frozen_model, read_prompts, steering_attrs
from actspace.methods.steering.math import kl_divergences
from actspace.methods.steering.passes import PromptBatch, steered_last_logprobs
from actspace.models import ModelAdapter
from actspace.store import atomic_store, open_store


@torch.no_grad()
def unsteered_kl(
    adapter: ModelAdapter, prompts: PromptBatch, theta0: torch.Tensor, source: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prompt (KL(P_unsteered || P_0), KL(P_0 || P_unsteered)) at its last token, P_0
    steered by ``theta0`` after block ``source`` exactly as the MELBO-ortho job's."""
    base = steered_last_logprobs(adapter, prompts, theta0[None], source)[0]
    plain = steered_last_logprobs(adapter, prompts, None, source)[0]
    return kl_divergences(plain, base)


def unsteered_kl_job(
    model_dir: str, corpus_store: str, ortho_store: str, out: str, device: str
) -> None:
    """:func:`unsteered_kl` for the theta_0 of a MELBO-ortho store (module docstring)."""
    ortho = open_store(ortho_store, ["base_vector"])
    source, target = int(ortho.attrs["source_block"]), int(ortho.attrs["target_block"])
    theta0 = torch.as_tensor(ortho["base_vector"][:])
    adapter = frozen_model(model_dir, device)
    docs, _ = read_prompts(corpus_store)
    forward, backward = unsteered_kl(adapter, batch_of(adapter, docs), theta0, source)
    attrs = steering_attrs(
        adapter,
        source,
        target,
        kind="unsteered-kl",
        run=ortho.attrs["run"],
        base_norm=float(theta0.norm()),
        kl_i_to_0=float(forward.mean()),
        kl_0_to_i=float(backward.mean()),
    )
    with atomic_store(out, attrs) as group:
        group.create_array("kl_i_to_0", data=forward.numpy())
        group.create_array("kl_0_to_i", data=backward.numpy())
