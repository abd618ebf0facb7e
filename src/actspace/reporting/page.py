"""The summary page: every method's headline numbers beside the published ones.

:func:`assemble` gathers the per-method summaries (``results/summary/{method}.json``, see
:mod:`actspace.reporting.rows`) into ``results/summary.json`` (all methods, a row without a
published value says "none published"), ``results/summary.md`` (the page a reader opens
first) and ``results/summary.html`` (the same tables in the Snakemake report).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from actspace.provenance import package_versions, utc_now

NONE_PUBLISHED = "none published"
COLUMNS = (
    "quantity",
    "value",
    "unit",
    "model",
    "setting",
    "published",
    "study (setting)",
    "verdict",
)


def format_value(value: Any) -> str:
    """A cell's text: 4 significant digits for floats, a dash for a missing value."""
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
        f"reported ({NONE_PUBLISHED} where the study has none, e.g. pipeline figures).",
        "",
    ]
    for summary in summaries:
        lines += markdown_section(summary, "##", COLUMNS, _cells)
    return "\n".join(lines)


def markdown_cell(value: Any) -> str:
    """A markdown table cell: formatted, pipes escaped, no line breaks."""
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def markdown_section(
    summary: Mapping[str, Any],
    heading: str,
    columns: Sequence[str],
    cells: Callable[[Mapping[str, Any]], Sequence[Any]],
) -> list[str]:
    """One method's table and its notes as markdown lines, under ``heading`` + its title."""
    lines = [
        f"{heading} {summary['title']}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += [
        "| " + " | ".join(markdown_cell(c) for c in cells(row)) + " |" for row in summary["rows"]
    ]
    notes = summary.get("notes", [])
    if notes:
        lines += ["", *[f"- {markdown_cell(note)}" for note in notes]]
    return [*lines, ""]


def published_of(row: Mapping[str, Any]) -> Any:
    """The published value of a row, or :data:`NONE_PUBLISHED`."""
    return NONE_PUBLISHED if row.get("published") is None else row["published"]


def _cells(row: dict[str, Any]) -> list[str]:
    """A row's cells in :data:`COLUMNS` order."""
    study = row.get("study")
    if study and row.get("study_setting"):
        study = f"{study} ({row['study_setting']})"
    values = (
        row["quantity"],
        row["value"],
        row.get("unit"),
        row.get("model"),
        row.get("setting"),
        published_of(row),
        study,
        f"{row.get('verdict', 'not comparable')}: {row.get('reason', 'no published value')}",
    )
    return [format_value(v) for v in values]


def render_html(summaries: Sequence[dict[str, Any]]) -> str:
    """The same tables as one standalone HTML page (for the Snakemake report)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>actspace summary</title>",
        "<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;"
        "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
        "th{background:#eee}</style></head><body><h1>actspace: summary of results</h1>",
    ]
    for summary in summaries:
        parts.append(f"<h2>{html.escape(summary['title'])}</h2><table><tr>")
        parts += [f"<th>{html.escape(c)}</th>" for c in COLUMNS]
        parts.append("</tr>")
        for row in summary["rows"]:
            parts.append(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row)) + "</tr>"
            )
        parts.append("</table>")
        notes = summary.get("notes", [])
        if notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def combined(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """All methods' summaries in one object, an explicit "none published" where a row has
    no published value, and when and by which versions it was assembled."""
    methods = []
    for summary in summaries:
        rows = [{**row, "published": published_of(row)} for row in summary["rows"]]
        methods.append({**summary, "rows": rows})
    versions = package_versions()
    run = {"created": utc_now(), "actspace": versions.get("actspace"), "versions": versions}
    return {"run": run, "methods": methods}


def assemble(
    inputs: Sequence[str | os.PathLike],
    markdown: str | os.PathLike,
    page: str | os.PathLike,
    table: str | os.PathLike,
) -> None:
    """Read the per-method summaries; write the markdown page, the HTML page and the
    combined JSON."""
    summaries = [json.loads(Path(p).read_text()) for p in inputs]
    Path(markdown).write_text(render_markdown(summaries))
    Path(page).write_text(render_html(summaries))
    Path(table).write_text(json.dumps(combined(summaries), indent=2) + "\n")
