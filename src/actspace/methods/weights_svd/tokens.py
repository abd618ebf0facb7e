"""Singular directions in token space: top tokens, their neighbourhood coherence, and the
query locator (SVD tracing with the pseudo-inverse embedding), Millidge & Black 2022."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actspace.errors import ActspaceError
from actspace.models import ModelAdapter


def unembedding(adapter: ModelAdapter, fold_final_norm: bool, center: bool) -> torch.Tensor:
    """The (d_model x vocab) map from directions to token scores, as configured."""
    W_U = adapter.W_U.double()
    if fold_final_norm:
        W_U = adapter.norm_scale(adapter.final_norm).double()[:, None] * W_U
    if center:
        W_U = W_U - W_U.mean(dim=1, keepdim=True)
    return W_U


def top_tokens(
    directions: torch.Tensor, W_U: torch.Tensor, k_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and scores of the top ``k_tokens`` of each direction, both ends.

    Returns ids (n, 2, k_tokens) and scores (n, 2, k_tokens); [:, 0] is the positive end
    (largest ``direction @ W_U``), [:, 1] the negative end (largest ``-direction @ W_U``).
    """
    ids, scores = [], []
    for start in range(0, len(directions), 256):
        logits = directions[start : start + 256].double() @ W_U
        pos = logits.topk(k_tokens, dim=1)
        neg = (-logits).topk(k_tokens, dim=1)
        ids.append(torch.stack([pos.indices, neg.indices], dim=1))
        scores.append(torch.stack([pos.values, neg.values], dim=1))
    return torch.cat(ids), torch.cat(scores)


@dataclass(frozen=True)
class TokenNeighbourhoods:
    """Unit token embeddings and each token's neighbourhood radius: the cosine similarity of
    its ``k``-th nearest other token."""

    unit: torch.Tensor  # (vocab, d)
    radius: torch.Tensor  # (vocab,)
    k: int


def token_neighbourhoods(W_E: torch.Tensor, k: int, chunk: int = 2048) -> TokenNeighbourhoods:
    """The ``k``-nearest-neighbour radius of every token in cosine similarity of embeddings.

    The vocabulary is compared with itself in chunks (vocab x chunk similarities at a time).
    """
    unit = torch.nn.functional.normalize(W_E.float(), dim=1)
    k = min(k, len(unit) - 1)
    radius = torch.empty(len(unit))
    for start in range(0, len(unit), chunk):
        sims = unit[start : start + chunk] @ unit.T
        sims[torch.arange(len(sims)), torch.arange(start, start + len(sims))] = -2.0  # not self
        radius[start : start + chunk] = sims.topk(k, dim=1).values[:, -1]
    return TokenNeighbourhoods(unit, radius, k)


def coherence(token_ids: torch.Tensor, hoods: TokenNeighbourhoods) -> torch.Tensor:
    """Neighbourhood coherence of each token set (..., n): the fraction of ordered pairs
    (a, b), a != b, where b is among a's ``k`` nearest tokens in embedding space.

    Rank-based on purpose: raw cosines of LM embeddings are dominated by a few shared
    directions (anisotropy), so a mean cosine scores every top-token list alike; being among
    each other's nearest neighbours is what "these tokens mean related things" looks like.
    A random set scores about k / vocab; a set of synonyms or word forms scores near 1.
    """
    vectors = hoods.unit[token_ids]  # (..., n, d)
    gram = vectors @ vectors.transpose(-1, -2)
    same = token_ids[..., :, None] == token_ids[..., None, :]  # a repeat is its own neighbour
    near = (gram >= hoods.radius[token_ids][..., None]) | same
    n = token_ids.shape[-1]
    near &= ~torch.eye(n, dtype=torch.bool)
    return near.sum((-1, -2)).double() / (n * (n - 1))


def coherence_null(
    W_U: torch.Tensor,
    hoods: TokenNeighbourhoods,
    k_tokens: int,
    n: int,
    seed: int,
    quantile: float,
) -> dict[str, float]:
    """Mean, std and ``quantile`` of :func:`coherence` for the top tokens of random directions,
    and that quantile as a z-score (``threshold_z``: the coherence bar).

    The null is random *directions*, not random token sets: with tied embeddings the top
    tokens of any direction resemble each other by construction.
    """
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, W_U.shape[0], generator=generator, dtype=torch.float64)
    ids, _ = top_tokens(directions, W_U, k_tokens)
    values = coherence(ids, hoods).flatten()
    mean, std = float(values.mean()), max(float(values.std()), 1e-9)
    bar = float(torch.quantile(values, quantile))
    return {
        "mean": mean,
        "std": std,
        "quantile": quantile,
        "threshold_z": (bar - mean) / std,
        "neighbours": hoods.k,
    }


def pseudo_inverse_embedding(W_U: torch.Tensor) -> torch.Tensor:
    """pinv(W_U): (vocab x d_model); row t is the direction whose token scores are closest
    (least squares) to the indicator of token t. Embeds queries better than W_E (paper)."""
    return torch.linalg.pinv(W_U.double())


def query_vector(words: Sequence[str], tokenizer: Any, pinv: torch.Tensor) -> torch.Tensor:
    """Mean pseudo-inverse embedding of the first token of each word (with and without a
    leading space, as a tokenizer splits words at the start of a text and inside it)."""
    ids = set()
    for word in words:
        for variant in (word, " " + word.strip()):
            tokens = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(tokens[0])
    if not ids:
        raise ActspaceError(f"no tokens for the query words {list(words)}")
    return pinv[sorted(ids)].mean(0)


def locate(
    query: torch.Tensor, directions: torch.Tensor, index: np.ndarray, threshold: float
) -> list[dict[str, Any]]:
    """Every (matrix, direction, sign) whose residual-side vector has cosine > threshold
    with the query, best first. ``directions`` (n_matrices, k, d); ``index`` rows are
    (kind, layer, head)."""
    unit = torch.nn.functional.normalize(directions.double(), dim=-1)
    cosine = unit @ torch.nn.functional.normalize(query.double(), dim=0)
    hits = []
    for sign, values in (("positive", cosine), ("negative", -cosine)):
        for m, d in zip(*np.nonzero((values > threshold).numpy())):
            kind, layer, head = index[m]
            hits.append(
                {
                    "kind": str(kind),
                    "layer": int(layer),
                    "head": int(head),
                    "direction": int(d),
                    "sign": sign,
                    "cosine": float(values[m, d]),
                }
            )
    return sorted(hits, key=lambda hit: -hit["cosine"])
