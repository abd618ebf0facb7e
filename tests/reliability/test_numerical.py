"""Numerical faults stop the job naming the step and the quantity, never a store of NaNs:
the partition's NDM loss and the MELBO objective (toy training: ``test_toys.py``, capture:
``test_capture.py``)."""

from __future__ import annotations

import pytest
import torch

from actspace.errors import ActspaceError
from actspace.methods.partition.train import PartitionSettings, train_partition
from actspace.methods.steering.train import learn_melbo
from conftest import with_defaults


def test_a_non_finite_ndm_loss_stops_naming_the_step():
    data = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    data[7, 3] = float("inf")  # one bad activation reaches the loss when it is drawn
    section = with_defaults(dict(unit_size=2, max_steps=500, key_pool=64), "partition")
    config = PartitionSettings.from_config({**section, "stop_at_n_subspaces": None})
    with pytest.raises(
        ActspaceError, match=r"the NDM loss is (nan|inf) at step \d+; a non-finite activation"
    ):
        train_partition(data, config, progress=False)


def test_a_non_finite_melbo_objective_stops_naming_the_step():
    calls = []

    def objective(theta):  # finite for three steps, then the model overflows
        calls.append(1)
        value = theta.pow(2).sum(-1)
        return value * float("nan") if len(calls) > 3 else value

    with pytest.raises(ActspaceError, match="MELBO objective: non-finite value at step 3"):
        learn_melbo(objective, 8, 2, 1.0, 10, 0.01, 1, 0, progress=False)
