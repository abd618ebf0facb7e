"""Documents into batches: bounded padded size, right padding with an attention mask."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


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
