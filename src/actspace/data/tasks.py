"""Copy tasks of the toy transformers: ``<bos> x (<sep> x)* <eos>`` sequences (numpy only).

Sequences follow the public decompiling_transformers toys: data tokens ``0..V-1`` followed by
``<bos>, <sep>, <eos>, <pad>``; the loss covers only the copies and ``<eos>``. ``copy``: x is
unique tokens; ``bigram-copy``: tokens repeat but every adjacent pair occurs once, so the
model must match the previous token as well as the current one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actspace.errors import ActspaceError

# the special tokens after the data tokens, in id order (decompiling_transformers convention)
COPY_TASK_SPECIALS = ("<bos>", "<sep>", "<eos>", "<pad>")

TASKS = ("copy", "bigram-copy")
WALKS = ("public", "uniform")


@dataclass(frozen=True)
class CopyTask:
    """A copy task: ``<bos> x (<sep> x)*repetitions <eos>`` over ``vocab`` data tokens."""

    kind: str
    vocab: int
    min_len: int
    max_len: int
    repetitions: int
    walk: str  # bigram-copy: "public" (decompiling_transformers' generator) or "uniform"

    def __post_init__(self) -> None:
        if self.walk not in WALKS:
            raise ActspaceError(f"unknown bigram walk {self.walk!r}; choose one of {WALKS}")
        if self.kind not in TASKS:
            raise ActspaceError(f"unknown toy task {self.kind!r}; choose one of {TASKS}")
        if not 1 <= self.min_len <= self.max_len:
            raise ActspaceError(f"toy task lengths must satisfy 1 <= min_len <= max_len: {self}")
        if self.kind == "copy" and self.max_len > self.vocab:
            raise ActspaceError(
                f"copy task: max_len {self.max_len} exceeds the {self.vocab} data tokens "
                "(the copied tokens are unique)"
            )

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> CopyTask:
        """The task of a config ``copy_task`` entry (its ``long_len`` is an evaluation
        setting of the toys, not part of the task)."""
        return cls(**{key: value for key, value in entry.items() if key != "long_len"})

    @property
    def bos(self) -> int:
        return self.vocab

    @property
    def sep(self) -> int:
        return self.vocab + 1

    @property
    def eos(self) -> int:
        return self.vocab + 2

    @property
    def pad(self) -> int:
        return self.vocab + 3

    @property
    def vocab_size(self) -> int:
        return self.vocab + len(COPY_TASK_SPECIALS)

    def sequence_length(self, length: int) -> int:
        """Tokens in a sequence whose ``x`` has ``length`` tokens."""
        return 2 + length + self.repetitions * (1 + length)


def unique_tokens(rng: np.random.Generator, vocab: int, length: int) -> np.ndarray:
    """``length`` distinct data tokens in random order."""
    return rng.permutation(vocab)[:length]


def unique_bigram_walk(rng: np.random.Generator, vocab: int, length: int) -> np.ndarray:
    """A random walk over tokens in which every adjacent pair occurs at most once.

    Greedy: each step picks uniformly among the successors whose bigram with the current token
    is still unused; a walk that gets stuck starts again.
    """
    if length - 1 > vocab * vocab:
        raise ActspaceError(f"no sequence of {length} tokens over {vocab} has unique bigrams")
    for _ in range(1000):
        walk = [int(rng.integers(vocab))]
        used: set[tuple[int, int]] = set()
        while len(walk) < length:
            free = [t for t in range(vocab) if (walk[-1], t) not in used]
            if not free:
                break
            nxt = free[int(rng.integers(len(free)))]
            used.add((walk[-1], nxt))
            walk.append(nxt)
        if len(walk) == length:
            return np.asarray(walk)
    raise ActspaceError(f"could not draw a unique-bigram walk of {length} over {vocab} tokens")


def public_bigram_walk(rng: np.random.Generator, vocab: int, length: int) -> np.ndarray:
    """A unique-bigram sequence drawn like the public decompiling_transformers generator
    (``UniqueBigramCopyDataset``): a prefix of min(V, L) tokens drawn with replacement until
    its adjacent pairs are distinct, then, step by step, the successor whose bigram with the
    last token is unused and that has the most unused onward bigrams (ties at random).

    The public code fails when no successor is free; here such a draw starts again.
    """
    if length - 1 > vocab * vocab:
        raise ActspaceError(f"no sequence of {length} tokens over {vocab} has unique bigrams")
    for _ in range(1000):
        prefix = min(vocab, length)
        walk = rng.integers(vocab, size=prefix).tolist()
        while not has_unique_bigrams(walk):
            walk = rng.integers(vocab, size=prefix).tolist()
        used = np.zeros((vocab, vocab), dtype=bool)
        used[walk[:-1], walk[1:]] = True
        while len(walk) < length:
            free = np.flatnonzero(~used[walk[-1]])
            if not len(free):
                break
            onward = vocab - used[free].sum(1)  # unused bigrams leaving each candidate
            best = free[onward == onward.max()]
            nxt = int(best[rng.integers(len(best))])
            used[walk[-1], nxt] = True
            walk.append(nxt)
        if len(walk) == length:
            return np.asarray(walk)
    raise ActspaceError(f"could not draw a unique-bigram sequence of {length} over {vocab} tokens")


def has_unique_bigrams(tokens: Sequence[int]) -> bool:
    pairs = list(zip(tokens[:-1], tokens[1:]))
    return len(pairs) == len(set(pairs))


def draw_x(task: CopyTask, rng: np.random.Generator, length: int) -> np.ndarray:
    """One x of ``length`` tokens for ``task``: unique tokens, or a unique-bigram sequence
    drawn by the task's walk."""
    if task.kind == "copy":
        return unique_tokens(rng, task.vocab, length)
    if task.walk == "public":
        return public_bigram_walk(rng, task.vocab, length)
    return unique_bigram_walk(rng, task.vocab, length)


def make_sequence(task: CopyTask, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of ``<bos> x (<sep> x)* <eos>`` and the mask of positions that carry loss."""
    parts = [[task.bos], x]
    for _ in range(task.repetitions):
        parts += [[task.sep], x]
    parts.append([task.eos])
    tokens = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    target = np.zeros(len(tokens), dtype=bool)
    target[len(x) + 2 :] = True  # every copy, the separators between copies and <eos>
    return tokens, target
