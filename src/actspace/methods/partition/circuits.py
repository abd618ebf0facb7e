"""Subspace circuits: how the subspaces of the partitions around a block connect through it,
from the weights alone (the research log's idea; the definitions are this project's).

Partitions are orthonormal column blocks B_i of R at the block's input site (the residual
stream entering it) and B_j of R' at its output site (the stream leaving it). The block's
norms are folded as a linear map N = C diag(g), with C = I - 11^T / d for LayerNorm (I for
RMSNorm) and g the gain; the per-token 1/sigma is left out (the linear-norm idealisation).

- OV edge of head h: ||B_i^T N W_V W_O B_j||_F (what subspace i of the input writes into
  subspace j of the output through the head's value-output circuit);
- QK edge of head h: ||B_a^T N W_Q W_K^T N^T B_b||_F, query subspace a, key subspace b, both
  of the input partition (content only: rotary or learned positions are not part of it);
- skip edge: ||B_i^T B_j||_F^2, the share of subspace i the residual connection carries
  unchanged into subspace j (d_i on the diagonal when both sites share R);
- MLP edge: ||B_i^T J B_j||_F with J the MLP's Jacobian (input norm included) averaged over
  captured activations of the stream entering the MLP (input-averaged linearisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from actspace.methods.partition.math import bounds
from actspace.models import ModelAdapter


def edge_matrix(
    M: torch.Tensor, R_in: torch.Tensor, sizes_in: Sequence[int], R_out: torch.Tensor, sizes_out
) -> torch.Tensor:
    """||B_i^T M B_j||_F for every input subspace i (rows of R_in's blocks) and output
    subspace j: (n_in, n_out). M is d x d in the row-vector convention (x -> x M)."""
    rotated = R_in.double().T @ M.double() @ R_out.double()
    out = torch.zeros(len(sizes_in), len(sizes_out), dtype=torch.float64)
    for i, (a, b) in enumerate(bounds(sizes_in)):
        for j, (c, d) in enumerate(bounds(sizes_out)):
            out[i, j] = torch.linalg.matrix_norm(rotated[a:b, c:d])
    return out


def skip_edges(R_in: torch.Tensor, sizes_in, R_out: torch.Tensor, sizes_out) -> torch.Tensor:
    """||B_i^T B_j||_F^2: how much of input subspace i the residual connection carries into
    output subspace j."""
    return edge_matrix(torch.eye(len(R_in)), R_in, sizes_in, R_out, sizes_out) ** 2


def norm_map(adapter: ModelAdapter, layer: int, which: int) -> torch.Tensor:
    """N = C diag(g) of block ``layer``'s attention-input (``which`` 0) or MLP-input (1) norm."""
    gain = adapter.block_norm_scales(layer)[which].double().cpu()
    d = adapter.d_model
    centre = torch.eye(d, dtype=torch.float64)
    if adapter.uses_layer_norm():
        centre = centre - torch.full((d, d), 1.0 / d, dtype=torch.float64)
    return centre * gain[None, :]


def head_circuits(adapter: ModelAdapter, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_heads, d, d) OV maps N W_V W_O and QK maps N W_Q W_K^T N^T of block ``layer``."""
    weights = adapter.attention_weights(layer)
    N = norm_map(adapter, layer, 0)
    ov, qk = [], []
    for head in range(adapter.n_heads):
        kv = adapter.kv_head_of(head)
        W_V, W_O = weights.W_V[kv].double().cpu(), weights.W_O[head].double().cpu()
        W_Q, W_K = weights.W_Q[head].double().cpu(), weights.W_K[kv].double().cpu()
        ov.append(N @ W_V @ W_O)
        qk.append(N @ W_Q @ W_K.T @ N.T)
    return torch.stack(ov), torch.stack(qk)


def mean_mlp_jacobian(adapter: ModelAdapter, layer: int, streams: torch.Tensor) -> torch.Tensor:
    """The Jacobian of x -> MLP(norm(x)) of block ``layer`` in the row-vector convention
    (J[a, b] = d out_b / d x_a), averaged over ``streams`` (n, d) entering the MLP."""
    path = adapter.mlp_path(layer)
    param = next(adapter.model.parameters())
    x = streams.to(device=param.device, dtype=param.dtype)

    def summed(inputs: torch.Tensor) -> torch.Tensor:
        return path(inputs).sum(0)  # rows are independent: d(sum_n out)/d x_n = J(x_n)

    jac = torch.autograd.functional.jacobian(summed, x, vectorize=True)  # (d_out, n, d_in)
    return jac.mean(1).T.double().cpu()


def block_circuit(
    adapter: ModelAdapter,
    layer: int,
    R_in: torch.Tensor,
    sizes_in: Sequence[int],
    R_out: torch.Tensor,
    sizes_out: Sequence[int],
    mlp_streams: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every edge type of block ``layer`` between its input and output partitions:
    ``ov`` and ``qk`` (n_heads, ., .), ``skip``, and ``mlp`` (when the block has a live MLP
    and ``mlp_streams`` are given)."""
    ov_maps, qk_maps = head_circuits(adapter, layer)
    result = {
        "ov": torch.stack([edge_matrix(M, R_in, sizes_in, R_out, sizes_out) for M in ov_maps]),
        "qk": torch.stack([edge_matrix(M, R_in, sizes_in, R_in, sizes_in) for M in qk_maps]),
        "skip": skip_edges(R_in, sizes_in, R_out, sizes_out),
    }
    if mlp_streams is not None and not adapter.attn_only:
        J = mean_mlp_jacobian(adapter, layer, mlp_streams)
        result["mlp"] = edge_matrix(J, R_in, sizes_in, R_out, sizes_out)
    return result
