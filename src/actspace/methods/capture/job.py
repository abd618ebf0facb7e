"""Rule ``capture_residuals``: run a token store through the model into an activation store.

Layout of the store: see :mod:`actspace.methods.capture.record`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from actspace.data.batching import batches
from actspace.data.corpora import documents_of, read_corpus
from actspace.data.generation import pad_token_id
from actspace.errors import ActspaceError
from actspace.methods.capture.record import (
    ChunkWriter,
    bfloat16_bits,
    layer_major_sites,
    site_hook_names,
)
from actspace.models import ModelAdapter, load_model
from actspace.settings import SectionSettings
from actspace.store import BFLOAT16_BITS, atomic_store, compressors_for, provenance, stored_bytes

log = logging.getLogger(__name__)

# capture.dtype -> (the dtype of the hooks' copies, the Zarr dtype it is stored as)
STORAGE_DTYPES = {
    "float32": (torch.float32, "float32"),
    "float16": (torch.float16, "float16"),
    "bfloat16": (torch.bfloat16, "uint16"),  # the bits, exactly (Zarr has no bfloat16)
}


@dataclass(frozen=True)
class CaptureSettings(SectionSettings):
    """``config.capture`` less the model and corpus lists (defaults: the schema)."""

    dtype: str  # storage dtype: float32 | float16 | bfloat16 (a bfloat16 model's bits)
    batch_tokens: int  # padded tokens x sites per forward pass
    chunk_tokens: int  # rows per Zarr chunk
    codec: str  # none | zstd | blosc-lz4
    sites: tuple[str, ...] = ("resid",)  # resid, attn_out, mlp_out: one array each


def capture_residuals(
    adapter: ModelAdapter,
    corpus_store: str | os.PathLike,
    out: str | os.PathLike,
    settings: CaptureSettings,
    attrs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the corpus through the model and store ``resid``, ``tokens``, ``doc_offsets``.

    Returns the store's attributes, including the measured ``tokens_per_s`` and
    ``bytes_per_activation`` (stored bytes over stored values, after the codec).
    """
    tokens, offsets = read_corpus(corpus_store)
    n_tokens, d_model = int(tokens.size), adapter.d_model
    dtype, codec, sites = settings.dtype, settings.codec, tuple(settings.sites)
    batch_tokens, chunk_tokens = settings.batch_tokens, settings.chunk_tokens
    copy_dtype, stored_dtype = STORAGE_DTYPES[dtype]
    model_dtype = next(adapter.model.parameters()).dtype
    if dtype == "bfloat16" and model_dtype != torch.bfloat16:
        raise ActspaceError(
            f"capture.dtype bfloat16 keeps a bfloat16 model's activations exactly; this model "
            f"runs in {str(model_dtype).removeprefix('torch.')}: store float32 (or float16)"
        )
    pad_id = pad_token_id(adapter.tokenizer)
    slots = {site: len(site_hook_names(site, adapter.n_layers)) for site in sites}
    store_attrs = provenance(
        kind="activations",
        layout="resid[t, l]: stream entering block l; resid[t, n_layers]: last block output, "
        "pre-norm; attn_out[t, l], mlp_out[t, l]: what block l's attention and MLP write",
        sites=list(sites),
        dtype=dtype,
        model_dtype=str(model_dtype).removeprefix("torch."),
        codec=codec,
        batch_tokens=batch_tokens,
        chunk_tokens=chunk_tokens,
        n_layers=adapter.n_layers,
        d_model=d_model,
        n_tokens=n_tokens,
        n_docs=len(offsets) - 1,
        device=str(adapter.device),
        **(attrs or {}),
    )
    out = Path(out)
    with atomic_store(out, store_attrs) as group:
        group.create_array("tokens", data=tokens)
        group.create_array("doc_offsets", data=offsets)
        writers = {}
        for site, n_slots in slots.items():
            array = group.create_array(
                site,
                shape=(n_tokens, n_slots, d_model),
                chunks=(min(chunk_tokens, max(n_tokens, 1)), 1, d_model),
                dtype=stored_dtype,
                compressors=compressors_for(codec),
                fill_value=0,
            )
            if dtype == "bfloat16":
                array.attrs["encoding"] = BFLOAT16_BITS
            writers[site] = ChunkWriter(array, chunk_tokens, direct=True)
        documents = documents_of(tokens, offsets)
        progress = tqdm(total=n_tokens, desc=f"capture {out.name}", unit="tok", mininterval=2)
        started = time.perf_counter()
        # a batch holds batch_tokens activation rows in all: memory is flat in the sites
        for batch in batches(offsets, max(1, batch_tokens // len(sites))):
            docs = [documents[i] for i in batch]
            blocks = layer_major_sites(adapter, docs, pad_id, sites, copy_dtype)
            for site, block in blocks.items():
                check_finite(block, dtype, batch, site)
                values = bfloat16_bits(block) if dtype == "bfloat16" else block.numpy()
                writers[site].append(values)
            progress.update(blocks[sites[0]].shape[1])
        for writer in writers.values():
            writer.close()
        elapsed = time.perf_counter() - started
        progress.close()
        group.attrs["tokens_per_s"] = n_tokens / elapsed if elapsed > 0 else None
        group.attrs["seconds"] = elapsed
        if dtype == "float16":
            group.attrs["float16_overflows"] = 0  # any overflow stops the job (check_finite)
        # the chunk files only: the metadata's size varies with the volatile attributes
        n_values = n_tokens * sum(slots.values()) * d_model
        chunks = sum(stored_bytes(Path(group.store.root) / site / "c") for site in sites)
        group.attrs["bytes_per_activation"] = chunks / max(n_values, 1)
        result = dict(group.attrs)
    log.info(
        "captured %d tokens x %d layers x %d at %.0f tokens/s, %.2f bytes per activation",
        n_tokens,
        sum(slots.values()),
        d_model,
        result["tokens_per_s"] or 0.0,
        result["bytes_per_activation"],
    )
    return result


def check_finite(block: torch.Tensor, dtype: str, docs: list[int], site: str = "resid") -> None:
    """Stop on a NaN or Inf in a batch's residuals (layer-major), naming the layer and the
    documents, instead of storing it for every method downstream. One float32 sum per layer:
    a NaN or Inf anywhere makes it non-finite."""
    sums = block.sum(dim=(1, 2), dtype=torch.float32)
    if bool(torch.isfinite(sums).all()):
        return
    slot = int((~torch.isfinite(sums)).nonzero()[0])
    layer = block[slot]
    cause = "NaN" if bool(torch.isnan(layer).any()) else "Inf"
    where = f"{site}[:, {slot}] of documents {docs[0]}-{docs[-1]}"
    hint = "the model produces it"
    if cause == "Inf" and dtype == "float16":
        hint = "beyond float16's range (+-65504): set capture.dtype: float32"
    raise ActspaceError(f"capture: {cause} in {where}; {hint}")


def capture_job(
    model_dir: str, corpus_store: str, out: str, device: str, settings: dict[str, Any]
) -> None:
    """Load the model and capture one corpus (the body of the Snakemake rule); ``settings``
    is the validated ``config.capture`` section."""
    adapter = load_model(model_dir, device)
    manifest = adapter.manifest
    capture_residuals(
        adapter,
        corpus_store,
        out,
        CaptureSettings.from_config(settings),
        attrs={
            "model": manifest["name"],
            "weights_sha256": manifest["weights_sha256"],
            "corpus": Path(corpus_store).name.removesuffix(".zarr"),
        },
    )
