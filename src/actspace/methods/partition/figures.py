"""Figures of the subspace partition: training (loss, merges, sizes, MI against a random
rotation), the subspace circuit of a block, and the known-circuit probes of a toy."""

from __future__ import annotations

import os

import numpy as np

from actspace.methods.partition.probes import token_variables
from actspace.plotting import plt, save_figure, sns
from actspace.reporting.rows import published_values
from actspace.store import open_store, read_csv


def _site(attrs) -> str:
    return f"{attrs['model']} / {attrs['corpus']}, resid {attrs['layer']}"


def partition_figure(
    store: str | os.PathLike, out: str | os.PathLike, published: str | os.PathLike
) -> None:
    """Loss per step (merge rounds marked), subspace count through training, final sizes with
    their share of the variance, and pairwise MI of the trained vs a random rotation, with
    the published ranges (GPT-2 small) for a model larger than the toys."""
    group = open_store(store, ["loss", "sizes", "mi_trained", "mi_random"])
    attrs = group.attrs
    loss, sizes = group["loss"][:], group["sizes"][:]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    axes[0].plot(np.arange(1, len(loss) + 1), loss, lw=0.6)
    for merge in attrs["merges"]:
        axes[0].axvline(merge["step"], color="grey", ls=":", lw=0.8)
    axes[0].set(
        xlabel="step",
        ylabel="mean NN distance (activation units)",
        title="NDM loss (dotted: merge rounds)",
    )
    merges = attrs["merges"]
    steps = [1] + [m["step"] for m in merges] + [attrs["steps"]]
    counts = [len(merges[0]["sizes"]) if merges else len(sizes)]
    counts += [len(m["sizes"]) - len(m["merged"]) for m in merges] + [len(sizes)]
    axes[1].step(steps, counts, where="post")
    axes[1].set(xlabel="step", ylabel="subspaces", title=f"merges ({attrs['stopped']})")
    share = group["variance_explained"][:]
    axes[2].bar(range(len(sizes)), sizes, color="C0")
    for i, (size, part) in enumerate(zip(sizes, share)):
        axes[2].text(i, size, f"{part:.0%}", ha="center", va="bottom", fontsize=7)
    axes[2].set_xticks(range(len(sizes)))
    axes[2].set(xlabel="subspace", ylabel="dimensions", title="sizes (label: variance share)")
    off = ~np.eye(len(sizes), dtype=bool)
    if len(sizes) > 1:
        values = {
            "trained R": group["mi_trained"][:][off],
            "random rotation": group["mi_random"][:][off],
        }
        axes[3].boxplot(list(values.values()), tick_labels=list(values))
        if attrs["d_model"] > 64:  # the toys' MI is not comparable with GPT-2 small's
            ref = published_values("partition", published)
            for x, key in ((1, "mean_mi_trained"), (2, "mean_mi_random")):
                low, high = ref[key].bounds
                axes[3].fill_between(
                    [x - 0.4, x + 0.4],
                    low,
                    high,
                    color="grey",
                    alpha=0.3,
                    lw=0,
                    label="published mean, GPT-2 small" if x == 1 else None,
                )
            axes[3].legend(fontsize=7)
    axes[3].set(ylabel="pairwise KSG MI (nats)", title="MI between subspaces")
    fig.suptitle(f"Subspace partition (NDM), {_site(attrs)}: sizes {list(map(int, sizes))}")
    save_figure(fig, out)


