"""The model adapter: weights in row-vector form and hook points, per supported family.

Every check recomputes a quantity independently from the Hugging Face modules (or from the
model's own ``output_hidden_states``) and compares it with what the adapter reports.
"""

import pytest
import torch
import torch.nn.functional as F

from actspace.errors import ActspaceError
from actspace.models import ModelAdapter, describe
from conftest import build_tiny_model

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "olmo", "gpt2"]


@pytest.fixture(params=FAMILIES, scope="module")
def adapter(request):
    model, tokenizer = build_tiny_model(request.param)
    return ModelAdapter(model, tokenizer)


@pytest.fixture(scope="module")
def tokens():
    torch.manual_seed(1)
    return torch.randint(0, 20, (2, 9))


def _attn_module(adapter, layer):
    block = adapter.blocks[layer]
    return block.attn if adapter.family == "gpt2" else block.self_attn


def test_describe_reads_shapes(adapter):
    facts = describe(adapter.config)
    assert facts["n_layers"] == 2 and facts["d_model"] == 32 and facts["n_heads"] == 4
    assert facts["n_kv_heads"] == (4 if adapter.family == "gpt2" else 2)
    # qwen3's tiny config sets head_dim 8 explicitly; the others derive 32 / 4 = 8
    assert facts["d_head"] == 8
    assert adapter.attention_weights(0).W_Q.shape == (4, 32, 8)


def test_value_and_output_weights_match_modules(adapter):
    torch.manual_seed(2)
    x = torch.randn(5, adapter.d_model)
    w = adapter.attention_weights(1)
    attn = _attn_module(adapter, 1)
    H, dh = adapter.n_heads, adapter.d_head
    if adapter.family == "gpt2":
        q, k, v = attn.c_attn(x).split(adapter.d_model, dim=-1)
    else:
        q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    for head in range(H):
        kv = adapter.kv_head_of(head)
        ours_q = x @ w.W_Q[head] + (0 if w.b_Q is None else w.b_Q[head])
        ours_v = x @ w.W_V[kv] + (0 if w.b_V is None else w.b_V[kv])
        torch.testing.assert_close(ours_q, q[:, head * dh : (head + 1) * dh])
        torch.testing.assert_close(ours_v, v[:, kv * dh : (kv + 1) * dh])
    for kv in range(adapter.n_kv_heads):
        ours_k = x @ w.W_K[kv] + (0 if w.b_K is None else w.b_K[kv])
        torch.testing.assert_close(ours_k, k[:, kv * dh : (kv + 1) * dh])
    z = torch.randn(5, H, dh)
    out_proj = attn.c_proj if adapter.family == "gpt2" else attn.o_proj
    ours_o = torch.einsum("phd,hdm->pm", z, w.W_O) + (0 if w.b_O is None else w.b_O)
    torch.testing.assert_close(ours_o, out_proj(z.reshape(5, H * dh)))


def test_gqa_head_grouping(adapter):
    groups = adapter.n_heads // adapter.n_kv_heads
    assert [adapter.kv_head_of(h) for h in range(adapter.n_heads)] == [
        h // groups for h in range(adapter.n_heads)
    ]


def test_mlp_weights_recompute_the_mlp(adapter):
    torch.manual_seed(3)
    x = torch.randn(5, adapter.d_model)
    w = adapter.mlp_weights(0)
    mlp = adapter.blocks[0].mlp
    if adapter.gated_mlp:
        ours = (F.silu(x @ w.W_gate) * (x @ w.W_up)) @ w.W_out
    else:
        hidden = F.gelu(x @ w.W_in + w.b_in, approximate="tanh")
        ours = hidden @ w.W_out + w.b_out
    torch.testing.assert_close(ours, mlp(x))


def test_embedding_unembedding_and_final_norm_give_logits(adapter, tokens):
    with torch.no_grad():
        out = adapter.model(tokens, output_hidden_states=True)
    # hidden_states[-1] is the final-normed stream in Hugging Face models
    logits = out.hidden_states[-1] @ adapter.W_U
    torch.testing.assert_close(logits, out.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        adapter.W_E[tokens[0, 0]], adapter.model.get_input_embeddings()(tokens)[0, 0]
    )


