"""Toy copy transformers with known circuits (induction heads), trained in the pipeline.

The subspace-partition research log (``shared/papers/001``) needs transformers whose circuit is
known: a two-layer attention-only GPT-2 trained to repeat a sequence of unique tokens forms a
previous-token head in layer 1 and an induction head in layer 2; a model trained to repeat a
sequence of *unique bigrams* must match the previous token as well as the current one
(a bigram-induction head).

Sequences follow the public decompiling_transformers toys: ``<bos> x <sep> x <eos>`` (with
``repetitions`` copies of ``x``), data tokens ``0..V-1`` followed by ``<bos>, <sep>, <eos>,
<pad>``; the loss covers only the copies and ``<eos>``. Toys are saved as ordinary Hugging Face
GPT-2 directories with a word-level tokenizer and the pipeline's manifest, so every method loads
them through :class:`~actspace.models.ModelAdapter`. Attention-only toys keep GPT-2's MLP modules
(so the directory is a plain GPT-2) with their weights zeroed and frozen; the manifest records
``attn_only`` and the adapter checks it.

Head scores (attention ``A[q, k]`` of one head, pooled over held-out sequences):

``induction_score``
    mean over queries ``q`` with an earlier ``j``, ``tok[j] = tok[q]``, ``j + 1 < q`` of the
    attention on the token after each such ``j`` (``sum_j A[q, j+1]``);
``prev_token_score``
    mean over first-copy positions ``q >= 2`` of ``A[q, q-1]``;
``bigram_score``
    mean over ``q`` whose bigram ``(tok[q-1], tok[q])`` occurred earlier at ``(j-1, j)`` of
    ``A[q, j+1]``;
``decoy_mass``
    over the same ``q``, the attention on ``j'+1`` for every other ``j'`` with
    ``tok[j'] = tok[q]`` (the plain-induction targets that a bigram head must avoid).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actspace.errors import ActspaceError
from actspace.models.sources import write_model_dir
from actspace.models.tokenizers import COPY_TASK_SPECIALS, copy_task_tokenizer
from actspace.store import atomic_directory, write_csv

log = logging.getLogger(__name__)

TASKS = ("copy", "bigram-copy")
SPECIALS = COPY_TASK_SPECIALS
SCORES = ("induction_score", "prev_token_score", "bigram_score", "decoy_mass")


# --------------------------------------------------------------------------- tasks and data
@dataclass(frozen=True)
class CopyTask:
    """A copy task: ``<bos> x (<sep> x)*repetitions <eos>`` over ``vocab`` data tokens."""

    kind: str
    vocab: int
    min_len: int
    max_len: int
    repetitions: int = 1

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ActspaceError(f"unknown toy task {self.kind!r}; choose one of {TASKS}")
        if not 1 <= self.min_len <= self.max_len:
            raise ActspaceError(f"toy task lengths must satisfy 1 <= min_len <= max_len: {self}")
        if self.kind == "copy" and self.max_len > self.vocab:
            raise ActspaceError(
                f"copy task: max_len {self.max_len} exceeds the {self.vocab} data tokens "
                "(the copied tokens are unique)"
            )

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
        return self.vocab + len(SPECIALS)

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


def has_unique_bigrams(tokens: Sequence[int]) -> bool:
    pairs = list(zip(tokens[:-1], tokens[1:]))
    return len(pairs) == len(set(pairs))


def draw_x(task: CopyTask, rng: np.random.Generator, length: int) -> np.ndarray:
    if task.kind == "copy":
        return unique_tokens(rng, task.vocab, length)
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


# --------------------------------------------------------------------------- head scores
def _data_query_mask(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return tokens < vocab


def induction_targets(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, T, T) mask: ``[b, q, k]`` true when ``k = j + 1`` for an earlier ``j`` with
    ``tok[j] = tok[q]`` and ``j + 1 < q`` (``q`` a data token)."""
    _, width = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # [b, q, j]
    q = torch.arange(width)[:, None]
    j = torch.arange(width)[None, :]
    match = same & (j + 1 < q) & _data_query_mask(tokens, vocab)[:, :, None]
    targets = torch.zeros_like(match)
    targets[:, :, 1:] = match[:, :, :-1]
    return targets


