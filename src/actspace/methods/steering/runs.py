"""``config.steering`` as the workflow needs it: the runs, each run's settings per part
(melbo, ortho, sweep, generate, complement) and the section's checks (no torch: the
workflow imports this when it is parsed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actspace.config import check_names, fill, per_target
from actspace.errors import ActspaceError


def runs(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(config.get("steering", {}).get("runs", {}))


def run_targets(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """(model, run) of every configured run, the wildcards of its outputs."""
    return [{"model": spec["model"], "run": name} for name, spec in runs(config).items()]


def run_settings(config: Mapping[str, Any], run: str, part: str) -> dict[str, Any]:
    """One part of the settings of a run: the section's values, the run's overrides."""
    return {**config["steering"][part], **runs(config)[run].get(part, {})}


def run_corpus(config: Mapping[str, Any], run: str) -> str:
    return runs(config)[run]["corpus"]


def base_file(config: Mapping[str, Any], run: str) -> list[str]:
    """Input function: the file theta_0 comes from, when the run names one."""
    path = run_settings(config, run, "ortho").get("base_file")
    return [path] if path else []


def corpus_input(config: Mapping[str, Any], wildcards: Any, pattern: str) -> str:
    """Input function: the tokenised prompts of a run (``pattern``: the corpus store's)."""
    return fill(pattern, model=wildcards.model, corpus=run_corpus(config, wildcards.run))


def per_run(config: Mapping[str, Any], pattern: str | list[str]) -> list[str]:
    """``pattern`` (or each of a list) for every configured run."""
    return per_target(run_targets(config), pattern)


def check_config(config: Mapping[str, Any]) -> None:
    """Every run names a defined model and a defined corpus of type ``prompts``."""
    for name, spec in runs(config).items():
        for key, defined in (("model", "models"), ("corpus", "corpora")):
            check_names(f"steering.runs.{name}.{key}", [spec[key]], config, defined)
        corpus = config["corpora"][spec["corpus"]]
        if corpus["type"] != "prompts" or corpus.get("continue_tokens"):
            raise ActspaceError(
                f"config steering.runs.{name}.corpus: {spec['corpus']!r} must be a corpus of "
                "type prompts without continue_tokens (the prompts the vectors steer)"
            )
