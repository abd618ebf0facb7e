"""The registry of methods: the one list from which the workflow derives ``rule all``, the
summary page's inputs, the per-method targets (``snakemake toys``) and the config's
cross-reference checks.

A method named ``name`` has a config section ``name``, a rule file
``workflow/rules/{name}.smk`` defining a target rule ``name`` and a rule ``{name}_summary``
that writes ``results/summary/{name}.json``, and a package ``actspace.methods.{name}``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Method:
    """One method of the pipeline; ``title`` heads its summary and its report category.

    ``names``: keys of its config section that list names defined elsewhere in the config
    (``{"models": "models"}``: every entry of ``section.models`` must be a ``config.models``
    key). ``selects``: the key of its section whose list, when empty or absent, turns the
    method off. ``check``: ``"module:function"`` of further config checks, called with the
    whole config.
    """

    name: str
    title: str
    names: Mapping[str, str] = field(default_factory=dict)
    selects: str = "models"
    check: str | None = None

    def enabled(self, config: Mapping[str, Any]) -> bool:
        """Whether the config asks for this method (its section selects something)."""
        return bool(config.get(self.name, {}).get(self.selects))


ON_MODELS_AND_CORPORA = {"models": "models", "corpora": "corpora"}

METHODS = (
    Method("capture", "Capture", ON_MODELS_AND_CORPORA),
    Method("text_subspaces", "Text subspaces", ON_MODELS_AND_CORPORA),
    Method("weights_svd", "Weight SVD", {"models": "models"}),
    Method(
        "toys", "Toy transformers", selects="train", check="actspace.methods.toys.spec:check_config"
    ),
    Method(
        "partition",
        "Subspace partition",
        selects="sites",
        check="actspace.methods.partition.sites:check_config",
    ),
    Method(
        "steering",
        "Orthogonal steering",
        selects="runs",
        check="actspace.methods.steering.runs:check_config",
    ),
    Method(
        "regions",
        "Stable regions",
        selects="runs",
        check="actspace.methods.regions.runs:check_config",
    ),
)


def enabled_methods(config: Mapping[str, Any]) -> list[Method]:
    """The registered methods the config asks for, in registry order."""
    return [method for method in METHODS if method.enabled(config)]


def run_check(method: Method, config: Mapping[str, Any]) -> None:
    """Call a method's own config check, if it has one."""
    if method.check:
        module, function = method.check.split(":")
        getattr(importlib.import_module(module), function)(config)
