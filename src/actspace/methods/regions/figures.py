"""Figures of the stable-regions runs: the relative curves, the distribution of sharpness,
the RGB slices (one image per model or checkpoint, and an animation over them), and across
runs the median sharpness against training step and against parameter count (the paper's
two summary plots: median with error bars to the quartiles)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import animation

from actspace.methods.regions.read import RegionsResult, VariantResult, read_regions
from actspace.plotting import finish, plt, save_figure, sns
from actspace.reporting.rows import published_values

MAX_CURVE_VARIANTS = 6  # checkpoints drawn in the curves figure (evenly chosen)


def shown_variants(result: RegionsResult, most: int = MAX_CURVE_VARIANTS) -> list[VariantResult]:
    """At most ``most`` variants, first and last included, evenly spread over the list."""
    variants = result.variants
    if len(variants) <= most:
        return variants
    picks = np.unique(np.linspace(0, len(variants) - 1, most).round().astype(int))
    return [variants[i] for i in picks]


def _title(result: RegionsResult, what: str) -> str:
    s = result.attrs["settings"]
    return f"{what}: {result.model} on {result.corpus} ({s['steps']} steps)"


def example_pairs(variant: VariantResult, quantiles=(0.1, 0.5, 0.9, 1.0)) -> list[int]:
    """Pairs at the given quantiles of sharpness (1.0: the sharpest), for example curves."""
    finite = np.flatnonzero(np.isfinite(variant.sharpness))
    if not len(finite):
        return []
    order = finite[np.argsort(variant.sharpness[finite], kind="stable")]
    picks = [order[min(len(order) - 1, int(q * (len(order) - 1)))] for q in quantiles]
    return list(dict.fromkeys(int(p) for p in picks))


def curves_figure(result: RegionsResult, out: str | os.PathLike) -> None:
    """Left: pointwise median of r(alpha) with its quartile band per variant, and the linear
    curve. Right: example pairs of the trained model, from flat to the sharpest."""
    fig, (ax, examples) = plt.subplots(1, 2, figsize=(12, 4.5))
    variants = shown_variants(result)
    colours = sns.color_palette("viridis", len(variants))
    for variant, colour in zip(variants, colours):
        curves = variant.curves[np.isfinite(variant.curves).all(axis=1)]
        if not len(curves):
            continue
        low, median, high = np.percentile(curves, [25, 50, 75], axis=0)
        ax.fill_between(result.alphas, low, high, color=colour, alpha=0.15)
        ax.plot(result.alphas, median, color=colour, label=variant.label)
    xlabel = "alpha (0 = prompt A's activation, 1 = prompt B's)"
    for axis in (ax, examples):
        axis.plot([0, 1], [0, 1], color="black", ls=":", lw=0.8, label="linear (sharpness 1)")
    trained = result.of_kind("trained") or result.variants[-1]
    for pair in example_pairs(trained):
        examples.plot(
            result.alphas,
            trained.curves[pair],
            marker=".",
            label=f"pair {pair}: sharpness {trained.sharpness[pair]:.2f}",
        )
    examples.set(xlabel=xlabel, ylabel="d / d(1)", title=f"Example pairs, {trained.label}")
    examples.legend(fontsize=7)
    finish(
        fig,
        ax,
        out,
        xlabel=xlabel,
        ylabel="relative output change d / d(1)",
        title=_title(result, "Median curves and quartiles"),
    )


def sharpness_figure(
    result: RegionsResult, out: str | os.PathLike, reference: float | None = None
) -> None:
    """Distribution of sharpness per variant (log scale), with the published median."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    variants = shown_variants(result)
    colours = sns.color_palette("viridis", len(variants))
    for variant, colour in zip(variants, colours):
        values = variant.sharpness[np.isfinite(variant.sharpness)]
        if len(values):
            sns.ecdfplot(
                values,
                ax=ax,
                color=colour,
                label=f"{variant.label} (median {np.median(values):.2f})",
            )
    if reference is not None:
        ax.axvline(
            reference,
            color="black",
            ls="--",
            lw=0.8,
            label=f"published median, Qwen2-0.5B ({reference:g})",
        )
    ax.set_xscale("log")
    finish(
        fig,
        ax,
        out,
        xlabel="sharpness (max slope of d / d(1) per unit alpha)",
        ylabel="fraction of pairs",
        title=_title(result, "Sharpness of region boundaries"),
    )


def _draw_slice(ax, result: RegionsResult, variant: VariantResult) -> None:
    grid = result.slice_grid
    extent = (grid[0], grid[-1], grid[0], grid[-1])
    ax.imshow(np.clip(variant.slice, 0, 1), origin="lower", extent=extent)
    t = variant.attrs["slice_t"]
    for (x, y), name, colour in zip(((0, 0), (1, 0), (t, 1)), "ABC", ("red", "green", "blue")):
        ax.plot(x, y, "o", color="white", ms=7)
        ax.plot(x, y, "o", color=colour, ms=4)
        ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", color="white")
    ax.set_title(variant.label, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def slices_figure(result: RegionsResult, out: str | os.PathLike) -> None:
    """One RGB slice per variant: channel k = 1 - distance to anchor k's output / its max."""
    variants = result.variants
    cols = min(len(variants), 4)
    rows = -(-len(variants) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows + 0.6), squeeze=False)
    for ax in axes.flat[len(variants) :]:
        ax.axis("off")
    for ax, variant in zip(axes.flat, variants):
        _draw_slice(ax, result, variant)
    anchors = result.attrs["slice_anchors"]
    fig.suptitle(
        f"{result.model}: the plane through the activations of prompts {anchors} (A, B, C)\n"
        "red / green / blue: output close to A's / B's / C's (1 - distance / its maximum)",
        fontsize=9,
    )
    save_figure(fig, out)


