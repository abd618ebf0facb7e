"""Summary of the weight SVD: coherent fractions (trained vs control) and the edit effect."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from actspace.methods.weights_svd.read import coherent_fractions, stored_kinds
from actspace.reporting.rows import Published, judge, range_verdict, row, summary_of_stores


def _store_rows(store: Any, ref: dict[str, Published]) -> list[dict[str, Any]]:
    """The rows of one weight-SVD store."""
    rows = []
    model = store.attrs["model"]
    q = store.attrs["settings"]["coherent_quantile"]
    k = store.attrs["settings"]["k_dirs"]
    top = min(store.attrs["settings"]["coherent_top_dirs"], k)
    subset = store.attrs["settings"].get("layers")  # None: every block
    for kind in stored_kinds(store):
        mlp = kind.startswith("mlp")
        for dirs in sorted({top, k}):
            trained = coherent_fractions(store, kind, top_dirs=dirs)
            control = coherent_fractions(store, kind, control=True, top_dirs=dirs)
            later = slice(len(trained) // 2, None)
            for scope, part in (("all blocks", slice(None)), ("later half", later)):
                reference = None
                if dirs == top and mlp and scope == "later half":
                    reference = ref["coherent_fraction_later_mlp"]
                elif dirs == top and scope == "all blocks":
                    reference = ref["coherent_fraction_all_blocks"]
                setting = f"top {dirs} directions, above the random-direction {q:.0%} quantile"
                if subset is not None:  # weights_svd.layers: "all" and "later" of these
                    setting += f", blocks {subset} only"
                for label, values, published_value in (
                    ("trained", trained, reference),
                    ("Gaussian control", control, None),
                ):
                    quantity = f"coherent fraction, {kind}, {scope}, {label}"
                    value = float(values[part].mean())
                    verdict = published_value and range_verdict(
                        value, published_value, "automatic score against hand labels"
                    )
                    rows.append(row(quantity, value, model, setting, "", published_value, verdict))
    edit = store.attrs.get("edit") or {}
    if edit:
        where = f"{edit['kind']} layer {edit['layer']}" + (
            f" head {edit['head']}" if edit["kind"] == "ov" else ""
        )
        setting = f"{where}, prompt {edit['prompt']!r}"
        for quantity, value in (
            (f"log p({edit['token']!r}) change, cued direction removed", edit["target_change"]),
            (
                f"log p({edit['token']!r}) change, median other direction",
                edit["median_other_change"],
            ),
            ("rank of the cued direction's effect (1 = largest drop)", edit["target_rank"]),
            (
                "matrices where the cued direction's removal is the largest drop",
                f"{edit['matrices_where_cued_is_largest_drop']} of {len(edit['candidates'])}",
            ),
        ):
            unit = "nats" if "change" in quantity else ""
            reference = ref["edit_rank"] if quantity.startswith("rank") else None
            verdict = reference and judge(
                value == 1,
                "removing the cued direction is the largest drop, as in the paper",
                f"removing the cued direction is only the {value}th largest drop",
            )
            rows.append(row(quantity, value, model, setting, unit, reference, verdict))
    return rows


NOTES = [
    "Coherent: at either end, the fraction of pairs of a direction's top tokens that are "
    "among each other's nearest neighbours in embedding space (k-NN in cosine) is above "
    "the given quantile of the same score for random directions (not random token sets: "
    "with tied embeddings any direction's top tokens resemble each other). The paper "
    "labelled directions by hand and with a language model; this automatic score is a "
    "stand-in, so compare trained against control.",
    "Edit: every written matrix (OV head, MLP out) with a direction whose top tokens hold "
    "the cued token has each of its directions removed in turn; the row shown is the "
    "matrix where the cued direction ranks best.",
]


def weights_svd_summary(stores: Sequence[str | os.PathLike], published: str) -> dict[str, Any]:
    """Coherent fractions of every weight-SVD store (trained vs control, all and later
    blocks) and the edit effect; ``published``: the file of published values."""
    title = "Weight SVD (OV circuits and MLP weights in token space)"
    return summary_of_stores("weights_svd", title, stores, published, _store_rows, NOTES)
