"""The forward passes of the stable-regions method, through the adapter's named hook points.

Write site: the residual stream after block ``write_block`` (0-based; 0 = the authors'
"after the first layer", HF ``hidden_states[write_block + 1]``), at the **last position
only**. Read site: the final hidden state after the final norm (the unembedding's input; HF
``hidden_states[n_layers]``) at the last position. A patched pass replaces the write site's
last position of a prompt's own pass with a given vector; every earlier position keeps the
prompt's own activations, so every later block reads that prompt's context.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from actspace.models import ModelAdapter, resid_post

CONVENTION = (
    "0-based block indices: the write site is blocks.{write_block}.hook_resid_post (HF "
    "hidden_states[write_block + 1]) at the last position only; the read site is the final "
    "hidden state after the final norm (HF hidden_states[n_layers]) at the last position"
)


def cache_argument(adapter: ModelAdapter) -> str:
    """The key/value cache's name in the model's forward and output: ``cache`` in recent
    transformers, ``past_key_values`` before (deprecated since)."""
    parameters = inspect.signature(adapter.base_model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


@dataclass(frozen=True)
class CleanPass:
    """A batch of prompts' own passes: ``write`` (n, d) the write site at the last position,
    ``output`` (n, d) the read site at the last position, ``top`` (n,) the top next token."""

    write: torch.Tensor
    output: torch.Tensor
    top: torch.Tensor


def _final_hidden(adapter: ModelAdapter, ids: torch.Tensor) -> torch.Tensor:
    """Final-norm output at the last position of equal-length prompts (n, T) -> (n, d)."""
    return adapter.base_model(input_ids=ids).last_hidden_state[:, -1]


@torch.no_grad()
def clean_pass(
    adapter: ModelAdapter, ids: torch.Tensor, write_block: int, batch_rows: int
) -> CleanPass:
    """Each prompt's own write activation, output and top prediction, in batches of rows."""
    writes, outputs = [], []

    def record(activation: torch.Tensor, _name: str) -> None:
        writes.append(activation[:, -1].detach())

    unembed = adapter.model.get_output_embeddings()
    with adapter.hooks({resid_post(write_block): record}):
        for start in range(0, ids.shape[0], batch_rows):
            outputs.append(_final_hidden(adapter, ids[start : start + batch_rows]))
    output = torch.cat(outputs)
    top = torch.cat([unembed(o).argmax(-1) for o in output.split(batch_rows)])
    return CleanPass(torch.cat(writes), output, top)


def replace_last(values: torch.Tensor):
    """A hook function that sets the last position of row i to ``values[i]`` and leaves every
    other position as it was."""

    def hook(activation: torch.Tensor, _name: str) -> torch.Tensor:
        patched = activation.clone()
        patched[:, -1] = values.to(activation.dtype)
        return patched

    return hook


@torch.no_grad()
def patched_outputs_full(
    adapter: ModelAdapter, ids: torch.Tensor, values: torch.Tensor, write_block: int
) -> torch.Tensor:
    """Outputs at the last position of prompt ``ids[i]`` (m, T) with its write site's last
    position replaced by ``values[i]`` (m, d); (m, d). One full pass per row: the plain
    form of :func:`patched_outputs` (the reference its tests and benchmark compare with)."""
    with adapter.hooks({resid_post(write_block): replace_last(values)}):
        return _final_hidden(adapter, ids)


@torch.no_grad()
def patched_outputs(
    adapter: ModelAdapter,
    ids: torch.Tensor,
    values: torch.Tensor,
    write_block: int,
    batch_rows: int,
    progress: str | None = None,
) -> torch.Tensor:
    """:func:`patched_outputs_full` in batches of ``batch_rows`` rows, each distinct context
    of a batch run once over its earlier positions (a key/value cache, copied to every row
    that shares it) and only the patched last position run per row: an interpolation of S
    points between two prompts costs S single-token passes instead of S full ones."""
    contexts, which = torch.unique(ids, dim=0, return_inverse=True)
    name = cache_argument(adapter)
    outputs = [values.new_zeros((0, adapter.d_model))]
    starts = range(0, ids.shape[0], batch_rows)
    for start in tqdm(starts, desc=progress, disable=progress is None, mininterval=5):
        rows = slice(start, start + batch_rows)
        if ids.shape[1] == 1:  # no earlier positions to share
            outputs.append(patched_outputs_full(adapter, ids[rows], values[rows], write_block))
            continue
        needed, local = torch.unique(which[rows], return_inverse=True)
        prefix = adapter.base_model(input_ids=contexts[needed, :-1], use_cache=True)
        cache = getattr(prefix, name)
        cache.reorder_cache(local.to(ids.device))  # one copy of its context's cache per row
        with adapter.hooks({resid_post(write_block): replace_last(values[rows])}):
            last = ids[rows, -1:]
            out = adapter.base_model(input_ids=last, use_cache=True, **{name: cache})
        outputs.append(out.last_hidden_state[:, -1])
    return torch.cat(outputs)
