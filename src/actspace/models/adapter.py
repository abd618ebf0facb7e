"""One interface over causal-LM architectures: shapes, weights and named hook points.

Every method reads weights and reads or replaces activations through :class:`ModelAdapter`,
never through an architecture's module names. Weights come in the row-vector convention of
TransformerLens (``x @ W``): ``W_Q`` is (n_heads, d_model, d_head), ``W_O`` is
(n_heads, d_head, d_model), MLP input weights are (d_model, d_mlp), output (d_mlp, d_model).

Hook points (TransformerLens names, implemented as forward hooks on the Hugging Face modules
rather than a re-implementation of the forward pass):

``blocks.{l}.hook_resid_pre``
    the residual stream entering block ``l``;
``blocks.{l}.hook_attn_out`` / ``blocks.{l}.hook_mlp_out``
    what block ``l``'s attention / MLP writes into the residual stream;
``blocks.{l}.hook_resid_post``
    the residual stream leaving block ``l``;
``hook_resid_final``
    the stream after the last block, before the final norm.

A hook function takes ``(activation, hook_name)`` and returns ``None`` (read only) or a tensor
of the same shape that replaces the activation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from actspace.errors import ActspaceError

HookFn = Callable[[torch.Tensor, str], torch.Tensor | None]

# model_type -> family. A Llama-like model is pre-norm with q/k/v/o_proj attention and a
# gated gate/up/down_proj MLP; GPT-2 uses fused c_attn and Conv1D (already x @ W) weights.
FAMILIES = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "olmo": "llama",
    "gpt2": "gpt2",
}


def resid_post(layer: int) -> str:
    """The hook point of the residual stream leaving block ``layer`` (HF ``hidden_states[layer + 1]``)."""
    return f"blocks.{layer}.hook_resid_post"


def family_of(config: Any) -> str:
    """Adapter family for a transformers config, or a clear error for unsupported ones."""
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise ActspaceError(
            f"unsupported architecture {model_type!r}; actspace supports "
            f"{', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[model_type]


def describe(config: Any) -> dict[str, Any]:
    """Shape facts of a model from its config (the manifest's architecture section)."""
    family = family_of(config)
    if family == "gpt2":
        d_model, n_heads = config.n_embd, config.n_head
        facts = {
            "n_layers": config.n_layer,
            "d_model": d_model,
            "n_heads": n_heads,
            "n_kv_heads": n_heads,
            "d_head": d_model // n_heads,
            "d_mlp": config.n_inner or 4 * d_model,
            "n_ctx": config.n_positions,
            "gated_mlp": False,
            "norm": "layernorm",
        }
    else:
        d_model, n_heads = config.hidden_size, config.num_attention_heads
        facts = {
            "n_layers": config.num_hidden_layers,
            "d_model": d_model,
            "n_heads": n_heads,
            "n_kv_heads": getattr(config, "num_key_value_heads", None) or n_heads,
            "d_head": getattr(config, "head_dim", None) or d_model // n_heads,
            "d_mlp": config.intermediate_size,
            "n_ctx": config.max_position_embeddings,
            "gated_mlp": True,
            "norm": "layernorm" if config.model_type == "olmo" else "rmsnorm",
        }
    return {
        "architecture": (getattr(config, "architectures", None) or [type(config).__name__])[0],
        "model_type": config.model_type,
        "family": family,
        "vocab_size": config.vocab_size,
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        **facts,
    }


@dataclass(frozen=True)
class AttentionWeights:
    """One block's attention weights, row-vector convention; biases are None when absent.

    With grouped-query attention ``W_K``/``W_V`` have n_kv_heads rows; query head ``h`` uses
    key/value head ``h // (n_heads // n_kv_heads)`` (see :meth:`ModelAdapter.kv_head_of`).
    """

    W_Q: torch.Tensor  # (n_heads, d_model, d_head)
    W_K: torch.Tensor  # (n_kv_heads, d_model, d_head)
    W_V: torch.Tensor  # (n_kv_heads, d_model, d_head)
    W_O: torch.Tensor  # (n_heads, d_head, d_model)
    b_Q: torch.Tensor | None = None  # (n_heads, d_head)
    b_K: torch.Tensor | None = None  # (n_kv_heads, d_head)
    b_V: torch.Tensor | None = None  # (n_kv_heads, d_head)
    b_O: torch.Tensor | None = None  # (d_model,)


@dataclass(frozen=True)
class MLPWeights:
    """One block's MLP weights. Gated MLPs: out = act(x W_gate) * (x W_up) @ W_out.

    Ungated MLPs: out = act(x W_in + b_in) @ W_out + b_out.
    """

    W_out: torch.Tensor  # (d_mlp, d_model)
    W_in: torch.Tensor | None = None  # (d_model, d_mlp), ungated
    W_gate: torch.Tensor | None = None  # (d_model, d_mlp), gated
    W_up: torch.Tensor | None = None  # (d_model, d_mlp), gated
    b_in: torch.Tensor | None = None
    b_out: torch.Tensor | None = None


def _split_heads_in(weight: torch.Tensor, n: int) -> torch.Tensor:
    """(d_model, n*d_head) -> (n, d_model, d_head)."""
    d_model = weight.shape[0]
    return weight.reshape(d_model, n, -1).permute(1, 0, 2)


def _bias(linear: nn.Module) -> torch.Tensor | None:
    bias = getattr(linear, "bias", None)
    return None if bias is None else bias.detach()


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, value: torch.Tensor) -> Any:
    return (value, *output[1:]) if isinstance(output, tuple) else value


