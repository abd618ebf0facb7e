"""Capture the residual stream of every token at every layer into a Zarr v3 store.

``resid[t, l]`` is the residual stream entering block ``l`` (``l < n_layers``) and
``resid[t, n_layers]`` the output of the last block before the final norm, for token ``t`` of
the corpus (documents concatenated, no padding rows). Documents run in right-padded batches
of at most ``batch_tokens`` padded tokens; rows are written in whole chunks of ``chunk_tokens``
tokens x one layer x d_model, so memory stays bounded by a batch plus a chunk whatever the
corpus size.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from actspace.corpora import documents_of, read_corpus
from actspace.models import ModelAdapter, load_model
from actspace.summary import row
from actspace.store import atomic_store, compressors_for, open_store, provenance, stored_bytes

log = logging.getLogger(__name__)

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}


def residual_hook_names(n_layers: int) -> list[str]:
    """Hook points whose activations make up ``resid``'s layer axis, in order."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + ["hook_resid_final"]


def batches(offsets: np.ndarray, batch_tokens: int) -> Iterator[list[int]]:
    """Consecutive document indices, grouped so that n_docs x longest <= batch_tokens.

    A document longer than ``batch_tokens`` forms a batch of its own.
    """
    batch: list[int] = []
    longest = 0
    for doc in range(len(offsets) - 1):
        length = int(offsets[doc + 1] - offsets[doc])
        if batch and max(longest, length) * (len(batch) + 1) > batch_tokens:
            yield batch
            batch, longest = [], 0
        batch.append(doc)
        longest = max(longest, length)
    if batch:
        yield batch


def right_pad(docs: Sequence[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (batch, longest) right-padded with ``pad_id``, and the attention mask."""
    ids = torch.full((len(docs), max(len(doc) for doc in docs)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, doc in enumerate(docs):
        ids[row, : len(doc)] = torch.from_numpy(np.asarray(doc, dtype=np.int64))
        mask[row, : len(doc)] = 1
    return ids, mask


@torch.no_grad()
def residuals_of_batch(adapter: ModelAdapter, docs: list[np.ndarray], pad_id: int) -> torch.Tensor:
    """Residual stream of a batch of documents, (sum of lengths, n_layers + 1, d_model).

    Right padding keeps every real token at its own position (rotary or learned), and the
    causal mask keeps real tokens from seeing padding; padding rows are dropped.
    """
    lengths = [len(doc) for doc in docs]
    ids, mask = right_pad(docs, pad_id)
    names = residual_hook_names(adapter.n_layers)
    _, cache = adapter.run_with_cache(
        ids.to(adapter.device), names, attention_mask=mask.to(adapter.device), logits=False
    )
    stacked = torch.stack([cache[name] for name in names], dim=2)  # (batch, pos, L+1, d)
    return torch.cat([stacked[row, :length] for row, length in enumerate(lengths)])


class ChunkWriter:
    """Append rows to a Zarr array, writing only whole, chunk-aligned blocks until the end."""

    def __init__(self, array: Any, chunk_rows: int):
        self.array = array
        self.chunk_rows = chunk_rows
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.written = 0

    def append(self, rows: np.ndarray) -> None:
        self.pending.append(rows)
        self.n_pending += len(rows)
        if self.n_pending >= self.chunk_rows:
            self._flush(final=False)

    def close(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        if not self.pending:
            return
        block = np.concatenate(self.pending)
        n_out = len(block) if final else (len(block) // self.chunk_rows) * self.chunk_rows
        if n_out:
            self.array[self.written : self.written + n_out] = block[:n_out]
            self.written += n_out
        rest = block[n_out:]
        self.pending = [rest] if len(rest) else []
        self.n_pending = len(rest)


def capture_residuals(
    adapter: ModelAdapter,
    corpus_store: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str = "float32",
    batch_tokens: int = 2048,
    chunk_tokens: int = 1024,
    codec: str = "none",
    attrs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the corpus through the model and store ``resid``, ``tokens``, ``doc_offsets``.

    Returns the store's attributes, including the measured ``tokens_per_s`` and
    ``bytes_per_activation`` (stored bytes over stored values, after the codec).
    """
    tokens, offsets = read_corpus(corpus_store)
    n_tokens, n_slots, d_model = int(tokens.size), adapter.n_layers + 1, adapter.d_model
    storage = STORAGE_DTYPES[dtype]
    pad_id = adapter.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = adapter.tokenizer.eos_token_id or 0
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
            dtype=storage,
            compressors=compressors_for(codec),
            fill_value=0,
        )
        writer = ChunkWriter(resid, chunk_tokens)
        documents = documents_of(tokens, offsets)
        progress = tqdm(total=n_tokens, desc=f"capture {out.name}", unit="tok", mininterval=2)
        started = time.perf_counter()
        for batch in batches(offsets, batch_tokens):
            docs = [documents[i] for i in batch]
            rows = residuals_of_batch(adapter, docs, pad_id)
            writer.append(rows.to("cpu", torch.float32).numpy().astype(storage, copy=False))
            progress.update(len(rows))
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


def capture_job(model_dir: str, corpus_store: str, out: str, device: str, **settings: Any) -> None:
    """Load the model and capture one corpus (the body of the Snakemake rule)."""
    adapter = load_model(model_dir, device)
    manifest = adapter.manifest
    capture_residuals(
        adapter,
        corpus_store,
        out,
        attrs={
            "model": manifest["name"],
            "weights_sha256": manifest["weights_sha256"],
            "corpus": Path(corpus_store).name.removesuffix(".zarr"),
        },
        **settings,
    )


def capture_summary(stores: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Capture throughput and storage cost of each activation store (pipeline figures)."""
    rows = []
    for path in stores:
        attrs = open_store(path, ["resid"]).attrs
        setting = (
            f"corpus {attrs['corpus']}, {attrs['n_tokens']} tokens, {attrs['dtype']}, "
            f"codec {attrs['codec']}, {attrs['device']}"
        )
        for quantity, key, unit in (
            ("capture throughput", "tokens_per_s", "tokens/s"),
            ("storage per activation", "bytes_per_activation", "bytes"),
        ):
            rows.append(row(quantity, attrs[key], attrs["model"], setting, unit=unit))
    return {
        "method": "capture",
        "title": "Residual-stream capture (pipeline figures)",
        "rows": rows,
    }