def test_norm_scales_are_the_norm_gains(adapter):
    ln1, ln2 = adapter.block_norm_scales(0)
    torch.manual_seed(4)
    x = torch.randn(3, adapter.d_model)
    attn_norm = (
        adapter.blocks[0].ln_1 if adapter.family == "gpt2" else adapter.blocks[0].input_layernorm
    )
    if adapter.config.model_type == "olmo":  # parameter-free LayerNorm
        assert torch.equal(ln1, torch.ones(adapter.d_model))
    elif adapter.family == "gpt2":
        torch.testing.assert_close(ln1, attn_norm.weight)
    else:  # RMSNorm: norm(x) = x / rms(x) * g
        rms = x.pow(2).mean(-1, keepdim=True).add(attn_norm.variance_epsilon).sqrt()
        torch.testing.assert_close(attn_norm(x), x / rms * ln1)
    assert ln2.shape == (adapter.d_model,)


def test_resid_pre_matches_hidden_states_and_writes_add_up(adapter, tokens):
    names = adapter.hook_names()
    logits, cache = adapter.run_with_cache(tokens, names)
    with torch.no_grad():
        reference = adapter.model(tokens, output_hidden_states=True)
    torch.testing.assert_close(logits, reference.logits)
    for layer in range(adapter.n_layers):
        pre = cache[f"blocks.{layer}.hook_resid_pre"]
        torch.testing.assert_close(pre, reference.hidden_states[layer])
        # the residual stream is the sum of what attention and MLP write into it
        written = cache[f"blocks.{layer}.hook_attn_out"] + cache[f"blocks.{layer}.hook_mlp_out"]
        torch.testing.assert_close(pre + written, cache[f"blocks.{layer}.hook_resid_post"])
    final = cache["hook_resid_final"]
    torch.testing.assert_close(final, cache[f"blocks.{adapter.n_layers - 1}.hook_resid_post"])
    torch.testing.assert_close(adapter.final_norm(final), reference.hidden_states[-1])


def test_replacing_a_write_changes_the_output_as_computed(adapter, tokens):
    """Zeroing block 1's MLP write must equal subtracting it from the final stream."""
    _, cache = adapter.run_with_cache(tokens, ["hook_resid_final", "blocks.1.hook_mlp_out"])
    ablate = {"blocks.1.hook_mlp_out": lambda x, name: torch.zeros_like(x)}
    with adapter.hooks(ablate):
        _, ablated = adapter.run_with_cache(tokens, ["hook_resid_final"])
    expected = cache["hook_resid_final"] - cache["blocks.1.hook_mlp_out"]
    torch.testing.assert_close(ablated["hook_resid_final"], expected)
    assert not torch.allclose(ablated["hook_resid_final"], cache["hook_resid_final"])


def _hooks_of(model):
    """Every forward (pre-)hook on the model; transformers registers some of its own."""
    return [
        (name, tuple(m._forward_hooks), tuple(m._forward_pre_hooks))
        for name, m in model.named_modules()
    ]


def test_hooks_leave_the_model_unchanged(adapter, tokens):
    with torch.no_grad():
        before = adapter.model(tokens).logits
    hooks_before = _hooks_of(adapter.model)
    shift = {name: (lambda x, n: x + 1.0) for name in adapter.hook_names()}
    with adapter.hooks(shift):
        with torch.no_grad():
            assert not torch.allclose(adapter.model(tokens).logits, before)
    assert _hooks_of(adapter.model) == hooks_before
    with pytest.raises(RuntimeError, match="boom"):
        with adapter.hooks(shift):
            raise RuntimeError("boom")
    assert _hooks_of(adapter.model) == hooks_before
    with torch.no_grad():
        torch.testing.assert_close(adapter.model(tokens).logits, before, rtol=0, atol=0)


def test_unknown_hook_point_is_named(adapter):
    with pytest.raises(ActspaceError, match="blocks.7.hook_resid_pre"):
        with adapter.hooks({"blocks.7.hook_resid_pre": lambda x, n: None}):
            pass


def test_unsupported_architecture_is_named():
    from transformers import AutoConfig

    with pytest.raises(ActspaceError, match="'bert'"):
        describe(AutoConfig.for_model("bert"))
