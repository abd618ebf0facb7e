"""``config.regions`` as the workflow needs it: the runs (a model and the corpus its prompts
come from), the checkpoints a toy run reads, and the section's checks (no torch: the workflow
imports this when it is parsed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actspace.config import check_names, per_target
from actspace.errors import ActspaceError

RUN_KEYS = ("runs",)  # not settings of a regions job


def runs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(config.get("regions", {}).get("runs", []))


def run_targets(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """(model, corpus) of every run: the wildcards of its outputs."""
    return [{"model": r["model"], "corpus": r["corpus"]} for r in runs(config)]


def per_run(config: Mapping[str, Any], pattern: str | list[str]) -> list[str]:
    """``pattern`` (or each of a list) for every run, in config order."""
    return per_target(run_targets(config), pattern)


def series(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per run, the series it belongs to and its training step (None when not given)."""
    return [{"series": r.get("series"), "step": r.get("step")} for r in runs(config)]


def toy_runs(config: Mapping[str, Any]) -> list[bool]:
    """Per run, whether its model is a toy (the published numbers compare only real LMs)."""
    return [toy_of(config, r["model"]) is not None for r in runs(config)]


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings every regions job takes (a change reruns them all)."""
    return {k: v for k, v in config["regions"].items() if k not in RUN_KEYS}


def toy_of(config: Mapping[str, Any], model: str) -> str | None:
    """The toy a model comes from (None unless its source is ``toy``)."""
    spec = config["models"][model]
    return spec["toy"] if spec["source"] == "toy" else None


def checkpoints_input(config: Mapping[str, Any], model: str, pattern: str) -> list[str]:
    """The stored checkpoints of a toy model (``pattern``: the toy's checkpoints folder), when
    the section asks for them; nothing for other models."""
    toy = toy_of(config, model)
    if toy is None or not config["regions"]["checkpoints"]:
        return []
    return [pattern.replace("{toy}", toy)]


def check_config(config: Mapping[str, Any]) -> None:
    """Every run names a defined model and corpus, once per (model, corpus); a series is
    given with its step."""
    seen: set[tuple[str, str]] = set()
    for index, run in enumerate(runs(config)):
        for key, defined in (("model", "models"), ("corpus", "corpora")):
            check_names(f"regions.runs[{index}].{key}", [run[key]], config, defined)
        pair = (run["model"], run["corpus"])
        if pair in seen:
            raise ActspaceError(
                f"config regions.runs[{index}]: {pair[0]} on {pair[1]} is listed twice"
            )
        seen.add(pair)
        if ("series" in run) != ("step" in run):
            raise ActspaceError(
                f"config regions.runs[{index}]: give series and step together (a checkpoint "
                "of a series is plotted at its training step)"
            )
