"""Shared plotting style: a headless matplotlib backend, the seaborn theme, one way to save.

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

sns.set_theme(style="whitegrid", context="paper")


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Lay out, write (PNG, 130 dpi) and close a figure, creating its folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def finish(
    fig: plt.Figure, ax: plt.Axes, path: str | os.PathLike, legend_size: int = 7, **labels: str
) -> None:
    """Label ``ax`` (``xlabel``, ``ylabel``, ``title``), add its legend and save the figure."""
    ax.set(**labels)
    ax.legend(fontsize=legend_size)
    save_figure(fig, path)