class ModelAdapter:
    """A Hugging Face causal LM seen through one architecture-independent interface.

    Parameters
    ----------
    model
        A ``transformers`` causal LM of a supported family (see :data:`FAMILIES`).
    tokenizer
        Its tokenizer (may be None for weight-only work).
    attn_only
        The model is attention-only (toy models, whose MLP weights are zero and frozen, so
        every MLP write is exactly zero). Recorded in the manifest.
    """

    def __init__(self, model: nn.Module, tokenizer: Any = None, attn_only: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.attn_only = attn_only
        self.config = model.config
        facts = describe(model.config)
        self.family: str = facts["family"]
        self.n_layers: int = facts["n_layers"]
        self.d_model: int = facts["d_model"]
        self.n_heads: int = facts["n_heads"]
        self.n_kv_heads: int = facts["n_kv_heads"]
        self.d_head: int = facts["d_head"]
        self.d_mlp: int = facts["d_mlp"]
        self.n_ctx: int = facts["n_ctx"]
        self.vocab_size: int = facts["vocab_size"]
        self.gated_mlp: bool = facts["gated_mlp"]
        if self.family == "gpt2":
            self.base_model = model.transformer
            self.blocks = list(model.transformer.h)
            self.final_norm = model.transformer.ln_f
            self._attn = [block.attn for block in self.blocks]
            self._mlp = [block.mlp for block in self.blocks]
            self._norms = [(block.ln_1, block.ln_2) for block in self.blocks]
        else:
            self.base_model = model.model
            self.blocks = list(model.model.layers)
            self.final_norm = model.model.norm
            self._attn = [block.self_attn for block in self.blocks]
            self._mlp = [block.mlp for block in self.blocks]
            self._norms = [
                (block.input_layernorm, block.post_attention_layernorm) for block in self.blocks
            ]
        if attn_only:
            self._check_attn_only()

    def _check_attn_only(self) -> None:
        """An attention-only model must have MLPs that write exactly zero (all weights zero)."""
        for layer, mlp in enumerate(self._mlp):
            if any(bool(param.detach().any()) for param in mlp.parameters()):
                raise ActspaceError(
                    f"the model is marked attention-only (manifest attn_only: true) but the MLP "
                    f"of block {layer} has non-zero weights"
                )

    # ------------------------------------------------------------------ shapes and weights
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def kv_head_of(self, head: int) -> int:
        """The key/value head that query head ``head`` reads (grouped-query attention)."""
        return head // (self.n_heads // self.n_kv_heads)

    @property
    def W_E(self) -> torch.Tensor:
        """Token embedding, (vocab_size, d_model)."""
        return self.model.get_input_embeddings().weight.detach()

    @property
    def W_U(self) -> torch.Tensor:
        """Unembedding, (d_model, vocab_size): logits = final_norm(resid) @ W_U."""
        return self.model.get_output_embeddings().weight.detach().T

    def norm_scale(self, module: nn.Module) -> torch.Tensor:
        """A norm's elementwise gain (ones for a parameter-free norm)."""
        weight = getattr(module, "weight", None)
        if weight is None:
            return torch.ones(self.d_model, device=self.device)
        return weight.detach()

    def block_norm_scales(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gains of block ``layer``'s attention-input and MLP-input norms."""
        attn_norm, mlp_norm = self._norms[layer]
        return self.norm_scale(attn_norm), self.norm_scale(mlp_norm)

    def attention_weights(self, layer: int) -> AttentionWeights:
        """Per-head Q, K, V, O weights of block ``layer`` (row-vector convention)."""
        attn = self._attn[layer]
        H, Hkv, d = self.n_heads, self.n_kv_heads, self.d_model
        if self.family == "gpt2":
            W = attn.c_attn.weight.detach()  # Conv1D: (d_model, 3*d_model), already x @ W
            W_q, W_k, W_v = W.split(d, dim=1)
            b = attn.c_attn.bias.detach().split(d)
            return AttentionWeights(
                W_Q=_split_heads_in(W_q, H),
                W_K=_split_heads_in(W_k, Hkv),
                W_V=_split_heads_in(W_v, Hkv),
                W_O=attn.c_proj.weight.detach().reshape(H, self.d_head, d),
                b_Q=b[0].reshape(H, -1),
                b_K=b[1].reshape(Hkv, -1),
                b_V=b[2].reshape(Hkv, -1),
                b_O=_bias(attn.c_proj),
            )
        # nn.Linear stores (out, in): transpose to (in, out)
        b_q, b_k, b_v = (_bias(attn.q_proj), _bias(attn.k_proj), _bias(attn.v_proj))
        return AttentionWeights(
            W_Q=_split_heads_in(attn.q_proj.weight.detach().T, H),
            W_K=_split_heads_in(attn.k_proj.weight.detach().T, Hkv),
            W_V=_split_heads_in(attn.v_proj.weight.detach().T, Hkv),
            W_O=attn.o_proj.weight.detach().T.reshape(H, self.d_head, d),
            b_Q=None if b_q is None else b_q.reshape(H, -1),
            b_K=None if b_k is None else b_k.reshape(Hkv, -1),
            b_V=None if b_v is None else b_v.reshape(Hkv, -1),
            b_O=_bias(attn.o_proj),
        )

    def mlp_weights(self, layer: int) -> MLPWeights:
        """Input and output weights of block ``layer``'s MLP (row-vector convention)."""
        if self.attn_only:
            raise ActspaceError("an attention-only model has no MLP weights")
        mlp = self._mlp[layer]
        if self.family == "gpt2":
            return MLPWeights(
                W_in=mlp.c_fc.weight.detach(),
                W_out=mlp.c_proj.weight.detach(),
                b_in=_bias(mlp.c_fc),
                b_out=_bias(mlp.c_proj),
            )
        return MLPWeights(
            W_gate=mlp.gate_proj.weight.detach().T,
            W_up=mlp.up_proj.weight.detach().T,
            W_out=mlp.down_proj.weight.detach().T,
            b_out=_bias(mlp.down_proj),
        )

    # ------------------------------------------------------------------ hook points
    def mlp_path(self, layer: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """x -> MLP(norm(x)) of block ``layer``: what the MLP adds to a residual stream x
        (its input norm included), for linearising the MLP (e.g. its Jacobian)."""
        norm, mlp = self._norms[layer][1], self._mlp[layer]
        return lambda x: mlp(norm(x))

    def uses_layer_norm(self) -> bool:
        """Whether the block norms centre their input (LayerNorm) rather than only rescale
        it (RMSNorm)."""
        return self.family == "gpt2"

    def hook_names(self) -> list[str]:
        """Every hook point of this model, in forward order."""
        names = []
        for layer in range(self.n_layers):
            names += [
                f"blocks.{layer}.hook_resid_pre",
                f"blocks.{layer}.hook_attn_out",
                f"blocks.{layer}.hook_mlp_out",
                resid_post(layer),
            ]
        return names + ["hook_resid_final"]

    def _hook_site(self, name: str) -> tuple[nn.Module, str]:
        """Module and kind ('input' = first input, 'output' = first output) of a hook point."""
        if name == "hook_resid_final":
            return self.final_norm, "input"
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit():
            layer, point = int(parts[1]), parts[2]
            if layer < self.n_layers:
                if point == "hook_resid_pre":
                    return self.blocks[layer], "input"
                if point == "hook_resid_post":
                    return self.blocks[layer], "output"
                if point == "hook_attn_out":
                    return self._attn[layer], "output"
                if point == "hook_mlp_out":
                    return self._mlp[layer], "output"
        raise ActspaceError(
            f"unknown hook point {name!r}; valid: blocks.<0..{self.n_layers - 1}>."
            "hook_{resid_pre,attn_out,mlp_out,resid_post} or hook_resid_final"
        )

    @contextlib.contextmanager
    def hooks(self, fns: Mapping[str, HookFn | list[HookFn]]) -> Iterator[None]:
        """Attach hook functions for the duration of a ``with`` block.

        The model is left exactly as it was on exit, also when the block raises.
        """
        handles = []
        try:
            for name, fn_or_list in fns.items():
                module, kind = self._hook_site(name)
                for fn in fn_or_list if isinstance(fn_or_list, list) else [fn_or_list]:
                    handles.append(self._register(module, kind, name, fn))
            yield
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _register(module: nn.Module, kind: str, name: str, fn: HookFn) -> Any:
        if kind == "input":

            def pre_hook(_module, args, kwargs):
                if args:
                    new = fn(args[0], name)
                    return None if new is None else ((new, *args[1:]), kwargs)
                new = fn(kwargs["hidden_states"], name)
                return None if new is None else (args, {**kwargs, "hidden_states": new})

            return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

        def post_hook(_module, _args, output):
            new = fn(_first(output), name)
            return None if new is None else _replace_first(output, new)

        return module.register_forward_hook(post_hook)

    @torch.no_grad()
    def run_with_cache(
        self,
        input_ids: torch.Tensor,
        names: list[str],
        attention_mask: torch.Tensor | None = None,
        logits: bool = True,
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Forward pass that records the activations at ``names``.

        Returns the logits (or None with ``logits=False``, which skips the unembedding)
        and a dict from hook name to a detached (batch, pos, d_model) tensor.
        """
        cache: dict[str, torch.Tensor] = {}

        def record(activation: torch.Tensor, name: str) -> None:
            cache[name] = activation.detach()

        with self.hooks({name: record for name in names}):
            if logits:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            else:
                self.base_model(input_ids=input_ids, attention_mask=attention_mask)
                out = None
        return out, cache