def slices_animation(result: RegionsResult, out: str | os.PathLike) -> None:
    """The slices as a GIF, one frame per variant (training checkpoints in order)."""
    fig, ax = plt.subplots(figsize=(4, 4.2))

    def draw(index: int) -> None:
        ax.clear()
        _draw_slice(ax, result, result.variants[index])

    movie = animation.FuncAnimation(fig, draw, frames=len(result.variants))
    movie.save(out, writer=animation.PillowWriter(fps=2))
    plt.close(fig)


def _errorbar(ax, x, variants: Sequence[VariantResult], **style: Any) -> None:
    q = np.array([v.quartiles for v in variants])
    ax.errorbar(x, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], capsize=3, **style)


def training_figure(
    results: Sequence[RegionsResult], series: Mapping[str, Sequence[tuple[int, RegionsResult]]], out
) -> None:
    """Median sharpness (error bars: quartiles) against training step: each toy's stored
    checkpoints, and each configured series of models (hub revisions of a checkpoint suite)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    drawn = 0
    for result in results:
        stepped = result.checkpoints
        if len(stepped) >= 2:
            _errorbar(ax, [v.step for v in stepped], stepped, marker="o", label=result.model)
            drawn += 1
    for name, members in series.items():
        ordered = sorted(members, key=lambda m: m[0])
        trained = [(step, r.of_kind("trained")) for step, r in ordered if r.of_kind("trained")]
        if trained:
            _errorbar(ax, [s for s, _ in trained], [v for _, v in trained], marker="s", label=name)
            drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no run with checkpoints", ha="center", transform=ax.transAxes)
    ax.set_xscale("symlog", linthresh=1)
    ax.axhline(1, color="black", ls=":", lw=0.8, label="linear curves")
    finish(
        fig,
        ax,
        out,
        xlabel="training step (0 = random init)",
        ylabel="sharpness, median and quartiles",
        title="Sharpness of region boundaries over training",
    )


def sizes_figure(results: Sequence[RegionsResult], out, reference: Mapping[str, float]) -> None:
    """Median sharpness against parameter count, trained and randomly initialised, with the
    published point (Qwen2-0.5B)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for kind, marker in (("trained", "o"), ("random init", "x")):
        for index, result in enumerate(results):
            variant = result.of_kind(kind)
            if variant is not None:
                _errorbar(
                    ax,
                    [variant.n_params],
                    [variant],
                    marker=marker,
                    color=f"C{index}",
                    ls="none",
                    label=f"{result.model}, {kind}",
                )
    if reference:
        ax.plot(
            reference["n_params"],
            reference["median"],
            "*",
            color="black",
            ms=12,
            label=f"published: {reference['label']}",
        )
    ax.set_xscale("log")
    ax.axhline(1, color="black", ls=":", lw=0.8, label="linear curves")
    finish(
        fig,
        ax,
        out,
        legend_size=6,
        xlabel="parameters",
        ylabel="sharpness, median and quartiles",
        title="Sharpness of region boundaries against model size",
    )


def published_mark(published: str | os.PathLike) -> dict[str, Any]:
    """The published point the figures mark (median sharpness of Qwen2-0.5B at 30 steps)."""
    return published_values("regions", published)["median_trained"].mark


def run_figures(
    store: str | os.PathLike, outputs: Mapping[str, str], published: str | os.PathLike
) -> None:
    """Rule ``regions_figures``: every figure of one run."""
    result = read_regions(store)
    curves_figure(result, outputs["curves"])
    mark = published_mark(published)
    steps = result.attrs["settings"]["steps"]
    sharpness_figure(result, outputs["sharpness"], mark["median"] if steps == 30 else None)
    slices_figure(result, outputs["slices"])
    slices_animation(result, outputs["animation"])


def overview_figures(
    stores: Sequence[str],
    series: Sequence[Mapping[str, Any]],
    outputs: Mapping[str, str],
    published: str | os.PathLike,
) -> None:
    """Rule ``regions_overview``: sharpness against training step and against size.

    ``series``: per store, the run's ``series`` and ``step`` (None when it has none)."""
    results = [read_regions(path) for path in stores]
    grouped: dict[str, list[tuple[int, RegionsResult]]] = {}
    for result, entry in zip(results, series, strict=True):
        if entry.get("series") is not None:
            grouped.setdefault(entry["series"], []).append((entry["step"], result))
    training_figure(results, grouped, outputs["training"])
    sizes_figure(results, outputs["sizes"], published_mark(published))
