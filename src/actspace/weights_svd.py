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

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from actspace.errors import ActspaceError
from actspace.models import ModelAdapter, load_model
from actspace.store import atomic_store, open_store, provenance, write_csv
from actspace.summary import row

log = logging.getLogger(__name__)

SIGNS = ("positive", "negative")


# ----------------------------------------------------------------------------- matrices
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


def weight_matrices(adapter: ModelAdapter) -> list[WeightMatrix]:
    """Every decomposed matrix of the model, norm gains folded in."""
    matrices = []
    for layer in range(adapter.n_layers):
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


# ----------------------------------------------------------------------------- token space
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


# ----------------------------------------------------------------------------- query locator
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


# ----------------------------------------------------------------------------- editing
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


def rank_one_delta(
    adapter: ModelAdapter,
    kind: str,
    layer: int,
    head: int,
    u: torch.Tensor,
    s: float,
    v: torch.Tensor,
) -> torch.Tensor:
    """The change of the stored weight that subtracts s u v^T from the folded matrix.

    For ``ov`` the edit goes into the head's own W_O (V may be shared under GQA):
    with A = diag(g1) W_V, A W_O' = W_OV - s u v^T for W_O' = W_O - pinv(A) (s u) v^T, exact
    because u lies in A's column space. For MLP inputs the folded gain is divided out.
    """
    if kind == "ov":
        A = ov_factors(adapter, layer, head)[0].double()
        return -torch.outer(torch.linalg.pinv(A) @ (s * u), v)  # (d_head x d_model)
    if kind in ("mlp_in", "mlp_gate", "mlp_up"):
        gain = adapter.block_norm_scales(layer)[1].double()
        return -torch.outer(s * u / gain, v)
    return -torch.outer(s * u, v)


@contextlib.contextmanager
def removed_direction(
    adapter: ModelAdapter,
    kind: str,
    layer: int,
    head: int,
    u: torch.Tensor,
    s: float,
    v: torch.Tensor,
) -> Iterator[None]:
    """Remove one singular direction (W -> W - s u v^T) for the duration of a ``with`` block;
    the weights are restored bit for bit on exit."""
    target, transposed = _module_weight_slice(adapter, kind, layer, head)
    delta = rank_one_delta(adapter, kind, layer, head, u, s, v)
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


# ----------------------------------------------------------------------------- the job
def decompose(
    adapter: ModelAdapter,
    matrices: Sequence[WeightMatrix],
    W_U: torch.Tensor,
    hoods: TokenNeighbourhoods,
    null: dict[str, float],
    k_dirs: int,
    k_tokens: int,
    label: str = "trained",
) -> dict[str, dict[str, Any]]:
    """SVD, residual-side vectors, top tokens and coherence z-scores, grouped by kind."""
    grouped: dict[str, dict[str, list]] = {}
    for matrix in tqdm(matrices, desc=f"SVD of {label} matrices", unit="matrix", mininterval=5):
        U, S, Vh = decompose_matrix(matrix)
        k = min(k_dirs, len(S))
        directions = residual_directions(matrix, U, Vh, k)
        ids, scores = top_tokens(directions, W_U, k_tokens)
        z = (coherence(ids, hoods) - null["mean"]) / null["std"]
        entry = grouped.setdefault(matrix.kind, {key: [] for key in _ARRAYS})
        for key, value in (
            ("S", S),
            ("U", U[:, :k]),
            ("Vh", Vh[:k]),
            ("directions", directions),
            ("top_tokens", ids),
            ("top_scores", scores),
            ("coherence_z", z),
            ("index", torch.tensor([matrix.layer, matrix.head])),
        ):
            entry[key].append(value)
    return {
        kind: {key: torch.stack(v).numpy() for key, v in e.items()} for kind, e in grouped.items()
    }


_ARRAYS = ("S", "U", "Vh", "directions", "top_tokens", "top_scores", "coherence_z", "index")
_STORED_DTYPES = {"top_tokens": np.int32, "index": np.int32}


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
        u = torch.as_tensor(result["U"][matrix][:, i])
        v = torch.as_tensor(result["Vh"][matrix][i])
        s = float(result["S"][matrix][i])
        with removed_direction(adapter, kind, layer, head, u, s, v):
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


