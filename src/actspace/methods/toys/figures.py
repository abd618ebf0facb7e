"""Figures of the toy transformers: training curves and attention patterns."""

from __future__ import annotations

from collections.abc import Mapping

import os
from typing import Any

import numpy as np
import torch

from actspace.methods.toys.model import attention_patterns
from actspace.methods.toys.spec import ToySpec
from actspace.data.tasks import draw_x, make_sequence
from actspace.models import load_model
from actspace.plotting import plt, save_figure, sns
from actspace.reporting.rows import published_values
from actspace.store import read_csv


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A table's rows as one array per column (an empty cell is NaN)."""
    return {
        key: np.array([np.nan if row[key] == "" else row[key] for row in rows], dtype=float)
        for key in rows[0]
    }


def toy_training_figure(
    history: str | os.PathLike,
    metrics: str | os.PathLike,
    out,
    marks: Mapping[str, float] | None = None,
) -> None:
    """Held-out loss and sequence accuracy over training steps (the phase change), with the
    best head scores at each checkpoint; ``marks``: the public toy's values (accuracy and
    head scores), drawn as dashed lines."""
    marks = marks or {}
    log, ckpt = _columns(read_csv(history)), _columns(read_csv(metrics))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(log["step"], log["loss"], label="held-out")
    axes[0].plot(log["step"], log["train_loss"], label="train (EMA)", alpha=0.7)
    axes[0].set(xlabel="step", ylabel="copy loss (nats/token)", yscale="log", title="loss")
    axes[0].legend()
    axes[1].plot(log["step"], log["accuracy"], label="in distribution")
    if "accuracy_long" in log:
        axes[1].plot(log["step"], log["accuracy_long"], label="longer sequences")
    if "accuracy" in marks:
        axes[1].axhline(
            marks["accuracy"], color="black", ls="--", lw=0.8, label="public toy (published)"
        )
    axes[1].set(xlabel="step", ylabel="sequence accuracy", ylim=(-0.02, 1.02), title="accuracy")
    axes[1].legend()
    scores = [c for c in ("induction_score", "prev_token_score", "bigram_score", "decoy_mass")]
    for index, column in enumerate(scores):
        if column in ckpt:
            axes[2].plot(
                ckpt["step"], ckpt[column], marker="o", ms=3, label=column, color=f"C{index}"
            )
            if column in marks:
                axes[2].axhline(marks[column], color=f"C{index}", ls="--", lw=0.8)
    axes[2].set(
        xlabel="step (checkpoints)", ylabel="best head score (attention mass)", ylim=(-0.02, 1.02)
    )
    axes[2].set_title("head scores (dashed: the public toy's)" if marks else "head scores")
    axes[2].legend(fontsize=7)
    save_figure(fig, out)


def toy_attention_figure(
    attentions: list[np.ndarray], labels: list[str], title: str, out: str | os.PathLike
) -> None:
    """Every head's attention pattern on one sequence (rows: layers, columns: heads)."""
    n_layers, n_heads = len(attentions), attentions[0].shape[0]
    size = 0.16 * len(labels) + 1.5
    fig, axes = plt.subplots(
        n_layers, n_heads, figsize=(size * n_heads, size * n_layers), squeeze=False
    )
    for layer, attn in enumerate(attentions):
        for head in range(n_heads):
            ax = axes[layer][head]
            sns.heatmap(
                attn[head],
                ax=ax,
                cmap="viridis",
                vmin=0,
                vmax=1,
                square=True,
                cbar=head == n_heads - 1,
                xticklabels=labels,
                yticklabels=labels,
            )
            ax.set_title(f"layer {layer + 1}, head {head}")
            ax.tick_params(labelsize=5)
            ax.set(xlabel="key", ylabel="query")
    fig.suptitle(title)
    save_figure(fig, out)


def toy_figures_job(
    name: str,
    entry: dict[str, Any],
    model: str,
    metrics: str,
    history: str,
    training: str,
    attention: str,
    published: str | os.PathLike,
) -> None:
    """Rule ``toy_figures``: the training curves (with the public toy's published values)
    and every head's pattern on a held-out example."""
    spec = ToySpec.from_config(name, entry)
    prefix = f"{spec.task.kind}."
    marks = {
        key.removeprefix(prefix): float(entry.value)
        for key, entry in published_values("toys", published).items()
        if key.startswith(prefix)
    }
    toy_training_figure(history, metrics, training, marks)
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
