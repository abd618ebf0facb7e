"""Weight SVD: reconstruction, OV rank, token projection, the locator and rank-1 edits."""

from pathlib import Path

import numpy as np
import pytest
import torch

from actspace.methods.weights_svd import edits, job, matrices, read, tokens
from actspace.cli import main as cli_main
from actspace.errors import ActspaceError
from actspace.models import ModelAdapter
from actspace.models.sources import write_model_dir
from actspace.store import open_store, read_csv
from conftest import WORDS, build_tiny_model, tiny_config, with_defaults


@pytest.fixture(params=["llama", "gpt2"], scope="module")
def adapter(request):
    model, tokenizer = build_tiny_model(request.param, seed=3)
    return ModelAdapter(model, tokenizer)


def _tiny_model_dir(tmp_path, family: str, seed: int):
    """A random tiny model of ``family`` saved as a local model directory."""
    model, tokenizer = build_tiny_model(family, seed=seed)
    write_model_dir(model, tokenizer, tmp_path / family, family, {"source": "local"})
    return tmp_path / family


def _run_job(model_dir, out, section: dict) -> None:
    """The weights_svd job on ``model_dir``, its outputs under ``out``, ``section`` completed
    with the schema's defaults."""
    outputs = [str(out / name) for name in ("svd.zarr", "tokens", "q.csv", "e.csv")]
    settings = with_defaults({"models": ["m"], **section}, "weights_svd")
    job.weights_svd_job(str(model_dir), *outputs, settings)


def test_ov_matrix_is_the_folded_value_output_product(adapter):
    """x_normed W_OV equals the head's contribution to the attention output when the head
    attends to a single position (the value path, biases aside)."""
    layer, head = 1, 2
    W = matrices.ov_matrix(adapter, layer, head)
    weights = adapter.attention_weights(layer)
    gain = adapter.block_norm_scales(layer)[0]
    x = torch.randn(3, adapter.d_model)
    expected = ((x * gain) @ weights.W_V[adapter.kv_head_of(head)]) @ weights.W_O[head]
    torch.testing.assert_close(x @ W, expected)
    S = matrices.svd(W)[1]
    # rank d_head: beyond it only float32 rounding of the product (~1e-7 relative)
    assert int((S > 1e-5 * S[0]).sum()) == adapter.d_head


def test_matrices_reconstruct_from_their_svd(adapter):
    for matrix in matrices.weight_matrices(adapter):
        U, S, Vh = matrices.decompose_matrix(matrix)
        rebuilt = (U * S) @ Vh
        relative = (rebuilt - matrix.W.double()).norm() / matrix.W.double().norm()
        assert relative < 1e-6  # W is float32
        torch.testing.assert_close(U.T @ U, torch.eye(len(S), dtype=U.dtype))
        torch.testing.assert_close(Vh @ Vh.T, torch.eye(len(S), dtype=U.dtype))
        if matrix.factors is not None:  # the factored SVD agrees with a dense one
            dense = matrices.svd(matrix.W)[1][: len(S)]
            torch.testing.assert_close(S, dense, rtol=1e-5, atol=1e-7)
    kinds = {m.kind for m in matrices.weight_matrices(adapter)}
    assert kinds == set(matrices.matrix_kinds(adapter))


def test_top_tokens_match_a_direct_projection(adapter):
    W_U = tokens.unembedding(adapter, fold_final_norm=False, center=False)
    torch.testing.assert_close(W_U, adapter.model.lm_head.weight.double().T)
    directions = torch.randn(4, adapter.d_model, dtype=torch.float64)
    ids, scores = tokens.top_tokens(directions, W_U, 5)
    for i in range(4):
        logits = (directions[i] @ adapter.model.lm_head.weight.detach().double().T).numpy()
        order = np.argsort(logits)
        assert ids[i, 0].tolist() == order[::-1][:5].tolist()
        assert ids[i, 1].tolist() == order[:5].tolist()
        np.testing.assert_allclose(scores[i, 1].numpy(), -logits[order[:5]])
    centred = tokens.unembedding(adapter, fold_final_norm=True, center=True)
    torch.testing.assert_close(centred.mean(1), torch.zeros(adapter.d_model, dtype=torch.float64))


