"""Rule ``weights_svd``: decompose every matrix and its control, write the store and tables.

The method: see :mod:`actspace.methods.weights_svd.matrices`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from actspace.errors import ActspaceError
from actspace.methods.weights_svd.edits import evaluate_edits
from actspace.methods.weights_svd.matrices import (
    WeightMatrix,
    control_matrix,
    decompose_matrix,
    residual_directions,
    weight_matrices,
)
from actspace.methods.weights_svd.tokens import (
    TokenNeighbourhoods,
    coherence,
    coherence_null,
    locate,
    pseudo_inverse_embedding,
    query_vector,
    token_neighbourhoods,
    top_tokens,
    unembedding,
)
from actspace.models import ModelAdapter, load_model
from actspace.settings import SectionSettings
from actspace.store import atomic_directory, atomic_store, provenance, write_csv

log = logging.getLogger(__name__)

SIGNS = ("positive", "negative")


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


@dataclass(frozen=True)
class WeightSvdSettings(SectionSettings):
    """``config.weights_svd`` less the model list (defaults: the schema)."""

    layers: list[int] | None
    k_dirs: int
    k_tokens: int
    fold_final_norm: bool
    center_unembedding: bool
    n_null: int
    coherent_quantile: float
    coherence_neighbours: int
    coherent_top_dirs: int
    seed: int
    queries: dict[str, list[str]]
    query_threshold: float
    edit: dict[str, Any] | None

    OPTIONAL = ("edit",)  # no edit evaluation without an edit prompt


def weights_svd_job(
    model_dir: str,
    out: str,
    tables: str,
    queries_csv: str,
    edits_csv: str,
    settings: dict[str, Any],
) -> None:
    """Decompose every matrix and its control, write the store, the token tables (one
    ``{kind}.csv`` per matrix kind of this model in the folder ``tables``), queries, edits;
    ``settings`` is the validated ``config.weights_svd`` section.

    Runs on the CPU in float64 whatever the configured device: the work is a few hundred
    SVDs and 2 x k_dirs forward passes for the edit, not worth a GPU."""
    config = WeightSvdSettings.from_config(settings)
    k_dirs, k_tokens, seed = config.k_dirs, config.k_tokens, config.seed
    adapter = load_model(model_dir, device="cpu")
    for key, value, most in (
        ("k_dirs", k_dirs, adapter.d_model),
        ("k_tokens", k_tokens, adapter.vocab_size),
    ):
        if value > most:
            raise ActspaceError(
                f"weights_svd.{key}: {value} is more than this model ({model_dir}) has; "
                f"allowed: 1..{most}"
            )
    layers = list(range(adapter.n_layers)) if config.layers is None else sorted(config.layers)
    if layers[-1] >= adapter.n_layers:
        raise ActspaceError(
            f"weights_svd.layers: block {layers[-1]} is past this model's last block "
            f"({model_dir} has {adapter.n_layers}: 0..{adapter.n_layers - 1})"
        )
    tokenizer = adapter.tokenizer
    W_U = unembedding(adapter, config.fold_final_norm, config.center_unembedding)
    hoods = token_neighbourhoods(adapter.W_E, config.coherence_neighbours)
    null = coherence_null(W_U, hoods, k_tokens, config.n_null, seed, config.coherent_quantile)
    matrices = weight_matrices(adapter, layers)
    generator = torch.Generator().manual_seed(seed)
    controls = [control_matrix(m, adapter, generator) for m in matrices]
    trained = decompose(adapter, matrices, W_U, hoods, null, k_dirs, k_tokens)
    control = decompose(adapter, controls, W_U, hoods, null, k_dirs, k_tokens, "control")

    write_token_tables(trained, tokenizer, tables)
    pinv = pseudo_inverse_embedding(W_U)
    hits = []
    for name, words in config.queries.items():
        vector = query_vector(words, tokenizer, pinv)
        for kind, result in trained.items():
            index = np.array([(kind, *row) for row in result["index"]], dtype=object)
            for hit in locate(
                vector, torch.as_tensor(result["directions"]), index, config.query_threshold
            ):
                hits.append({"query": name, **hit})
    write_csv(queries_csv, hits, ["query", "kind", "layer", "head", "direction", "sign", "cosine"])

    edit_attrs, edit_rows = {}, []
    if config.edit:
        edit = config.edit
        edit_attrs, edit_rows = evaluate_edits(
            adapter, trained, edit["prompt"], edit["token"], edit["max_matrices"]
        )
    write_csv(
        edits_csv, edit_rows, ["kind", "layer", "head", "direction", "logprob_change", "cued"]
    )

    attrs = provenance(
        kind="weights_svd",
        model=adapter.manifest["name"],
        weights_sha256=adapter.manifest["weights_sha256"],
        d_model=adapter.d_model,
        layers=layers,
        settings={
            key: getattr(config, key)
            for key in WeightSvdSettings.__dataclass_fields__
            if key not in ("queries", "query_threshold", "edit")
        },
        coherence_null=null,
        edit=edit_attrs,
        convention="row vectors (x -> x W); residual side: V^T rows for ov/mlp_out, U columns "
        "for MLP inputs; norm gains folded",
    )
    with atomic_store(out, attrs) as group:
        for prefix, results in (("", trained), ("control/", control)):
            for kind, result in results.items():
                group.create_array(
                    f"{prefix}{kind}_S", data=_s_array(adapter, kind, result["S"], len(layers))
                )
                for key in _ARRAYS[1:]:
                    data = result[key].astype(_STORED_DTYPES.get(key, np.float32))
                    group.create_array(f"{prefix}{kind}/{key}", data=data)
    log.info("weight SVD of %d matrices written to %s", len(matrices), out)


def _s_array(adapter: ModelAdapter, kind: str, S: np.ndarray, n_layers: int) -> np.ndarray:
    """Singular values as (n_layers, n_heads, d_head) for ov, (n_layers, min dim) otherwise,
    ``n_layers`` the decomposed blocks (the store's ``layers`` attribute)."""
    if kind == "ov":
        return S.reshape(n_layers, adapter.n_heads, adapter.d_head)
    return S.reshape(n_layers, -1)


def write_token_tables(
    results: dict[str, dict[str, Any]], tokenizer: Any, folder: str | os.PathLike
) -> None:
    """``{folder}/{kind}.csv`` for every decomposed kind: layer, head, direction, sign,
    coherence_z, tokens (written as one folder, renamed into place when complete)."""
    vocabulary = [tokenizer.decode([t]) for t in range(len(tokenizer))]
    with atomic_directory(folder) as tmp:
        for kind, result in results.items():
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
            columns = ["layer", "head", "direction", "sign", "coherence_z", "tokens"]
            write_csv(tmp / f"{kind}.csv", rows, columns)
