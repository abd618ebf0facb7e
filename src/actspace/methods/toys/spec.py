"""A toy's config entry as one object, the config checks of ``config.toys`` and the bars a
trained toy must pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from actspace.errors import ActspaceError
from actspace.data.tasks import CopyTask


@dataclass(frozen=True)
class ToyArchitecture:
    """GPT-2 shape of a toy; ``attn_only`` zeroes and freezes the MLP writes."""

    n_layers: int
    n_heads: int
    d_model: int
    n_positions: int
    attn_only: bool
    dropout: float
    d_mlp: int | None  # MLP width; None = GPT-2's 4 * d_model


@dataclass(frozen=True)
class TrainSettings:
    """A toy's ``train`` settings plus its task's ``long_len`` (defaults: the schema)."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    decay: str
    position_offsets: bool
    shared_length: bool
    checkpoints: int
    eval_sequences: int
    eval_every: int
    long_len: tuple[int, int] | None
    seed: int


@dataclass(frozen=True)
class ToySpec:
    """One ``config.toys`` entry: the task, the GPT-2 shape and the training settings."""

    name: str
    task: CopyTask
    arch: ToyArchitecture
    settings: TrainSettings

    @classmethod
    def from_config(cls, name: str, entry: dict[str, Any]) -> ToySpec:
        long_len = entry["task"].get("long_len")  # optional: no longer-x evaluation
        train_cfg = {**entry["train"], "long_len": tuple(long_len) if long_len else None}
        return cls(
            name,
            CopyTask.from_config(entry["task"]),
            ToyArchitecture(**entry["model"]),
            TrainSettings(**train_cfg),
        )

    def source(self, step: int | None = None) -> dict[str, Any]:
        """The manifest's ``source`` section of a model trained from this spec."""
        settings = asdict(self.settings)
        return {
            "source": "toy",
            "toy": self.name,
            "task": asdict(self.task),
            "architecture": asdict(self.arch),
            "train": settings,
            "step": self.settings.steps if step is None else step,
        }


def trained_toys(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Config entry of every toy the default target trains (``config.toys.train``), in order."""
    toys = config.get("toys", {})
    return {name: toys["specs"][name] for name in toys.get("train", [])}


def searched_toys(config: Mapping[str, Any]) -> list[str]:
    """The trained toys with an architecture search (a ``search:`` entry)."""
    return [name for name, entry in trained_toys(config).items() if "search" in entry]


def check_config(config: Mapping[str, Any]) -> None:
    """Checks of ``config.toys`` beyond the schema (run when the workflow is parsed): toy
    models and ``toys.train`` name defined toys; each spec builds (the task's own checks) and
    its longest sequence fits ``n_positions``."""
    specs = config.get("toys", {}).get("specs", {})
    defined = ", ".join(sorted(specs)) or "none"
    for name, model in config["models"].items():
        if model["source"] == "toy" and model["toy"] not in specs:
            raise ActspaceError(
                f"config models.{name} is the toy {model['toy']!r}, which config.toys.specs does "
                f"not define (defined: {defined})"
            )
    for name in config.get("toys", {}).get("train", []):
        if name not in specs:
            raise ActspaceError(
                f"config toys.train names {name!r}, which config.toys.specs does not define "
                f"(defined: {defined})"
            )
    for name, entry in specs.items():
        try:
            spec = ToySpec.from_config(name, entry)
        except ActspaceError as err:
            raise ActspaceError(f"config toys.specs.{name}: {err}") from None
        task = spec.task
        longest = max(task.max_len, *(spec.settings.long_len or (0,)))
        needed = task.sequence_length(longest)
        if needed > spec.arch.n_positions:
            raise ActspaceError(
                f"config toys.specs.{name}: sequences of up to {needed} tokens (max_len/long_len) do "
                f"not fit n_positions {spec.arch.n_positions}"
            )


def passes_bars(task: CopyTask, final: dict[str, float]) -> bool:
    """The issue's acceptance bars: copy accuracy >= 0.99 with induction and previous-token
    heads >= 0.9; bigram copy accuracy >= 0.95 with a bigram head >= 0.9 at decoy <= 0.05."""
    if task.kind == "copy":
        return (
            final["accuracy"] >= 0.99
            and final["induction_score"] >= 0.9
            and final["prev_token_score"] >= 0.9
        )
    return (
        final["accuracy"] >= 0.95 and final["bigram_score"] >= 0.9 and final["decoy_mass"] <= 0.05
    )
