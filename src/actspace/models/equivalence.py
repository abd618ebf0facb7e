"""Per-model equivalence check: the adapter's hook sites against independent paths.

Peer libraries have shipped hooked activations that silently differ from the Hugging Face
model's own (a norm missed, layers shifted, a family's quirk). Before any method reads a
model, this check runs a few fixed prompts and compares every site the methods use:

- ``resid_pre`` of block l and ``resid_post`` of block l against transformers'
  ``output_hidden_states`` (entries l and l + 1; the last entry is after the final norm, so
  the final norm applied to ``hook_resid_final`` is compared with it);
- hidden state l + ``attn_out`` + ``mlp_out`` of block l against hidden state l + 1 (the
  block's residual update, summed in its own order), and ``mlp_out`` against the block's own norm and MLP recomputed on
  ``resid_pre + attn_out`` (plain PyTorch calls, no hook);
- the logits with a no-op hook on every site against the logits with none.

Each comparison is the worst relative error, max |ours - reference| / max |reference|,
against a tolerance by dtype; :func:`check_model` raises naming the site, the layer and the
error when one exceeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actspace.errors import ActspaceError
from actspace.models.adapter import ModelAdapter, resid_post

# worst relative error allowed, by the dtype the model runs in
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9, torch.float16: 2e-2, torch.bfloat16: 2e-2}


@dataclass(frozen=True)
class SiteError:
    """The worst relative error of one site over the check's prompts."""

    site: str
    layer: int | None
    error: float
    reference: str


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference| (inf when either is not finite)."""
    ours, reference = ours.double(), reference.double()
    if not (torch.isfinite(ours).all() and torch.isfinite(reference).all()):
        return float("inf")
    scale = float(reference.abs().max())
    return float((ours - reference).abs().max()) / max(scale, 1e-30)


def check_prompts(adapter: ModelAdapter, n_prompts: int, length: int, seed: int) -> torch.Tensor:
    """Fixed token ids (n_prompts, length): seeded draws from the model's vocabulary."""
    length = min(length, adapter.n_ctx)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, adapter.vocab_size, (n_prompts, length)))


@torch.no_grad()
def site_errors(adapter: ModelAdapter, ids: torch.Tensor) -> list[SiteError]:
    """Every compared site's worst relative error on the prompts ``ids``."""
    ids = ids.to(adapter.device)
    names = adapter.hook_names()
    cache: dict[str, torch.Tensor] = {}

    def record(activation: torch.Tensor, name: str) -> None:
        cache[name] = activation.detach().clone()

    with adapter.hooks({name: record for name in names}):
        hooked_logits = adapter.model(input_ids=ids).logits
    absent = [name for name in names if name not in cache]
    if absent:
        raise ActspaceError(f"hook sites never ran in a forward pass: {', '.join(absent[:5])}")
    plain = adapter.model(input_ids=ids, output_hidden_states=True)
    hidden = plain.hidden_states
    errors = []
    n = adapter.n_layers
    for layer in range(n):
        pre, post = f"blocks.{layer}.hook_resid_pre", resid_post(layer)
        attn, mlp = f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_mlp_out"
        errors.append(
            SiteError(
                "resid_pre", layer, relative_error(cache[pre], hidden[layer]), "hidden_states"
            )
        )
        after = hidden[layer + 1] if layer < n - 1 else cache["hook_resid_final"]
        if layer < n - 1:
            errors.append(
                SiteError("resid_post", layer, relative_error(cache[post], after), "hidden_states")
            )
        # summed in the block's own order (a difference of hidden states would cancel)
        rebuilt = hidden[layer] + cache[attn] + cache[mlp]
        errors.append(
            SiteError(
                "resid_pre + attn_out + mlp_out",
                layer,
                relative_error(rebuilt, after),
                "the next hidden state",
            )
        )
        recomputed = adapter.mlp_path(layer)(hidden[layer] + cache[attn])
        errors.append(
            SiteError("mlp_out", layer, relative_error(cache[mlp], recomputed), "norm + MLP call")
        )
    final = adapter.final_norm(cache["hook_resid_final"])
    errors.append(
        SiteError("resid_final", None, relative_error(final, hidden[-1]), "hidden_states[-1]")
    )
    errors.append(
        SiteError("logits", None, relative_error(hooked_logits, plain.logits), "no hooks")
    )
    return errors


def check_model(
    adapter: ModelAdapter, n_prompts: int = 2, length: int = 24, seed: int = 0
) -> dict[str, Any]:
    """Run the check; return its record (worst error per site kind, tolerance, dtype) or raise
    an :class:`ActspaceError` naming the first site, layer and error above the tolerance."""
    dtype = next(adapter.model.parameters()).dtype
    tolerance = TOLERANCE.get(dtype, 2e-2)
    errors = site_errors(adapter, check_prompts(adapter, n_prompts, length, seed))
    worst: dict[str, dict[str, Any]] = {}
    for item in errors:
        if item.site not in worst or not item.error <= worst[item.site]["error"]:
            worst[item.site] = {"error": item.error, "layer": item.layer, "against": item.reference}
    failed = [item for item in errors if not item.error <= tolerance]
    if failed:
        first = failed[0]
        layer = "" if first.layer is None else f" of block {first.layer}"
        raise ActspaceError(
            f"the hooked model differs from transformers' own: {first.site}{layer} has relative "
            f"error {first.error:.3g} against {first.reference} (tolerance {tolerance:g} for "
            f"{str(dtype).removeprefix('torch.')}); {len(failed)} comparisons fail"
        )
    return {
        "passed": True,
        "dtype": str(dtype).removeprefix("torch."),
        "tolerance": tolerance,
        "prompts": {"n": n_prompts, "length": int(min(length, adapter.n_ctx)), "seed": seed},
        "worst": worst,
        "max_error": max(item.error for item in errors),
    }


def check_job(model_dir: str, out: str, device: str, settings: dict[str, Any]) -> None:
    """Load a materialised model, check it, write the record (the body of rule check_model);
    ``settings`` is the validated ``config.check`` section."""
    from actspace.models import load_model
    from actspace.store import write_json

    adapter = load_model(model_dir, device)
    record = check_model(adapter, settings["n_prompts"], settings["length"], settings["seed"])
    manifest = adapter.manifest
    record |= {"model": manifest["name"], "weights_sha256": manifest["weights_sha256"]}
    write_json(record, out)
