"""A method summary's rows, and the published values they stand beside.

Every method writes ``results/summary/{method}.json``::

    {"method": ..., "title": ..., "rows": [
        {"quantity": ..., "value": ..., "unit": ..., "model": ..., "setting": ...,
         "published": ... or null, "study": ... or null, "study_setting": ... or null,
         "verdict": "reproduced" | "differs" | "not comparable", "reason": ...}],
     "notes": [...]}  (optional: how to read the numbers)

built by the method's own ``summary`` module from :func:`row`; the published side comes
from ``published.yaml`` (:func:`published_values`), never from literals in the code. A row
beside a published value carries the method's verdict on it (:func:`judge`), with the reason
in one line; a row without one is "not comparable".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actspace.errors import ActspaceError
from actspace.store import open_store

PUBLISHED_PATH = Path(__file__).with_name("published.yaml")


@dataclass(frozen=True)
class Published:
    """A published reference value: the value, the study and the setting it was measured in;
    ``mark``, where the value is a number a figure can draw, that number (or point)."""

    value: Any
    study: str
    setting: str
    mark: Any = None

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of a value published as a range, "low-high"."""
        low, high = (float(x) for x in str(self.value).split("-"))
        return low, high


def published_values(method: str, path: str | os.PathLike = PUBLISHED_PATH) -> dict[str, Published]:
    """The published values of one method, by key (an empty dict when it has none)."""
    try:
        entries = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get(method, {})
        return {key: Published(**entry) for key, entry in entries.items()}
    except (OSError, yaml.YAMLError, TypeError) as err:
        raise ActspaceError(f"cannot read the published values in {path}: {err}") from err


VERDICTS = ("reproduced", "differs", "not comparable")


@dataclass(frozen=True)
class Verdict:
    """How a number of this run compares with the published one, and why, in one line."""

    verdict: str
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


NO_REFERENCE = Verdict("not comparable", "no published value")


def judge(agrees: bool, why_agrees: str, why_not: str) -> Verdict:
    """``reproduced`` with ``why_agrees`` when the method's criterion holds, else ``differs``
    with ``why_not``."""
    return Verdict("reproduced", why_agrees) if agrees else Verdict("differs", why_not)


def range_verdict(value: float, published: Published, note: str = "") -> Verdict:
    """Inside the published range ("low-high") or not; ``note`` adds a caveat."""
    low, high = published.bounds
    where = "inside" if low <= value <= high else ("below" if value < low else "above")
    reason = f"{value:.3g} {where} {low:g}-{high:g}" + (f" ({note})" if note else "")
    return Verdict("reproduced" if where == "inside" else "differs", reason)


def row(
    quantity: str,
    value: Any,
    model: str,
    setting: str,
    unit: str = "",
    reference: Published | None = None,
    verdict: Verdict | None = None,
) -> dict[str, Any]:
    """One row of a method's summary: a headline number beside the published one (if any)
    and the verdict on the comparison (required when there is a published value)."""
    if reference is None:
        verdict = NO_REFERENCE  # whatever was judged, there is nothing published beside it
    elif verdict is None:
        raise ValueError(f"summary row {quantity!r} has a published value but no verdict")
    return {
        "quantity": quantity,
        "value": value,
        "unit": unit,
        "model": model,
        "setting": setting,
        "published": reference.value if reference else None,
        "study": reference.study if reference else None,
        "study_setting": reference.setting if reference else None,
        "verdict": verdict.verdict,
        "reason": verdict.reason,
    }


def method_summary(
    method: str, title: str, rows: list[dict[str, Any]], notes: Sequence[str] = ()
) -> dict[str, Any]:
    """The summary of one method, as ``results/summary/{method}.json`` holds it."""
    summary: dict[str, Any] = {"method": method, "title": title, "rows": rows}
    if notes:
        summary["notes"] = list(notes)
    return summary


def summary_of_stores(
    method: str,
    title: str,
    stores: Sequence[str | os.PathLike],
    published: str | os.PathLike,
    store_rows: Callable[[Any, dict[str, Published]], list[dict[str, Any]]],
    notes: Sequence[str] = (),
    arrays: Sequence[str] = (),
) -> dict[str, Any]:
    """A method's summary from its result stores: ``store_rows(store, published values)``
    gives the rows of each store (opened read-only, checked to hold ``arrays``)."""
    reference = published_values(method, published)
    rows = [entry for path in stores for entry in store_rows(open_store(path, arrays), reference)]
    return method_summary(method, title, rows, notes)
