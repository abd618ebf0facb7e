"""Figures of the text-subspaces study (spectra, NLL curves, overlaps, usage), from its store."""

from __future__ import annotations

import os

import numpy as np

from actspace.plotting import plt, save_figure, sns
from actspace.reporting.rows import published_values
from actspace.store import open_store


def text_subspace_figures(
    store: str | os.PathLike,
    spectrum: str,
    nll: str,
    overlap: str,
    usage: str,
    published: str | os.PathLike,
) -> None:
    """The four figures of the text-subspaces study from its store; the NLL and usage
    figures mark the study's numbers (k*/d of the meaning-of-life text, least-used /
    most-used direction)."""
    ref = published_values("text_subspaces", published)
    group = open_store(store, ["spectra", "k_star", "nll_curves", "overlap", "usage", "k_grid"])
    title = f"{group.attrs['model']} / {group.attrs['corpus']}"
    d = group.attrs["d_model"]
    variants = {"all positions": group, "first position excluded": group["exclude_first"]}

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (label, g) in zip(axes, variants.items()):
        spectra = g["spectra"][:]
        for i in range(min(len(spectra), 8)):
            ax.semilogy(np.arange(1, d + 1), spectra[i] + 1e-12, lw=1, label=f"text {i}")
        ax.set(
            title=f"{label}",
            xlabel="singular value index",
            ylabel="singular value of M_t (activation units)",
        )
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Singular values of the text matrices, {title}")
    save_figure(fig, spectrum)

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
        k_published = float(ref["meaning_k_over_d"].value) * d
        ax.axvline(k_published, color="black", ls="--", lw=0.8, label="published k*, meaning text")
        ax.set(
            xscale="log", title=label, xlabel="k (projection rank)", ylabel="NLL, nats per token"
        )
        ax.legend(fontsize=7)
    fig.suptitle(f"NLL of each text under P_k (dotted: unprojected), {title}")
    save_figure(fig, nll)

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
    save_figure(fig, overlap)

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, g in variants.items():
        values = g["usage"][:]
        ax.plot(
            np.arange(1, len(values) + 1),
            values,
            label=f"{label} (min/max {values[-1] / values[0]:.2f})",
        )
    most = max(float(g["usage"][:][0]) for g in variants.values())
    ratio = float(ref["usage_min_over_max"].value)
    ax.axhline(
        ratio * most,
        color="black",
        ls="--",
        lw=0.8,
        label=f"published: min/max {ratio:g} (Llama3-8B)",
    )
    ax.set(
        xlabel="direction (sorted)",
        ylabel="texts using the direction",
        title=f"Dimension usage, {title}",
    )
    ax.legend(fontsize=8)
    save_figure(fig, usage)
