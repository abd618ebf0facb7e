"""Resumable toy training: the whole training state, every ``every`` steps, without pickle.

A job killed near the end of a long training (SIGKILL, a cluster's time limit) would start
over; with a resume folder it continues from the last saved step and ends with the same
weights, metrics and checkpoints as an uninterrupted run (same seeds, same data stream).
Tensors (model, optimiser moments, the torch RNG that drives dropout) go into one
safetensors file, everything else (step, numpy RNG state, scheduler, metrics so far) into
JSON; a state is used only when its ``key`` (the toy's settings and code) matches.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from actspace.store import atomic_directory

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


@dataclass
class TrainingState:
    """Everything :func:`actspace.methods.toys.training.train` needs to continue at ``step``."""

    step: int
    model: dict[str, torch.Tensor]
    optimiser: dict[str, Any]
    schedule: dict[str, Any]
    data_rng: dict[str, Any]
    torch_rng: torch.Tensor
    running: float
    seconds: float
    metrics: list[dict]
    history: list[dict]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


class Resume:
    """A folder holding at most one training state (and whatever the job keeps beside it,
    e.g. the checkpoints written so far in ``folder / "checkpoints"``)."""

    def __init__(self, folder: str | os.PathLike, key: str, every: int):
        self.folder = Path(folder)
        self.key = key
        self.every = max(1, every)

    def due(self, step: int, start: int) -> bool:
        return step > start and step % self.every == 0

    def save(self, state: TrainingState) -> None:
        """Write the state atomically (a killed save leaves the previous one intact)."""
        # cloned: tied weights (embedding and unembedding) share memory, which safetensors refuses
        tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in state.model.items()}
        optimiser = {"param_groups": state.optimiser["param_groups"], "state": {}}
        for index, entry in state.optimiser["state"].items():
            names = []
            for name, value in entry.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).cpu().contiguous()
                names.append(name)
            optimiser["state"][str(index)] = names
        tensors["torch_rng"] = state.torch_rng
        meta = {
            "key": self.key,
            "step": state.step,
            "optimiser": optimiser,
            "schedule": state.schedule,
            "data_rng": state.data_rng,
            "running": state.running,
            "seconds": state.seconds,
            "metrics": state.metrics,
            "history": state.history,
        }
        with atomic_directory(self.folder / "state", overwrite=True) as tmp:
            save_file(tensors, tmp / STATE_TENSORS)
            (tmp / STATE_JSON).write_text(json.dumps(_jsonable(meta)))

    def load(self) -> TrainingState | None:
        """The saved state, or None when there is none or it belongs to other settings."""
        folder = self.folder / "state"
        try:
            meta = json.loads((folder / STATE_JSON).read_text())
            tensors = load_file(folder / STATE_TENSORS)
        except (OSError, ValueError):
            return None
        if meta.get("key") != self.key:
            return None
        model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        optimiser_state = {
            int(index): {name: tensors[f"optim.{index}.{name}"] for name in names}
            for index, names in meta["optimiser"]["state"].items()
        }
        return TrainingState(
            step=meta["step"],
            model=model,
            optimiser={"state": optimiser_state, "param_groups": meta["optimiser"]["param_groups"]},
            schedule=meta["schedule"],
            data_rng=meta["data_rng"],
            torch_rng=tensors["torch_rng"],
            running=meta["running"],
            seconds=meta["seconds"],
            metrics=meta["metrics"],
            history=meta["history"],
        )

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
