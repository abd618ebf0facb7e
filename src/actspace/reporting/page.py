"""The summary page: every method's headline numbers beside the published ones.

:func:`render_markdown` assembles the per-method summaries (``results/summary/{method}.json``,
see :mod:`actspace.reporting.rows`) into ``results/summary.md``, the page a reader opens first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
