"""The summary's rows: published values beside ours, a verdict on every comparison, and the
page rendering them."""

from __future__ import annotations

import json

import pytest

from actspace.reporting.page import NONE_PUBLISHED, assemble, combined
from actspace.reporting.rows import (
    PUBLISHED_PATH,
    Published,
    Verdict,
    judge,
    method_summary,
    published_values,
    range_verdict,
    row,
)

REFERENCE = Published("2.3-2.9", "a study", "a setting")


def test_a_row_beside_a_published_value_needs_a_verdict():
    with pytest.raises(ValueError, match="no verdict"):
        row("mi", 2.5, "m", "s", reference=REFERENCE)
    judged = row("mi", 2.5, "m", "s", reference=REFERENCE, verdict=range_verdict(2.5, REFERENCE))
    assert (judged["verdict"], judged["published"]) == ("reproduced", "2.3-2.9")
    # without a published value there is nothing to judge, whatever was passed
    alone = row("time", 3.0, "m", "s", verdict=judge(True, "yes", "no"))
    assert (alone["verdict"], alone["reason"]) == ("not comparable", "no published value")
    with pytest.raises(ValueError, match="not one of"):
        Verdict("fine", "why")


@pytest.mark.parametrize(
    ("value", "verdict", "word"),
    [(2.3, "reproduced", "inside"), (1.0, "differs", "below"), (3.5, "differs", "above")],
)
def test_range_verdict(value, verdict, word):
    result = range_verdict(value, REFERENCE, "GPT-2 small")
    assert result.verdict == verdict and word in result.reason and "GPT-2 small" in result.reason


def test_every_published_value_is_readable():
    import yaml

    raw = yaml.safe_load(PUBLISHED_PATH.read_text())
    for method in raw:
        values = published_values(method)
        assert values and all(v.study and v.setting for v in values.values())


def test_the_page_shows_verdicts_and_none_published(tmp_path):
    rows = [
        row("mi", 3.5, "m", "s", reference=REFERENCE, verdict=range_verdict(3.5, REFERENCE)),
        row("time", 3.0, "m", "s", "s"),
    ]
    path = tmp_path / "x.json"
    path.write_text(json.dumps(method_summary("x", "Method X", rows)))
    out = {name: tmp_path / name for name in ("summary.md", "summary.html", "summary.json")}
    assemble([path], out["summary.md"], out["summary.html"], out["summary.json"])
    markdown = out["summary.md"].read_text()
    assert "| verdict |" in markdown and "differs: 3.5 above 2.3-2.9" in markdown
    assert f"| {NONE_PUBLISHED} |" in markdown
    table = json.loads(out["summary.json"].read_text())
    assert [r["published"] for r in table["methods"][0]["rows"]] == ["2.3-2.9", NONE_PUBLISHED]
    assert "<td>differs: 3.5 above 2.3-2.9</td>" in out["summary.html"].read_text()
    assert combined([])["methods"] == []
