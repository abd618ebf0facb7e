"""Checks of the workflow config beyond its JSON schema (cross-references between sections).

The schema (``workflow/schemas/config.schema.yaml``) checks keys and types and holds every
default; these checks catch what a schema cannot, such as a capture that names a model the
config does not define. Which sections name what comes from the registry of methods
(:mod:`actspace.registry`). Both run when the workflow is parsed, before any job, so bad
input never touches earlier results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actspace.errors import ActspaceError
from actspace.registry import METHODS, run_check


def check_schema(config: Mapping[str, Any], schema_path: str | os.PathLike) -> None:
    """Check ``config`` against the schema and raise one clear error for the first problem:
    where it is (``capture.dtyp``), what is wrong, and for an unknown key the keys allowed
    there and what the section is for (instead of the schema printed whole)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return
    where = ".".join(str(part) for part in error.absolute_path) or "the config"
    about = error.schema.get("description")
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        message = (
            f"config: unknown key {', '.join(repr(k) for k in unknown)} in {where}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    else:
        message = f"config: {where}: {error.message}"
    if about:
        message += f" ({where}: {about})"
    raise ActspaceError(message)


def order_like(config: Any, reference: Any) -> None:
    """Reorder, in place, every mapping of ``config`` to the key order of the same mapping in
    ``reference`` (keys it lacks keep their order, after its keys); list items follow the
    reference's item at the same index.

    Snakemake compares a job's params by their ``repr``, so the order of a settings mapping
    counts: a user's file layered over ``config/config.yaml`` comes back from Snakemake's merge
    with the overriding keys first, and a default restated there, or a file written with
    sorted keys, would rerun jobs whose settings did not change. With the default config as
    ``reference`` only a changed value reruns anything."""
    if isinstance(config, dict) and isinstance(reference, Mapping):
        keys = [k for k in reference if k in config] + [k for k in config if k not in reference]
        items = [(k, config.pop(k)) for k in keys]
        for key, value in items:
            config[key] = value
            order_like(value, reference.get(key))
    elif isinstance(config, list) and isinstance(reference, list):
        for item, ref in zip(config, reference):
            order_like(item, ref)


def fill(pattern: str, **wildcards: str) -> str:
    """``pattern`` with its ``{name}`` wildcards replaced (Snakemake's expand for one value)."""
    for name, value in wildcards.items():
        pattern = pattern.replace("{" + name + "}", value)
    return pattern


def per_target(targets: list[dict[str, str]], pattern: str | list[str]) -> list[str]:
    """``pattern`` (or each of a list) filled with every target's wildcards, in order."""
    patterns = [pattern] if isinstance(pattern, str) else pattern
    return [fill(p, **target) for target in targets for p in patterns]


def check_names(section: str, names: list[str], config: Mapping[str, Any], key: str) -> None:
    """Raise unless every name is a key of ``config[key]`` (``section``: where they are listed)."""
    for name in names:
        if name not in config[key]:
            raise ActspaceError(
                f"config {section} names {name!r}, which config.{key} does not define "
                f"(defined: {', '.join(sorted(config[key])) or 'none'})"
            )


def models_in_use(config: Mapping[str, Any]) -> list[str]:
    """The models the enabled methods run on (each gets an equivalence check), in first-use
    order: every ``models`` list and ``model`` value inside the methods' sections."""
    from actspace.registry import enabled_methods

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "model" and isinstance(value, str):
                    found.append(value)
                elif key == "models" and isinstance(value, list):
                    found.extend(v for v in value if isinstance(v, str))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for method in enabled_methods(config):
        walk(config.get(method.name, {}))
    return [name for name in dict.fromkeys(found) if name in config.get("models", {})]


def check_references(config: Mapping[str, Any]) -> None:
    """Raise :class:`ActspaceError` when a section names an undefined model, corpus or toy,
    or a corpus is unusable."""
    for method in METHODS:
        section = config.get(method.name, {})
        for key, defined_in in method.names.items():
            check_names(f"{method.name}.{key}", section.get(key, []), config, defined_in)
        run_check(method, config)
    for name, corpus in config["corpora"].items():
        if corpus["type"] == "prompts":
            for index, prompt in enumerate(corpus["prompts"]):
                if not prompt.strip():
                    raise ActspaceError(f"config corpora.{name}.prompts[{index}] is empty")
