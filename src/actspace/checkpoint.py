"""Resumable long jobs: the state of an optimisation saved every few steps, without pickle.

A job killed near the end of a long optimisation (SIGKILL, a cluster's time limit) would
start over; with a checkpoint folder beside its output it continues from the last saved
state and ends with the same result as an uninterrupted run. Tensors go into one safetensors
file, everything else into JSON; a state is used only when its ``key`` (the job's settings,
inputs and code, :func:`checkpoint_key`) matches, so a state of other settings is ignored.
Toy training, the partition (NDM) and MELBO / MELBO-ortho use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from actspace.provenance import code_hash
from actspace.store import atomic_directory

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and tuples turned into what JSON writes back unchanged."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def checkpoint_key(settings: Any, *modules: str) -> str:
    """What a saved state must match: ``settings`` (JSON-able: the job's settings and the
    identity of its inputs) and the code of ``modules`` and all they import."""
    text = json.dumps(jsonable(settings), sort_keys=True) + code_hash(*modules)
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint_folder(output: str | os.PathLike) -> Path:
    """The hidden folder beside ``output`` that holds its job's saved state."""
    output = Path(output)
    return output.with_name(f".{output.name}.resume")


def optimiser_tensors(prefix: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """A torch optimiser's ``state_dict()`` as tensors named ``{prefix}.{index}.{name}`` and a
    JSON-able rest (inverse: :func:`optimiser_state`)."""
    tensors, names = {}, {}
    for index, entry in state["state"].items():
        names[str(index)] = []
        for name, value in entry.items():
            tensors[f"{prefix}.{index}.{name}"] = torch.as_tensor(value).cpu().contiguous()
            names[str(index)].append(name)
    return tensors, {"param_groups": state["param_groups"], "state": names}


def optimiser_state(prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict[str, Any]:
    """The ``state_dict()`` that :func:`optimiser_tensors` split."""
    state = {
        int(index): {name: tensors[f"{prefix}.{index}.{name}"] for name in names}
        for index, names in meta["state"].items()
    }
    return {"state": state, "param_groups": meta["param_groups"]}


class Checkpoint:
    """A folder holding at most one saved state (and whatever the job keeps beside it)."""

    def __init__(self, folder: str | os.PathLike, key: str, every: int = 1):
        self.folder = Path(folder)
        self.key = key
        self.every = max(1, every)

    def due(self, step: int, start: int) -> bool:
        """Whether to save at ``step`` of a run that started (or resumed) at ``start``."""
        return step > start and step % self.every == 0

    def save(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Write the state atomically (a killed save leaves the previous one intact)."""
        # cloned: tied weights share memory, which safetensors refuses
        tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
        with atomic_directory(self.folder / "state", overwrite=True) as tmp:
            save_file(tensors, tmp / STATE_TENSORS)
            (tmp / STATE_JSON).write_text(json.dumps(jsonable({**meta, "key": self.key})))

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The saved (tensors, meta), or None when there is none, it is damaged, or it
        belongs to other settings, inputs or code."""
        folder = self.folder / "state"
        try:
            meta = json.loads((folder / STATE_JSON).read_text())
            tensors = load_file(folder / STATE_TENSORS)
        except (OSError, ValueError, SafetensorError):  # none saved, or damaged
            return None
        if meta.get("key") != self.key:
            return None
        return tensors, meta

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