def test_neighbourhood_radius_matches_a_sort_of_all_cosines():
    W_E = torch.randn(300, 16, dtype=torch.float64)
    hoods = tokens.token_neighbourhoods(W_E, k=7, chunk=64)  # several chunks
    unit = torch.nn.functional.normalize(W_E, dim=1)
    cos = unit @ unit.T
    cos.fill_diagonal_(-2.0)
    expected = cos.sort(dim=1, descending=True).values[:, 6]
    torch.testing.assert_close(hoods.radius.double(), expected, rtol=0, atol=1e-5)


def test_coherence_of_identical_clustered_and_random_token_sets():
    generator = torch.Generator().manual_seed(0)
    W_E = torch.randn(2000, 32, generator=generator, dtype=torch.float64)
    W_E[:5] = W_E[0] + 0.01 * torch.randn(5, 32, generator=generator, dtype=torch.float64)
    hoods = tokens.token_neighbourhoods(W_E, k=20)
    assert tokens.coherence(torch.tensor([[3, 3, 3, 3]]), hoods).item() == 1.0
    assert tokens.coherence(torch.tensor([0, 1, 2, 3, 4]), hoods).item() == 1.0  # a tight cluster
    # random sets: each pair is a neighbour with probability k / (vocab - 1)
    sets = torch.randint(5, 2000, (4000, 10), generator=generator)
    expected = 20 / 1999
    assert abs(tokens.coherence(sets, hoods).mean().item() - expected) < 0.2 * expected


def test_coherence_ignores_a_shared_offset_that_swamps_cosines():
    """Anisotropy: a large common component makes every mean cosine ~1, but a clustered set
    still stands out from a random one in neighbourhood coherence."""
    generator = torch.Generator().manual_seed(1)
    W_E = torch.randn(1000, 32, generator=generator, dtype=torch.float64)
    W_E[:6] = W_E[0] + 0.2 * torch.randn(6, 32, generator=generator, dtype=torch.float64)
    W_E += 20.0 * torch.randn(32, generator=generator, dtype=torch.float64)
    hoods = tokens.token_neighbourhoods(W_E, k=10)
    cosines = hoods.unit @ hoods.unit.T
    assert cosines.min() > 0.9
    clustered = tokens.coherence(torch.arange(6), hoods).item()
    random_sets = tokens.coherence(torch.randint(6, 1000, (500, 6), generator=generator), hoods)
    assert clustered > 0.9 and random_sets.mean() < 0.05


@pytest.mark.parametrize("kind", ["ov", "mlp_gate", "mlp_out", "mlp_in"])
def test_rank_one_edit_removes_exactly_one_singular_value(adapter, kind):
    if kind not in matrices.matrix_kinds(adapter):
        pytest.skip(f"{adapter.family} has no {kind}")
    layer, head = 1, (1 if kind == "ov" else -1)
    current = {
        m.kind: m for m in matrices.weight_matrices(adapter) if m.layer == layer and m.head == head
    }
    before = {name: p.detach().clone() for name, p in adapter.model.named_parameters()}
    U, S, Vh = matrices.decompose_matrix(current[kind])
    i = 2
    direction = edits.SingularDirection(kind, layer, head, U[:, i], float(S[i]), Vh[i])
    with edits.removed_direction(adapter, direction):
        edited = [
            m for m in matrices.weight_matrices(adapter) if m.layer == layer and m.head == head
        ]
        S_new = matrices.decompose_matrix({m.kind: m for m in edited}[kind])[1]
        expected = torch.cat([S[:i], S[i + 1 :], torch.zeros(1, dtype=S.dtype)])
        torch.testing.assert_close(S_new, expected, rtol=1e-4, atol=1e-5)
    for name, p in adapter.model.named_parameters():
        assert torch.equal(p, before[name]), name  # restored bit for bit


def _planted_model(tmp_path):
    """A tiny Llama whose layer 1 head 3 writes (rank 1, large) towards the pseudo-inverse
    embedding of three planted tokens."""
    model, tokenizer = build_tiny_model("llama", seed=7)
    adapter = ModelAdapter(model, tokenizer)
    planted = ["cat", "dog", "mat"]
    W_U = tokens.unembedding(adapter, False, False)
    target = tokens.query_vector(planted, tokenizer, tokens.pseudo_inverse_embedding(W_U)).float()
    dh = adapter.d_head
    with torch.no_grad():
        w = torch.randn(dh)
        block = model.model.layers[1].self_attn.o_proj.weight
        block[:, 3 * dh : 4 * dh] = 5.0 * torch.outer(target / target.norm(), w)
    write_model_dir(model, tokenizer, tmp_path / "planted", "planted", {"source": "local"})
    return tmp_path / "planted", planted


