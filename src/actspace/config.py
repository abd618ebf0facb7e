"""Checks of the workflow config beyond its JSON schema (cross-references between sections).

The schema (``workflow/schemas/config.schema.yaml``) checks keys and types; these checks catch
what a schema cannot, such as a capture that names a model the config does not define. Both
run when the workflow is parsed, before any job, so bad input never touches earlier results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actspace.errors import ActspaceError


def _check_names(section: str, names: list[str], config: Mapping[str, Any], key: str) -> None:
    for name in names:
        if name not in config[key]:
            raise ActspaceError(
                f"config {section} names {name!r}, which config.{key} does not define "
                f"(defined: {', '.join(sorted(config[key])) or 'none'})"
            )


def check_references(config: Mapping[str, Any]) -> None:
    """Raise :class:`ActspaceError` when a section names an undefined model or corpus."""
    for section in ("capture", "text_subspaces"):
        _check_names(f"{section}.models", config[section]["models"], config, "models")
        _check_names(f"{section}.corpora", config[section]["corpora"], config, "corpora")
    _check_names("weights_svd.models", config["weights_svd"]["models"], config, "models")
    specs = config.get("toys", {}).get("specs", {})
    defined = ", ".join(sorted(specs)) or "none"
    for name, spec in config["models"].items():
        if spec["source"] == "toy" and spec["toy"] not in specs:
            raise ActspaceError(
                f"config models.{name} is the toy {spec['toy']!r}, which config.toys.specs does "
                f"not define (defined: {defined})"
            )
    for name in config.get("toys", {}).get("train", []):
        if name not in specs:
            raise ActspaceError(
                f"config toys.train names {name!r}, which config.toys.specs does not define "
                f"(defined: {defined})"
            )
    for name, toy in specs.items():
        task = toy["task"]
        if task["min_len"] > task["max_len"]:
            raise ActspaceError(f"config toys.specs.{name}.task: min_len exceeds max_len")
        if task["kind"] == "copy" and task["max_len"] > task["vocab"]:
            raise ActspaceError(
                f"config toys.specs.{name}.task: a copy task's x has unique tokens, so max_len "
                f"({task['max_len']}) cannot exceed vocab ({task['vocab']})"
            )
        longest = max(task["max_len"], *task.get("long_len", [0]))
        needed = 2 + longest + task.get("repetitions", 1) * (1 + longest)
        if needed > toy["model"]["n_positions"]:
            raise ActspaceError(
                f"config toys.specs.{name}: sequences of up to {needed} tokens (max_len/long_len) do "
                f"not fit n_positions {toy['model']['n_positions']}"
            )
    for name, corpus in config["corpora"].items():
        if corpus["type"] == "prompts":
            for index, prompt in enumerate(corpus["prompts"]):
                if not prompt.strip():
                    raise ActspaceError(f"config corpora.{name}.prompts[{index}] is empty")
