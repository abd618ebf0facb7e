"""Rules ``train_toy`` and ``toy_search``: train a toy (checkpoints, metrics, head scores) or
every candidate shape of its architecture search.

The toys: see :mod:`actspace.methods.toys`.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from actspace.checkpoint import checkpoint_key
from actspace.methods.toys.heads import SCORES
from actspace.methods.toys.model import toy_tokenizer
from actspace.methods.toys.resume import Resume
from actspace.methods.toys.spec import ToyArchitecture, ToySpec, TrainSettings, passes_bars
from actspace.methods.toys.training import train
from actspace.models.sources import write_model_dir
from actspace.store import atomic_directory, write_csv

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("step", "loss", "accuracy", "accuracy_long", "train_loss", "seconds")


RESUME_EVERY = 250  # steps between saved training states


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
    # the training state and the checkpoints so far live beside the outputs until the end,
    # so a killed job resumes (see actspace.methods.toys.resume); a state is reused only for
    # the same settings and training code
    key = checkpoint_key(entry, "actspace.methods.toys.training")
    resume = Resume(Path(model).parent / ".resume", key, RESUME_EVERY)
    work = resume.folder / "checkpoints"
    work.mkdir(parents=True, exist_ok=True)

    def save(step: int, model: nn.Module, _row: dict) -> None:
        target = work / f"step-{step:06d}"
        shutil.rmtree(target, ignore_errors=True)  # left by an attempt killed after it
        write_model_dir(
            model, tokenizer, target, f"{name}@{step}", spec.source(step), spec.arch.attn_only
        )

    trained, rows, log_rows = train(
        spec.task, spec.arch, spec.settings, on_checkpoint=save, resume=resume
    )
    with atomic_directory(Path(checkpoints)) as tmp:
        for folder in sorted(work.iterdir()):  # copied: the state stays whole until the end
            shutil.copytree(folder, tmp / folder.name)
    seconds = time.perf_counter() - started
    write_model_dir(trained, tokenizer, Path(model), name, spec.source(), spec.arch.attn_only)
    columns = [c for c in METRIC_COLUMNS if c in rows[0]] + score_keys
    write_csv(metrics, [{c: row[c] for c in columns} for row in rows], float_format=".6g")
    write_csv(history, log_rows, float_format=".6g")
    write_csv(heads, rows[-1]["heads"], float_format=".6g")
    resume.clear()
    final = rows[-1]
    log.info(
        "%s: %d steps in %.0f s; held-out accuracy %.4f, %s",
        name,
        spec.settings.steps,
        seconds,
        final["accuracy"],
        ", ".join(f"{k} {final[k]:.3f}" for k in score_keys),
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
            attn_only=grid["attn_only"],
            dropout=grid["dropout"],
            d_mlp=None,
        )
        settings = TrainSettings(**{**asdict(base.settings), **grid["train"], "checkpoints": 2})
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
