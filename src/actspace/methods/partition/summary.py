"""Summary of the subspace partitions: sizes, MI against a random rotation, the toys'
known-circuit probes and the strongest circuit edges, beside the published numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from actspace.reporting.rows import judge, method_summary, published_values, range_verdict, row
from actspace.store import open_store, read_csv

NOTES = [
    "Sites: resid index l is the stream entering block l (0 = embeddings). 'stop at n': the "
    "research log's stop_at_n_subspaces; without it the published merge schedule decides.",
    "MI: mean over pairs of final subspaces of the KSG estimate (k = 1, each subspace scaled "
    "by its standard deviation), the trained R against a random rotation with the same sizes.",
    "Probes: held-out accuracy of a linear probe for the current and the previous token on "
    "each subspace's coordinates (copy toys); random: the same sizes under a random rotation.",
]


def _setting(attrs: Any) -> str:
    stop = attrs["settings"].get("stop_at_n_subspaces")
    variant = f"stop at {stop}" if stop else "published schedule"
    return f"{attrs['corpus']}, resid {attrs['layer']}, unit {attrs['settings']['unit_size']}, {variant}"


def _partition_rows(path: str | os.PathLike, ref: dict) -> list[dict[str, Any]]:
    attrs = open_store(path, ["R", "sizes"]).attrs
    model, setting = attrs["model"], _setting(attrs)
    toy = attrs["d_model"] <= 64
    stop = attrs["settings"].get("stop_at_n_subspaces")
    rows = [
        row(
            "subspace sizes",
            str(attrs["sizes"]),
            model,
            setting,
            reference=ref["toy_sizes_stop2"] if toy and stop == 2 else None,
            verdict=judge(
                len(attrs["sizes"]) == 2 and attrs["sizes"][0] == attrs["sizes"][1],
                "two equal subspaces, as the log's 16-d toy",
                f"not two equal subspaces (d = {attrs['d_model']}; the log's toy: 16)",
            ),
        ),
        row("steps (stopped by)", f"{attrs['steps']} ({attrs['stopped']})", model, setting),
    ]
    if attrs["mean_mi_trained"] is not None:
        large = not toy
        rows += [
            row(
                "mean pairwise MI, trained R",
                attrs["mean_mi_trained"],
                model,
                setting,
                "nats",
                ref["mean_mi_trained"] if large else None,
                range_verdict(attrs["mean_mi_trained"], ref["mean_mi_trained"], "GPT-2 small"),
            ),
            row(
                "mean pairwise MI, random rotation",
                attrs["mean_mi_random"],
                model,
                setting,
                "nats",
                ref["mean_mi_random"] if large else None,
                range_verdict(attrs["mean_mi_random"], ref["mean_mi_random"], "GPT-2 small"),
            ),
        ]
    return rows


def _probe_rows(path: str | os.PathLike, partition: Any) -> list[dict[str, Any]]:
    table = read_csv(path)
    attrs = partition.attrs
    rows = []
    for label in ("current_token", "previous_token"):
        for basis in ("trained", "random"):
            chosen = [r for r in table if r["basis"] == basis]
            best = max(chosen, key=lambda r: r[label])
            others = [r[label] for r in chosen if r is not best]
            rows.append(
                row(
                    f"{label.replace('_', ' ')} probe, best subspace ({basis} basis)",
                    best[label],
                    attrs["model"],
                    f"{_setting(attrs)}; subspace {best['subspace']} of {best['size']} dims; "
                    f"best other subspace {max(others) if others else float('nan'):.3f}",
                )
            )
    return rows


def _circuit_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    group = open_store(path, ["ov", "qk"])
    attrs = group.attrs
    ov, qk = group["ov"][:], group["qk"][:]
    h, i, j = np.unravel_index(np.argmax(ov), ov.shape)
    hq, a, b = np.unravel_index(np.argmax(qk), qk.shape)
    setting = f"{attrs['corpus']}, block {attrs['block']}, sizes {attrs['sizes_in']} -> {attrs['sizes_out']}"
    return [
        row(
            f"strongest OV edge: head {h}, in {i} -> out {j}",
            float(ov[h, i, j]),
            attrs["model"],
            setting,
        ),
        row(
            f"strongest QK edge: head {hq}, query {a} <- key {b}",
            float(qk[hq, a, b]),
            attrs["model"],
            setting,
        ),
    ]


def partition_summary(
    stores: Sequence[str | os.PathLike],
    probes: Sequence[str | os.PathLike],
    circuits: Sequence[str | os.PathLike],
    published: str | os.PathLike,
) -> dict[str, Any]:
    """Rows of every partition store, probe table and circuit store."""
    ref = published_values("partition", published)
    rows = [entry for path in stores for entry in _partition_rows(path, ref)]
    for path in probes:  # probes_L{layer}{stop}.csv sits beside its L{layer}{stop}.zarr
        name = os.path.basename(str(path)).removeprefix("probes_").removesuffix(".csv")
        rows += _probe_rows(
            path, open_store(os.path.join(os.path.dirname(str(path)), f"{name}.zarr"))
        )
    rows += [entry for path in circuits for entry in _circuit_rows(path)]
    title = "Subspace partition (neighbour distance minimisation) and subspace circuits"
    return method_summary("partition", title, rows, NOTES)