def weights_svd_job(
    model_dir: str,
    out: str,
    tables: dict[str, str],
    queries_csv: str,
    edits_csv: str,
    k_dirs: int = 50,
    k_tokens: int = 20,
    fold_final_norm: bool = False,
    center_unembedding: bool = False,
    n_null: int = 2000,
    coherent_quantile: float = 0.95,
    coherence_neighbours: int = 100,
    coherent_top_dirs: int = 10,
    seed: int = 0,
    queries: dict[str, list[str]] | None = None,
    query_threshold: float = 0.15,
    edit: dict[str, str] | None = None,
) -> None:
    """Decompose every matrix and its control, write the store, tables, queries, edits.

    Runs on the CPU in float64 whatever the configured device: the work is a few hundred
    SVDs and 2 x k_dirs forward passes for the edit, not worth a GPU."""
    adapter = load_model(model_dir, device="cpu")
    if sorted(tables) != sorted(matrix_kinds(adapter)):
        raise ActspaceError(
            f"weights_svd.kinds is {sorted(tables)}, but model {adapter.manifest['name']!r} has "
            f"the matrix kinds {matrix_kinds(adapter)}; set weights_svd.kinds to match"
        )
    tokenizer = adapter.tokenizer
    W_U = unembedding(adapter, fold_final_norm, center_unembedding)
    hoods = token_neighbourhoods(adapter.W_E, coherence_neighbours)
    null = coherence_null(W_U, hoods, k_tokens, n_null, seed, coherent_quantile)
    matrices = weight_matrices(adapter)
    generator = torch.Generator().manual_seed(seed)
    controls = [control_matrix(m, adapter, generator) for m in matrices]
    trained = decompose(adapter, matrices, W_U, hoods, null, k_dirs, k_tokens)
    control = decompose(adapter, controls, W_U, hoods, null, k_dirs, k_tokens, "control")

    write_token_tables(trained, tokenizer, tables)
    pinv = pseudo_inverse_embedding(W_U)
    hits = []
    for name, words in (queries or {}).items():
        vector = query_vector(words, tokenizer, pinv)
        for kind, result in trained.items():
            index = np.array([(kind, *row) for row in result["index"]], dtype=object)
            for hit in locate(
                vector, torch.as_tensor(result["directions"]), index, query_threshold
            ):
                hits.append({"query": name, **hit})
    write_csv(queries_csv, hits, ["query", "kind", "layer", "head", "direction", "sign", "cosine"])

    edit_attrs, edit_rows = {}, []
    if edit:
        edit_attrs, edit_rows = evaluate_edits(
            adapter, trained, edit["prompt"], edit["token"], edit.get("max_matrices", 16)
        )
    write_csv(
        edits_csv, edit_rows, ["kind", "layer", "head", "direction", "logprob_change", "cued"]
    )

    attrs = provenance(
        kind="weights_svd",
        model=adapter.manifest["name"],
        weights_sha256=adapter.manifest["weights_sha256"],
        d_model=adapter.d_model,
        settings=dict(
            k_dirs=k_dirs,
            k_tokens=k_tokens,
            fold_final_norm=fold_final_norm,
            center_unembedding=center_unembedding,
            n_null=n_null,
            coherent_quantile=coherent_quantile,
            coherence_neighbours=coherence_neighbours,
            coherent_top_dirs=coherent_top_dirs,
            seed=seed,
        ),
        coherence_null=null,
        edit=edit_attrs,
        convention="row vectors (x -> x W); residual side: V^T rows for ov/mlp_out, U columns "
        "for MLP inputs; norm gains folded",
    )
    with atomic_store(out, attrs) as group:
        for prefix, results in (("", trained), ("control/", control)):
            for kind, result in results.items():
                group.create_array(f"{prefix}{kind}_S", data=_s_array(adapter, kind, result["S"]))
                for key in _ARRAYS[1:]:
                    data = result[key].astype(_STORED_DTYPES.get(key, np.float32))
                    group.create_array(f"{prefix}{kind}/{key}", data=data)
    log.info("weight SVD of %d matrices written to %s", len(matrices), out)


def _s_array(adapter: ModelAdapter, kind: str, S: np.ndarray) -> np.ndarray:
    """Singular values as (n_layers, n_heads, d_head) for ov, (n_layers, min dim) otherwise."""
    if kind == "ov":
        return S.reshape(adapter.n_layers, adapter.n_heads, adapter.d_head)
    return S.reshape(adapter.n_layers, -1)


def write_token_tables(
    results: dict[str, dict[str, Any]], tokenizer: Any, tables: dict[str, str]
) -> None:
    """``tokens_{kind}.csv``: layer, head, direction, sign, coherence_z, tokens."""
    vocabulary = [tokenizer.decode([t]) for t in range(len(tokenizer))]
    for kind, path in tables.items():
        result = results[kind]
        rows = []
        for m, (layer, head) in enumerate(result["index"]):
            for d in range(result["top_tokens"].shape[1]):
                for s, sign in enumerate(SIGNS):
                    words = [vocabulary[t] for t in result["top_tokens"][m, d, s]]
                    rows.append(
                        {
                            "layer": int(layer),
                            "head": int(head),
                            "direction": d,
                            "sign": sign,
                            "coherence_z": round(float(result["coherence_z"][m, d, s]), 3),
                            "tokens": " | ".join(repr(w)[1:-1] for w in words),
                        }
                    )
        write_csv(path, rows, ["layer", "head", "direction", "sign", "coherence_z", "tokens"])


# ----------------------------------------------------------------------------- reading back
KIND_ORDER = ("ov", "mlp_in", "mlp_gate", "mlp_up", "mlp_out")


def stored_kinds(store: Any) -> list[str]:
    """The matrix kinds a store holds, in forward order (ov, MLP inputs, mlp_out)."""
    present = set(store.group_keys())
    return [kind for kind in KIND_ORDER if kind in present]