def circuit_figure(store: str | os.PathLike, out: str | os.PathLike) -> None:
    """The block's subspace graph (input subspaces left, output right; OV edges per head,
    MLP edges grey, skip dashed; width by strength) and each head's QK map."""
    group = open_store(store, ["ov", "qk", "skip"])
    attrs = group.attrs
    ov, qk, skip = group["ov"][:], group["qk"][:], group["skip"][:]
    mlp = group["mlp"][:] if "mlp" in group.array_keys() else None
    n_heads = len(ov)
    fig, axes = plt.subplots(
        1, 1 + n_heads, figsize=(5 + 3 * n_heads, 4.2), width_ratios=[2] + [1] * n_heads
    )
    ax = axes[0]
    n_in, n_out = skip.shape
    y_in, y_out = np.linspace(1, 0, n_in), np.linspace(1, 0, n_out)
    strongest = max(float(ov.max()), float(mlp.max()) if mlp is not None else 0.0, 1e-12)
    palette = sns.color_palette("colorblind", n_heads)

    def draw(edges: np.ndarray, **style) -> None:
        """A line from input i to output j for every edge wide enough to see."""
        for i, j in zip(*np.nonzero(4 * edges / strongest > 0.2)):
            width = 4 * edges[i, j] / strongest
            ax.plot([0, 1], [y_in[i], y_out[j]], lw=width, **style)

    for head in range(n_heads):
        draw(ov[head], color=palette[head], alpha=0.7)
    if mlp is not None:
        draw(mlp, color="grey", alpha=0.5)
    for i, j in zip(*np.nonzero(skip > 0.5)):
        ax.plot([0, 1], [y_in[i], y_out[j]], color="black", ls="--", lw=0.6)
    sizes_in, sizes_out = attrs["sizes_in"], attrs["sizes_out"]
    for i, y in enumerate(y_in):
        ax.text(-0.02, y, f"in {i} ({sizes_in[i]})", ha="right", va="center", fontsize=8)
    for j, y in enumerate(y_out):
        ax.text(1.02, y, f"out {j} ({sizes_out[j]})", ha="left", va="center", fontsize=8)
    handles = [plt.Line2D([], [], color=palette[h], label=f"head {h} OV") for h in range(n_heads)]
    handles.append(plt.Line2D([], [], color="black", ls="--", label="skip"))
    if mlp is not None:
        handles.append(plt.Line2D([], [], color="grey", label="MLP"))
    ax.legend(handles=handles, fontsize=7, loc="lower center", ncol=2)
    ax.set(xlim=(-0.35, 1.35), title=f"block {attrs['block']}: subspace edges")
    ax.axis("off")
    for head in range(n_heads):
        sns.heatmap(qk[head], ax=axes[1 + head], cmap="viridis", annot=qk.shape[1] <= 6, fmt=".2g")
        axes[1 + head].set(title=f"head {head} QK", xlabel="key subspace", ylabel="query subspace")
    fig.suptitle(f"Subspace circuit, {attrs['model']} / {attrs['corpus']}, block {attrs['block']}")
    save_figure(fig, out)


def probe_figure(table: str | os.PathLike, out: str | os.PathLike) -> None:
    """Per subspace, the share of its variance explained by each token variable (current,
    previous, on the bigram toy two back) and the position (top row), and the held-out probe
    accuracy of the token variables (middle row): trained partition against a random
    rotation with the same sizes. Bottom: the same shares for each unit the first merge
    round started from (a pure unit has one tall bar)."""
    rows = read_csv(table)
    names = token_variables(rows)
    variables = [*names, "position"]
    panels = [(f"{label}_share", "variance share") for label in variables]
    width = len(panels)
    panels += [(label, "held-out probe accuracy") for label in names]
    panels += [None] * (2 * width - len(panels))
    units = [r for r in rows if r["basis"] == "units"]
    fig = plt.figure(figsize=(4.3 * width, 10.5 if units else 7))
    grid = fig.add_gridspec(3 if units else 2, width)
    axes = [fig.add_subplot(grid[i // width, i % width]) for i in range(2 * width)]
    subspaces = sorted({r["subspace"] for r in rows if r["basis"] != "units"})
    for ax, panel in zip(axes, panels):
        if panel is None:
            ax.set_visible(False)
            continue
        column, ylabel = panel
        for offset, basis, colour in ((-0.2, "trained", "C0"), (0.2, "random", "C7")):
            chosen = [r for r in rows if r["basis"] == basis]
            ax.bar(
                [r["subspace"] + offset for r in chosen],
                [r[column] for r in chosen],
                width=0.4,
                color=colour,
                label=f"{basis} ({', '.join(str(r['size']) for r in chosen)} dims)",
            )
        ax.set(xlabel="subspace", ylabel=ylabel, ylim=(0, 1.02))
        ax.set_xticks(subspaces)
        ax.set_title(column.removesuffix("_share").replace("_", " "))
    axes[0].legend(fontsize=7, loc="upper left")
    if units:
        ax = fig.add_subplot(grid[2, :])
        step = 0.8 / len(variables)
        for k, (colour, label) in enumerate(zip(sns.color_palette("colorblind"), variables)):
            ax.bar(
                np.arange(len(units)) + (k - (len(variables) - 1) / 2) * step,
                [r[f"{label}_share"] for r in units],
                width=step,
                color=colour,
                label=label.replace("_", " "),
            )
        ax.set(
            xlabel=f"unit ({units[0]['size']} dims) before the first merge",
            ylabel="variance share",
            xticks=range(len(units)),
            ylim=(0, 1.02),
        )
        ax.legend(fontsize=7, ncol=len(variables), loc="upper right")
    fig.suptitle("Which subspace holds which variable (first copy of each sequence)")
    save_figure(fig, out)
