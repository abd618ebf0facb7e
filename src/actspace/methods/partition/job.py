"""Rules ``partition_site`` and ``subspace_circuit``: train one site's partition, wire two
partitions through the block between them (the known-circuit check of a toy's partition is
in :mod:`~actspace.methods.partition.probe_job`).

A site is (model, corpus, layer): the residual stream ``resid[:, layer]`` of the activation
store (layer 0 the embeddings, layer l the stream entering block l, n_layers the last block's
output), every position of every document, exact duplicates removed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from actspace.checkpoint import Checkpoint, checkpoint_folder, checkpoint_key
from actspace.errors import ActspaceError
from actspace.methods.partition.circuits import block_circuit
from actspace.methods.partition.math import (
    bounds,
    effective_rank,
    random_rotation,
    subspace_variances,
)
from actspace.methods.partition.train import (
    PartitionSettings,
    estimate_mi,
    train_partition,
)
from actspace.models import load_model
from actspace.store import atomic_store, open_store, provenance, read_site

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 250  # NDM steps between saved optimisation states


def _derived_provenance(kind: str, source: Any, **fields: Any) -> dict[str, Any]:
    """Provenance of a store computed from ``source`` (a store's attributes): the same model,
    weights and corpus."""
    origin = {key: source[key] for key in ("model", "weights_sha256", "corpus")}
    return provenance(kind=kind, **origin, **fields)


def site_activations(store: Any, layer: int) -> np.ndarray:
    """``resid[:, layer]`` of an opened activation store as float32 (n_tokens, d)."""
    resid = read_site(store, "resid")
    n_slots = resid.shape[1]
    if not 0 <= layer < n_slots:
        raise ActspaceError(
            f"layer {layer} is not a site of {store.store.root}: residual positions run "
            f"0..{n_slots - 1}"
        )
    return np.asarray(resid[:, layer], dtype=np.float32)


def training_pool(site: np.ndarray, limit: int, seed: int) -> torch.Tensor:
    """The distinct rows of a site (toy models revisit the same states; a duplicate would be
    its own nearest neighbour), at most ``limit`` of them drawn at random."""
    distinct = np.unique(site, axis=0)
    if len(distinct) > limit:
        rng = np.random.default_rng(seed)
        distinct = distinct[np.sort(rng.choice(len(distinct), limit, replace=False))]
    return torch.from_numpy(np.ascontiguousarray(distinct))


def partition_job(
    activations: str, out: str, layer: int, settings: dict[str, Any], progress: bool = True
) -> None:
    """Train the partition of one site and write its store; ``settings`` is the validated
    ``config.partition`` section with the site's overrides applied."""
    config = PartitionSettings.from_config(settings)
    store = open_store(activations, ["resid"])
    source = store.attrs
    site = site_activations(store, layer)
    pool = training_pool(site, config.max_activations, config.seed)
    log.info(
        "site %s layer %d: %d distinct of %d activations",
        source["corpus"],
        layer,
        len(pool),
        len(site),
    )
    # the optimisation's state is saved beside the output so a killed job resumes
    # (actspace.checkpoint); only for the same settings, site, input store and code
    identity = {key: source.get(key) for key in ("weights_sha256", "corpus", "created")}
    key = checkpoint_key(
        {"settings": asdict(config), "layer": layer, "input": identity},
        "actspace.methods.partition.train",
    )
    checkpoint = Checkpoint(checkpoint_folder(out), key, CHECKPOINT_EVERY)
    result = train_partition(pool, config, progress, checkpoint)
    generator = torch.Generator().manual_seed(config.seed + 1)
    mi_trained = estimate_mi(
        pool, result.R, result.sizes, config.mi_queries, config.mi_keys, generator
    )
    random_R = random_rotation(pool.shape[1], generator)
    mi_random = estimate_mi(
        pool, random_R, result.sizes, config.mi_queries, config.mi_keys, generator
    )
    z = pool @ result.R
    ranks = [effective_rank(z[:, a:b]) for a, b in bounds(result.sizes)]
    variances = subspace_variances(z, result.sizes)
    n = len(result.sizes)
    off_diagonal = ~np.eye(n, dtype=bool)
    attrs = _derived_provenance(
        "partition",
        source,
        layer=layer,
        layer_convention="resid index: 0 = embeddings, l = stream entering block l (0-based), "
        "n_layers = last block's output before the final norm",
        d_model=int(pool.shape[1]),
        n_activations=int(len(site)),
        n_distinct=int(len(pool)),
        sizes=list(result.sizes),
        steps=result.steps,
        stopped=result.stopped,
        seconds=result.seconds,
        merges=result.merges,
        reinits=result.reinits,
        settings={k: getattr(config, k) for k in PartitionSettings.__dataclass_fields__},
        mean_mi_trained=float(mi_trained.numpy()[off_diagonal].mean()) if n > 1 else None,
        mean_mi_random=float(mi_random.numpy()[off_diagonal].mean()) if n > 1 else None,
    )
    with atomic_store(out, attrs) as group:
        group.create_array("R", data=result.R.numpy())
        group.create_array("random_R", data=random_R.numpy())
        group.create_array("sizes", data=np.asarray(result.sizes, dtype=np.int64))
        group.create_array("units_R", data=result.units_R.numpy())
        group.create_array("unit_sizes", data=np.asarray(result.unit_sizes, dtype=np.int64))
        group.create_array("loss", data=np.asarray(result.losses, dtype=np.float32))
        group.create_array("mi_trained", data=mi_trained.numpy())
        group.create_array("mi_random", data=mi_random.numpy())
        share = (variances / variances.sum()).numpy().astype(np.float32)
        group.create_array("variance_explained", data=share)
        group.create_array("effective_rank", data=np.asarray(ranks, dtype=np.float32))
    checkpoint.clear()
    log.info("partition %s (%s) written to %s", result.sizes, result.stopped, out)


def read_partition(path: str | os.PathLike) -> tuple[torch.Tensor, list[int], Any]:
    """R, the subspace sizes and the attributes of a partition store."""
    store = open_store(path, ["R", "sizes"])
    return torch.from_numpy(store["R"][:]), [int(s) for s in store["sizes"][:]], store.attrs


def circuit_job(
    model_dir: str,
    activations: str,
    partition_in: str,
    partition_out: str,
    block: int,
    out: str,
    n_streams: int,
) -> None:
    """Edges of block ``block`` between the partitions of the streams entering (``block``)
    and leaving it (``block + 1``); the MLP is linearised at ``n_streams`` captured streams."""
    R_in, sizes_in, attrs_in = read_partition(partition_in)
    R_out, sizes_out, attrs_out = read_partition(partition_out)
    if (attrs_in["layer"], attrs_out["layer"]) != (block, block + 1):
        raise ActspaceError(
            f"{partition_in} and {partition_out} are not the sites around block {block}"
        )
    adapter = load_model(model_dir, device="cpu")
    if adapter.manifest["weights_sha256"] != attrs_in["weights_sha256"]:
        raise ActspaceError(f"{partition_in} was trained on other weights than {model_dir}")
    streams = None
    if not adapter.attn_only:
        store = open_store(activations, ["resid", "tokens", "doc_offsets"])
        tokens, offsets = store["tokens"][:], store["doc_offsets"][:]
        streams = mlp_inputs(adapter, tokens, offsets, block, n_streams)
    edges = block_circuit(adapter, block, R_in, sizes_in, R_out, sizes_out, streams)
    attrs = _derived_provenance(
        "subspace_circuit",
        attrs_in,
        block=block,
        sizes_in=sizes_in,
        sizes_out=sizes_out,
        edges={
            "ov": "(head, input subspace, output subspace) ||B_i^T N W_V W_O B_j||_F",
            "qk": "(head, query subspace, key subspace) ||B_a^T N W_Q W_K^T N^T B_b||_F",
            "skip": "(input, output) ||B_i^T B_j||_F^2",
            "mlp": "(input, output) ||B_i^T J B_j||_F, J the input-averaged MLP Jacobian",
        },
        mlp_streams=0 if streams is None else int(len(streams)),
    )
    with atomic_store(out, attrs) as group:
        for name, value in edges.items():
            group.create_array(name, data=value.numpy().astype(np.float32))


@torch.no_grad()
def mlp_inputs(
    adapter, tokens: np.ndarray, offsets: np.ndarray, block: int, n: int
) -> torch.Tensor:
    """Up to ``n`` streams entering block ``block``'s MLP (resid_pre + attention write), from
    the first documents of the store, run one document at a time."""
    streams, count = [], 0
    names = [f"blocks.{block}.hook_resid_pre", f"blocks.{block}.hook_attn_out"]
    for doc in range(len(offsets) - 1):
        ids = torch.as_tensor(tokens[offsets[doc] : offsets[doc + 1]], dtype=torch.long)[None]
        _, cache = adapter.run_with_cache(ids.to(adapter.device), names, logits=False)
        streams.append((cache[names[0]] + cache[names[1]])[0].float().cpu())
        count += len(streams[-1])
        if count >= n:
            break
    return torch.cat(streams)[:n]
