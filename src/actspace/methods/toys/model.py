"""The toys' GPT-2: built from a task and a shape, attention-only by zeroed, frozen MLPs.

Toys are saved as ordinary Hugging Face GPT-2 directories with a word-level tokenizer and the
pipeline's manifest, so every method loads them through :class:`~actspace.models.ModelAdapter`.
Attention-only toys keep GPT-2's MLP modules (so the directory is a plain GPT-2) with their
weights zeroed and frozen; the manifest records ``attn_only`` and the adapter checks it.
"""

from __future__ import annotations

import torch
from torch import nn

from actspace.errors import ActspaceError
from actspace.data.tasks import CopyTask
from actspace.methods.toys.spec import ToyArchitecture
from actspace.models.tokenizers import copy_task_tokenizer


def toy_tokenizer(task: CopyTask):
    """Word-level tokenizer: data tokens "0".."V-1", then ``<bos> <sep> <eos> <pad>``."""
    return copy_task_tokenizer(task.vocab)


def build_toy_model(task: CopyTask, arch: ToyArchitecture, seed: int) -> nn.Module:
    """A freshly initialised GPT-2 for ``task`` (seeded), MLPs disabled if attention-only."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if arch.d_model % arch.n_heads:
        raise ActspaceError(f"d_model {arch.d_model} is not divisible by {arch.n_heads} heads")
    longest = task.sequence_length(task.max_len)
    if longest > arch.n_positions:
        raise ActspaceError(
            f"n_positions {arch.n_positions} is shorter than the longest sequence ({longest})"
        )
    config = GPT2Config(
        vocab_size=task.vocab_size,
        n_positions=arch.n_positions,
        n_embd=arch.d_model,
        n_layer=arch.n_layers,
        n_head=arch.n_heads,
        resid_pdrop=arch.dropout,
        embd_pdrop=arch.dropout,
        attn_pdrop=arch.dropout,
        bos_token_id=task.bos,
        eos_token_id=task.eos,
        pad_token_id=task.pad,
        n_inner=1 if arch.attn_only else arch.d_mlp,  # a zeroed MLP needs no width
        activation_function="gelu_pytorch_tanh",  # GPT-2's tanh GELU as one fused kernel
        use_cache=False,
    )
    config._attn_implementation = "eager"  # attention patterns are read out
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    if arch.attn_only:
        disable_mlps(model)
    return model


def disable_mlps(model: nn.Module) -> None:
    """Make a GPT-2 attention-only: every MLP weight zero and frozen, so its write is exactly 0."""
    for block in model.transformer.h:
        for param in block.mlp.parameters():
            param.requires_grad_(False)
            param.zero_()


@torch.no_grad()
def attention_patterns(model: nn.Module, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention (B, H, T, T) on ``tokens``, through the eager implementation."""
    if model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")
    return list(model(tokens.to(model.device), output_attentions=True).attentions)
