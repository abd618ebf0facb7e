"""Long optimisations killed near their end continue from their last saved state
(:mod:`actspace.checkpoint`) and end bit-identical to an uninterrupted run; a state saved
under another key (other settings, inputs or code) is ignored. Toy training's own test:
``tests/test_toys.py::test_a_killed_training_resumes_to_the_same_weights``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actspace.checkpoint import Checkpoint, checkpoint_key
from actspace.methods.partition.train import PartitionSettings, train_partition
from actspace.methods.steering.train import learn_melbo, learn_ortho
from conftest import with_defaults


class Killed(Exception):
    """Stands in for SIGKILL: raised right after the n-th save, nothing after it runs."""


class KilledAfterSaves(Checkpoint):
    def __init__(self, folder, key, every=1, saves=1):
        super().__init__(folder, key, every)
        self.left = saves

    def save(self, tensors, meta):
        super().save(tensors, meta)
        self.left -= 1
        if self.left == 0:
            raise Killed


def resumed(run, tmp_path, every=1, saves=1):
    """``run(checkpoint)`` killed after ``saves`` saves, then run again on the same folder."""
    with pytest.raises(Killed):
        run(KilledAfterSaves(tmp_path, "k", every, saves))
    assert Checkpoint(tmp_path, "other settings", every).load() is None
    saved = Checkpoint(tmp_path, "k", every).load()
    assert saved is not None
    return run(Checkpoint(tmp_path, "k", every)), saved[1]


def _dependent_pool_and_settings(**schedule):
    """400 activations whose two halves depend on each other (so units merge) and
    partition settings with ``schedule`` over small pools."""
    data = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    data[:, 4:] += data[:, :4] ** 2
    search = dict(unit_size=2, merge_thr=0.0, key_pool=64, batch_size=32, mi_queries=64)
    section = with_defaults(dict(**search, mi_keys=128, **schedule), "partition")
    return data, PartitionSettings.from_config({**section, "stop_at_n_subspaces": None})


def test_a_killed_partition_resumes_across_a_merge(tmp_path):
    """Killed at step 90, after the merges of steps 40 and 70 reset R's parametrisation and
    Adam; the resumed run ends with the same R, sizes, losses and merges."""
    data, config = _dependent_pool_and_settings(max_steps=220, merge_start=40, merge_interval=30)
    whole = train_partition(data, config, progress=False)
    again, meta = resumed(lambda c: train_partition(data, config, False, c), tmp_path, 30, 3)
    assert meta["step"] == 90 and len(meta["merges"]) >= 2
    assert torch.equal(again.R, whole.R)
    assert again.sizes == whole.sizes and again.losses == whole.losses
    assert again.merges == whole.merges and again.stopped == whole.stopped
    assert torch.equal(again.units_R, whole.units_R) and again.unit_sizes == [2] * 4


def test_a_killed_partition_resumes_inside_the_reinit_phase(tmp_path):
    """The toy schedule's re-init rounds (steps 20, 40, ..., 80) keep a best R; killed at
    step 60 the resumed run rotates, restores and merges exactly as an uninterrupted one."""
    data, config = _dependent_pool_and_settings(
        max_steps=260, merge_start=100, merge_interval=30, reinit_interval=20
    )
    whole = train_partition(data, config, progress=False)
    assert [r["step"] for r in whole.reinits] == [20, 40, 60, 80] and whole.merges
    again, meta = resumed(lambda c: train_partition(data, config, False, c), tmp_path, 30, 2)
    assert meta["step"] == 60 and meta["best_loss"] is not None
    assert torch.equal(again.R, whole.R) and again.losses == whole.losses
    assert again.reinits == whole.reinits and again.merges == whole.merges


def test_a_killed_melbo_resumes_with_the_next_block(tmp_path):
    W = torch.randn(12, 12, generator=torch.Generator().manual_seed(1))

    def objective(theta):
        return torch.tanh(theta @ W).norm(dim=-1) ** 2

    def run(checkpoint=None):
        return learn_melbo(objective, 12, 6, 1.5, 15, 0.05, 2, 3, False, checkpoint)

    whole = run()
    again, meta = resumed(run, tmp_path, saves=2)
    assert meta["produced"] == 4
    assert torch.equal(again.vectors, whole.vectors)
    assert np.array_equal(again.objective, whole.objective)
    assert np.array_equal(again.history, whole.history)


def test_a_killed_melbo_ortho_resumes_with_the_next_block(tmp_path):
    W = torch.randn(10, 10, generator=torch.Generator().manual_seed(2)) / 3
    theta0 = torch.randn(10, generator=torch.Generator().manual_seed(3))
    target = torch.tanh(theta0 @ W)

    def loss(thetas):
        return (torch.tanh(thetas @ W) - target).norm(dim=-1)

    def run(checkpoint=None):
        return learn_ortho(loss, theta0, 7, 20, 0.05, 2, 1e-3, 3, 0, False, checkpoint)

    whole = run()
    again, meta = resumed(run, tmp_path, saves=2)
    assert meta["produced"] == 4
    assert torch.equal(again.vectors, whole.vectors)
    for name in ("loss", "history", "kept"):
        assert np.array_equal(getattr(again, name), getattr(whole, name)), name
    assert again.stopped == whole.stopped


def test_a_damaged_saved_state_is_ignored(tmp_path):
    checkpoint = Checkpoint(tmp_path, "k")
    checkpoint.save({"x": torch.ones(3)}, {"step": 1})
    (tmp_path / "state" / "state.safetensors").write_bytes(b"not a safetensors file")
    assert checkpoint.load() is None
    checkpoint.clear()
    assert not tmp_path.exists()


def test_the_key_changes_with_settings_and_code():
    base = checkpoint_key({"lr": 0.1}, "actspace.methods.partition.train")
    assert base == checkpoint_key({"lr": 0.1}, "actspace.methods.partition.train")
    assert base != checkpoint_key({"lr": 0.2}, "actspace.methods.partition.train")
    assert base != checkpoint_key({"lr": 0.1}, "actspace.methods.steering.train")
