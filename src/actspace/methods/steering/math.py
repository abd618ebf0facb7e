"""Pure tensor functions of MELBO and MELBO-ortho (no model, no I/O).

MELBO (Mack & Turner 2024) learns steering vectors theta of norm R that maximise how much the
target layer's residual stream moves; MELBO-ortho (Goldman-Wetzler 2024, ``shared/papers/003``)
finds vectors orthogonal to a base vector theta_0 that move the position-averaged target
activations to the same place. The precise objectives and the reference code's quirks are in
``shared/research/melbo_stable_regions.md`` parts 1, 2 and 5.

Orthogonality is hard and never drifts: every projection is against an orthonormal basis of
the stored vectors kept in float64 (:class:`OrthonormalBasis`), not a running Gram-Schmidt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

NORMS = ("per_token", "per_unit")
DIVERSITY_PREFIX = 8  # tokens of the prefix-diversity count (late near-tie flips left out)


class OrthonormalBasis:
    """An orthonormal basis (float64 rows) of the vectors stored so far.

    ``add`` orthogonalises a new vector against the basis twice ("twice is enough") before
    appending it, so the basis stays orthonormal to float64 precision whatever the number of
    vectors; ``project_off`` removes the basis's span from vectors of any dtype.
    """

    def __init__(self, d: int, device: torch.device | str = "cpu"):
        self.rows = torch.zeros(0, d, dtype=torch.float64, device=device)

    def __len__(self) -> int:
        return self.rows.shape[0]

    def project_off(self, vectors: torch.Tensor) -> torch.Tensor:
        """``vectors`` (..., d) minus their component in the basis's span, in their dtype."""
        if len(self) == 0:
            return vectors
        v = vectors.to(torch.float64)
        v = v - (v @ self.rows.T) @ self.rows
        return v.to(vectors.dtype)

    def add(self, vector: torch.Tensor, min_norm: float = 1e-12) -> bool:
        """Append ``vector``'s direction orthogonal to the basis; False when nothing is left."""
        v = vector.detach().to(torch.float64).reshape(1, -1)
        for _ in range(2):
            if len(self):
                v = v - (v @ self.rows.T) @ self.rows
        norm = float(v.norm())
        if not math.isfinite(norm) or norm <= min_norm:
            return False
        self.rows = torch.cat([self.rows, v / norm])
        return True


def orthogonalise_block(block: torch.Tensor, basis: OrthonormalBasis) -> torch.Tensor:
    """Each row of ``block`` (m, d) projected off ``basis`` and off the rows before it.

    Row i ends orthogonal to the stored vectors and to rows 0..i-1 of the block (after their
    own projection): the constraint of learning the vectors one at a time, applied to a block
    optimised together. Rows keep their dtype; a row that vanishes stays zero.
    """
    local = OrthonormalBasis(block.shape[1], block.device)
    local.rows = basis.rows.clone()
    rows = []
    for row in block:
        projected = local.project_off(local.project_off(row))
        rows.append(projected)
        local.add(projected)
    return torch.stack(rows)


def symmetric_orthonormal(block: torch.Tensor, basis: OrthonormalBasis) -> torch.Tensor:
    """Orthonormal rows closest to ``block`` (m, d) in the complement of ``basis``: the polar
    factor U V^T of the projected block (Loewdin's symmetric orthogonalisation).

    No row is preferred, unlike :func:`orthogonalise_block`: when a block of MELBO vectors is
    learned together, a later vector is not pushed out of a direction an earlier one moves
    into (with sequential projection later vectors climbed, then lost what they had climbed).
    For one row it is the row normalised.
    """
    projected = basis.project_off(basis.project_off(block.to(torch.float64)))
    U, _, Vh = torch.linalg.svd(projected, full_matrices=False)
    return (U @ Vh).to(block.dtype)


def symmetric_orthogonal(block: torch.Tensor, basis: OrthonormalBasis) -> torch.Tensor:
    """:func:`symmetric_orthonormal` with each row keeping the norm of its projection off
    ``basis`` (MELBO-ortho has no norm constraint); non-finite rows are left as they are
    (dropped later, as the reference drops NaN vectors). For one row it is the row projected
    off ``basis``, the reference's step."""
    out = block.clone()
    finite = torch.isfinite(block).all(1)
    if finite.any():
        rows = block[finite]
        norms = basis.project_off(rows.to(torch.float64)).norm(dim=1, keepdim=True)
        out[finite] = (symmetric_orthonormal(rows, basis).to(torch.float64) * norms).to(block.dtype)
    return out


