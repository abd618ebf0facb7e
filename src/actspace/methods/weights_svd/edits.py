"""Rank-1 edits: remove one singular direction from a matrix and measure log p(token).

The paper's specificity check: in the matrix whose direction carries a cued token, removing
that direction lowers the token's log-probability more than removing any other direction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actspace.errors import ActspaceError
from actspace.methods.weights_svd.matrices import ov_factors
from actspace.models import ModelAdapter


def _module_weight_slice(adapter: ModelAdapter, kind: str, layer: int, head: int):
    """The stored parameter slice of a matrix and how to map a row-vector-convention delta
    into it (transpose for nn.Linear, none for GPT-2's Conv1D)."""
    block = adapter.blocks[layer]
    gpt2 = adapter.family == "gpt2"
    if kind == "ov":
        dh = adapter.d_head
        if gpt2:
            return block.attn.c_proj.weight[head * dh : (head + 1) * dh, :], False
        return block.self_attn.o_proj.weight[:, head * dh : (head + 1) * dh], True
    modules = {
        "mlp_out": "c_proj" if gpt2 else "down_proj",
        "mlp_in": "c_fc",
        "mlp_gate": "gate_proj",
        "mlp_up": "up_proj",
    }
    return getattr(block.mlp, modules[kind]).weight, not gpt2


@dataclass(frozen=True)
class SingularDirection:
    """One singular pair s u v^T of a decomposed matrix, and where that matrix sits."""

    kind: str
    layer: int
    head: int  # -1 for MLP matrices
    u: torch.Tensor
    s: float
    v: torch.Tensor


def rank_one_delta(adapter: ModelAdapter, direction: SingularDirection) -> torch.Tensor:
    """The change of the stored weight that subtracts s u v^T from the folded matrix.

    For ``ov`` the edit goes into the head's own W_O (V may be shared under GQA):
    with A = diag(g1) W_V, A W_O' = W_OV - s u v^T for W_O' = W_O - pinv(A) (s u) v^T, exact
    because u lies in A's column space. For MLP inputs the folded gain is divided out.
    """
    kind, layer, s, u, v = direction.kind, direction.layer, direction.s, direction.u, direction.v
    if kind == "ov":
        A = ov_factors(adapter, layer, direction.head)[0].double()
        return -torch.outer(torch.linalg.pinv(A) @ (s * u), v)  # (d_head x d_model)
    if kind in ("mlp_in", "mlp_gate", "mlp_up"):
        gain = adapter.block_norm_scales(layer)[1].double()
        return -torch.outer(s * u / gain, v)
    return -torch.outer(s * u, v)


@contextlib.contextmanager
def removed_direction(adapter: ModelAdapter, direction: SingularDirection) -> Iterator[None]:
    """Remove one singular direction (W -> W - s u v^T) for the duration of a ``with`` block;
    the weights are restored bit for bit on exit."""
    target, transposed = _module_weight_slice(
        adapter, direction.kind, direction.layer, direction.head
    )
    delta = rank_one_delta(adapter, direction)
    saved = target.detach().clone()
    with torch.no_grad():
        target += (delta.T if transposed else delta).to(target.dtype)
    try:
        yield
    finally:
        with torch.no_grad():
            target.copy_(saved)


@torch.no_grad()
def token_logprob(adapter: ModelAdapter, prompt: str, token_id: int) -> float:
    """log p(token | prompt) at the last position."""
    ids = adapter.tokenizer(prompt, return_tensors="pt")["input_ids"].to(adapter.device)
    return float(adapter.model(ids).logits[0, -1].log_softmax(-1)[token_id])


def edit_effects(
    adapter: ModelAdapter, result: dict[str, Any], matrix: int, prompt: str, token_id: int
) -> tuple[float, np.ndarray]:
    """Baseline log p(token | prompt) and its change after removing each stored direction
    of matrix number ``matrix`` of one kind's ``result``."""
    layer, head = (int(x) for x in result["index"][matrix])
    kind = result["kind"]
    baseline = token_logprob(adapter, prompt, token_id)
    changes = []
    for i in range(result["Vh"].shape[1]):
        direction = SingularDirection(
            kind,
            layer,
            head,
            u=torch.as_tensor(result["U"][matrix][:, i]),
            s=float(result["S"][matrix][i]),
            v=torch.as_tensor(result["Vh"][matrix][i]),
        )
        with removed_direction(adapter, direction):
            changes.append(token_logprob(adapter, prompt, token_id) - baseline)
    return baseline, np.array(changes)


def edit_candidates(
    results: dict[str, dict[str, Any]], token_id: int, limit: int
) -> list[tuple[str, int, int]]:
    """(kind, matrix, direction) of every written matrix (OV heads, MLP outputs) with a
    direction whose top tokens, at either end, contain the cued token; one direction per
    matrix (the one ranking the token highest), best-ranked first, at most ``limit``."""
    found: dict[tuple[str, int], tuple[tuple, int]] = {}
    for kind in ("ov", "mlp_out"):
        if kind not in results:
            continue
        ids = results[kind]["top_tokens"]  # (n, k, 2, k_tokens)
        for m, d, _sign, rank in zip(*np.nonzero(ids == token_id)):
            key = (int(rank), -float(results[kind]["S"][m][d]))
            if (kind, int(m)) not in found or key < found[(kind, int(m))][0]:
                found[(kind, int(m))] = (key, int(d))
    if not found:
        raise ActspaceError(
            f"token id {token_id} is in no stored top-token list; raise k_tokens or k_dirs"
        )
    ordered = sorted(found.items(), key=lambda item: item[1][0])[:limit]
    return [(kind, m, d) for (kind, m), (_key, d) in ordered]


def evaluate_edits(
    adapter: ModelAdapter,
    results: dict[str, dict[str, Any]],
    prompt: str,
    token: str,
    max_matrices: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Remove, one at a time, each stored direction of every candidate matrix
    (:func:`edit_candidates`) and record the change in log p(token | prompt).

    The paper's specificity effect: in the matrix whose direction carries the cued token,
    removing that direction lowers the token's log-probability more than removing any other
    direction. Returns the store attributes (the best candidate at the top level: lowest
    rank of the cued direction's effect, then largest drop; all candidates under
    ``candidates``) and one CSV row per removed direction.
    """
    token_ids = adapter.tokenizer(token, add_special_tokens=False)["input_ids"]
    if not token_ids:
        raise ActspaceError(f"weights_svd.edit.token {token!r} encodes to no token")
    token_id = token_ids[0]
    candidates, rows = [], []
    for kind, m, target in edit_candidates(results, token_id, max_matrices):
        result = {**results[kind], "kind": kind}
        baseline, changes = edit_effects(adapter, result, m, prompt, token_id)
        layer, head = (int(x) for x in results[kind]["index"][m])
        rows += [
            {
                "kind": kind,
                "layer": layer,
                "head": head,
                "direction": i,
                "logprob_change": c,
                "cued": int(i == target),
            }
            for i, c in enumerate(changes)
        ]
        candidates.append(
            {
                "kind": kind,
                "layer": layer,
                "head": head,
                "target_direction": target,
                "target_change": float(changes[target]),
                "median_other_change": float(np.median(np.delete(changes, target))),
                "target_rank": int((changes < changes[target]).sum()) + 1,
            }
        )
    best = min(candidates, key=lambda c: (c["target_rank"], c["target_change"]))
    attrs = {
        "prompt": prompt,
        "token": token,
        "token_id": int(token_id),
        "baseline_logprob": baseline,
        **best,
        "candidates": candidates,
        "matrices_where_cued_is_largest_drop": sum(c["target_rank"] == 1 for c in candidates),
    }
    return attrs, rows