def bigram_targets(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, T, T) mask: ``[b, q, k]`` true when ``k = j + 1`` and ``(tok[j-1], tok[j])`` equals
    ``(tok[q-1], tok[q])`` with ``j + 1 < q`` (both tokens of the query's bigram data tokens)."""
    same = tokens[:, :, None] == tokens[:, None, :]
    prev_same = torch.zeros_like(same)
    prev_same[:, 1:, 1:] = same[:, :-1, :-1]  # tok[q-1] == tok[j-1]
    data = _data_query_mask(tokens, vocab)
    query_ok = data.clone()
    query_ok[:, 0] = False
    query_ok[:, 1:] &= data[:, :-1]
    width = tokens.shape[1]
    q = torch.arange(width)[:, None]
    j = torch.arange(width)[None, :]
    match = same & prev_same & (j + 1 < q) & (j >= 1) & query_ok[:, :, None]
    targets = torch.zeros_like(match)
    targets[:, :, 1:] = match[:, :, :-1]
    return targets


def first_copy_prev_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, T, T) mask of ``[q, q-1]`` for first-copy positions ``2 <= q <= L`` (x at 1..L)."""
    q = torch.arange(width)
    rows = (q[None, :] >= 2) & (q[None, :] <= lengths[:, None])  # (B, T)
    mask = torch.zeros(len(lengths), width, width, dtype=torch.bool)
    idx = torch.arange(1, width)
    mask[:, idx, idx - 1] = rows[:, 1:]
    return mask


def _pooled(attn: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per head: mean over queries with any target of the attention mass on the targets.

    ``attn`` (B, H, T, T), ``targets`` (B, T, T) -> (H,), NaN where no query qualifies.
    """
    return _pooled_over(attn, targets, targets.any(-1))


def head_scores(
    attn: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, vocab: int
) -> dict[str, torch.Tensor]:
    """The four head scores of every head of one layer (see the module docstring).

    ``attn`` (B, H, T, T) attention of one layer, ``tokens`` (B, T), ``lengths`` (B,) of x.
    """
    induction = induction_targets(tokens, vocab)
    bigram = bigram_targets(tokens, vocab)
    bigram_queries = bigram.any(-1, keepdim=True)
    decoys = induction & ~bigram & bigram_queries
    return {
        "induction_score": _pooled(attn, induction),
        "prev_token_score": _pooled(attn, first_copy_prev_mask(lengths, tokens.shape[1])),
        "bigram_score": _pooled(attn, bigram),
        "decoy_mass": _pooled_over(attn, decoys, bigram_queries.squeeze(-1)),
    }


