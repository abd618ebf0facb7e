"""Training the toys: batches with random position offsets, the copy loss, evaluation with
head scores at log-spaced checkpoints. The same settings and seed give the same weights."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from actspace.errors import ActspaceError
from actspace.methods.toys.heads import head_scores
from actspace.methods.toys.resume import Resume, TrainingState
from actspace.methods.toys.model import build_toy_model
from actspace.methods.toys.spec import ToyArchitecture, TrainSettings
from actspace.data.task_batches import Batch, make_batch
from actspace.data.tasks import CopyTask

log = logging.getLogger(__name__)


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
    resume: Resume | None = None,
) -> tuple[nn.Module, list[dict], list[dict]]:
    """Train a toy; return the model, one metrics row per checkpoint and the training log.

    ``on_checkpoint(step, model, metrics)`` is called at every checkpoint step (0 included).
    The data stream and the held-out set come from separate seeded generators, so the same
    settings give the same weights. With ``resume``, the whole state is saved every
    ``resume.every`` steps and a saved state of the same settings is continued from, with the
    same result as an uninterrupted run (``seconds`` counts the time of every attempt).
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
    bar = tqdm(total=settings.steps + 1, desc="train", disable=not progress, mininterval=2)
    running, start, earlier = math.nan, 0, 0.0
    saved = resume.load_state() if resume is not None else None
    if saved is not None:
        model.load_state_dict(saved.model)
        optimiser.load_state_dict(saved.optimiser)
        schedule.load_state_dict(saved.schedule)
        data_rng.bit_generator.state = saved.data_rng
        torch.set_rng_state(saved.torch_rng)
        running, start, earlier = saved.running, saved.step, saved.seconds
        metrics, history = saved.metrics, saved.history
        bar.update(start)
        log.info("resumed from the state saved at step %d", start)
    started = time.perf_counter() - earlier
    for step in range(start, settings.steps + 1):
        bar.update(1)
        if resume is not None and resume.due(step, start):
            resume.save_state(
                TrainingState(
                    step=step,
                    model=model.state_dict(),
                    optimiser=optimiser.state_dict(),
                    schedule=schedule.state_dict(),
                    data_rng=data_rng.bit_generator.state,
                    torch_rng=torch.get_rng_state(),
                    running=running,
                    seconds=time.perf_counter() - started,
                    metrics=metrics,
                    history=history,
                )
            )
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
        if not math.isfinite(value):
            raise ActspaceError(
                f"toy training: the copy loss is {value} at step {step}; lower train.lr"
            )
        running = value if math.isnan(running) else 0.95 * running + 0.05 * value
        bar.set_postfix(loss=f"{running:.3f}", refresh=False)
    bar.close()
    return model, metrics, history
