"""Reading a finished weight-SVD store: its kinds, coherent fractions, ad-hoc queries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from actspace.errors import ActspaceError
from actspace.methods.weights_svd.tokens import (
    locate,
    pseudo_inverse_embedding,
    query_vector,
    unembedding,
)
from actspace.models import load_model
from actspace.store import open_store

KIND_ORDER = ("ov", "mlp_in", "mlp_gate", "mlp_up", "mlp_out")


def stored_kinds(store: Any) -> list[str]:
    """The matrix kinds a store holds, in forward order (ov, MLP inputs, mlp_out)."""
    present = set(store.group_keys())
    return [kind for kind in KIND_ORDER if kind in present]


def coherent_fractions(
    store: Any, kind: str, control: bool = False, top_dirs: int | None = None
) -> np.ndarray:
    """Fraction of coherent directions per decomposed block, in block order, over each
    matrix's first ``top_dirs`` directions (all stored when None): either end's coherence
    above the null's quantile (a random direction has one such end with probability ~2(1-q))."""
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
