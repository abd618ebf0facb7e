"""Summary of the subspace partitions: sizes, MI against a random rotation, the toys'
known-circuit probes and the strongest circuit edges, beside the published numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from actspace.methods.partition.probes import PROBE_LABELS
from actspace.reporting.rows import judge, method_summary, published_values, range_verdict, row
from actspace.store import open_store, read_csv

FAR = 2.0  # "far better than the other subspace": at least this many times its share
MARGIN = 0.15  # "far better than random": at least this much more variance share

NOTES = [
    "Sites: resid index l is the stream entering block l (0 = embeddings). 'stop at n': the "
    "research log's stop_at_n_subspaces; without it the published merge schedule decides.",
    "MI: mean over pairs of final subspaces of the KSG estimate (k = 1, each subspace scaled "
    "by its standard deviation), the trained R against a random rotation with the same sizes.",
    "Known-circuit check (copy toys, positions of the first copy): the share of each "
    "subspace's variance explained by the current and by the previous token (eta^2), and the "
    "held-out accuracy of a linear probe for each; random: the same sizes under a random "
    f"rotation. A split: two subspaces, each with at least {FAR:g}x the other's share of its "
    f"token and {MARGIN} more than the random subspace of the same size.",
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


def known_circuit_split(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The current-token subspace c (largest current minus previous share) and the
    previous-token subspace p of a probe table, and whether they split the known circuit:
    c != p, each holds its token at least ``FAR`` times the other's share of it and at least
    ``MARGIN`` more than the random rotation's subspace of the same index (same size)."""
    trained = [r for r in table if r["basis"] == "trained"]
    random = {r["subspace"]: r for r in table if r["basis"] == "random"}
    cur, prev = "current_token_share", "previous_token_share"
    c = max(trained, key=lambda r: r[cur] - r[prev])
    p = max(trained, key=lambda r: r[prev] - r[cur])
    split = c is not p and all(
        [
            c[cur] >= FAR * p[cur],
            p[prev] >= FAR * c[prev],
            c[cur] >= random[c["subspace"]][cur] + MARGIN,
            p[prev] >= random[p["subspace"]][prev] + MARGIN,
        ]
    )
    return {"current": c, "previous": p, "random": random, "split": split}


def _share_text(chosen: dict, other: dict, random: dict, column: str) -> str:
    return (
        f"subspace {chosen['subspace']} ({chosen['size']} dims) {chosen[column]:.2f}, "
        f"subspace {other['subspace']} {other[column]:.2f}, random "
        f"{random[chosen['subspace']][column]:.2f}"
    )


def _probe_rows(
    table: Sequence[dict[str, Any]],
    found: dict[str, Any],
    partition: Any,
    ref: dict,
    known: set[tuple[str, str, int]],
) -> list[dict[str, Any]]:
    """Rows of one probe table whose :func:`known_circuit_split` is ``found``."""
    attrs = partition.attrs
    model, setting = attrs["model"], f"{_setting(attrs)}; first copy of each sequence"
    c, p, random = found["current"], found["previous"], found["random"]
    judged = (model, attrs["corpus"], attrs["layer"]) in known
    judged &= attrs["settings"].get("stop_at_n_subspaces") == 2
    if c is p:
        value = f"one subspace: current {c['current_token_share']:.2f}, previous {c['previous_token_share']:.2f}"
    else:
        value = (
            f"current token: {_share_text(c, p, random, 'current_token_share')}; previous token: "
            f"{_share_text(p, c, random, 'previous_token_share')}"
        )
    rows = [
        row(
            "known-circuit split: variance share of each token",
            value,
            model,
            setting,
            reference=ref["toy_split_stop2"] if judged else None,
            verdict=judge(
                found["split"],
                f"one subspace holds the current token, another the previous one ({FAR:g}x the "
                f"other's share, +{MARGIN} over random)",
                f"no clean split ({FAR:g}x the other's share and +{MARGIN} over random "
                "required for both tokens)",
            ),
        )
    ]
    for basis in ("trained", "random"):
        chosen = [r for r in table if r["basis"] == basis]
        accuracy = "; ".join(
            f"{label.replace('_', ' ')} " + " / ".join(f"{r[label]:.3f}" for r in chosen)
            for label in PROBE_LABELS[:2]
        )
        sizes = ", ".join(str(r["size"]) for r in chosen)
        rows.append(
            row(
                f"probe accuracy per subspace ({basis} basis)",
                accuracy,
                model,
                f"{setting}; subspaces of {sizes} dims",
            )
        )
    return rows


