"""Summary of the stable-regions runs: sharpness of the trained model and of its random
initialisation beside the published numbers, its trend over training checkpoints and model
size, and the semantic check."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from scipy.stats import spearmanr

from actspace.methods.regions.read import RegionsResult, VariantResult, read_regions
from actspace.reporting.rows import Verdict, judge, method_summary, published_values, row

NOTES = [
    "Sharpness: the largest slope of the relative output change r = d / d(1) along the segment "
    "between two prompts' activations after block 0 (last position), per unit of alpha; 1 = a "
    "linear curve. Median (25th-75th percentile) over consecutive pairs of random token windows.",
    "It depends on the number of interpolation steps: compare only at the same count.",
    "Toy runs read every stored training checkpoint; their step 0 is the random init.",
]


MEDIAN_LOW, MEDIAN_HIGH = 2.5, 10  # a factor of 2 around the published median of about 5
NEAR_LINEAR = 1.2  # the paper's "flat" group: below 1.2


def semantic_verdict(groups: list[dict[str, Any]]) -> Verdict:
    """The paper's pattern: most flat pairs (first group) end in the same token ("essentially
    every pair") and more often than the sharp ones (second group); not comparable when
    either group is empty."""
    flat, sharp = groups[0], groups[1]
    if not flat["pairs"] or not sharp["pairs"]:
        return Verdict("not comparable", f"no pairs in '{flat['group']}' or '{sharp['group']}'")
    flat_share = flat["same_last_token"] / flat["pairs"]
    sharp_share = sharp["same_last_token"] / sharp["pairs"]
    return judge(
        flat_share >= 0.5 and flat_share > sharp_share,
        f"{flat['same_last_token']} of {flat['pairs']} flat pairs share the last token, "
        f"{sharp['same_last_token']} of {sharp['pairs']} sharp ones",
        f"{flat_share:.0%} of the flat pairs share the last token ({sharp_share:.0%} of the "
        "sharp ones), not most of them",
    )


def quartile_text(variant: VariantResult) -> str:
    low, median, high = variant.quartiles
    return f"{median:.2f} ({low:.2f}-{high:.2f})"


def _setting(result: RegionsResult, variant: VariantResult) -> str:
    s = result.attrs["settings"]
    pairs = len(variant.sharpness)
    return (
        f"{result.corpus}: {pairs} pairs of {s['window']}-token windows, {s['steps']} steps, "
        f"write after block {s['write_block']}, {variant.label}, {variant.n_params:,} parameters"
    )


def training_trend(result: RegionsResult) -> tuple[list[tuple[int, float]], float]:
    """(step, median) of every checkpoint and the Spearman correlation of median with step."""
    points = [(v.step, float(v.quartiles[1])) for v in result.checkpoints]
    if len(points) < 3:
        return points, float("nan")
    steps, medians = zip(*points)
    return points, float(spearmanr(steps, medians).statistic)


def run_rows(result: RegionsResult, ref: Mapping[str, Any], toy: bool) -> list[dict[str, Any]]:
    rows = []
    trained, random = result.of_kind("trained"), result.of_kind("random init")
    if trained is not None:
        rows.append(
            row(
                "boundary sharpness, trained model: median (25th-75th percentile)",
                quartile_text(trained),
                result.model,
                _setting(result, trained),
                reference=None if toy else ref["median_trained"],
                verdict=judge(
                    MEDIAN_LOW <= trained.quartiles[1] <= MEDIAN_HIGH,
                    f"median {trained.quartiles[1]:.2f}, within a factor 2 of the published "
                    "about 5 (Qwen2-0.5B)",
                    f"median {trained.quartiles[1]:.2f} outside {MEDIAN_LOW}-{MEDIAN_HIGH} "
                    "around the published 5",
                ),
            )
        )
    if random is not None:
        rows.append(
            row(
                "boundary sharpness, random initialisation: median (25th-75th percentile)",
                quartile_text(random),
                result.model,
                _setting(result, random),
                reference=ref["random_init"],
                verdict=judge(
                    random.quartiles[1] <= NEAR_LINEAR,
                    f"median {random.quartiles[1]:.2f}: near-linear curves",
                    f"median {random.quartiles[1]:.2f} above {NEAR_LINEAR}: not near-linear",
                ),
            )
        )
    if len(result.checkpoints) >= 3:
        points, rho = training_trend(result)
        rows.append(
            row(
                "median sharpness over training checkpoints (Spearman rho with step)",
                f"{points[0][1]:.2f} at step {points[0][0]} -> {points[-1][1]:.2f} at step "
                f"{points[-1][0]} (rho {rho:.2f}, {len(points)} checkpoints)",
                result.model,
                f"{result.corpus}, {result.attrs['settings']['steps']} steps",
                reference=ref["over_training"],
                verdict=judge(
                    points[-1][1] > points[0][1] and rho > 0,
                    f"sharper at the end than at initialisation (rho {rho:.2f}; not monotone)",
                    "not sharper at the end of training than at initialisation",
                ),
            )
        )
    if trained is not None:
        groups = trained.attrs["semantic"]
        setting = f"{result.corpus}, trained model, pairs per group of sharpness"
        for key, what in (
            ("same_last_token", "end in the same token"),
            ("same_top_prediction", "get the same top prediction"),
        ):
            rows.append(
                row(
                    f"pairs whose two prompts {what}, by sharpness",
                    "; ".join(f"{g['group']}: {g[key]} of {g['pairs']}" for g in groups),
                    result.model,
                    setting,
                    reference=ref["semantic"] if key == "same_last_token" else None,
                    verdict=semantic_verdict(groups),
                )
            )
    return rows


def size_row(results: Sequence[RegionsResult], ref: Mapping[str, Any]) -> dict[str, Any] | None:
    """Median sharpness of every trained model against its parameter count."""
    points = sorted(
        (v.n_params, r.model, float(v.quartiles[1]))
        for r in results
        if (v := r.of_kind("trained")) is not None
    )
    if len(points) < 2:
        return None
    return row(
        "median sharpness against parameter count (trained models)",
        "; ".join(f"{model} {n:,}: {median:.2f}" for n, model, median in points),
        ", ".join(sorted({r.model for r in results})),
        "every run of the config (different tasks for the toys)",
        reference=ref["over_size"],
        verdict=judge(
            spearmanr([p[0] for p in points], [p[2] for p in points]).statistic > 0,
            "larger models have sharper boundaries (across different tasks for the toys)",
            "no rise with parameter count",
        ),
    )


def regions_summary(
    stores: Sequence[str | os.PathLike], toys: Sequence[bool], published: str | os.PathLike
) -> dict[str, Any]:
    ref = published_values("regions", published)
    results = [read_regions(path) for path in stores]
    rows = [entry for r, toy in zip(results, toys, strict=True) for entry in run_rows(r, ref, toy)]
    if (sizes := size_row(results, ref)) is not None:
        rows.append(sizes)
    return method_summary("regions", "Stable regions", rows, NOTES)
