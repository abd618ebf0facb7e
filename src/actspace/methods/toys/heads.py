"""Head scores of the toys (attention patterns in, one score per head out).

Head scores (attention ``A[q, k]`` of one head, pooled over held-out sequences):

``induction_score``
    mean over queries ``q`` with an earlier ``j``, ``tok[j] = tok[q]``, ``j + 1 < q`` of the
    attention on the token after each such ``j`` (``sum_j A[q, j+1]``);
``prev_token_score``
    mean over first-copy positions ``q >= 2`` of ``A[q, q-1]``;
``bigram_score``
    mean over ``q`` whose bigram ``(tok[q-1], tok[q])`` occurred earlier at ``(j-1, j)`` of
    ``A[q, j+1]``;
``decoy_mass``
    over the same ``q``, the attention on ``j'+1`` for every other ``j'`` with
    ``tok[j'] = tok[q]`` (the plain-induction targets that a bigram head must avoid).
"""

from __future__ import annotations

import torch

SCORES = ("induction_score", "prev_token_score", "bigram_score", "decoy_mass")


def _data_query_mask(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return tokens < vocab


def induction_targets(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, T, T) mask: ``[b, q, k]`` true when ``k = j + 1`` for an earlier ``j`` with
    ``tok[j] = tok[q]`` and ``j + 1 < q`` (``q`` a data token)."""
    _, width = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # [b, q, j]
    q = torch.arange(width)[:, None]
    j = torch.arange(width)[None, :]
    match = same & (j + 1 < q) & _data_query_mask(tokens, vocab)[:, :, None]
    targets = torch.zeros_like(match)
    targets[:, :, 1:] = match[:, :, :-1]
    return targets


def bigram_targets(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, T, T) mask: ``[b, q, k]`` true when ``k = j + 1`` and ``(tok[j-1], tok[j])`` equals
    ``(tok[q-1], tok[q])`` with ``j + 1 < q`` (both tokens of the query's bigram data tokens)."""
    same = tokens[:, :, None] == tokens[:, None, :]
    prev_same = torch.zeros_like(same)
    prev_same[:, 1:, 1:] = same[:, :-1, :-1]  # tok[q-1] == tok[j-1]
    data = _data_query_mask(tokens, vocab)
    query_ok = data.clone()
    query_ok[:, 0] = False
    query_ok[:, 1:] &= data[:, :-1]
    width = tokens.shape[1]
    q = torch.arange(width)[:, None]
    j = torch.arange(width)[None, :]
    match = same & prev_same & (j + 1 < q) & (j >= 1) & query_ok[:, :, None]
    targets = torch.zeros_like(match)
    targets[:, :, 1:] = match[:, :, :-1]
    return targets


def first_copy_prev_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, T, T) mask of ``[q, q-1]`` for first-copy positions ``2 <= q <= L`` (x at 1..L)."""
    q = torch.arange(width)
    rows = (q[None, :] >= 2) & (q[None, :] <= lengths[:, None])  # (B, T)
    mask = torch.zeros(len(lengths), width, width, dtype=torch.bool)
    idx = torch.arange(1, width)
    mask[:, idx, idx - 1] = rows[:, 1:]
    return mask


def _pooled(attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per head: mean over queries with any target of the attention mass on the targets.

    ``attn`` (B, H, T, T), ``targets`` (B, T, T) -> (H,), NaN where no query qualifies.
    """
    return _pooled_over(attn, targets, targets.any(-1))


def head_scores(
    attn: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, vocab: int
) -> dict[str, torch.Tensor]:
    """The four head scores of every head of one layer (see the module docstring).

    ``attn`` (B, H, T, T) attention of one layer, ``tokens`` (B, T), ``lengths`` (B,) of x.
    """
    induction = induction_targets(tokens, vocab)
    bigram = bigram_targets(tokens, vocab)
    bigram_queries = bigram.any(-1, keepdim=True)
    decoys = induction & ~bigram & bigram_queries
    return {
        "induction_score": _pooled(attn, induction),
        "prev_token_score": _pooled(attn, first_copy_prev_mask(lengths, tokens.shape[1])),
        "bigram_score": _pooled(attn, bigram),
        "decoy_mass": _pooled_over(attn, decoys, bigram_queries.squeeze(-1)),
    }


def _pooled_over(attn: torch.Tensor, targets: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Attention mass on ``targets`` per head, averaged over ``queries`` (B, T), including
    queries that have no target."""
    count = queries.sum()
    if count == 0:
        return torch.full((attn.shape[1],), float("nan"))
    mass = (attn * targets[:, None].to(attn.dtype)).sum(-1)
    return (mass * queries[:, None].to(attn.dtype)).sum((0, 2)) / count
