"""Acceptance on the embedded SmolLM2-135M-Instruct, through the CI profile's own outputs."""

import hashlib
import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from actspace.store import open_store

pytestmark = pytest.mark.slow


def test_manifest(ci_profile_run):
    folder = ci_profile_run / "results/models/smollm2-135m"
    manifest = json.loads((folder / "manifest.json").read_text())
    expected = {
        "architecture": "LlamaForCausalLM",
        "n_layers": 30,
        "d_model": 576,
        "n_heads": 9,
        "n_kv_heads": 3,
        "d_head": 64,
        "d_mlp": 1536,
        "vocab_size": 49152,
        "dtype": "float32",
    }
    assert {key: manifest[key] for key in expected} == expected
    digest = hashlib.sha256(b"model.safetensors")
    digest.update((folder / "model.safetensors").read_bytes())
    assert manifest["weights_sha256"] == digest.hexdigest()


def test_resid_matches_an_independent_computation(ci_profile_run):
    """resid against transformers' output_hidden_states, its last entry (post final norm)
    replaced by the last block's raw output taken with a plain PyTorch hook."""
    results = ci_profile_run / "results"
    model = AutoModelForCausalLM.from_pretrained(results / "models/smollm2-135m").eval()
    store = open_store(results / "activations/smollm2-135m/seed-texts.zarr", ["resid"])
    tokens, offsets, resid = store["tokens"][:], store["doc_offsets"][:], store["resid"]
    assert resid.shape == (len(tokens), 31, 576) and len(offsets) == 5
    last_block_output = {}
    handle = model.model.layers[-1].register_forward_hook(
        lambda module, args, output: last_block_output.update(x=output)
    )
    try:
        for doc in range(4):
            ids = torch.tensor(tokens[offsets[doc] : offsets[doc + 1]], dtype=torch.long)[None]
            with torch.no_grad():
                hidden = list(model(ids, output_hidden_states=True).hidden_states)
            hidden[-1] = last_block_output["x"]
            expected = torch.stack(hidden, dim=2)[0].numpy()
            got = resid[offsets[doc] : offsets[doc + 1]]
            relative = np.linalg.norm(got - expected) / np.linalg.norm(expected)
            assert relative < 1e-4, (doc, relative)
            per_layer = np.linalg.norm(got - expected, axis=(0, 2)) / np.linalg.norm(expected, axis=(0, 2))
            assert per_layer.max() < 1e-4
    finally:
        handle.remove()


def test_summary_page(ci_profile_run):
    page = (ci_profile_run / "results/summary.md").read_text()
    assert "smollm2-135m" in page and "tokens/s" in page
    generated = open_store(ci_profile_run / "results/activations/smollm2-135m/generated-4.zarr", ["resid"])
    assert generated.attrs["n_docs"] == 4