def induction_signature(ov: np.ndarray, qk: np.ndarray) -> list[tuple[int, int]]:
    """Per head of a block's circuit: (the key subspace with the largest summed QK edge,
    the input subspace with the largest summed OV edge). An induction head reads the
    previous token on its key side and copies the current token through its OV."""
    return [
        (int(np.argmax(qk[h].sum(axis=0))), int(np.argmax(ov[h].sum(axis=1))))
        for h in range(len(ov))
    ]


def _circuit_rows(path: str | os.PathLike, split: dict[str, Any] | None) -> list[dict[str, Any]]:
    group = open_store(path, ["ov", "qk"])
    attrs = group.attrs
    ov, qk = group["ov"][:], group["qk"][:]
    h, i, j = np.unravel_index(np.argmax(ov), ov.shape)
    hq, a, b = np.unravel_index(np.argmax(qk), qk.shape)
    setting = f"{attrs['corpus']}, block {attrs['block']}, sizes {attrs['sizes_in']} -> {attrs['sizes_out']}"
    rows = [
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
    if split is not None and split["split"]:  # the block's input holds the known circuit
        c, p = split["current"]["subspace"], split["previous"]["subspace"]
        heads = induction_signature(ov, qk)
        found = [h for h, (key, read) in enumerate(heads) if (key, read) == (p, c)]
        listed = ", ".join(f"head {h}: key {k}, OV reads {r}" for h, (k, r) in enumerate(heads))
        rows.append(
            row(
                "induction signature: a head keys on the previous-token subspace and copies "
                "from the current-token subspace",
                f"{'yes' if found else 'no'} ({listed}; previous-token subspace {p}, "
                f"current-token subspace {c})",
                attrs["model"],
                f"{setting}; largest summed QK edge per key subspace, OV edge per input subspace",
            )
        )
    return rows


def partition_summary(
    stores: Sequence[str | os.PathLike],
    probes: Sequence[str | os.PathLike],
    circuits: Sequence[str | os.PathLike],
    published: str | os.PathLike,
    known_circuit: Sequence[Sequence[Any]] = (),
) -> dict[str, Any]:
    """Rows of every partition store, probe table and circuit store; ``known_circuit``:
    (model, corpus, layer) of the streams entering a toy's induction block, whose stop-at-2
    probes are judged against the expected split."""
    known = {(str(m), str(c), int(layer)) for m, c, layer in known_circuit}
    ref = published_values("partition", published)
    rows = [entry for path in stores for entry in _partition_rows(path, ref)]
    splits = {}  # by the circuit store its partition is the input of
    for path in probes:  # probes_L{layer}{stop}.csv sits beside its L{layer}{stop}.zarr
        folder = os.path.dirname(str(path))
        name = os.path.basename(str(path)).removeprefix("probes_").removesuffix(".csv")
        table = read_csv(path)
        found = known_circuit_split(table)
        store = open_store(os.path.join(folder, f"{name}.zarr"))
        rows += _probe_rows(table, found, store, ref, known)
        circuit = os.path.join(folder, f"circuit_B{name.removeprefix('L')}.zarr")
        splits[os.path.normpath(circuit)] = found
    for path in circuits:
        rows += _circuit_rows(path, splits.get(os.path.normpath(str(path))))
    title = "Subspace partition (neighbour distance minimisation) and subspace circuits"
    return method_summary("partition", title, rows, NOTES)
