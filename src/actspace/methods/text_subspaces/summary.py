"""Summary of the text subspaces: k*/d per text, the product identity's error, usage."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from actspace.reporting.rows import Published, Verdict, judge, row, summary_of_stores


def _store_rows(group: Any, ref: dict[str, Published]) -> list[dict[str, Any]]:
    """The rows of one text-subspaces store."""
    rows = []
    attrs = group.attrs
    model, corpus, d = attrs["model"], attrs["corpus"], attrs["d_model"]
    # per-text rows only for texts that continue a prompt (sampled texts start from BOS)
    prompted = int((group["prompt_lengths"][:] > 1).sum())
    labels = attrs.get("text_labels", [])[: min(prompted, 4)]
    for variant, g in (
        ("all positions", group),
        ("first position excluded", group["exclude_first"]),
    ):
        k_star = g["k_star"][:]
        setting = f"{corpus}, {len(k_star)} texts, M_t over {variant}"
        # the study stacked every position; its seed figures are for prompted texts and
        # its usage figure for ~1200 sampled texts
        original = variant == "all positions"
        seeds = original and prompted == len(k_star)
        sampled = original and prompted == 0 and len(k_star) >= 100
        for i, label in enumerate(labels):
            meaning = seeds and label.startswith("I believe the meaning of life")
            rows.append(
                row(
                    f"k*/d, text {i} [{label}]",
                    k_star[i] / d,
                    model,
                    setting,
                    reference=ref["meaning_k_over_d"] if meaning else None,
                    verdict=_fraction_verdict(k_star[i] / d, ref["meaning_k_over_d"]),
                )
            )
        rows.append(
            row(
                "mean k*/d",
                float(np.mean(k_star) / d),
                model,
                setting,
                reference=ref["mean_k_over_d"] if seeds else None,
                verdict=_fraction_verdict(float(np.mean(k_star) / d), ref["mean_k_over_d"]),
            )
        )
        if g.attrs.get("mean_product_error") is not None:
            rows.append(
                row(
                    "mean relative error of tr(P_a P_b)/d = (k_a/d)(k_b/d)",
                    g.attrs["mean_product_error"],
                    model,
                    setting,
                    reference=ref["product_error"] if seeds else None,
                    verdict=_error_verdict(g.attrs["mean_product_error"], ref["product_error"]),
                )
            )
        rows.append(
            row(
                "least-used / most-used direction",
                g.attrs["usage_min_over_max"],
                model,
                setting,
                reference=ref["usage_min_over_max"] if sampled else None,
                verdict=judge(
                    g.attrs["usage_min_over_max"] >= float(ref["usage_min_over_max"].value),
                    "the least-used direction is used by at least half as many texts as the most-used",
                    "some direction is used by fewer than half as many texts as the most-used",
                ),
            )
        )
        rows.append(
            row(
                f"texts whose NLL curve is not monotone around k* (of {g.attrs['n_curves_checked']} "
                "with a curve)",
                g.attrs["n_non_monotone"],
                model,
                setting,
            )
        )
    return rows


NOTES = [
    "'M_t over all positions' is the original study's setting (it stacked every residual "
    "vector of the text); published values are shown beside that variant only.",
    "'first position excluded' drops the first token, whose huge residual norm (the "
    "attention sink) dominates the first singular direction.",
    "NLL: mean nats per token over each text's tokens after the first; k* is the smallest "
    "k with NLL at or below the unprojected NLL, by bisection assuming NLL falls with k.",
]


def text_subspaces_summary(stores: Sequence[str | os.PathLike], published: str) -> dict[str, Any]:
    """Headline numbers of every text-subspaces store: k*/d per text, the product identity's
    error, dimension usage; ``published``: the file of published values."""
    title = "Text subspaces (per-text SVD of the residual stream)"
    arrays = ["k_star", "overlap", "usage"]
    return summary_of_stores("text_subspaces", title, stores, published, _store_rows, NOTES, arrays)


FRACTION_TOLERANCE = 0.3  # relative: k*/d within 30% of the study's counts as reproduced
ERROR_FACTOR = 3  # the random-subspace prediction's error within 3x the study's


def _fraction_verdict(ours: float, published: Published) -> Verdict:
    theirs = float(published.value)
    return judge(
        abs(ours - theirs) <= FRACTION_TOLERANCE * theirs,
        f"{ours:.2f} of d against {theirs:.2f}: within {FRACTION_TOLERANCE:.0%}",
        f"{ours:.2f} of d against {theirs:.2f}: off by more than {FRACTION_TOLERANCE:.0%}",
    )


def _error_verdict(ours: float, published: Published) -> Verdict:
    theirs = float(published.value)
    return judge(
        ours <= ERROR_FACTOR * theirs,
        f"overlaps follow the random-subspace prediction to {ours:.3f} (study: {theirs:g})",
        f"overlaps depart from the random-subspace prediction by {ours:.3f} (study: {theirs:g})",
    )