def test_locator_finds_the_planted_matrix(tmp_path):
    model_dir, planted = _planted_model(tmp_path)
    settings = {
        "k_dirs": 8,
        "k_tokens": 3,
        "n_null": 200,
        "queries": {"pets": planted},
        "edit": {"prompt": "the big", "token": "cat"},
    }
    job.weights_svd_job(
        str(model_dir),
        str(tmp_path / "svd.zarr"),
        str(tmp_path / "tokens"),
        str(tmp_path / "queries.csv"),
        str(tmp_path / "edits.csv"),
        with_defaults({"models": ["planted"], **settings}, "weights_svd"),
    )
    tables = sorted(p.name for p in (tmp_path / "tokens").iterdir())
    assert tables == ["mlp_gate.csv", "mlp_out.csv", "mlp_up.csv", "ov.csv"]  # the model's kinds
    hits = read.locate_in_store(tmp_path / "svd.zarr", model_dir, planted, 0.15)
    best = hits[0]
    assert (best["kind"], best["layer"], best["head"], best["direction"]) == ("ov", 1, 3, 0)
    assert best["cosine"] > 0.99
    edit_rows = read_csv(tmp_path / "edits.csv")
    candidates = open_store(tmp_path / "svd.zarr").attrs["edit"]["candidates"]
    assert len(edit_rows) == 8 * len(candidates)  # every direction of every candidate matrix
    assert sum(r["cued"] for r in edit_rows) == len(candidates)
    planted_head = [c for c in candidates if (c["kind"], c["layer"], c["head"]) == ("ov", 1, 3)]
    assert planted_head and planted_head[0]["target_direction"] == 0
    rows = (tmp_path / "queries.csv").read_text().splitlines()
    assert rows[1].startswith("pets,ov,1,3,0,")  # the rule's answer agrees, best first
    store = open_store(tmp_path / "svd.zarr")
    assert store["ov_S"].shape == (2, 4, 8) and store["mlp_gate_S"].shape == (2, 32)
    # the planted direction's top tokens (one of its ends) are the planted words
    top = store["ov/top_tokens"][1 * 4 + 3, 0]
    assert {WORDS[t] for t in top[0]} == set(planted) or {WORDS[t] for t in top[1]} == set(planted)
    # reconstruction from the stored vectors (k_dirs = 8 = d_head: the whole OV matrix)
    adapter = ModelAdapter(*build_tiny_model("llama", seed=7))
    U, S, Vh = store["ov/U"][5], store["ov_S"][1, 1], store["ov/Vh"][5]
    W = matrices.ov_matrix(adapter, 1, 1).numpy()
    np.testing.assert_allclose((U * S) @ Vh, W, rtol=0, atol=1e-5 * np.abs(W).max())
    assert (
        cli_main(
            ["locate", "--svd", str(tmp_path / "svd.zarr"), "--model", str(model_dir)] + planted
        )
        == 0
    )


def test_edit_candidates_pick_one_direction_per_matrix_best_rank_first():
    ids = np.zeros((3, 4, 2, 5), dtype=int)  # (matrices, directions, signs, tokens)
    ids[0, 2, 1, 4] = 7  # matrix 0: token 7 at the bottom of direction 2's negative end
    ids[0, 3, 0, 0] = 7  # ... and at the top of direction 3: that one is kept
    ids[2, 1, 0, 1] = 7
    results = {
        "ov": {"top_tokens": ids, "S": np.ones((3, 4))},
        "mlp_out": {"top_tokens": np.zeros((1, 4, 2, 5), dtype=int), "S": np.ones((1, 4))},
        "mlp_up": {"top_tokens": np.full((1, 4, 2, 5), 7), "S": np.ones((1, 4))},  # reads only
    }
    assert edits.edit_candidates(results, 7, limit=5) == [("ov", 0, 3), ("ov", 2, 1)]
    assert edits.edit_candidates(results, 7, limit=1) == [("ov", 0, 3)]
    with pytest.raises(ActspaceError, match="no stored top-token list"):
        edits.edit_candidates(results, 8, limit=5)


def test_the_kinds_come_from_the_model(tmp_path):
    """A GPT-2 (one MLP input matrix) and a Llama (gate and up) in one config: each model's
    tables and store hold its own kinds, with no per-run list of kinds."""
    out = tmp_path / "out"
    _run_job(_tiny_model_dir(tmp_path, "gpt2", 1), out, {"k_dirs": 2, "k_tokens": 2, "n_null": 20})
    assert sorted(p.stem for p in (out / "tokens").iterdir()) == ["mlp_in", "mlp_out", "ov"]
    assert read.stored_kinds(open_store(out / "svd.zarr")) == ["ov", "mlp_in", "mlp_out"]