def coherent_fractions(
    store: Any, kind: str, control: bool = False, top_dirs: int | None = None
) -> np.ndarray:
    """Fraction of coherent directions per layer, (n_layers,), over each matrix's first
    ``top_dirs`` directions (all stored when None): either end's coherence above the null's
    quantile (a random direction has one such end with probability ~2(1-q))."""
    z = store.attrs["coherence_null"]["threshold_z"]
    group = store[f"control/{kind}" if control else kind]
    scores = group["coherence_z"][:, :top_dirs]  # (n_matrices, k, 2)
    layers = group["index"][:, 0]
    coherent = (scores > z).any(axis=2)
    return np.array([coherent[layers == layer].mean() for layer in np.unique(layers)])


def locate_in_store(
    svd_store: str | os.PathLike,
    model_dir: str | os.PathLike,
    words: Sequence[str],
    threshold: float,
) -> list[dict[str, Any]]:
    """Answer an ad-hoc query from a stored SVD without recomputing it."""
    store = open_store(svd_store)
    settings = store.attrs["settings"]
    adapter = load_model(model_dir)
    if adapter.manifest["weights_sha256"] != store.attrs["weights_sha256"]:
        raise ActspaceError(f"{svd_store} was computed from other weights than {model_dir}")
    W_U = unembedding(adapter, settings["fold_final_norm"], settings["center_unembedding"])
    vector = query_vector(words, adapter.tokenizer, pseudo_inverse_embedding(W_U))
    hits = []
    for kind in stored_kinds(store):
        group = store[kind]
        index = np.array([(kind, *row) for row in group["index"][:]], dtype=object)
        hits += locate(vector, torch.as_tensor(group["directions"][:]), index, threshold)
    return sorted(hits, key=lambda hit: -hit["cosine"])


# ----------------------------------------------------------------------------- summary
STUDY = "Millidge & Black 2022, SVD of transformer weights"


def weights_svd_summary(stores: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Coherent fractions (trained vs control, all and later blocks) and the edit effect."""
    rows = []
    for path in stores:
        store = open_store(path)
        model = store.attrs["model"]
        q = store.attrs["settings"]["coherent_quantile"]
        k = store.attrs["settings"]["k_dirs"]
        top = min(store.attrs["settings"].get("coherent_top_dirs", k), k)
        for kind in stored_kinds(store):
            mlp = kind.startswith("mlp")
            for dirs in sorted({top, k}):
                trained = coherent_fractions(store, kind, top_dirs=dirs)
                control = coherent_fractions(store, kind, control=True, top_dirs=dirs)
                later = slice(len(trained) // 2, None)
                for scope, part in (("all blocks", slice(None)), ("later half", later)):
                    published = study = None
                    if dirs == top and mlp and scope == "later half":
                        published, study = "0.70-0.80", "GPT2-medium later MLP blocks, by hand"
                    elif dirs == top and scope == "all blocks":
                        published, study = "0.47-0.66", "GPT-2 family, all blocks, LM labeller"
                    setting = f"top {dirs} directions, above the random-direction {q:.0%} quantile"
                    for label, values, pub, stu in (
                        ("trained", trained, published, study),
                        ("Gaussian control", control, None, None),
                    ):
                        quantity = f"coherent fraction, {kind}, {scope}, {label}"
                        study_name = STUDY if pub else None
                        value = float(values[part].mean())
                        rows.append(row(quantity, value, model, setting, "", pub, study_name, stu))
        edit = store.attrs.get("edit") or {}
        if edit:
            where = f"{edit['kind']} layer {edit['layer']}" + (
                f" head {edit['head']}" if edit["kind"] == "ov" else ""
            )
            setting = f"{where}, prompt {edit['prompt']!r}"
            for quantity, value in (
                (f"log p({edit['token']!r}) change, cued direction removed", edit["target_change"]),
                (
                    f"log p({edit['token']!r}) change, median other direction",
                    edit["median_other_change"],
                ),
                ("rank of the cued direction's effect (1 = largest drop)", edit["target_rank"]),
                (
                    "matrices where the cued direction's removal is the largest drop",
                    f"{edit['matrices_where_cued_is_largest_drop']} of {len(edit['candidates'])}",
                ),
            ):
                unit = "nats" if "change" in quantity else ""
                if quantity.startswith("rank"):
                    published = ("largest drop", STUDY, "'fire' direction of GPT2-medium L22 H3")
                else:
                    published = (None, None, None)
                rows.append(row(quantity, value, model, setting, unit, *published))
    notes = [
        "Coherent: at either end, the fraction of pairs of a direction's top tokens that are "
        "among each other's nearest neighbours in embedding space (k-NN in cosine) is above "
        "the given quantile of the same score for random directions (not random token sets: "
        "with tied embeddings any direction's top tokens resemble each other). The paper "
        "labelled directions by hand and with a language model; this automatic score is a "
        "stand-in, so compare trained against control.",
        "Edit: every written matrix (OV head, MLP out) with a direction whose top tokens hold "
        "the cued token has each of its directions removed in turn; the row shown is the "
        "matrix where the cued direction ranks best.",
    ]
    return {
        "method": "weights_svd",
        "title": "Weight SVD (OV circuits and MLP weights in token space)",
        "rows": rows,
        "notes": notes,
    }
