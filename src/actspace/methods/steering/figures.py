"""Figures of a steering run: MELBO-ortho's KL and norms against the index (with the random
control and a 50-wide moving average, as the reference's plots), the combinations against n,
and MELBO's objective curves with the radius sweep; the same plots for the whole orthogonal
complement (:func:`ortho_figures`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch

from actspace.methods.steering.math import moving_average
from actspace.methods.steering.summary import WINDOW, positions_label
from actspace.plotting import finish, plt, save_figure
from actspace.reporting.rows import published_values
from actspace.store import open_store, read_csv


def _smooth(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the moving average, narrowed to a fifth of the series when it is short."""
    width = max(1, min(WINDOW, len(values) // 5))
    y = moving_average(torch.as_tensor(values, dtype=torch.float64), width).numpy()
    return np.arange(len(y)) + (width + 1) / 2, y


def _title(attrs) -> str:
    return (
        f"run {attrs['run']}, blocks {attrs['source_block']} -> {attrs['target_block']}"
        f"{positions_label(attrs.get('target_positions'))}"
    )


def kl_figure(ortho, unsteered, out: str | os.PathLike) -> None:
    """Both KL directions against the index; ``unsteered`` (a ``steering_unsteered_kl``
    store) draws the unsteered prompts' KL to theta_0, the level of no steering at all."""
    kept = ortho["kept"][:]
    index = np.arange(1, len(kept) + 1)[kept]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharex=True)
    for ax, key, name in (
        (axes[0], "kl_i_to_0", "KL(P_i || P_0) (the reference code's)"),
        (axes[1], "kl_0_to_i", "KL(P_0 || P_i) (the reference plot's title)"),
    ):
        learned, control = ortho[key][:][kept], ortho[f"control_{key}"][:][kept]
        rescaled = ortho[f"rescaled_{key}"][:][kept]
        if len(index):
            x, y = _smooth(control)
            low, high = np.percentile(control, [10, 90])
            ax.axhspan(low, high, color="grey", alpha=0.2, label="random control, 10-90%")
            ax.plot(index, control, ".", color="grey", ms=3, alpha=0.6)
            ax.plot(index, rescaled, ".", color="C1", ms=3, alpha=0.6, label="theta_i at |theta_0|")
            ax.plot(index, learned, ".", color="C0", ms=3, alpha=0.6, label="theta_i")
            ax.plot(index[0] + x - 1, _smooth(learned)[1], color="C0", label="moving average")
        level = float(unsteered[key][:].mean())
        ax.axhline(level, color="black", ls=":", lw=1, label=f"unsteered prompts ({level:.3g})")
        ax.set(
            xlabel="orthogonal vector i", ylabel="KL at the last prompt token (nats)", title=name
        )
        ax.set_yscale("symlog", linthresh=0.1)
        ax.legend(fontsize=7)
    fig.suptitle(f"MELBO-ortho: KL to theta_0, {_title(ortho.attrs)}")
    save_figure(fig, out)


def norms_figure(ortho, out: str | os.PathLike, mark: Mapping | None = None) -> None:
    norms, kept = ortho["norms"][:], ortho["kept"][:]
    index = np.arange(1, len(norms) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(index[kept], norms[kept], ".", ms=3, label="kept")
    ax.plot(index[~kept], norms[~kept], "x", color="C3", ms=3, label="dropped (norm <= floor)")
    if len(norms):
        x, y = _smooth(norms)
        ax.plot(x, y, color="C0", label="moving average")
    ax.axhline(ortho.attrs["base_norm"], color="black", ls="--", lw=0.8, label="|theta_0|")
    if mark:
        ax.axhline(
            mark["ratio"] * ortho.attrs["base_norm"], color="C3", ls=":", lw=1, label=mark["label"]
        )
    finish(
        fig,
        ax,
        out,
        xlabel="orthogonal vector i",
        ylabel="||theta_i|| (residual-stream units)",
        title=f"MELBO-ortho norms, {_title(ortho.attrs)}",
    )


def combinations_figure(ortho, out: str | os.PathLike) -> None:
    ns = ortho["combination_ns"][:]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, label in (("mean", "mean"), ("scaled_mean", "mean x sqrt(n)"), ("sum", "sum")):
        if len(ns):
            ax.plot(ns, ortho[f"combination_{name}_kl_i_to_0"][:], "o-", label=label)
    control = ortho["control_kl_i_to_0"][:][ortho["kept"][:]]
    if len(control):
        ax.axhline(np.median(control), color="grey", ls="--", label="random control, median")
    ax.set_xscale("log")
    finish(
        fig,
        ax,
        out,
        xlabel="n (first n orthogonal vectors)",
        ylabel="KL(P_comb || P_0) at the last token (nats)",
        title=f"Combinations of orthogonal vectors, {_title(ortho.attrs)}",
    )


def melbo_figure(melbo, sweep_csv: str | os.PathLike, out: str | os.PathLike) -> None:
    history = melbo["objective_history"][:]
    random = melbo["random_objective"][:]
    sweep = read_csv(sweep_csv)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, curve in enumerate(history):
        axes[0].plot(curve, lw=0.7, alpha=0.7)
    axes[0].axhspan(
        random.min(), random.max(), color="grey", alpha=0.3, label="random vectors of norm R"
    )
    axes[0].set(
        xlabel="step",
        ylabel="MELBO objective (activation units)",
        title=f"MELBO vectors (R = {melbo.attrs['settings']['radius']})",
    )
    axes[0].legend(fontsize=7)
    radii = [r["radius"] for r in sweep]
    axes[1].plot(radii, [r["distinct_learned"] for r in sweep], "o-", label="learned")
    axes[1].plot(radii, [r["distinct_random"] for r in sweep], "s--", label="random")
    axes[1].set_xscale("log")
    axes[1].set_xticks(radii, [f"{r:g}" for r in radii])  # the grid's radii, not 2 x 10^0
    axes[1].minorticks_off()
    axes[1].set(
        xlabel="R",
        ylabel=f"distinct greedy completions (of {sweep[0]['n_vectors'] if sweep else 0})",
        title="radius sweep",
    )
    axes[1].legend(fontsize=7)
    fig.suptitle(f"MELBO, {_title(melbo.attrs)}")
    save_figure(fig, out)


def steering_figures(
    melbo_store: str,
    ortho_store: str,
    unsteered_store: str,
    sweep_csv: str,
    outputs: Mapping[str, str],
    published: str | os.PathLike,
) -> None:
    melbo = open_store(melbo_store, ["objective_history", "random_objective"])
    ortho_figures(ortho_store, unsteered_store, outputs, published)
    melbo_figure(melbo, sweep_csv, outputs["melbo"])


def ortho_figures(
    ortho_store: str,
    unsteered_store: str,
    outputs: Mapping[str, str],
    published: str | os.PathLike,
) -> None:
    """KL, norms and combinations of a MELBO-ortho store: the run's ``vectors.zarr``, or the
    whole orthogonal complement's ``complement.zarr`` (named target ``steering_complement``)."""
    ortho = open_store(ortho_store, ["norms", "kept", "kl_i_to_0", "combination_ns"])
    unsteered = open_store(unsteered_store, ["kl_i_to_0", "kl_0_to_i"])
    kl_figure(ortho, unsteered, outputs["kl"])
    norms_figure(
        ortho, outputs["norms"], published_values("steering", published)["ortho_norm"].mark
    )
    combinations_figure(ortho, outputs["combinations"])
