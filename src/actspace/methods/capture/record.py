"""Recording the residual stream of every token at every layer into a Zarr v3 store.

``resid[t, l]`` is the residual stream entering block ``l`` (``l < n_layers``) and
``resid[t, n_layers]`` the output of the last block before the final norm, for token ``t`` of
the corpus (documents concatenated, no padding rows). Documents run in right-padded batches
of at most ``batch_tokens`` padded tokens; rows are written in whole chunks of ``chunk_tokens``
tokens x one layer x d_model, so memory stays bounded by a batch plus a chunk whatever the
corpus size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actspace.data.batching import right_pad
from actspace.models import ModelAdapter


def residual_hook_names(n_layers: int) -> list[str]:
    """Hook points whose activations make up ``resid``'s layer axis, in order."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + ["hook_resid_final"]


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
