"""Steered forward passes and generations through the adapter's named hook points.

A steering vector theta is *added* to the residual stream after source block ``j``
(``blocks.j.hook_resid_post``, Hugging Face ``hidden_states[j + 1]``) at every position,
generated ones included; no module parameter is touched (the reference code overwrote the MLP
output bias, silently zeroing GPT-2's and Pythia's own). Block indices are 0-based
throughout; the target is ``blocks.k.hook_resid_post``.

A batch of m vectors runs as m copies of the prompt batch (vector-major), so a block of
vectors costs one forward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from actspace.data.generation import pad_token_id
from actspace.models import ModelAdapter, resid_post

CONVENTION = (
    "0-based block indices; theta is added to blocks.{source}.hook_resid_post (HF "
    "hidden_states[source + 1]) at every position; the target is blocks.{target}.hook_resid_post "
    "(HF hidden_states[target + 1]) at the positions target_positions of each prompt"
)


@dataclass(frozen=True)
class PromptBatch:
    """Prompts right-padded into one batch: ``ids`` (P, T), ``mask`` (P, T), ``last`` (P,)
    the position of each prompt's last token."""

    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor

    @classmethod
    def of(cls, prompts: Sequence[Sequence[int]], pad: int, device: torch.device) -> PromptBatch:
        length = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), length), pad, dtype=torch.long, device=device)
        mask = torch.zeros((len(prompts), length), dtype=torch.long, device=device)
        for i, prompt in enumerate(prompts):
            ids[i, : len(prompt)] = torch.as_tensor(list(prompt), device=device)
            mask[i, : len(prompt)] = 1
        return cls(ids, mask, mask.sum(1) - 1)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def positions(self, start: int | None, stop: int | None) -> torch.Tensor:
        """(P, T) mask of the positions ``[start:stop]`` of each prompt's own tokens (Python
        slice semantics: ``start = 1`` drops the first token, ``start = -3`` keeps the last
        three), like the reference code's ``target_token_idxs``."""
        mask = torch.zeros_like(self.mask)
        for i, length in enumerate(self.mask.sum(1).tolist()):
            chosen = list(range(length))[slice(start, stop)]
            if not chosen:
                raise ValueError(
                    f"target positions [{start}:{stop}] select no token of prompt {i} "
                    f"({length} tokens)"
                )
            mask[i, chosen] = 1
        return mask


def add_vectors(thetas: torch.Tensor, group: int):
    """A hook function adding row ``v`` of ``thetas`` (m, d) to the ``group`` consecutive
    sequences of copy ``v`` of the batch (every position)."""

    def hook(activation: torch.Tensor, _name: str) -> torch.Tensor:
        per_sequence = thetas.to(activation.dtype).repeat_interleave(group, dim=0)
        return activation + per_sequence[:, None, :]

    return hook


class _StopForward(Exception):
    """Raised by a hook once the target layer is read: later blocks are not needed."""


def steered_target(
    adapter: ModelAdapter,
    prompts: PromptBatch,
    thetas: torch.Tensor | None,
    source: int,
    target: int,
) -> torch.Tensor:
    """Target-layer residual (m, P, T, d) of the prompts with each of the m rows of
    ``thetas`` added after block ``source`` (``thetas`` None: the unsteered pass, m = 1).

    Differentiable in ``thetas``; the forward stops after block ``target``.
    """
    m = 1 if thetas is None else thetas.shape[0]
    P, T = prompts.ids.shape
    captured: dict[str, torch.Tensor] = {}

    def read(activation: torch.Tensor, _name: str) -> None:
        captured["target"] = activation
        raise _StopForward

    fns: dict = {resid_post(target): read}
    if thetas is not None:
        if target < source:
            raise ValueError(f"target block {target} precedes source block {source}")
        fns = {resid_post(source): add_vectors(thetas, P), **fns}
    with contextlib.suppress(_StopForward), adapter.hooks(fns):
        adapter.base_model(
            input_ids=prompts.ids.repeat(m, 1), attention_mask=prompts.mask.repeat(m, 1)
        )
    return captured["target"].reshape(m, P, T, -1)


def steered_last_logprobs(
    adapter: ModelAdapter, prompts: PromptBatch, thetas: torch.Tensor | None, source: int
) -> torch.Tensor:
    """Log next-token distributions (m, P, vocab) at each prompt's last position with each
    row of ``thetas`` added after block ``source`` (None: unsteered, m = 1)."""
    m = 1 if thetas is None else thetas.shape[0]
    fns = {} if thetas is None else {resid_post(source): add_vectors(thetas, len(prompts))}
    with adapter.hooks(fns):
        logits = adapter.model(
            input_ids=prompts.ids.repeat(m, 1), attention_mask=prompts.mask.repeat(m, 1)
        ).logits
    logits = logits.reshape(m, len(prompts), prompts.ids.shape[1], -1)
    last = logits[:, torch.arange(len(prompts)), prompts.last]
    return torch.log_softmax(last.float(), dim=-1)


@contextlib.contextmanager
def steering(adapter: ModelAdapter, theta: torch.Tensor | None, source: int) -> Iterator[None]:
    """Add ``theta`` (d,) after block ``source`` for every forward inside the block (None:
    no steering), e.g. around ``generate``."""
    if theta is None:
        yield
        return
    with adapter.hooks({resid_post(source): add_vectors(theta.reshape(1, -1), 1)}):
        yield


@torch.no_grad()
def generate_steered(
    adapter: ModelAdapter,
    prompt: Sequence[int],
    thetas: torch.Tensor | None,
    source: int,
    n_new: int,
    sample_seed: int | None = None,
) -> list[list[int]]:
    """New tokens of ``prompt`` continued under each row of ``thetas`` (None: unsteered),
    one generation per vector in one batch: greedy, or sampled at temperature 1 from
    ``sample_seed`` (the same seed gives the same samples)."""
    m = 1 if thetas is None else thetas.shape[0]
    inputs = torch.as_tensor([list(prompt)] * m, dtype=torch.long, device=adapter.device)
    fns = {} if thetas is None else {resid_post(source): add_vectors(thetas, 1)}
    options: dict = {"do_sample": False}
    if sample_seed is not None:
        torch.manual_seed(sample_seed)
        options = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    with adapter.hooks(fns):
        out = adapter.model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            max_new_tokens=n_new,
            pad_token_id=pad_token_id(adapter.tokenizer),
            **options,
        )
    eos = adapter.tokenizer.eos_token_id
    texts = []
    for row in out[:, inputs.shape[1] :].tolist():
        if eos in row:
            row = row[: row.index(eos)]
        texts.append(row)
    return texts
