"""A run's summary against another's: which results moved, and which verdicts changed.

A researcher who reruns the pipeline on another machine wants to know whether it reproduced
the snapshot in ``docs/summary-of-results.json``, row by row. Float results of the same code
and package versions can differ in their last bits between CPUs (other vector kernels), and
training or optimisation amplifies that (the toys, their partitions), so "equal" means:
same verdict, numbers within a relative tolerance, formatted values equal. Timings and
throughputs (units ``s`` and ``tokens/s``) measure the machine, not the method, and are
left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VOLATILE_UNITS = frozenset({"s", "tokens/s"})
ROW_KEY = ("quantity", "model", "setting")


@dataclass(frozen=True)
class RowChange:
    """One row that differs: ``kind`` is ``verdict``, ``value``, ``only in reference`` or
    ``only in run``; ``before`` / ``after`` the reference's and the run's value (or verdict)."""

    method: str
    quantity: str
    model: str | None
    setting: str | None
    kind: str
    before: Any = None
    after: Any = None


def keyed_rows(table: Mapping[str, Any]) -> dict[tuple, Mapping[str, Any]]:
    """The rows of a combined summary by (method, quantity, model, setting, occurrence): a
    method may repeat a key (one row per variant with the same label), so the n-th
    repetition is matched with the n-th."""
    rows: dict[tuple, Mapping[str, Any]] = {}
    for summary in table["methods"]:
        seen: Counter = Counter()
        for row in summary["rows"]:
            key = (summary["method"], *(row.get(field) for field in ROW_KEY))
            rows[(*key, seen[key])] = row
            seen[key] += 1
    return rows


def values_agree(before: Any, after: Any, rtol: float) -> bool:
    """Numbers within ``rtol`` of each other (NaN equals NaN), lists element by element,
    anything else (formatted strings, counts in text) exactly equal."""
    if isinstance(before, bool) or isinstance(after, bool):
        return before == after
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        if math.isnan(before) or math.isnan(after):
            return math.isnan(before) and math.isnan(after)
        return math.isclose(before, after, rel_tol=rtol, abs_tol=0.0)
    if isinstance(before, Sequence) and isinstance(after, Sequence):
        if isinstance(before, str) or isinstance(after, str):
            return before == after
        return len(before) == len(after) and all(
            values_agree(b, a, rtol) for b, a in zip(before, after)
        )
    return before == after


def compare_summaries(
    reference: Mapping[str, Any], run: Mapping[str, Any], rtol: float = 1e-4
) -> tuple[list[RowChange], int]:
    """Every row of ``run`` that differs from ``reference`` (both combined summaries, as
    ``results/summary.json``): a changed verdict first, else a value outside ``rtol``, plus
    rows only one of them has; and the number of rows compared. Timing and throughput rows
    are skipped."""
    before_rows, after_rows = keyed_rows(reference), keyed_rows(run)
    changes, compared = [], 0
    for key in [*before_rows, *(k for k in after_rows if k not in before_rows)]:
        before, after = before_rows.get(key), after_rows.get(key)
        if (before or after).get("unit") in VOLATILE_UNITS:
            continue
        compared += 1
        where = dict(zip(("method", *ROW_KEY), key[:4]))
        if after is None:
            changes.append(RowChange(**where, kind="only in reference", before=before["value"]))
        elif before is None:
            changes.append(RowChange(**where, kind="only in run", after=after["value"]))
        elif before.get("verdict") != after.get("verdict"):
            changes.append(
                RowChange(**where, kind="verdict", before=before["verdict"], after=after["verdict"])
            )
        elif not values_agree(before["value"], after["value"], rtol):
            changes.append(
                RowChange(**where, kind="value", before=before["value"], after=after["value"])
            )
    return changes, compared


def changes_report(changes: Sequence[RowChange], n_rows: int, rtol: float) -> str:
    """The changes as plain text, one per line, verdict changes first, then a count."""
    order = {"verdict": 0, "value": 1, "only in reference": 2, "only in run": 3}
    lines = []
    for change in sorted(changes, key=lambda c: order[c.kind]):
        label = f"{change.method}: {change.quantity} [{change.model}; {change.setting}]"
        if change.kind in ("verdict", "value"):
            lines.append(f"{change.kind:<7} {label}: {change.before!r} -> {change.after!r}")
        else:
            value = change.before if change.kind == "only in reference" else change.after
            lines.append(f"{change.kind}: {label}: {value!r}")
    verdicts = sum(change.kind == "verdict" for change in changes)
    lines.append(
        f"{len(changes)} of {n_rows} rows differ (relative tolerance {rtol:g}; timings left "
        f"out), {verdicts} with another verdict"
    )
    return "\n".join(lines)
