"""The per-model equivalence check: passes on every supported family, fails on a broken
mapping naming the site and the block."""

import pytest
import torch
from torch import nn

from actspace.errors import ActspaceError
from actspace.models import ModelAdapter
from actspace.models.equivalence import check_model, relative_error
from conftest import build_tiny_model

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "olmo", "gpt2"]


def _adapter(family: str) -> ModelAdapter:
    model, tokenizer = build_tiny_model(family, seed=3)
    return ModelAdapter(model, tokenizer)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_supported_family_passes(family):
    record = check_model(_adapter(family))
    assert record["passed"] and record["max_error"] <= record["tolerance"] == 1e-4
    assert set(record["worst"]) == {
        "resid_pre",
        "resid_post",
        "resid_pre + attn_out + mlp_out",
        "mlp_out",
        "resid_final",
        "logits",
    }


def test_layers_off_by_one_fail_at_the_first_block():
    adapter = _adapter("llama")
    adapter.blocks = adapter.blocks[1:] + adapter.blocks[:1]  # hooks one block late
    with pytest.raises(ActspaceError, match=r"resid_pre of block 0 has relative error"):
        check_model(adapter)


def test_a_norm_left_out_fails_at_that_block():
    adapter = _adapter("gpt2")
    attn_norm, _ = adapter._norms[1]
    adapter._norms[1] = (attn_norm, nn.Identity())  # the MLP's input norm forgotten
    with pytest.raises(ActspaceError, match=r"mlp_out of block 1 has relative error"):
        check_model(adapter)


def test_a_site_that_never_fires_is_named():
    adapter = _adapter("qwen2")
    adapter.final_norm = nn.Identity()  # not part of the forward pass: the hook never runs
    with pytest.raises(ActspaceError, match=r"never ran.*hook_resid_final"):
        check_model(adapter)


def test_a_model_that_produces_nan_fails():
    adapter = _adapter("llama")
    with torch.no_grad():
        adapter.blocks[0].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(ActspaceError, match=r"relative error inf"):
        check_model(adapter)


def test_relative_error_is_scaled_by_the_reference():
    reference = torch.tensor([100.0, -50.0])
    assert relative_error(reference + torch.tensor([1.0, 0.0]), reference) == pytest.approx(0.01)
    assert relative_error(torch.tensor([float("nan"), 0.0]), reference) == float("inf")