def _pooled_over(attn: torch.Tensor, targets: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Attention mass on ``targets`` per head, averaged over ``queries`` (B, T), including
    queries that have no target."""
    count = queries.sum()
    if count == 0:
        return torch.full((attn.shape[1],), float("nan"))
    mass = (attn * targets[:, None].to(attn.dtype)).sum(-1)
    return (mass * queries[:, None].to(attn.dtype)).sum((0, 2)) / count


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ToyArchitecture:
    """GPT-2 shape of a toy; ``attn_only`` zeroes and freezes the MLP writes."""

    n_layers: int
    n_heads: int
    d_model: int
    n_positions: int
    attn_only: bool = True
    dropout: float = 0.0
    d_mlp: int | None = None  # MLP width; None = GPT-2's 4 * d_model


def toy_tokenizer(task: CopyTask):
    """Word-level tokenizer: data tokens "0".."V-1", then ``<bos> <sep> <eos> <pad>``."""
    return copy_task_tokenizer(task.vocab)


def build_toy_model(task: CopyTask, arch: ToyArchitecture, seed: int) -> nn.Module:
    """A freshly initialised GPT-2 for ``task`` (seeded), MLPs disabled if attention-only."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if arch.d_model % arch.n_heads:
        raise ActspaceError(f"d_model {arch.d_model} is not divisible by {arch.n_heads} heads")
    longest = task.sequence_length(task.max_len)
    if longest > arch.n_positions:
        raise ActspaceError(
            f"n_positions {arch.n_positions} is shorter than the longest sequence ({longest})"
        )
    config = GPT2Config(
        vocab_size=task.vocab_size,
        n_positions=arch.n_positions,
        n_embd=arch.d_model,
        n_layer=arch.n_layers,
        n_head=arch.n_heads,
        resid_pdrop=arch.dropout,
        embd_pdrop=arch.dropout,
        attn_pdrop=arch.dropout,
        bos_token_id=task.bos,
        eos_token_id=task.eos,
        pad_token_id=task.pad,
        n_inner=1 if arch.attn_only else arch.d_mlp,  # a zeroed MLP needs no width
        activation_function="gelu_pytorch_tanh",  # GPT-2's tanh GELU as one fused kernel
        use_cache=False,
    )
    config._attn_implementation = "eager"  # attention patterns are read out
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    if arch.attn_only:
        disable_mlps(model)
    return model


def disable_mlps(model: nn.Module) -> None:
    """Make a GPT-2 attention-only: every MLP weight zero and frozen, so its write is exactly 0."""
    for block in model.transformer.h:
        for param in block.mlp.parameters():
            param.requires_grad_(False)
            param.zero_()


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    decay: str = "cosine"
    position_offsets: bool = True
    shared_length: bool = False
    checkpoints: int = 12
    eval_sequences: int = 512
    eval_every: int = 50
    long_len: tuple[int, int] | None = None
    seed: int = 0


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """Log-spaced steps from 0 to ``steps`` inclusive (about ``count`` of them)."""
    if count < 2:
        return [0, steps]
    spaced = np.geomspace(1, max(steps, 1), num=count - 1)
    return sorted({0, steps, *(int(round(s)) for s in spaced)})


def random_position_ids(
    rng: np.random.Generator, lengths: torch.Tensor, width: int, task: CopyTask, n_positions: int
) -> torch.Tensor:
    """Position ids shifted by a random per-sequence offset, so every position gets trained."""
    seq_lens = np.array([task.sequence_length(int(n)) for n in lengths])
    offsets = rng.integers(0, n_positions - seq_lens + 1)
    ids = torch.from_numpy(offsets)[:, None] + torch.arange(width)[None, :]
    return ids.clamp(max=n_positions - 1)


def training_batch(task: CopyTask, rng: np.random.Generator, settings: TrainSettings) -> Batch:
    """A training batch; with ``shared_length`` all its sequences share one x length, drawn
    uniformly like every single length, so the batch needs no padding (about 40% less compute
    on the copy task's lengths) while the lengths seen over training keep their distribution."""
    if not settings.shared_length:
        return make_batch(task, rng, settings.batch_size)
    length = int(rng.integers(task.min_len, task.max_len + 1))
    return make_batch(task, rng, settings.batch_size, length, length)


def lr_factor(settings: TrainSettings):
    """Learning-rate multiplier per step: linear warmup, then constant or cosine down to 0.1."""
    warmup = max(settings.warmup_steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if settings.decay == "constant":
            return 1.0
        progress = (step - warmup) / max(settings.steps - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def copy_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy on the positions that carry loss (next-token prediction)."""
    mask = batch.target[:, 1:]
    return nn.functional.cross_entropy(logits[:, :-1][mask], batch.tokens[:, 1:][mask])


def sequence_accuracy(logits: torch.Tensor, batch: Batch) -> float:
    """Fraction of sequences whose every copied position (and ``<eos>``) is predicted right."""
    right = (logits[:, :-1].argmax(-1) == batch.tokens[:, 1:]) | ~batch.target[:, 1:]
    return float(right.all(-1).float().mean())


@torch.no_grad()
def evaluate(model: nn.Module, task: CopyTask, batch: Batch, scores: bool = True) -> dict:
    """Held-out loss, sequence accuracy and the best head of each score."""
    model.eval()
    out = model(batch.tokens, attention_mask=batch.mask, output_attentions=scores)
    result: dict[str, Any] = {
        "loss": float(copy_loss(out.logits, batch)),
        "accuracy": sequence_accuracy(out.logits, batch),
    }
    if scores:
        table = score_table(out.attentions, batch, task.vocab)
        result.update(best_scores(table, task))
        result["heads"] = table
    model.train()
    return result


def score_table(attentions: Sequence[torch.Tensor], batch: Batch, vocab: int) -> list[dict]:
    """One row per (layer, head) with every score; layers numbered from 1 as in the papers."""
    rows = []
    for layer, attn in enumerate(attentions, start=1):
        scores = head_scores(attn.float(), batch.tokens, batch.lengths, vocab)
        for head in range(attn.shape[1]):
            rows.append(
                {"layer": layer, "head": head, **{k: float(v[head]) for k, v in scores.items()}}
            )
    return rows


def best_scores(table: list[dict], task: CopyTask) -> dict[str, float]:
    """Best head of each kind; for the bigram task also the decoy mass of the best bigram head."""
    best = {
        "induction_score": max(row["induction_score"] for row in table),
        "prev_token_score": max(row["prev_token_score"] for row in table),
    }
    if task.kind == "bigram-copy":
        top = max(table, key=lambda row: row["bigram_score"])
        best["bigram_score"] = top["bigram_score"]
        best["decoy_mass"] = top["decoy_mass"]
    return best


def train(
    task: CopyTask,
    arch: ToyArchitecture,
    settings: TrainSettings,
    on_checkpoint=None,
    progress: bool = True,
) -> tuple[nn.Module, list[dict], list[dict]]:
    """Train a toy; return the model, one metrics row per checkpoint and the training log.

    ``on_checkpoint(step, model, metrics)`` is called at every checkpoint step (0 included).
    The data stream and the held-out set come from separate seeded generators, so the same
    settings give the same weights.
    """
    from tqdm.auto import tqdm

    model = build_toy_model(task, arch, settings.seed)
    data_rng = np.random.default_rng([settings.seed, 0])
    eval_rng = np.random.default_rng([settings.seed, 1])
    held_out = make_batch(task, eval_rng, settings.eval_sequences)
    long = None
    if settings.long_len is not None:
        long = make_batch(task, eval_rng, settings.eval_sequences, *settings.long_len)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor(settings))
    marks = set(checkpoint_steps(settings.steps, settings.checkpoints))
    metrics: list[dict] = []
    history: list[dict] = []
    bar = tqdm(range(settings.steps + 1), desc="train", disable=not progress, mininterval=2)
    running = math.nan
    started = time.perf_counter()
    for step in bar:
        if step in marks or step % settings.eval_every == 0:
            result = evaluate(model, task, held_out, scores=step in marks)
            seconds = time.perf_counter() - started
            row = {"step": step, "train_loss": running, "seconds": seconds, **result}
            if long is not None:
                row["accuracy_long"] = evaluate(model, task, long, scores=False)["accuracy"]
            history.append({k: v for k, v in row.items() if k != "heads"})
            if step in marks:
                metrics.append(row)
                if on_checkpoint is not None:
                    on_checkpoint(step, model, row)
        if step == settings.steps:
            break
        batch = training_batch(task, data_rng, settings)
        position_ids = None
        if settings.position_offsets:
            position_ids = random_position_ids(
                data_rng, batch.lengths, batch.tokens.shape[1], task, arch.n_positions
            )
        logits = model(batch.tokens, attention_mask=batch.mask, position_ids=position_ids).logits
        loss = copy_loss(logits, batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = loss.item()
        running = value if math.isnan(running) else 0.95 * running + 0.05 * value
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
    return model, metrics, history


# --------------------------------------------------------------------------- pipeline jobs
@dataclass(frozen=True)
class ToySpec:
    """One ``config.toys`` entry: the task, the GPT-2 shape and the training settings."""

    name: str
    task: CopyTask
    arch: ToyArchitecture
    settings: TrainSettings

    @classmethod
    def from_config(cls, name: str, entry: dict[str, Any]) -> ToySpec:
        task_cfg = dict(entry["task"])
        long_len = task_cfg.pop("long_len", None)
        train_cfg = dict(entry["train"])
        if long_len is not None:
            train_cfg["long_len"] = tuple(long_len)
        return cls(
            name,
            CopyTask(**task_cfg),
            ToyArchitecture(**entry["model"]),
            TrainSettings(**train_cfg),
        )

    def source(self, step: int | None = None) -> dict[str, Any]:
        """The manifest's ``source`` section of a model trained from this spec."""
        settings = asdict(self.settings)
        return {
            "source": "toy",
            "toy": self.name,
            "task": asdict(self.task),
            "architecture": asdict(self.arch),
            "train": settings,
            "step": self.settings.steps if step is None else step,
        }


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a CSV table (as :func:`actspace.store.write_csv` writes them), numbers parsed."""

    def parse(value: str) -> Any:
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with open(path, newline="") as handle:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(handle)]


METRIC_COLUMNS = ("step", "loss", "accuracy", "accuracy_long", "train_loss", "seconds")


def train_toy_job(
    name: str,
    entry: dict[str, Any],
    model: str,
    checkpoints: str,
    metrics: str,
    history: str,
    heads: str,
) -> None:
    """Rule ``train_toy``: train, save the final model and log-spaced checkpoints, write metrics.

    Outputs (``results/toys/{toy}/``): ``model/`` and ``checkpoints/step-NNNNNN/`` (Hugging
    Face GPT-2 directories with tokenizer and manifest), ``metrics.csv`` (one row per
    checkpoint), ``training_log.csv`` (every ``eval_every`` steps) and ``heads.csv`` (every
    head's scores at the end).
    """
    spec = ToySpec.from_config(name, entry)
    tokenizer = toy_tokenizer(spec.task)
    score_keys = [*SCORES] if spec.task.kind == "bigram-copy" else [*SCORES[:2]]
    started = time.perf_counter()
    with atomic_directory(Path(checkpoints)) as tmp:

        def save(step: int, model: nn.Module, _row: dict) -> None:
            write_model_dir(
                model,
                tokenizer,
                tmp / f"step-{step:06d}",
                f"{name}@{step}",
                spec.source(step),
                attn_only=spec.arch.attn_only,
            )

        trained, rows, log_rows = train(spec.task, spec.arch, spec.settings, on_checkpoint=save)
    seconds = time.perf_counter() - started
    write_model_dir(trained, tokenizer, Path(model), name, spec.source(), spec.arch.attn_only)
    columns = [c for c in METRIC_COLUMNS if c in rows[0]] + score_keys
    write_csv(metrics, [{c: row[c] for c in columns} for row in rows], float_format=".6g")
    write_csv(history, log_rows, float_format=".6g")
    write_csv(heads, rows[-1]["heads"], float_format=".6g")
    final = rows[-1]
    log.info(
        "%s: %d steps in %.0f s; held-out accuracy %.4f, %s",
        name,
        spec.settings.steps,
        seconds,
        final["accuracy"],
        ", ".join(f"{k} {final[k]:.3f}" for k in score_keys),
    )


def passes_bars(task: CopyTask, final: dict[str, float]) -> bool:
    """The issue's acceptance bars: copy accuracy >= 0.99 with induction and previous-token
    heads >= 0.9; bigram copy accuracy >= 0.95 with a bigram head >= 0.9 at decoy <= 0.05."""
    if task.kind == "copy":
        return (
            final["accuracy"] >= 0.99
            and final["induction_score"] >= 0.9
            and final["prev_token_score"] >= 0.9
        )
    return (
        final["accuracy"] >= 0.95 and final["bigram_score"] >= 0.9 and final["decoy_mass"] <= 0.05
    )


def toy_search_job(name: str, entry: dict[str, Any], out: str) -> None:
    """Rule ``toy_search``: train every architecture of ``entry['search']`` on the toy's task
    and settings (final step only) and write one row per candidate, smallest first, to ``out``.

    The candidates are attention-only unless the search says ``attn_only: false`` (the toys
    issue asks for an attention-only search whatever the toy's own shape); ``search.train``
    overrides the toy's training settings for them (e.g. more steps than the toy needs).
    """
    base = ToySpec.from_config(name, entry)
    grid = entry["search"]
    rows = []
    candidates = [
        (layers, heads, width)
        for layers in grid["n_layers"]
        for heads in grid["n_heads"]
        for width in grid["d_model"]
    ]
    for layers, heads, width in candidates:
        arch = ToyArchitecture(
            layers,
            heads,
            width,
            base.arch.n_positions,
            attn_only=grid.get("attn_only", True),
            dropout=grid.get("dropout", 0.0),
        )
        settings = TrainSettings(
            **{**asdict(base.settings), **grid.get("train", {}), "checkpoints": 2}
        )
        log.info("search %s: %d layers x %d heads x d %d", name, layers, heads, width)
        model, metrics, history = train(base.task, arch, settings, progress=False)
        final = metrics[-1]
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append(
            {
                "n_layers": layers,
                "n_heads": heads,
                "d_model": width,
                "params": n_params,
                "steps": settings.steps,
                **{k: v for k, v in final.items() if k not in ("heads", "step", "train_loss")},
                "passes": passes_bars(base.task, final),
            }
        )
    rows.sort(key=lambda row: (row["params"], row["n_layers"], row["n_heads"]))
    write_csv(out, rows, float_format=".6g")


@torch.no_grad()
def attention_patterns(model: nn.Module, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention (B, H, T, T) on ``tokens``, through the eager implementation."""
    if model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")
    return list(model(tokens.to(model.device), output_attentions=True).attentions)


def toy_figures_job(
    name: str,
    entry: dict[str, Any],
    model: str,
    metrics: str,
    history: str,
    training: str,
    attention: str,
) -> None:
    """Rule ``toy_figures``: the training curves and every head's pattern on a held-out example."""
    from actspace.models.sources import load_model
    from actspace.plots import toy_attention_figure, toy_training_figure

    spec = ToySpec.from_config(name, entry)
    toy_training_figure(history, metrics, training)
    adapter = load_model(model)
    rng = np.random.default_rng([spec.settings.seed, 2])
    length = min(spec.task.max_len, 12)
    tokens, _ = make_sequence(spec.task, draw_x(spec.task, rng, length))
    attentions = attention_patterns(adapter.model, torch.from_numpy(tokens)[None])
    labels = adapter.tokenizer.convert_ids_to_tokens(tokens.tolist())
    toy_attention_figure(
        [attn[0].float().cpu().numpy() for attn in attentions],
        labels,
        f"{name}: attention on a held-out {spec.task.kind} sequence",
        attention,
    )


PUBLISHED = {  # the public decompiling_transformers GPT-2 toys the issue cites
    ("copy", "accuracy"): ("0.99", "2-layer 1-head d=64 GPT-2 after its phase change"),
    ("copy", "induction_score"): ("0.997", "layer-2 induction head, same toy"),
    ("copy", "prev_token_score"): ("0.995", "layer-1 previous-token head, same toy"),
    ("bigram-copy", "bigram_score"): ("0.91", "4-layer 2-head d=64 GPT-2 toy"),
    ("bigram-copy", "decoy_mass"): ("0.02", "same head"),
}
STUDY = "decompiling_transformers toys (research log, shared/papers/001)"


def toys_summary(
    toys: dict[str, dict[str, Any]], inputs: dict[str, str], out: str | os.PathLike
) -> None:
    """Rule ``toys_summary``: final accuracy and best head scores of every toy, the search's
    smallest passing architecture, beside the public toys' numbers."""
    from actspace.summary import row, write_json

    rows = []
    for name, entry in toys.items():
        spec = ToySpec.from_config(name, entry)
        final = read_csv(inputs[f"{name}.metrics"])[-1]
        arch = spec.arch
        setting = (
            f"{spec.task.kind}, V={spec.task.vocab}, L {spec.task.min_len}-{spec.task.max_len}; "
            f"{arch.n_layers}L x {arch.n_heads}H, d={arch.d_model}"
            f"{', attention-only' if arch.attn_only else ''}; {spec.settings.steps} steps"
        )
        keys = ["accuracy", "accuracy_long", "induction_score", "prev_token_score"]
        if spec.task.kind == "bigram-copy":
            keys += ["bigram_score", "decoy_mass"]
        heads = read_csv(inputs[f"{name}.heads"])
        for key in keys:
            if key not in final:
                continue
            published, study_setting = PUBLISHED.get((spec.task.kind, key), (None, None))
            study = STUDY if published else None
            quantity = key.replace("_", " ")
            if key in ("induction_score", "prev_token_score", "bigram_score"):
                best = max(heads, key=lambda h: h[key])
                quantity += f" (best head: layer {best['layer']}, head {best['head']})"
            elif key == "decoy_mass":
                quantity += " (of the best bigram head)"
            value = final[key]
            rows.append(row(quantity, value, name, setting, "", published, study, study_setting))
        rows.append(row("training time", final["seconds"], name, setting, "s"))
        if f"{name}.search" in inputs:
            search = read_csv(inputs[f"{name}.search"])
            passing = [r for r in search if r["passes"] == "True"]
            chosen = (
                f"{passing[0]['n_layers']}L x {passing[0]['n_heads']}H, d={passing[0]['d_model']}"
                if passing
                else "none passes"
            )
            rows.append(
                row(
                    "smallest architecture passing the bars",
                    chosen,
                    name,
                    f"search of {len(search)}",
                )
            )
    write_json(
        {
            "method": "toys",
            "title": "Toy copy transformers (induction heads)",
            "rows": rows,
            "notes": [
                "Accuracy: held-out sequences whose every copied token and <eos> is predicted "
                "right; head scores: the best head of each kind (definitions in actspace.toys).",
            ],
        },
        out,
    )
