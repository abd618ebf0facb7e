"""Fixed-length windows of a corpus's documents: the equal-length prompts of methods that
pair prompts position by position (stable regions: the authors' 10-token windows)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from actspace.errors import ActspaceError


def window_starts(
    documents: Sequence[np.ndarray], window: int, skip: int | None = None
) -> list[tuple[int, int]]:
    """(document, start) of every non-overlapping ``window``-token window of each document,
    after a leading ``skip`` token (a BOS) when the document starts with it."""
    starts = []
    for doc, tokens in enumerate(documents):
        first = 1 if skip is not None and len(tokens) and int(tokens[0]) == skip else 0
        starts += [(doc, s) for s in range(first, len(tokens) - window + 1, window)]
    return starts


def sample_windows(
    documents: Sequence[np.ndarray],
    window: int,
    n: int,
    seed: int,
    skip: int | None = None,
    corpus: str = "the corpus",
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct windows drawn at random (seeded) from every window of the documents, in
    draw order: tokens (n, window) int64 and their (document, start) (n, 2)."""
    if window < 1 or n < 1:
        raise ActspaceError(f"need a window and a count of at least 1 (got {window}, {n})")
    starts = window_starts(documents, window, skip)
    if len(starts) < n:
        raise ActspaceError(
            f"{corpus} holds {len(starts)} non-overlapping {window}-token windows, fewer than "
            f"the {n} prompts asked for: use a longer corpus, shorter windows or fewer prompts"
        )
    order = np.random.default_rng(seed).choice(len(starts), size=n, replace=False)
    where = np.array([starts[i] for i in order], dtype=np.int64)
    tokens = np.stack([documents[d][s : s + window] for d, s in where]).astype(np.int64)
    return tokens, where
