"""Projected forward passes: every residual write f(x) replaced by f(x) P (per text).

A pass under P_k with k = d is the unprojected model (tested); the NLL is the mean over
each text's tokens after the first, padding masked out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from actspace.data.batching import right_pad
from actspace.data.generation import greedy, pad_token_id
from actspace.methods.text_subspaces.math import projector
from actspace.models import ModelAdapter


def _projection_hooks(adapter: ModelAdapter, projectors: torch.Tensor) -> dict:
    """Hooks replacing each attention and MLP write f(x) by f(x) @ P (one P per batch row)."""

    def project(x: torch.Tensor, _name: str) -> torch.Tensor:
        return torch.bmm(x, projectors.to(x.dtype))

    hooks = {}
    for layer in range(adapter.n_layers):
        hooks[f"blocks.{layer}.hook_attn_out"] = project
        hooks[f"blocks.{layer}.hook_mlp_out"] = project
    return hooks


@torch.no_grad()
def projected_nll(
    adapter: ModelAdapter, texts: Sequence[np.ndarray], projectors: torch.Tensor | None
) -> np.ndarray:
    """Mean NLL (nats per token, over each text's tokens after the first) under projection.

    ``projectors`` is (batch, d, d), one per text, or None for the unprojected model. Texts
    are right-padded; padding is masked out of the loss.
    """
    ids, mask = right_pad(texts, pad_token_id(adapter.tokenizer))  # masked out of the loss
    ids, mask = ids.to(adapter.device), mask.to(adapter.device)
    hooks = {} if projectors is None else _projection_hooks(adapter, projectors.to(adapter.device))
    with adapter.hooks(hooks):
        logits = adapter.model(input_ids=ids, attention_mask=mask).logits.float()
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    weights = mask[:, 1:].float()
    return ((losses * weights).sum(1) / weights.sum(1)).cpu().numpy()


def batched_nll(
    adapter: ModelAdapter,
    texts: Sequence[np.ndarray],
    bases: Sequence[torch.Tensor] | None,
    ks: np.ndarray | None,
    batch_size: int,
) -> np.ndarray:
    """:func:`projected_nll` of ``texts[i]`` under P_{ks[i]} of ``bases[i]``, in batches."""
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = range(start, min(start + batch_size, len(texts)))
        projectors = None
        if bases is not None:
            projectors = torch.stack([projector(bases[i], int(ks[i])) for i in chunk]).float()
        out.append(projected_nll(adapter, [texts[i] for i in chunk], projectors))
    return np.concatenate(out) if out else np.zeros(0)


def generate_projected(
    adapter: ModelAdapter, prompt: np.ndarray, P: torch.Tensor | None, n_new: int
) -> list[int]:
    """Greedy continuation of ``prompt`` (new tokens only) with every residual write
    projected by ``P`` (None: the unprojected model)."""
    hooks = {} if P is None else _projection_hooks(adapter, P[None].float().to(adapter.device))
    with adapter.hooks(hooks):
        return greedy(adapter, prompt.tolist(), n_new)[len(prompt) :]
