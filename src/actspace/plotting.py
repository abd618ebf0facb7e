"""Shared plotting style: a headless matplotlib backend, the seaborn theme with a
colour-blind-safe palette, one way to save (PNG and PDF, the setting stamped in a corner).

Figures never recompute anything: each method's ``figures`` module reads finished stores and
tables, so restyling a plot reruns only the figure rules.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper", palette="colorblind")


def setting_stamp(path: str | os.PathLike) -> str:
    """What a figure shows, read off its path below ``results/``: the method, then the
    model, corpus or run, and the figure (``regions: smollm2-135m / generated-200 / curves``)."""
    path = Path(path)
    parts = path.parts
    if "results" not in parts[:-1]:
        return path.stem
    start = len(parts) - 1 - parts[::-1].index("results")
    method, *where = [p for p in parts[start + 1 : -1] if p != "figures"] or [path.stem]
    return f"actspace {method}: " + " / ".join([*where, path.stem])


def save_figure(fig: plt.Figure, path: str | os.PathLike, stamp: str | None = None) -> None:
    """Lay out, write and close a figure: ``path`` (PNG, 130 dpi) and the same name as PDF,
    creating its folder; ``stamp`` (default: :func:`setting_stamp`) goes in the lower right
    corner, so a figure taken out of the report still says what it shows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.text(
        0.995, 0.003, stamp or setting_stamp(path), ha="right", va="bottom", fontsize=6, color="0.4"
    )
    fig.savefig(path, dpi=130)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)


def finish(
    fig: plt.Figure, ax: plt.Axes, path: str | os.PathLike, legend_size: int = 7, **labels: str
) -> None:
    """Label ``ax`` (``xlabel``, ``ylabel``, ``title``), add its legend and save the figure."""
    ax.set(**labels)
    ax.legend(fontsize=legend_size)
    save_figure(fig, path)
