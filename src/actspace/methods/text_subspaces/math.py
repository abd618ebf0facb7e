"""Text subspaces: the directions of the residual stream that a text uses.

Reproduces tailcalled, "Each Llama3-8b text uses a different 'random' subspace of the
activation space" (LessWrong, 2024) on any model the adapter loads.

For a text t (prompt plus what the model wrote), M_t stacks its residual-stream vectors over
layers and tokens ((n_layers + 1) * n_tokens x d_model). With M_t = U S V^T, the projector
P_k = V_k V_k^T keeps the top-k right singular directions. A projected forward pass replaces
every write into the residual stream f(x) (each attention and each MLP write) by f(x) P_k,
so ``out = x + f(x) @ P_k``; at k = d the model is unchanged. k*(t) is the smallest k whose
NLL of the text is at or below the unprojected NLL, found by binary search on the
assumption that NLL falls as k grows (checked against a grid of k, and reported).

Subspaces of texts a, b overlap by tr(P_a P_b) = ||V_a^T V_b||_F^2; for random subspaces
tr(P_a P_b) / d = (k_a / d)(k_b / d). The eigenvalues of sum_t P_t (the squared singular
values of [V_{k_1} ... V_{k_N}]) count how many texts use each direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


def text_matrix(resid: np.ndarray | torch.Tensor, exclude_first: bool = False) -> torch.Tensor:
    """M_t from a text's residual stream (n_tokens, n_layers + 1, d): rows are vectors.

    ``exclude_first`` drops the first position, whose huge norm (the attention sink) makes
    the first singular direction dominate.
    """
    resid = torch.as_tensor(np.asarray(resid), dtype=torch.float64)
    if exclude_first:
        resid = resid[1:]
    return resid.reshape(-1, resid.shape[-1])


def right_singular(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values (descending, padded with zeros to d) and a complete d x d basis V."""
    _, S, Vh = torch.linalg.svd(M, full_matrices=True)
    d = M.shape[1]
    values = torch.zeros(d, dtype=S.dtype)
    values[: S.numel()] = S
    return values, Vh.T


def projector(V: torch.Tensor, k: int) -> torch.Tensor:
    """P_k = V_k V_k^T, the orthogonal projector onto the top-k right singular directions."""
    return V[:, :k] @ V[:, :k].T


def overlap_matrix(bases: Sequence[torch.Tensor], ks: Sequence[int]) -> np.ndarray:
    """O_ab = tr(P_a P_b) = ||V_a^T V_b||_F^2 for every pair of texts."""
    n = len(bases)
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(a, n):
            cross = bases[a][:, : ks[a]].double().T @ bases[b][:, : ks[b]].double()
            out[a, b] = out[b, a] = float((cross**2).sum())
    return out


def product_identity_error(overlap: np.ndarray, ks: Sequence[int], d: int) -> np.ndarray:
    """Relative error of O_ab / d against (k_a / d)(k_b / d), per pair (NaN on the diagonal)."""
    fractions = np.asarray(ks, dtype=float) / d
    predicted = np.outer(fractions, fractions)
    error = np.abs(overlap / d - predicted) / predicted
    np.fill_diagonal(error, np.nan)
    return error


def usage_spectrum(bases: Sequence[torch.Tensor], ks: Sequence[int]) -> np.ndarray:
    """Squared singular values of [V_{k_1} ... V_{k_N}], descending: the eigenvalues of
    sum_t P_t, i.e. how many texts use each direction."""
    total = sum(projector(V.double(), k) for V, k in zip(bases, ks))
    return np.sort(np.linalg.eigvalsh(total.numpy()))[::-1].clip(min=0.0)


def binary_search_k(
    nll_at: Callable[[np.ndarray, np.ndarray], np.ndarray], baseline: np.ndarray, d: int
) -> tuple[np.ndarray, int]:
    """Smallest k in 1..d with nll(k) <= baseline, per text, by bisection over all texts at once.

    ``nll_at(texts, ks)`` returns the NLL of each listed text projected to its k. Assumes
    NLL is non-increasing in k (k = d is the unprojected model, so it always qualifies);
    when it is not, the result is a crossing point, not necessarily the smallest.
    Returns k* per text and the number of projected passes each text took (ceil(log2 d)).
    """
    lo = np.ones(len(baseline), dtype=np.int64)
    hi = np.full(len(baseline), d, dtype=np.int64)
    steps = 0
    progress = tqdm(total=int(np.ceil(np.log2(d))), desc="bisection for k*", unit="step")
    while np.any(lo < hi):
        active = np.flatnonzero(lo < hi)
        mid = (lo[active] + hi[active]) // 2
        ok = nll_at(active, mid) <= baseline[active]
        hi[active[ok]] = mid[ok]
        lo[active[~ok]] = mid[~ok] + 1
        steps += 1
        progress.update(1)
    progress.close()
    return hi, steps


def is_monotone_crossing(grid: np.ndarray, curve: np.ndarray, baseline: float, k_star: int) -> bool:
    """Whether a grid curve agrees with k*: above the baseline below k*, at or below from k*."""
    below = curve[grid < k_star]
    above = curve[grid >= k_star]
    return bool(np.all(below > baseline) and np.all(above <= baseline))


def k_grid(d: int, points: int) -> np.ndarray:
    """Roughly log-spaced k from 1 to d (d included)."""
    grid = np.unique(np.round(np.geomspace(1, d, points)).astype(np.int64))
    return grid