@pytest.mark.parametrize("key", ["k_dirs", "k_tokens"])
def test_more_directions_or_tokens_than_the_model_has_are_refused(tmp_path, key):
    """Known only once the model is loaded: one more direction than d_model, one more token
    than the vocabulary, refused at the job's start naming the key, value and range."""
    model_dir = _tiny_model_dir(tmp_path, "gpt2", 1)
    config = tiny_config("gpt2")  # the saved model's shape
    most = {"k_dirs": config.n_embd, "k_tokens": config.vocab_size}[key]
    value = most + 1
    section = {"k_dirs": 2, "k_tokens": 2, key: value, "n_null": 20}
    with pytest.raises(
        ActspaceError, match=rf"weights_svd.{key}: {value} is more than .* allowed: 1\.\.{most}$"
    ):
        _run_job(model_dir, tmp_path, section)
    assert not any((tmp_path / name).exists() for name in ("svd.zarr", "tokens"))


def test_a_subset_of_blocks_decomposes_those_blocks_as_the_full_run_does(tmp_path):
    """``layers: [1]`` stores block 1's spectra, directions and top tokens exactly as the run
    over every block does, with its block number in the index and the store's attributes."""
    model_dir = _tiny_model_dir(tmp_path, "llama", 2)
    stores = {}
    for name, layers in (("all", None), ("one", [1])):
        section = {"k_dirs": 3, "k_tokens": 2, "n_null": 20, "layers": layers}
        _run_job(model_dir, tmp_path / name, section)
        stores[name] = open_store(tmp_path / name / "svd.zarr")
    full, one = stores["all"], stores["one"]
    assert full.attrs["layers"] == [0, 1] and one.attrs["layers"] == [1]
    assert one["ov_S"].shape == (1, *full["ov_S"].shape[1:])
    np.testing.assert_array_equal(one["ov_S"][0], full["ov_S"][1])
    np.testing.assert_array_equal(one["mlp_out_S"][0], full["mlp_out_S"][1])
    for kind in ("ov", "mlp_gate", "mlp_out"):
        rows = full[kind]["index"][:, 0] == 1
        np.testing.assert_array_equal(one[kind]["index"][:], full[kind]["index"][:][rows])
        for key in ("directions", "top_tokens", "coherence_z"):
            np.testing.assert_array_equal(one[kind][key][:], full[kind][key][:][rows])
    np.testing.assert_array_equal(
        read.coherent_fractions(one, "ov"), read.coherent_fractions(full, "ov")[1:]
    )


def test_figures_and_summary_of_a_subset_without_an_edit(tmp_path):
    """Without an edit the token figure shows the first decomposed block (not block 0, which
    a subset may lack), and the by-block figure plots against the decomposed blocks; the
    summary's rows name the subset."""
    from actspace.methods.weights_svd.figures import weights_svd_figures
    from actspace.methods.weights_svd.summary import weights_svd_summary
    from actspace.reporting.rows import PUBLISHED_PATH

    _run_job(_tiny_model_dir(tmp_path, "llama", 2), tmp_path, {"k_dirs": 3, "layers": [1]})
    names = ("tokens", "spectra", "coherence", "edits")
    pngs = [str(tmp_path / f"{name}.png") for name in names]
    out = [str(tmp_path / n) for n in ("svd.zarr", "tokens", "e.csv")]
    weights_svd_figures(*out, *pngs, PUBLISHED_PATH)
    for png in pngs:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    summary = weights_svd_summary([out[0]], PUBLISHED_PATH)
    settings = [r["setting"] for r in summary["rows"] if r["quantity"].startswith("coherent")]
    assert settings and all(s.endswith(", blocks [1] only") for s in settings)


def test_a_block_past_the_last_is_refused(tmp_path):
    model_dir = _tiny_model_dir(tmp_path, "llama", 2)
    section = {"k_dirs": 2, "k_tokens": 2, "n_null": 20, "layers": [0, 2]}
    with pytest.raises(ActspaceError, match=r"weights_svd.layers: block 2 is past .* 0\.\.1\)$"):
        _run_job(model_dir, tmp_path, section)
    assert not (tmp_path / "svd.zarr").exists()
