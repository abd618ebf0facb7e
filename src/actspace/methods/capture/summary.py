"""Summary of the capture: throughput and storage cost of each activation store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from actspace.reporting.rows import method_summary, row
from actspace.store import open_store


def capture_summary(stores: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """Capture throughput and storage cost of each activation store (pipeline figures)."""
    rows = []
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
