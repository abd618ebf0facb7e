"""The README's "Summary of results" is generated from the default run's summary and kept in
step with it."""

from __future__ import annotations

import json

import pytest
import yaml

from actspace.cli import main
from actspace.errors import ActspaceError
from actspace.registry import enabled_methods
from actspace.reporting.page import NONE_PUBLISHED, combined
from actspace.reporting.readme import BEGIN, END, render_block, replace_block, update_readme
from actspace.reporting.rows import Published, method_summary, range_verdict, row
from conftest import REPO

SNAPSHOT = REPO / "docs" / "summary-of-results.json"
VERDICTS = {"reproduced", "differs", "not comparable"}


def test_the_readme_shows_the_committed_summary():
    assert update_readme(REPO / "README.md", SNAPSHOT, check=True), (
        "README.md's summary of results is not docs/summary-of-results.json: "
        "run `actspace readme` (after a default run: `actspace readme --summary "
        "results/summary.json`)"
    )


def test_the_committed_summary_covers_every_method_of_the_default_run():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    table = json.loads(SNAPSHOT.read_text())
    titles = [m["title"] for m in table["methods"]]
    assert [m["method"] for m in table["methods"]] == [m.name for m in enabled_methods(config)]
    assert len(set(titles)) == len(titles)
    for summary in table["methods"]:
        assert summary["rows"], summary["method"]
        for entry in summary["rows"]:
            assert entry["value"] not in (None, ""), entry
            assert entry["published"] is not None  # a value or "none published"
            assert entry["verdict"] in VERDICTS and entry["reason"], entry
            if entry["published"] != NONE_PUBLISHED:
                assert entry["study"], entry  # a published value names its study
    # the front page compares something: at least one row per method beside a published
    # value, except the pipeline's own figures (capture)
    compared = {
        m["method"]
        for m in table["methods"]
        if any(r["published"] != NONE_PUBLISHED for r in m["rows"])
    }
    assert compared >= {m["method"] for m in table["methods"]} - {"capture"}


def _table() -> dict:
    reference = Published("2.3-2.9", "Huang & Hahn 2025", "GPT-2 small")
    rows = [
        row("MI", 3.14159, "m", "s", "nats", reference, range_verdict(3.14159, reference)),
        row("KL(P_i || P_0)", 0.5, "m", "a | b"),
    ]
    summary = method_summary("x", "Method X", rows)
    summary["notes"] = ["one note"]
    return combined([summary])


def test_the_block_has_a_table_per_method_with_escaped_cells():
    block = render_block(_table())
    assert block.startswith(BEGIN) and block.endswith(END)
    lines = block.splitlines()
    assert "#### Method X" in lines and "- one note" in lines
    mi = next(line for line in lines if line.startswith("| MI |"))
    assert "3.142 nats" in mi and "2.3-2.9 (Huang & Hahn 2025, GPT-2 small)" in mi
    assert "**differs**: 3.14 above 2.3-2.9" in mi
    kl = next(line for line in lines if line.startswith("| KL"))
    # pipes inside a cell are escaped, so every row keeps the header's column count
    assert "KL(P_i \\|\\| P_0)" in kl and "a \\| b" in kl and NONE_PUBLISHED in kl
    header = next(line for line in lines if line.startswith("| quantity"))
    unescaped = lambda line: line.replace("\\|", "").count("|")  # noqa: E731
    assert unescaped(mi) == unescaped(kl) == unescaped(header)
    with pytest.raises(ActspaceError, match="no methods"):
        render_block({"methods": []})


def test_update_replaces_only_the_block_and_check_sees_drift(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(_table()))
    snapshot = tmp_path / "docs" / "summary.json"
    with pytest.raises(ActspaceError, match="no such summary"):  # --check copies nothing
        update_readme(readme, snapshot, summary, check=True)
    assert update_readme(readme, snapshot, summary)
    assert json.loads(snapshot.read_text()) == json.loads(summary.read_text())
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old" not in text and "#### Method X" in text
    assert update_readme(readme, snapshot, check=True)
    # a hand edit inside the block is drift; the command line says so and exits 1
    readme.write_text(text.replace("3.142 nats", "3.2 nats"))
    assert not update_readme(readme, snapshot, check=True)
    args = ["readme", "--readme", str(readme), "--snapshot", str(snapshot), "--check"]
    assert main(args) == 1
    assert main(args[:-1]) == 0 and main(args) == 0


def test_a_readme_without_markers_or_a_broken_summary_is_refused(tmp_path):
    with pytest.raises(ActspaceError, match="marker"):
        replace_block("no markers here", render_block(_table()))
    bad = tmp_path / "summary.json"
    bad.write_text("{not json")
    readme = tmp_path / "README.md"
    readme.write_text(f"{BEGIN}\n{END}\n")
    with pytest.raises(ActspaceError, match="not valid JSON"):
        update_readme(readme, tmp_path / "snapshot.json", bad)
    with pytest.raises(ActspaceError, match="no such summary"):
        update_readme(readme, tmp_path / "missing.json")
    assert not (tmp_path / "snapshot.json").exists()  # nothing copied from a bad summary
