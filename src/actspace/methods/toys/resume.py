"""Resumable toy training: the whole training state, every ``every`` steps, without pickle.

A job killed near the end of a long training (SIGKILL, a cluster's time limit) would start
over; with a resume folder it continues from the last saved step and ends with the same
weights, metrics and checkpoints as an uninterrupted run (same seeds, same data stream).
Tensors (model, optimiser moments, the torch RNG that drives dropout) go into the
safetensors file of :mod:`actspace.checkpoint`, everything else (step, numpy RNG state,
scheduler, metrics so far) into its JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from actspace.checkpoint import Checkpoint, optimiser_state, optimiser_tensors


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


class Resume(Checkpoint):
    """A :class:`~actspace.checkpoint.Checkpoint` holding a toy's training state (and, beside
    it, the checkpoints written so far in ``folder / "checkpoints"``)."""

    def save_state(self, state: TrainingState) -> None:
        tensors = {f"model.{k}": v for k, v in state.model.items()}
        optimiser, optimiser_meta = optimiser_tensors("optim", state.optimiser)
        tensors.update(optimiser, torch_rng=state.torch_rng)
        meta = {
            "step": state.step,
            "optimiser": optimiser_meta,
            "schedule": state.schedule,
            "data_rng": state.data_rng,
            "running": state.running,
            "seconds": state.seconds,
            "metrics": state.metrics,
            "history": state.history,
        }
        self.save(tensors, meta)

    def load_state(self) -> TrainingState | None:
        """The saved state, or None when there is none or it belongs to other settings."""
        saved = self.load()
        if saved is None:
            return None
        tensors, meta = saved
        model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        return TrainingState(
            step=meta["step"],
            model=model,
            optimiser=optimiser_state("optim", tensors, meta["optimiser"]),
            schedule=meta["schedule"],
            data_rng=meta["data_rng"],
            torch_rng=tensors["torch_rng"],
            running=meta["running"],
            seconds=meta["seconds"],
            metrics=meta["metrics"],
            history=meta["history"],
        )
