"""Summary of the capture: throughput and storage cost of each activation store."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actspace.reporting.rows import method_summary, row
from actspace.store import open_store


def capture_summary(
    stores: Sequence[str | os.PathLike], checks: Sequence[str | os.PathLike] = ()
) -> dict[str, Any]:
    """Capture throughput and storage cost of each activation store (pipeline figures), and
    each model's equivalence check (:mod:`actspace.models.equivalence`)."""
    rows = []
    for path in checks:
        check = json.loads(Path(path).read_text())
        worst = max(check["worst"].items(), key=lambda item: item[1]["error"])
        setting = (
            f"{check['prompts']['n']} prompts x {check['prompts']['length']} tokens, "
            f"{check['dtype']}, tolerance {check['tolerance']:g}; worst site {worst[0]}"
        )
        rows.append(
            row(
                "equivalence check: worst relative error, hook sites vs transformers",
                check["max_error"],
                check["model"],
                setting,
            )
        )
    for path in stores:
        attrs = open_store(path, ["resid"]).attrs
        setting = (
            f"corpus {attrs['corpus']}, {attrs['n_tokens']} tokens, {attrs['dtype']}, "
            f"codec {attrs['codec']}, {attrs['device']}"
        )
        for quantity, key, unit in (
            ("capture throughput", "tokens_per_s", "tokens/s"),
            ("storage per activation", "bytes_per_activation", "bytes"),
        ):
            rows.append(row(quantity, attrs[key], attrs["model"], setting, unit))
    return method_summary("capture", "Residual-stream capture (pipeline figures)", rows)
