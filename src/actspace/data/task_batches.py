"""Batches of a copy task's sequences as torch tensors, right-padded (the toys' training and
evaluation). Apart from :mod:`actspace.data.tasks` so that checking a config's tasks, when the
workflow is parsed, needs no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from actspace.data.tasks import CopyTask, draw_x, make_sequence


@dataclass
class Batch:
    """Right-padded sequences: ``tokens`` (B, T), ``target`` (B, T) loss mask, ``lengths`` of x."""

    tokens: torch.Tensor
    target: torch.Tensor
    lengths: torch.Tensor
    pad: int

    @property
    def mask(self) -> torch.Tensor:
        """Attention mask (1 = token, 0 = right padding)."""
        return (self.tokens != self.pad).long()


def make_batch(
    task: CopyTask, rng: np.random.Generator, n: int, min_len: int | None = None, max_len=None
) -> Batch:
    """``n`` sequences with x lengths drawn uniformly from [min_len, max_len] (task's default)."""
    low = task.min_len if min_len is None else min_len
    high = task.max_len if max_len is None else max_len
    lengths = rng.integers(low, high + 1, size=n)
    rows = [make_sequence(task, draw_x(task, rng, int(length))) for length in lengths]
    width = max(len(tokens) for tokens, _ in rows)
    tokens = np.full((n, width), task.pad, dtype=np.int64)
    target = np.zeros((n, width), dtype=bool)
    for i, (seq, mask) in enumerate(rows):
        tokens[i, : len(seq)] = seq
        target[i, : len(seq)] = mask
    return Batch(
        torch.from_numpy(tokens), torch.from_numpy(target), torch.from_numpy(lengths), task.pad
    )
