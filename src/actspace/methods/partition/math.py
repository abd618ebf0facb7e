"""Neighbour distance minimisation (NDM): the math of a subspace partition, tensors in and out.

Huang & Hahn, "Decomposing Representation Space into Interpretable Subspaces with Unsupervised
Learning" (arXiv:2508.01916; code huangxt39/SubspacePartition). An activation h (row vector,
dimension d) is rotated, z = h R with R orthogonal, and R's columns are split into contiguous
blocks of ``sizes``: subspace i holds the coordinates ``z[:, start_i:end_i]``. For every query
and every subspace separately, the nearest key of a pool disjoint from the queries is found
(without gradient); the loss is the mean over subspaces of the mean over queries of the
unsquared distance between the query's and its neighbour's projections. Dependent subspaces
are merged by their KSG mutual information (Kraskov, Stoegbauer & Grassberger 2004, estimator
1, k = 1, max-norm over the two subspaces), normalised by the pair's combined size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def bounds(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) column range of each subspace of a partition."""
    ends = np.cumsum(sizes).tolist()
    return [(end - size, end) for size, end in zip(sizes, ends)]


def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of a and b (batched over leading axes): direct
    differences for small subspaces (torch's matmul form costs more there), the matmul form
    otherwise."""
    small = a.shape[-1] <= 16
    mode = "donot_use_mm_for_euclid_dist" if small else "use_mm_for_euclid_dist"
    return torch.cdist(a, b, compute_mode=mode)


@torch.no_grad()
def nearest_neighbours(
    queries: torch.Tensor, keys: torch.Tensor, sizes: Sequence[int], block: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's nearest key in every subspace: indices and distances, (n_subspaces, n_q).

    ``queries`` (n_q, d) and ``keys`` (n_k, d) are already rotated. Keys are searched ``block``
    at a time, keeping a running minimum, so memory holds n_q x block distances, never an
    n_q x n_k matrix.
    """
    best = torch.full((len(sizes), len(queries)), math.inf, dtype=queries.dtype)
    index = torch.zeros((len(sizes), len(queries)), dtype=torch.long)
    for i, (a, b) in enumerate(bounds(sizes)):
        q = queries[:, a:b]
        for start in range(0, len(keys), block):
            value, arg = pairwise_distances(q, keys[start : start + block, a:b]).min(dim=1)
            better = value < best[i]
            best[i] = torch.where(better, value, best[i])
            index[i] = torch.where(better, arg + start, index[i])
    return index, best


def brute_force_neighbours(
    queries: torch.Tensor, keys: torch.Tensor, sizes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same as :func:`nearest_neighbours` from the whole distance matrix, one subspace at
    a time (the plain reference the blocked search is tested and benchmarked against)."""
    indices, distances = [], []
    for start, end in bounds(sizes):
        dist = pairwise_distances(queries[:, start:end], keys[:, start:end])
        value, arg = dist.min(dim=1)
        indices.append(arg)
        distances.append(value)
    return torch.stack(indices), torch.stack(distances)


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis with a finite gradient at zero (duplicate points)."""
    return torch.sqrt((x * x).sum(-1) + 1e-12)


def subspace_losses(
    R: torch.Tensor,
    queries: torch.Tensor,
    keys: torch.Tensor,
    sizes: Sequence[int],
    block: int,
) -> torch.Tensor:
    """Per subspace, the mean (unsquared) distance from each query's projection to its
    nearest key's, (n_subspaces,): their unweighted mean is the NDM loss. Neighbours are
    searched without gradient; gradients reach R through the query and the re-projected
    neighbour."""
    zq = queries @ R
    with torch.no_grad():
        index, _ = nearest_neighbours(zq, keys @ R, sizes, block)
    losses = []
    for i, (start, end) in enumerate(bounds(sizes)):
        neighbours = keys[index[i]] @ R[:, start:end]
        losses.append(_safe_norm(zq[:, start:end] - neighbours).mean())
    return torch.stack(losses)


def subspace_variances(z: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Total variance of each subspace (sum of its coordinates' variances)."""
    return torch.stack([z[:, s:e].var(dim=0).sum() for s, e in bounds(sizes)])


def _digamma(x: torch.Tensor) -> torch.Tensor:
    return torch.special.digamma(x.double())


@torch.no_grad()
def ksg_mutual_information(
    queries: torch.Tensor,
    keys: torch.Tensor,
    sizes: Sequence[int],
    scales: torch.Tensor | None = None,
    block: int = 128,
) -> torch.Tensor:
    """KSG estimate (nats) of the mutual information between every pair of subspaces.

    Estimator 1 with k = 1 and the max-norm over the two subspaces, each subspace's distances
    divided by its ``scales`` (the square root of its total variance, as the authors' code
    does): for query q, eps = min over keys of max(d_i, d_j); n_i, n_j count keys strictly
    closer than eps in each subspace; I = psi(1) + psi(N) - mean[psi(n_i + 1) + psi(n_j + 1)]
    with N = number of keys + 1. Queries and keys must be disjoint sets of rotated activations.

    Repeated activations (toy models revisit the same states) would give eps = 0 and zero
    counts, an estimate that grows without bound; where eps = 0 the count k of keys at joint
    distance 0 replaces k = 1 and the marginal counts include distance 0 (the mixture form of
    Gao, Kannan, Oh & Viswanath 2017), which is exact for the continuous case and bounded for
    duplicates. Returns a symmetric (n_subspaces, n_subspaces) matrix with a zero diagonal.
    """
    n_sub, spans = len(sizes), bounds(sizes)
    scales = torch.ones(n_sub) if scales is None else scales
    total = torch.zeros(n_sub, n_sub, dtype=torch.float64)
    for start in range(0, len(queries), block):
        q = queries[start : start + block]
        dist = torch.stack(
            [
                pairwise_distances(q[:, s:e], keys[:, s:e]) / scales[i]
                for i, (s, e) in enumerate(spans)
            ]
        )  # (n_sub, n_q, n_k): one block of queries against every key
        for i in range(n_sub):
            for j in range(i + 1, n_sub):
                joint = torch.maximum(dist[i], dist[j])
                eps = joint.min(dim=1, keepdim=True).values
                tied = eps.squeeze(1) == 0
                k = torch.where(tied, (joint == 0).sum(1), torch.ones_like(tied, dtype=torch.long))
                closer_i = torch.where(tied[:, None], dist[i] <= 0, dist[i] < eps).sum(1)
                closer_j = torch.where(tied[:, None], dist[j] <= 0, dist[j] < eps).sum(1)
                terms = _digamma(k) - _digamma(closer_i + 1.0) - _digamma(closer_j + 1.0)
                total[i, j] += terms.sum()
    n_keys = torch.tensor(float(len(keys) + 1))
    mi = total / len(queries) + _digamma(n_keys)
    mi = torch.triu(mi, diagonal=1)
    return (mi + mi.T).float()


def shuffled_pairing(z: torch.Tensor, sizes: Sequence[int], generator: torch.Generator):
    """``z`` with each subspace's coordinates permuted across rows independently: the same
    marginals with every dependence between subspaces destroyed (the null of the MI)."""
    out = torch.empty_like(z)
    for start, end in bounds(sizes):
        out[:, start:end] = z[torch.randperm(len(z), generator=generator), start:end]
    return out


def normalised_mi(mi: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """MI of each pair divided by the pair's combined dimension (the merge criterion)."""
    size = torch.tensor(sizes, dtype=mi.dtype)
    return mi / (size[:, None] + size[None, :])


def pairs_to_merge(nmi: torch.Tensor, threshold: float) -> list[tuple[int, int]]:
    """Disjoint pairs with normalised MI above ``threshold``, most dependent first, at most
    max(1, n / 8) of them (the published schedule's greedy rule)."""
    n = nmi.shape[0]
    limit = max(1, n // 8)
    order = [
        (float(nmi[i, j]), i, j) for i in range(n) for j in range(i + 1, n) if nmi[i, j] > threshold
    ]
    chosen: list[tuple[int, int]] = []
    used: set[int] = set()
    for _, i, j in sorted(order, reverse=True):
        if i in used or j in used:
            continue
        chosen.append((i, j))
        used |= {i, j}
        if len(chosen) == limit:
            break
    return chosen


def merge_columns(
    R: torch.Tensor, sizes: Sequence[int], pairs: Sequence[tuple[int, int]]
) -> tuple[torch.Tensor, list[int], list[list[int]]]:
    """R with each pair's columns joined into one subspace, subspaces re-sorted by size
    (largest first, stable); returns the new R, the new sizes and, for each new subspace,
    the old subspaces it is made of."""
    spans = bounds(sizes)
    merged = {min(i, j): [i, j] for i, j in pairs}
    absorbed = {max(i, j) for i, j in pairs}
    groups = [merged.get(i, [i]) for i in range(len(sizes)) if i not in absorbed]
    groups.sort(key=lambda members: -sum(sizes[m] for m in members))
    columns = [torch.arange(*spans[m]) for members in groups for m in members]
    new_sizes = [sum(sizes[m] for m in members) for members in groups]
    return R[:, torch.cat(columns)], new_sizes, groups


def reinit_partner(
    losses: torch.Tensor, mi: torch.Tensor, worst: int, generator: torch.Generator
) -> int:
    """The subspace the worst one is re-initialised with (the authors' toy schedule): drawn
    with probability proportional to its loss times its positive MI with the worst one;
    uniformly among the others when no weight is positive."""
    weights = (losses.double() * mi[worst].double().clamp(min=0)).clamp(min=0)
    weights[worst] = 0.0
    if not torch.isfinite(weights).all() or weights.sum() <= 0:
        weights = torch.ones(len(losses), dtype=torch.float64)
        weights[worst] = 0.0
    return int(torch.multinomial(weights, 1, generator=generator))


def rotate_within(
    R: torch.Tensor, sizes: Sequence[int], pair: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """R with a Haar-random rotation applied inside the span of two subspaces: their union
    and every other subspace unchanged, the sizes kept (the toy schedule's re-init)."""
    spans = bounds(sizes)
    columns = torch.cat([torch.arange(*spans[i]) for i in pair])
    rotated = R.clone()
    rotated[:, columns] = R[:, columns] @ random_rotation(len(columns), generator).to(R.dtype)
    return rotated


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between the column spans of A and B."""
    Qa, _ = torch.linalg.qr(A.double())
    Qb, _ = torch.linalg.qr(B.double())
    cosines = torch.linalg.svdvals(Qa.T @ Qb).clamp(-1.0, 1.0)
    return torch.arccos(cosines).flip(0)


def random_rotation(d: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal d x d matrix (QR of a Gaussian matrix, signs fixed)."""
    Q, Rm = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return (Q * torch.sign(torch.diagonal(Rm))).float()


def effective_rank(z: torch.Tensor) -> float:
    """exp of the entropy of the normalised eigenvalues of a subspace's covariance (Roy &
    Vetterli 2007): how many of its dimensions the data actually spread over."""
    if z.shape[1] == 0 or len(z) < 2:
        return 0.0
    values = torch.linalg.eigvalsh(torch.cov(z.double().T).reshape(z.shape[1], z.shape[1]))
    p = values.clamp(min=0) / values.clamp(min=0).sum().clamp(min=1e-30)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
