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
from actspace.errors import ActspaceError
from actspace.data.corpora import documents_of, read_corpus
from actspace.data.generation import pad_token_id
from actspace.methods.capture.record import ChunkWriter, layer_major_residuals
from actspace.models import ModelAdapter, load_model
from actspace.settings import SectionSettings
from actspace.store import atomic_store, compressors_for, provenance, stored_bytes

log = logging.getLogger(__name__)

STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class CaptureSettings(SectionSettings):
    """``config.capture`` less the model and corpus lists (defaults: the schema)."""

    dtype: str  # storage dtype: float32 | float16
    batch_tokens: int  # padded tokens per forward pass
    chunk_tokens: int  # rows per Zarr chunk
    codec: str  # none | zstd | blosc-lz4


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
    n_tokens, n_slots, d_model = int(tokens.size), adapter.n_layers + 1, adapter.d_model
    dtype, codec = settings.dtype, settings.codec
    batch_tokens, chunk_tokens = settings.batch_tokens, settings.chunk_tokens
    storage = STORAGE_DTYPES[dtype]
    pad_id = pad_token_id(adapter.tokenizer)
    store_attrs = provenance(
        kind="activations",
        layout="resid[t, l]: stream entering block l; resid[t, n_layers]: last block output, pre-norm",
        dtype=dtype,
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
        resid = group.create_array(
            "resid",
            shape=(n_tokens, n_slots, d_model),
            chunks=(min(chunk_tokens, max(n_tokens, 1)), 1, d_model),
            dtype=dtype,
            compressors=compressors_for(codec),
            fill_value=0,
        )
        writer = ChunkWriter(resid, chunk_tokens)
        documents = documents_of(tokens, offsets)
        progress = tqdm(total=n_tokens, desc=f"capture {out.name}", unit="tok", mininterval=2)
        started = time.perf_counter()
        for batch in batches(offsets, batch_tokens):
            docs = [documents[i] for i in batch]
            block = layer_major_residuals(adapter, docs, pad_id, storage)
            check_finite(block, dtype, batch)
            writer.append(block.numpy())
            progress.update(block.shape[1])
        writer.close()
        elapsed = time.perf_counter() - started
        progress.close()
        group.attrs["tokens_per_s"] = n_tokens / elapsed if elapsed > 0 else None
        group.attrs["seconds"] = elapsed
        # the store's size is final once all chunks are written; metadata is small
        n_values = n_tokens * n_slots * d_model
        group.attrs["bytes_per_activation"] = stored_bytes(group.store.root) / max(n_values, 1)
        result = dict(group.attrs)
    log.info(
        "captured %d tokens x %d layers x %d at %.0f tokens/s, %.2f bytes per activation",
        n_tokens,
        n_slots,
        d_model,
        result["tokens_per_s"] or 0.0,
        result["bytes_per_activation"],
    )
    return result


def check_finite(block: torch.Tensor, dtype: str, docs: list[int]) -> None:
    """Stop on a NaN or Inf in a batch's residuals (layer-major), naming the layer and the
    documents, instead of storing it for every method downstream. One float32 sum per layer:
    a NaN or Inf anywhere makes it non-finite."""
    sums = block.sum(dim=(1, 2), dtype=torch.float32)
    if bool(torch.isfinite(sums).all()):
        return
    slot = int((~torch.isfinite(sums)).nonzero()[0])
    layer = block[slot]
    cause = "NaN" if bool(torch.isnan(layer).any()) else "Inf"
    where = f"resid[:, {slot}] (0: embeddings) of documents {docs[0]}-{docs[-1]}"
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