def tangent(grad: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rows of ``grad`` projected onto the tangent spaces of the spheres through the rows of
    ``theta``: g - (g.theta) theta / |theta|^2 (MELBO's step on the sphere of radius R)."""
    dot = (grad * theta).sum(-1, keepdim=True)
    return grad - dot * theta / (theta * theta).sum(-1, keepdim=True)


def to_sphere(theta: torch.Tensor, radius: float) -> torch.Tensor:
    """Rows of ``theta`` rescaled to norm ``radius`` (a zero row stays zero)."""
    norms = theta.norm(dim=-1, keepdim=True)
    return torch.where(norms > 0, radius * theta / norms.clamp_min(1e-30), theta)


def melbo_objective(
    delta: torch.Tensor, mask: torch.Tensor, p: float, q: float, norm: str = "per_token"
) -> torch.Tensor:
    """MELBO's objective per steering vector: sum over prompts of (sum_t |Delta_t|^p)^(1/q).

    Parameters
    ----------
    delta
        (n_vectors, n_prompts, T, d): steered minus unsteered target activations.
    mask
        (n_prompts, T): 1 at the positions that count (real tokens, the chosen positions).
    p, q
        Exponents (the paper's defaults p = 2, q = p).
    norm
        ``per_token`` (the paper: sum over positions of the p-th power of each position's
        Euclidean norm) or ``per_unit`` (the reference code's ``.norm(dim=1)``: for each
        hidden unit the norm over positions, to the p-th power, summed over units). The two
        agree for p = 2.

    Returns
    -------
    (n_vectors,) objective values (to be maximised).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, not {norm!r}")
    weights = mask.to(delta.dtype)[None, :, :, None]
    if norm == "per_token":
        per_position = (delta * delta * weights).sum(-1).clamp_min(0).pow(p / 2)
        per_prompt = per_position.sum(-1)
    else:
        per_unit = (delta * delta * weights).sum(-2).clamp_min(0).pow(p / 2)
        per_prompt = per_unit.sum(-1)
    return per_prompt.pow(1.0 / q).sum(-1)


def masked_mean(acts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions of ``acts`` (..., n_prompts, T, d) where ``mask`` (n_prompts, T) is 1."""
    weights = mask.to(acts.dtype)[..., None]
    return (acts * weights).sum(-2) / weights.sum(-2)


def ortho_loss(mean_acts: torch.Tensor, base_mean: torch.Tensor) -> torch.Tensor:
    """MELBO-ortho's loss per vector: the unsquared Euclidean distance between the
    position-averaged target activations under theta_i and under theta_0, summed over prompts.

    ``mean_acts`` (n_vectors, n_prompts, d), ``base_mean`` (n_prompts, d); returns (n_vectors,).
    """
    return (mean_acts - base_mean).norm(dim=-1).sum(-1)


def kl_divergences(
    logp_steered: torch.Tensor, logp_base: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL(P_i || P_0), KL(P_0 || P_i)) over the last axis, in nats, from log-probabilities.

    The reference code computes the first (``F.kl_div(log P_0, P_i)``) although its plot title
    names the second; both are returned so every plot can say which it shows.
    """
    p_i, p_0 = logp_steered.exp(), logp_base.exp()
    forward = (p_i * (logp_steered - logp_base)).sum(-1)
    backward = (p_0 * (logp_base - logp_steered)).sum(-1)
    return forward, backward


def max_abs_cosine(vectors: torch.Tensor) -> float:
    """Largest |cos| between two different rows of ``vectors`` (float64; 0 for one row)."""
    v = vectors.to(torch.float64)
    v = v / v.norm(dim=-1, keepdim=True)
    cos = (v @ v.T).abs()
    cos.fill_diagonal_(0)
    return float(cos.max()) if len(v) > 1 else 0.0


def combinations(vectors: torch.Tensor, ns: list[int]) -> dict[str, torch.Tensor]:
    """Mean of the first n vectors, the mean times sqrt(n) and the sum, for each n in ``ns``.

    The norm of the mean of n orthogonal vectors of norm r is r / sqrt(n); the thread under
    MELBO-ortho proposed rescaling it by sqrt(n) (norm back to r) or by n (the sum).
    Returns ``{"mean": (len(ns), d), "scaled_mean": ..., "sum": ...}``.
    """
    means = torch.stack([vectors[:n].mean(0) for n in ns])
    scale = torch.tensor(ns, dtype=vectors.dtype, device=vectors.device)[:, None]
    return {"mean": means, "scaled_mean": means * scale.sqrt(), "sum": means * scale}


def moving_average(values: torch.Tensor, width: int) -> torch.Tensor:
    """The ``width``-wide moving average of a 1-D series ('valid' part, as the reference's
    ``np.convolve(x, ones(w) / w, 'valid')``); empty when the series is shorter."""
    if len(values) < width:
        return values.new_zeros(0)
    kernel = torch.ones(1, 1, width, dtype=values.dtype) / width
    return torch.nn.functional.conv1d(values.reshape(1, 1, -1), kernel).reshape(-1)


def distinct(completions: Sequence[Sequence[int]], prefix: int | None = None) -> int:
    """Number of different completions (token sequences), or of their first ``prefix`` tokens."""
    return len({tuple(c[:prefix]) for c in completions})


def first_divergence(completion: Sequence[int], reference: Sequence[int]) -> int:
    """Position of the first token where ``completion`` leaves ``reference`` (the unsteered
    completion); the shorter length when one is a prefix of the other."""
    for position, (a, b) in enumerate(zip(completion, reference)):
        if a != b:
            return position
    return min(len(completion), len(reference))


def diversity(
    completions: Sequence[Sequence[Sequence[int]]], unsteered: Sequence[Sequence[int]]
) -> dict[str, float]:
    """Diversity of one set of vectors' completions (per prompt, one per vector): the mean
    over prompts of the distinct completions and of their distinct first
    :data:`DIVERSITY_PREFIX` tokens, and the mean position where a completion leaves the
    prompt's unsteered completion."""
    divergences = [first_divergence(c, u) for cs, u in zip(completions, unsteered) for c in cs]
    return {
        "distinct": sum(distinct(c) for c in completions) / len(completions),
        "distinct_prefix": sum(distinct(c, DIVERSITY_PREFIX) for c in completions)
        / len(completions),
        "divergence": sum(divergences) / len(divergences),
    }
