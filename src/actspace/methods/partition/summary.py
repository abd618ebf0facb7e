"""Summary of the subspace partitions: sizes, MI against a random rotation, the toys'
known-circuit probes and the strongest circuit edges, beside the published numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from actspace.methods.partition.probes import token_variables
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
    "subspace's variance explained by each token variable the induction circuit reads at a "
    "key (eta^2): the current and the previous token on the copy toy, and the token two back "
    "on the bigram toy (its bigram head matches two tokens); and the held-out accuracy of a "
    "linear probe for each; random: the same sizes under a random rotation. A split: a "
    f"subspace per variable, each with at least {FAR:g}x any other subspace's share of its "
    f"variable and {MARGIN} more than the random subspace of the same size; judged when the "
    "partition stops at that many subspaces.",
    "Units before the first merge (judged sites): the R the first merge round started from "
    "(probe rows of basis 'units'); each unit's dominant variable (largest variance share) "
    "and the round's normalised MI between units of the same and of different dominant "
    "variables. Merging by MI can rebuild the variables only if the first exceeds the second.",
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
                f"mean pairwise MI, {label}",
                attrs[key],
                model,
                setting,
                "nats",
                ref[key] if large else None,
                range_verdict(attrs[key], ref[key], "GPT-2 small"),
            )
            for key, label in (
                ("mean_mi_trained", "trained R"),
                ("mean_mi_random", "random rotation"),
            )
        ]
    return rows


def known_circuit_split(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """For each token variable of a probe table (current, previous and, on the bigram toy,
    two back): its subspace (the largest share of it minus the largest share of another
    variable), and whether they split the known circuit: a distinct subspace per variable,
    each holding its variable at least ``FAR`` times every other subspace's share of it and
    at least ``MARGIN`` more than the random rotation's subspace of the same index (same
    size)."""
    names = token_variables(table)
    trained = [r for r in table if r["basis"] == "trained"]
    random = {r["subspace"]: r for r in table if r["basis"] == "random"}

    def contrast(r: dict[str, Any], name: str) -> float:
        return r[f"{name}_share"] - max(r[f"{u}_share"] for u in names if u != name)

    chosen = {name: max(trained, key=lambda r: contrast(r, name)) for name in names}
    split = len({r["subspace"] for r in chosen.values()}) == len(names)
    for name, r in chosen.items():
        share = f"{name}_share"
        others = max((o[share] for o in trained if o is not r), default=0.0)
        split &= r[share] >= FAR * others and r[share] >= random[r["subspace"]][share] + MARGIN
    return {"subspaces": chosen, "trained": trained, "random": random, "split": split}


def unit_diagnosis(
    table: Sequence[dict[str, Any]], nmi: Sequence[Sequence[float]] | None
) -> dict[str, Any]:
    """The units the first merge round started from (the probe rows of basis ``units``):
    each unit's dominant variable (its largest variance share among the token variables and
    the position) and that share; with the round's normalised MI matrix ``nmi``, its values
    between units of the same dominant variable and between units of different ones. Merging
    by MI can only rebuild the circuit's variables when the units are nearly pure and the
    first values exceed the second."""
    units = [r for r in table if r["basis"] == "units"]
    shares = [
        {key.removesuffix("_share"): value for key, value in r.items() if key.endswith("_share")}
        for r in units
    ]
    dominant = [max(share, key=share.get) for share in shares]
    found: dict[str, Any] = {
        "dominant": dominant,
        "share": [share[name] for share, name in zip(shares, dominant)],
        "sizes": [r["size"] for r in units],
    }
    if nmi is not None and len(nmi) == len(units):
        pairs = [(i, j) for i in range(len(units)) for j in range(i + 1, len(units))]
        found["same"] = [nmi[i][j] for i, j in pairs if dominant[i] == dominant[j]]
        found["other"] = [nmi[i][j] for i, j in pairs if dominant[i] != dominant[j]]
    return found


def _unit_rows(
    table: Sequence[dict[str, Any]], attrs: Any, model: str, setting: str
) -> list[dict[str, Any]]:
    """The diagnosis of :func:`unit_diagnosis` as summary rows (none without unit rows)."""
    merges = attrs["merges"]
    found = unit_diagnosis(table, merges[0]["nmi"] if merges else None)
    if not found["dominant"]:
        return []
    sizes = ", ".join(sorted({str(size) for size in found["sizes"]}))
    where = f"{setting}; {len(found['sizes'])} units of {sizes} dims"
    listed = ", ".join(
        f"{index}: {_variable(name)} {share:.2f}"
        for index, (name, share) in enumerate(zip(found["dominant"], found["share"]))
    )
    rows = [
        row(
            "units before the first merge: dominant variable (variance share)", listed, model, where
        )
    ]
    if found.get("same") and found.get("other"):
        same, other = found["same"], found["other"]
        rows.append(
            row(
                "normalised MI of the first merge round: units of the same / another dominant variable",
                f"{np.mean(same):.3f} / {np.mean(other):.3f} (means of {len(same)} / {len(other)} pairs)",
                model,
                f"{where}; step {merges[0]['step']}",
            )
        )
    return rows


def _variable(name: str) -> str:
    """A label's readable name: ``two_back_token`` -> ``two back``, ``position`` as is."""
    return name.removesuffix("_token").replace("_", " ")


