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


def _summary(*rows_by_method):
    """A combined summary of (method, rows) pairs, as results/summary.json holds."""
    return combined([method_summary(m, m, list(rows)) for m, rows in rows_by_method])


def _row(quantity, value, verdict="not comparable", unit="", setting="s"):
    return {
        "quantity": quantity,
        "value": value,
        "unit": unit,
        "model": "m",
        "setting": setting,
        "verdict": verdict,
    }


def test_compare_finds_moved_values_changed_verdicts_and_rows_only_one_run_has():
    from actspace.reporting.compare import compare_summaries

    reference = _summary(
        ("toys", [_row("score", 0.9967, "differs"), _row("training time", 120.0, unit="s")]),
        (
            "partition",
            [
                _row("mi", 2.0),
                _row("mi", 5.0),
                _row("sizes", [32, 32]),
                _row("gone", "a"),
                _row("nan", float("nan")),
            ],
        ),
    )
    same = compare_summaries(reference, reference)
    assert same == ([], 6)  # the timing row is not compared
    run = _summary(
        ("toys", [_row("score", 0.9974, "reproduced"), _row("training time", 240.0, unit="s")]),
        # the second "mi" row (same key) moved; the first moved within the tolerance
        (
            "partition",
            [
                _row("mi", 2.0 * (1 + 1e-6)),
                _row("mi", 5.1),
                _row("sizes", [56, 8]),
                _row("nan", float("nan")),
                _row("new", 1),
            ],
        ),
    )
    changes, compared = compare_summaries(reference, run, rtol=1e-4)
    assert compared == 7
    found = {(c.quantity, c.kind, repr(c.before), repr(c.after)) for c in changes}
    assert found == {
        ("score", "verdict", "'differs'", "'reproduced'"),
        ("mi", "value", "5.0", "5.1"),
        ("sizes", "value", "[32, 32]", "[56, 8]"),
        ("gone", "only in reference", "'a'", "None"),
        ("new", "only in run", "None", "1"),
    }
    # a looser tolerance lets the 2% move pass; a verdict change never passes
    loose, _ = compare_summaries(reference, run, rtol=0.05)
    assert {c.quantity for c in loose} == {"score", "sizes", "gone", "new"}


def test_compare_command_exits_1_on_any_change_and_names_the_files_it_cannot_read(tmp_path, capsys):
    from actspace.cli import main

    reference = _summary(("toys", [_row("score", 0.99, "reproduced")]))
    snapshot, run = tmp_path / "snapshot.json", tmp_path / "summary.json"
    snapshot.write_text(json.dumps(reference))
    run.write_text(json.dumps(reference))
    assert main(["compare", str(run), "--snapshot", str(snapshot)]) == 0
    assert "0 of 1 rows differ" in capsys.readouterr().out
    run.write_text(json.dumps(_summary(("toys", [_row("score", 0.5, "differs")]))))
    assert main(["compare", str(run), "--snapshot", str(snapshot)]) == 1
    out = capsys.readouterr().out
    assert "verdict toys: score [m; s]: 'reproduced' -> 'differs'" in out
    assert "1 of 1 rows differ" in out and "1 with another verdict" in out
    assert main(["compare", str(tmp_path / "missing.json"), "--snapshot", str(snapshot)]) == 1
    assert "missing.json: no such summary" in capsys.readouterr().err
