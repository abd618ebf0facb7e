"""The summary of results: each method's headline numbers beside the published ones.

Every method writes ``results/summary/{method}.json``::

    {"method": ..., "title": ..., "rows": [
        {"quantity": ..., "value": ..., "unit": ..., "model": ..., "setting": ...,
         "published": ... or null, "study": ... or null, "study_setting": ... or null}],
     "notes": [...]}  (optional: how to read the numbers)

built by each method's own ``summary_rows`` function (``capture.capture_summary``,
``textsub.text_subspaces_summary``), and :func:`render_markdown` assembles them into
``results/summary.md``, the page a reader opens first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def row(
    quantity: str,
    value: Any,
    model: str,
    setting: str,
    unit: str = "",
    published: Any = None,
    study: str | None = None,
    study_setting: str | None = None,
) -> dict[str, Any]:
    """One row of a method's summary: a headline number beside the published one."""
    return {
        "quantity": quantity,
        "value": value,
        "unit": unit,
        "model": model,
        "setting": setting,
        "published": published,
        "study": study,
        "study_setting": study_setting,
    }


def write_json(summary: dict[str, Any], out: str | os.PathLike) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(summary, indent=2) + "\n")


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(summaries: Sequence[dict[str, Any]]) -> str:
    """Markdown page with one table per method: ours beside the published value."""
    lines = [
        "# actspace: summary of results",
        "",
        "Each row: a headline number of this run beside the value the original study "
        "reported (– where the study has none, e.g. pipeline figures).",
        "",
    ]
    for summary in summaries:
        lines += [
            f"## {summary['title']}",
            "",
            "| quantity | value | unit | model | setting | published | study (setting) |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in summary["rows"]:
            study = row.get("study")
            if study and row.get("study_setting"):
                study = f"{study} ({row['study_setting']})"
            lines.append(
                "| "
                + " | ".join(
                    _format(v)
                    for v in (
                        row["quantity"],
                        row["value"],
                        row.get("unit"),
                        row.get("model"),
                        row.get("setting"),
                        row.get("published"),
                        study,
                    )
                )
                + " |"
            )
        lines.append("")
        lines += [f"- {note}" for note in summary.get("notes", [])]
        if summary.get("notes"):
            lines.append("")
    return "\n".join(lines)


def assemble(inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """Read the per-method summaries and write the markdown page."""
    summaries = [json.loads(Path(p).read_text()) for p in inputs]
    Path(out).write_text(render_markdown(summaries))
