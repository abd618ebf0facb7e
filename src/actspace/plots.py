"""Figures of the pipeline (seaborn on a headless matplotlib backend), drawn from stores.

Figures never recompute anything: each reads a finished store, so restyling a plot reruns
only the plotting rule.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from actspace.store import open_store  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def text_subspace_figures(
    store: str | os.PathLike, spectrum: str, nll: str, overlap: str, usage: str
) -> None:
    """The four figures of the text-subspaces study from its store."""
    group = open_store(store, ["spectra", "k_star", "nll_curves", "overlap", "usage", "k_grid"])
    title = f"{group.attrs['model']} / {group.attrs['corpus']}"
    d = group.attrs["d_model"]
    variants = {"all positions": group, "first position excluded": group["exclude_first"]}

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (label, g) in zip(axes, variants.items()):
        spectra = g["spectra"][:]
        for i in range(min(len(spectra), 8)):
            ax.semilogy(np.arange(1, d + 1), spectra[i] + 1e-12, lw=1, label=f"text {i}")
        ax.set(title=f"{label}", xlabel="singular value index", ylabel="singular value of M_t")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Singular values of the text matrices, {title}")
    _save(fig, spectrum)

    grid, baseline = group["k_grid"][:], group["baseline_nll"][:]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (label, g) in zip(axes, variants.items()):
        curves, ks = g["nll_curves"][:], g["k_star"][:]
        palette = sns.color_palette(n_colors=min(len(curves), 8))
        for i, colour in enumerate(palette):
            if np.all(np.isnan(curves[i])):
                continue
            ax.plot(grid, curves[i], color=colour, lw=1.2, label=f"text {i}: k*={ks[i]}")
            ax.axhline(baseline[i], color=colour, ls=":", lw=1)
        ax.set(
            xscale="log", title=label, xlabel="k (projection rank)", ylabel="NLL, nats per token"
        )
        ax.legend(fontsize=7)
    fig.suptitle(f"NLL of each text under P_k (dotted: unprojected), {title}")
    _save(fig, nll)

    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    for row, (label, g) in enumerate(variants.items()):
        observed = g["overlap"][:] / d
        ks = g["k_star"][:] / d
        predicted = np.outer(ks, ks)
        n = len(ks)
        annotate = n <= 8
        sns.heatmap(
            observed, ax=axes[row, 0], annot=annotate, fmt=".2f", cmap="viridis", square=True
        )
        sns.heatmap(
            predicted, ax=axes[row, 1], annot=annotate, fmt=".2f", cmap="viridis", square=True
        )
        axes[row, 0].set_title(f"{label}: tr(P_a P_b) / d")
        axes[row, 1].set_title(f"{label}: (k_a / d)(k_b / d)")
    fig.suptitle(f"Subspace overlap vs the random-subspace prediction, {title}")
    _save(fig, overlap)

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, g in variants.items():
        values = g["usage"][:]
        ax.plot(
            np.arange(1, len(values) + 1),
            values,
            label=f"{label} (min/max {values[-1] / values[0]:.2f})",
        )
    ax.set(
        xlabel="direction (sorted)",
        ylabel="texts using the direction",
        title=f"Dimension usage, {title}",
    )
    ax.legend(fontsize=8)
    _save(fig, usage)


def weights_svd_figures(
    store: str | os.PathLike,
    tables: dict[str, str],
    edits_csv: str,
    tokens: str,
    spectra: str,
    coherence: str,
    edits: str,
) -> None:
    """Token table, spectra against the control, coherent fractions, edit effects."""
    import csv

    from actspace.weights_svd import coherent_fractions, stored_kinds

    group = open_store(store)
    settings = group.attrs["settings"]
    title = group.attrs["model"]
    kinds = stored_kinds(group)

    # the token table of the edited matrix (or the first OV head): 8 directions, both ends
    edit = group.attrs.get("edit") or {}
    kind = edit.get("kind", "ov")
    layer, head = edit.get("layer", 0), edit.get("head", 0 if kind == "ov" else -1)
    with open(tables[kind], encoding="utf-8") as handle:
        rows = [
            r for r in csv.DictReader(handle) if int(r["layer"]) == layer and int(r["head"]) == head
        ]
    fig, axes = plt.subplots(1, 2, figsize=(16, 6))
    for ax, sign in zip(axes, ("positive", "negative")):
        chosen = [r for r in rows if r["sign"] == sign][:8]
        words = [r["tokens"].split(" | ")[:12] for r in chosen]
        z = np.array([[float(r["coherence_z"])] * len(w) for r, w in zip(chosen, words)]).T
        sns.heatmap(
            z, ax=ax, annot=np.array(words, dtype=object).T, fmt="", cmap="magma", cbar=True
        )
        ax.set(xlabel="singular direction", ylabel="top tokens", title=f"{sign} end")
        ax.set_xticklabels([r["direction"] for r in chosen])
    where = f"layer {layer} head {head}" if kind == "ov" else f"layer {layer}"
    fig.suptitle(f"{title}: top tokens of {kind} {where} (colour: coherence z-score)")
    _save(fig, tokens)

    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.6))
    for ax, kind in zip(np.atleast_1d(axes), kinds):
        for label, key, colour in (
            ("trained", kind, "C0"),
            ("Gaussian control", f"control/{kind}", "C3"),
        ):
            S = group[f"{key}_S"][:] if label == "trained" else group["control"][f"{kind}_S"][:]
            S = S.reshape(-1, S.shape[-1])
            ax.semilogy(S.mean(0), color=colour, label=label)
        ax.set(title=kind, xlabel="index", ylabel="mean singular value")
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: singular value spectra")
    _save(fig, spectra)

    z = group.attrs["coherence_null"]["threshold_z"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind in kinds:
        axes[0].plot(coherent_fractions(group, kind), label=kind)
        axes[0].plot(coherent_fractions(group, kind, control=True), ls=":", color="grey")
        scores = group[kind]["coherence_z"][:]
        axes[1].plot((scores > z).any(axis=2).mean(0), label=kind)
    axes[0].set(xlabel="block", ylabel="fraction coherent", title="by block (dotted: control)")
    axes[1].set(xlabel="singular direction index", ylabel="fraction coherent", title="by direction")
    for ax in axes:
        ax.legend(fontsize=7)
    q = settings["coherent_quantile"]
    fig.suptitle(f"{title}: coherent directions (top tokens above the random {q:.0%} quantile)")
    _save(fig, coherence)

    # rank-1 edits: the best candidate matrix in full, and every candidate's cued rank
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), width_ratios=(3, 2))
    with open(edits_csv, encoding="utf-8") as handle:
        changes = [
            float(r["logprob_change"])
            for r in csv.DictReader(handle)
            if edit
            and (r["kind"], int(r["layer"]), int(r["head"]))
            == (edit["kind"], edit["layer"], edit["head"])
        ]
    if changes:
        colours = ["C3" if i == edit["target_direction"] else "C0" for i in range(len(changes))]
        axes[0].bar(range(len(changes)), changes, color=colours)
        axes[0].set(
            xlabel="removed singular direction",
            ylabel=f"change in log p({edit['token']!r})",
            title=f"{edit['kind']} {where} (red: the cued direction)",
        )
        candidates = edit["candidates"]
        labels = [
            f"{c['kind']} L{c['layer']}" + (f"H{c['head']}" if c["kind"] == "ov" else "")
            for c in candidates
        ]
        axes[1].barh(labels, [c["target_rank"] for c in candidates], color="C3")
        axes[1].invert_yaxis()
        axes[1].set(
            xlabel=f"rank of the cued direction's drop (1 = largest of {len(changes)})",
            title="every matrix with a cued direction",
        )
        fig.suptitle(f"{title}: rank-1 edits, prompt {edit['prompt']!r}")
    _save(fig, edits)


def toy_training_figure(history: str | os.PathLike, metrics: str | os.PathLike, out) -> None:
    """Held-out loss and sequence accuracy over training steps (the phase change), with the
    best head scores at each checkpoint."""
    import pandas as pd

    log, ckpt = pd.read_csv(history), pd.read_csv(metrics)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(log["step"], log["loss"], label="held-out")
    axes[0].plot(log["step"], log["train_loss"], label="train (EMA)", alpha=0.7)
    axes[0].set(xlabel="step", ylabel="copy loss (nats/token)", yscale="log", title="loss")
    axes[0].legend()
    axes[1].plot(log["step"], log["accuracy"], label="in distribution")
    if "accuracy_long" in log:
        axes[1].plot(log["step"], log["accuracy_long"], label="longer sequences")
    axes[1].set(xlabel="step", ylabel="sequence accuracy", ylim=(-0.02, 1.02), title="accuracy")
    axes[1].legend()
    scores = [c for c in ("induction_score", "prev_token_score", "bigram_score", "decoy_mass")]
    for column in scores:
        if column in ckpt:
            axes[2].plot(ckpt["step"], ckpt[column], marker="o", ms=3, label=column)
    axes[2].set(xlabel="step (checkpoints)", ylabel="best head", ylim=(-0.02, 1.02))
    axes[2].set_title("head scores")
    axes[2].legend(fontsize=7)
    _save(fig, out)


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
    _save(fig, out)
