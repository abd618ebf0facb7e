"""Generation from a loaded model: greedy continuations and seeded samples.

One place for what every generating method needs: the token used for padding (the
tokenizer's pad token, else its EOS, else 0) and a greedy continuation of one prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from actspace.models import ModelAdapter


def pad_token_id(tokenizer: Any) -> int:
    """The id used to pad batches: the pad token, else EOS, else 0 (padding is always masked)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


@torch.no_grad()
def greedy(adapter: ModelAdapter, prompt: Sequence[int], n_new: int) -> list[int]:
    """``prompt`` followed by the model's greedy continuation of up to ``n_new`` tokens
    (ending at EOS, kept), with whatever hooks are installed on the adapter."""
    inputs = torch.as_tensor([list(prompt)], dtype=torch.long, device=adapter.device)
    out = adapter.model.generate(
        inputs,
        attention_mask=torch.ones_like(inputs),
        do_sample=False,
        max_new_tokens=n_new,
        pad_token_id=pad_token_id(adapter.tokenizer),
    )
    return out[0].tolist()


def greedy_continuations(
    adapter: ModelAdapter, token_lists: Sequence[list[int]], n_new: int
) -> list[list[int]]:
    """:func:`greedy` of each prompt, one prompt at a time (no padding enters a continuation)."""
    return [
        greedy(adapter, ids, n_new)
        for ids in tqdm(token_lists, desc="greedy continuations", unit="text", mininterval=5)
    ]


@torch.no_grad()
def sample_texts(
    adapter: ModelAdapter, n_texts: int, n_tokens: int, seed: int, batch_size: int
) -> list[list[int]]:
    """Sample ``n_texts`` texts of up to ``n_tokens`` new tokens from BOS (temperature 1).

    Each batch is seeded from ``seed`` and its index, so the corpus does not depend on the
    device's batch size. A text ends at the first EOS (kept), padding after it is dropped.
    """
    tokenizer = adapter.tokenizer
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    texts: list[list[int]] = []
    progress = tqdm(total=n_texts, desc="sampling texts", unit="text", mininterval=5)
    for batch_index, first in enumerate(range(0, n_texts, batch_size)):
        size = min(batch_size, n_texts - first)
        torch.manual_seed(seed * 1_000_003 + batch_index)
        inputs = torch.full((size, 1), start, dtype=torch.long, device=adapter.device)
        out = adapter.model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=n_tokens,
            min_new_tokens=1,
            pad_token_id=pad_token_id(tokenizer),
        )
        for row in out.tolist():
            new = row[1:]
            if eos in new:
                new = new[: new.index(eos) + 1]
            texts.append([start] + new)
        progress.update(size)
    progress.close()
    return texts