def _label(name: str) -> str:
    return _variable(name) + " token"


def _share_text(name: str, found: dict[str, Any]) -> str:
    """One variable's subspace, its share there, the best other subspace's and random's."""
    chosen, share = found["subspaces"][name], f"{name}_share"
    others = [o for o in found["trained"] if o is not chosen]
    text = (
        f"{_label(name)}: subspace {chosen['subspace']} ({chosen['size']} dims) {chosen[share]:.2f}"
    )
    if others:
        other = max(others, key=lambda o: o[share])
        text += f", subspace {other['subspace']} {other[share]:.2f}"
    return f"{text}, random {found['random'][chosen['subspace']][share]:.2f}"


def _probe_rows(
    table: Sequence[dict[str, Any]],
    found: dict[str, Any],
    partition: Any,
    ref: dict,
    known: set[tuple[str, str, int]],
) -> list[dict[str, Any]]:
    """Rows of one probe table whose :func:`known_circuit_split` is ``found``: judged against
    the expected split on a toy's induction stream when it stops at one subspace per token
    variable (2 on the copy toy, 3 on the bigram toy)."""
    attrs = partition.attrs
    model, setting = attrs["model"], f"{_setting(attrs)}; first copy of each sequence"
    names = list(found["subspaces"])
    judged = (model, attrs["corpus"], attrs["layer"]) in known
    judged &= attrs["settings"].get("stop_at_n_subspaces") == len(names)
    variables = ", ".join(_label(name) for name in names)
    rows = [
        row(
            "known-circuit split: variance share of each token variable",
            "; ".join(_share_text(name, found) for name in names),
            model,
            setting,
            reference=ref[f"toy_split_stop{len(names)}"] if judged else None,
            verdict=judge(
                found["split"],
                f"each of {variables} has its own subspace ({FAR:g}x any other subspace's "
                f"share, +{MARGIN} over random)",
                f"no clean split of {variables} ({FAR:g}x any other subspace's share and "
                f"+{MARGIN} over random required for each)",
            ),
        )
    ]
    for basis in ("trained", "random"):
        chosen = [r for r in table if r["basis"] == basis]
        accuracy = "; ".join(
            f"{_label(name)} " + " / ".join(f"{r[name]:.3f}" for r in chosen) for name in names
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
    return rows + (_unit_rows(table, attrs, model, setting) if judged else [])


def induction_signature(ov: np.ndarray, qk: np.ndarray) -> list[tuple[int, int]]:
    """Per head of a block's circuit: (the key subspace with the largest summed QK edge,
    the input subspace with the largest summed OV edge). An induction head reads the
    previous token (a bigram head: also the token two back) on its key side and copies the
    current token through its OV."""
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
        subspaces = {name: r["subspace"] for name, r in split["subspaces"].items()}
        oldest = list(subspaces)[-1]  # previous (copy) or two back (bigram): keys only
        c, keyed = subspaces["current_token"], subspaces[oldest]
        heads = induction_signature(ov, qk)
        found = [h for h, (key, read) in enumerate(heads) if (key, read) == (keyed, c)]
        listed = ", ".join(f"head {h}: key {k}, OV reads {r}" for h, (k, r) in enumerate(heads))
        rows.append(
            row(
                f"induction signature: a head keys on the {_label(oldest)} subspace and "
                "copies from the current-token subspace",
                f"{'yes' if found else 'no'} ({listed}; {_label(oldest)} subspace {keyed}, "
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
