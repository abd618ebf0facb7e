"""Summary of the toys: accuracy and best heads beside the public toys' numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from actspace.methods.toys.spec import ToySpec
from actspace.reporting.rows import judge, method_summary, published_values, row
from actspace.store import read_csv


def toys_summary(
    toys: dict[str, dict[str, Any]],
    metrics: Sequence[str | os.PathLike],
    heads: Sequence[str | os.PathLike],
    published: str | os.PathLike,
) -> dict[str, Any]:
    """Final accuracy and best head scores of every toy beside the public toys' numbers.

    ``metrics`` and ``heads`` are the tables of each toy of ``toys`` (config entries), in
    order; ``published`` is the file of published values (:mod:`actspace.reporting.rows`).
    """
    ref = published_values("toys", published)
    rows = []
    for (name, entry), metrics_csv, heads_csv in zip(toys.items(), metrics, heads, strict=True):
        spec = ToySpec.from_config(name, entry)
        final = read_csv(metrics_csv)[-1]
        arch = spec.arch
        setting = (
            f"{spec.task.kind}, V={spec.task.vocab}, L {spec.task.min_len}-{spec.task.max_len}; "
            f"{arch.n_layers}L x {arch.n_heads}H, d={arch.d_model}"
            f"{', attention-only' if arch.attn_only else ''}; {spec.settings.steps} steps"
        )
        keys = ["accuracy", "accuracy_long", "induction_score", "prev_token_score"]
        if spec.task.kind == "bigram-copy":
            keys += ["bigram_score", "decoy_mass"]
        head_rows = read_csv(heads_csv)
        for key in keys:
            if key not in final:
                continue
            reference = ref.get(f"{spec.task.kind}.{key}")
            quantity = key.replace("_", " ")
            if key in ("induction_score", "prev_token_score", "bigram_score"):
                best = max(head_rows, key=lambda h: h[key])
                quantity += f" (best head: layer {best['layer']}, head {best['head']})"
            elif key == "decoy_mass":
                quantity += " (of the best bigram head)"
            value = final[key]
            verdict = None
            if reference is not None:
                bar = float(reference.value)
                lower_is_better = key == "decoy_mass"
                verdict = judge(
                    value <= bar if lower_is_better else value >= bar,
                    f"{value:.3f} meets the public toy's {bar:g}",
                    f"{value:.3f} misses the public toy's {bar:g}",
                )
            rows.append(row(quantity, value, name, setting, "", reference, verdict))
        rows.append(row("training time", final["seconds"], name, setting, "s"))
    notes = [
        "Accuracy: held-out sequences whose every copied token and <eos> is predicted right; "
        "head scores: the best head of each kind (definitions in actspace.methods.toys.heads).",
    ]
    return method_summary("toys", "Toy copy transformers (induction heads)", rows, notes)
