"""Figures of the weight SVD (token table, spectra, coherence, edits), from its store and tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from actspace.methods.weights_svd.read import coherent_fractions, stored_kinds
from actspace.plotting import plt, save_figure, sns
from actspace.reporting.rows import published_values
from actspace.store import open_store, read_csv


def weights_svd_figures(
    store: str | os.PathLike,
    tables: str | os.PathLike,
    edits_csv: str,
    tokens: str,
    spectra: str,
    coherence: str,
    edits: str,
    published: str | os.PathLike,
) -> None:
    """Token table, spectra against the control, coherent fractions (with the paper's range),
    edit effects; ``tables`` is the folder of token tables (``{kind}.csv``)."""
    group = open_store(store)
    settings = group.attrs["settings"]
    title = group.attrs["model"]
    kinds = stored_kinds(group)
    blocks = group.attrs["layers"]  # the decomposed blocks, in order (every kind has each)

    # the token table of the edited matrix (or the first decomposed block's first OV head):
    # 8 directions, both ends
    edit = group.attrs.get("edit") or {}
    kind = edit.get("kind", "ov")
    layer, head = edit.get("layer", blocks[0]), edit.get("head", 0 if kind == "ov" else -1)
    rows = [
        r
        for r in read_csv(Path(tables) / f"{kind}.csv")
        if (r["layer"], r["head"]) == (layer, head)
    ]
    fig, axes = plt.subplots(1, 2, figsize=(16, 6))
    for ax, sign in zip(axes, ("positive", "negative")):
        chosen = [r for r in rows if r["sign"] == sign][:8]
        words = [str(r["tokens"]).split(" | ")[:12] for r in chosen]
        z = np.array([[float(r["coherence_z"])] * len(w) for r, w in zip(chosen, words)]).T
        sns.heatmap(
            z, ax=ax, annot=np.array(words, dtype=object).T, fmt="", cmap="magma", cbar=True
        )
        ax.set(xlabel="singular direction", ylabel="top tokens", title=f"{sign} end")
        ax.set_xticklabels([r["direction"] for r in chosen])
    where = f"layer {layer} head {head}" if kind == "ov" else f"layer {layer}"
    fig.suptitle(f"{title}: top tokens of {kind} {where} (colour: coherence z-score)")
    save_figure(fig, tokens)

    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.6))
    for ax, kind in zip(np.atleast_1d(axes), kinds):
        for label, key, colour in (
            ("trained", kind, "C0"),
            ("Gaussian control", f"control/{kind}", "C3"),
        ):
            S = group[f"{key}_S"][:] if label == "trained" else group["control"][f"{kind}_S"][:]
            S = S.reshape(-1, S.shape[-1])
            ax.semilogy(S.mean(0), color=colour, label=label)
        ax.set(
            title=kind, xlabel="singular value index", ylabel="mean singular value (weight units)"
        )
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: singular value spectra")
    save_figure(fig, spectra)

    z = group.attrs["coherence_null"]["threshold_z"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind in kinds:
        axes[0].plot(blocks, coherent_fractions(group, kind), marker=".", label=kind)
        axes[0].plot(blocks, coherent_fractions(group, kind, control=True), ls=":", color="grey")
        scores = group[kind]["coherence_z"][:]
        axes[1].plot((scores > z).any(axis=2).mean(0), label=kind)
    reference = published_values("weights_svd", published)["coherent_fraction_all_blocks"]
    low, high = reference.bounds
    axes[0].axhspan(low, high, color="grey", alpha=0.2, label="published, GPT-2 (LM labels)")
    axes[0].set(xlabel="block", ylabel="fraction coherent", title="by block (dotted: control)")
    axes[1].set(xlabel="singular direction index", ylabel="fraction coherent", title="by direction")
    for ax in axes:
        ax.legend(fontsize=7)
    q = settings["coherent_quantile"]
    fig.suptitle(f"{title}: coherent directions (top tokens above the random {q:.0%} quantile)")
    save_figure(fig, coherence)

    # rank-1 edits: the best candidate matrix in full, and every candidate's cued rank
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), width_ratios=(3, 2))
    changes = [
        float(r["logprob_change"])
        for r in read_csv(edits_csv)
        if edit
        and (r["kind"], r["layer"], r["head"]) == (edit["kind"], edit["layer"], edit["head"])
    ]
    if changes:
        colours = ["C3" if i == edit["target_direction"] else "C0" for i in range(len(changes))]
        axes[0].bar(range(len(changes)), changes, color=colours)
        axes[0].set(
            xlabel="removed singular direction",
            ylabel=f"change in log p({edit['token']!r}) (nats)",
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
    save_figure(fig, edits)
