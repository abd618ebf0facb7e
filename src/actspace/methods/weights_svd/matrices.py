"""Singular directions of OV circuits and MLP weights, read in token space.

Reproduces Millidge & Black, "The Singular Value Decompositions of Transformer Weight
Matrices are Highly Interpretable" (2022) for any model the adapter loads.

Matrices, in the row-vector convention (x -> x W), with the block's input-norm gain g folded
in the way TransformerLens' ``fold_ln`` does:

``ov``        per head, W_OV = diag(g1) W_V[kv(h)] W_O[h]   (d x d, rank d_head; GQA heads
              share their V)
``mlp_in``    per layer, diag(g2) W_in                       (ungated MLPs)
``mlp_gate`` / ``mlp_up``   diag(g2) W_gate, diag(g2) W_up  (gated MLPs, separately)
``mlp_out``   per layer, W_out

With W = U S V^T, the residual-side singular vectors are those a matrix writes (rows of V^T
for ``ov`` and ``mlp_out``) or reads (columns of U for MLP inputs). Each is projected to
token space through the raw unembedding (as the paper did; folding the final norm's gain and
centring the unembedding are flags) and both ends are kept: the sign of an SVD pair is
arbitrary, and both the positive and the negative direction carry meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from actspace.models import ModelAdapter


@dataclass(frozen=True)
class WeightMatrix:
    """One decomposed matrix: its kind, where it sits, and which side faces the residual."""

    kind: str  # ov | mlp_in | mlp_gate | mlp_up | mlp_out
    layer: int
    head: int  # -1 for MLP matrices
    W: torch.Tensor  # row-vector convention
    writes: bool  # True: residual side = rows of V^T (output); False: columns of U (input)
    factors: tuple[torch.Tensor, torch.Tensor] | None = None  # W = left @ right (low rank)


def matrix_kinds(adapter: ModelAdapter) -> list[str]:
    """The kinds of matrix this architecture has (only ``ov`` for attention-only toys)."""
    if adapter.attn_only:
        return ["ov"]
    inputs = ["mlp_gate", "mlp_up"] if adapter.gated_mlp else ["mlp_in"]
    return ["ov", *inputs, "mlp_out"]


def ov_factors(adapter: ModelAdapter, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(diag(g1) W_V, W_O) of one head: d_model x d_head and d_head x d_model."""
    weights = adapter.attention_weights(layer)
    gain = adapter.block_norm_scales(layer)[0]
    return gain[:, None] * weights.W_V[adapter.kv_head_of(head)], weights.W_O[head]


def ov_matrix(adapter: ModelAdapter, layer: int, head: int) -> torch.Tensor:
    """diag(g1) W_V W_O of one head (d_model x d_model)."""
    left, right = ov_factors(adapter, layer, head)
    return left @ right


def weight_matrices(
    adapter: ModelAdapter, layers: Sequence[int] | None = None
) -> list[WeightMatrix]:
    """Every decomposed matrix of the model's blocks ``layers`` (all when None), in block
    order, norm gains folded in."""
    matrices = []
    for layer in range(adapter.n_layers) if layers is None else sorted(layers):
        for head in range(adapter.n_heads):
            left, right = ov_factors(adapter, layer, head)
            matrices.append(WeightMatrix("ov", layer, head, left @ right, True, (left, right)))
        if adapter.attn_only:
            continue
        mlp = adapter.mlp_weights(layer)
        gain = adapter.block_norm_scales(layer)[1][:, None]
        inputs = {"mlp_gate": mlp.W_gate, "mlp_up": mlp.W_up, "mlp_in": mlp.W_in}
        for kind in matrix_kinds(adapter)[1:-1]:
            matrices.append(WeightMatrix(kind, layer, -1, gain * inputs[kind], writes=False))
        matrices.append(WeightMatrix("mlp_out", layer, -1, mlp.W_out, writes=True))
    return matrices


def control_matrix(matrix: WeightMatrix, adapter: ModelAdapter, generator: torch.Generator):
    """A Gaussian matrix of the same shape and scale (for ``ov``: a product of Gaussian
    d x d_head and d_head x d factors with the real factors' scales, so rank d_head too)."""
    if matrix.factors is not None:
        left, right = matrix.factors
        a = torch.randn(left.shape, generator=generator) * left.std()
        b = torch.randn(right.shape, generator=generator) * right.std()
        return WeightMatrix(matrix.kind, matrix.layer, matrix.head, a @ b, matrix.writes, (a, b))
    W = torch.randn(matrix.W.shape, generator=generator) * matrix.W.std()
    return WeightMatrix(matrix.kind, matrix.layer, matrix.head, W, matrix.writes)


def svd(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD in float64: W = U diag(S) Vh, S descending."""
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    return U, S, Vh


def factored_svd(
    left: torch.Tensor, right: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of left @ right (d x r times r x d, r small) without forming the d x d product:
    left = Qa Ra, right^T = Qb Rb, so left @ right = Qa (Ra Rb^T) Qb^T and only the r x r
    core is decomposed (as TransformerLens' FactoredMatrix does). Returns r singular values:
    the rest are exactly zero."""
    Qa, Ra = torch.linalg.qr(left.double())
    Qb, Rb = torch.linalg.qr(right.double().T)
    Uc, S, Vhc = torch.linalg.svd(Ra @ Rb.T)
    return Qa @ Uc, S, Vhc @ Qb.T


def decompose_matrix(matrix: WeightMatrix) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of a matrix, through its factors when it has them."""
    return factored_svd(*matrix.factors) if matrix.factors is not None else svd(matrix.W)


def residual_directions(matrix: WeightMatrix, U: torch.Tensor, Vh: torch.Tensor, k: int):
    """The top-k residual-side singular vectors as rows (k x d_model)."""
    return Vh[:k] if matrix.writes else U[:, :k].T
