"""Acceptance on the embedded SmolLM2-135M-Instruct, through the CI profile's own outputs."""

import hashlib
import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from actspace.store import open_store
from conftest import REPO, check_figure_files, declared_figures, run_workflow

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


def test_the_embedded_models_check_passes_and_is_summarised(ci_profile_run):
    """SmolLM2's hook sites equal transformers' own outputs (the equivalence check), and the
    summary lists every checked model."""
    results = ci_profile_run / "results"
    check = json.loads((results / "checks/smollm2-135m.json").read_text())
    assert check["passed"] and check["dtype"] == "float32"
    assert check["max_error"] <= check["tolerance"] == 1e-4
    assert check["worst"]["resid_pre"]["error"] <= 1e-6
    summary = json.loads((results / "summary/capture.json").read_text())
    checked = {r["model"] for r in summary["rows"] if r["quantity"].startswith("equivalence")}
    assert checked == {p.stem for p in (results / "checks").glob("*.json")} >= {"smollm2-135m"}


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
            per_layer = np.linalg.norm(got - expected, axis=(0, 2)) / np.linalg.norm(
                expected, axis=(0, 2)
            )
            assert per_layer.max() < 1e-4
    finally:
        handle.remove()


def test_summary_page(ci_profile_run):
    page = (ci_profile_run / "results/summary.md").read_text()
    assert "smollm2-135m" in page and "tokens/s" in page
    generated = open_store(
        ci_profile_run / "results/activations/smollm2-135m/generated-4.zarr", ["resid"]
    )
    assert generated.attrs["n_docs"] == 4


def test_text_subspaces_of_the_seed_texts(ci_profile_run):
    from actspace.methods.text_subspaces import math as tsmath
    from actspace.methods.text_subspaces import passes
    from actspace.models import load_model

    results = ci_profile_run / "results"
    store = open_store(
        results / "text_subspaces/smollm2-135m/seed-continued.zarr",
        ["k_star", "overlap", "baseline_nll", "tokens", "doc_offsets", "spectra", "usage"],
    )
    k_star, overlap = store["k_star"][:], store["overlap"][:]
    assert k_star.shape == (4,) and overlap.shape == (4, 4) and store["baseline_nll"].shape == (4,)
    assert np.all((1 <= k_star) & (k_star <= 576))
    np.testing.assert_allclose(np.diag(overlap), k_star, rtol=1e-6)
    assert store["exclude_first"]["k_star"].shape == (4,)
    assert store.attrs["passes_per_text"] == 10  # ceil(log2 576)
    # the first position's huge norm: the leading singular value dwarfs the next
    spectra = store["spectra"][:]
    assert np.all(spectra[:, 0] > 3 * spectra[:, 1])
    # full-rank projection reproduces the model's logits on the first text
    adapter = load_model(results / "models/smollm2-135m")
    offsets = store["doc_offsets"][:]
    text = store["tokens"][offsets[0] : offsets[1]]
    resid = open_store(results / "activations/smollm2-135m/seed-continued.zarr", ["resid"])["resid"]
    V = tsmath.right_singular(tsmath.text_matrix(resid[offsets[0] : offsets[1]]))[1]
    ids = torch.as_tensor(text.astype(np.int64))[None]
    with torch.no_grad():
        reference = adapter.model(ids).logits
        with adapter.hooks(
            passes._projection_hooks(adapter, tsmath.projector(V, 576).float()[None])
        ):
            projected = adapter.model(ids).logits
    relative = (projected - reference).norm() / reference.norm()
    assert relative < 1e-4
    generations = (
        results / "text_subspaces/smollm2-135m/seed-continued.generations.md"
    ).read_text()
    assert "from BOS only" in generations and "[I believe the meaning of life is]" in generations
    for kind in ("spectrum", "nll", "overlap", "usage"):
        assert (
            results / f"text_subspaces/smollm2-135m/figures/seed-continued.{kind}.png"
        ).is_file()


def test_weight_svd_store(ci_profile_run):
    results = ci_profile_run / "results/weights_svd/smollm2-135m"
    store = open_store(results / "svd.zarr", ["ov_S", "mlp_gate_S", "mlp_up_S", "mlp_out_S"])
    # the CI profile decomposes blocks 0, 14 and 27 of the 30
    assert store.attrs["layers"] == [0, 14, 27]
    assert store["ov_S"].shape == (3, 9, 64)
    assert store["mlp_gate_S"].shape == (3, 576) and store["mlp_out_S"].shape == (3, 576)
    assert store["ov/top_tokens"].shape == (27, 8, 2, 20)
    assert set(store["ov/index"][:, 0]) == {0, 14, 27}
    # grouped-query attention: the three heads sharing a V have different OV spectra
    assert not np.allclose(store["ov_S"][1, 0], store["ov_S"][1, 1])
    edit = store.attrs["edit"]
    assert edit["token"] == " fire" and edit["target_change"] < 0
    assert (results / "queries.csv").read_text().startswith("query,kind,layer,head")


def test_partition_of_a_middle_layer(ci_profile_run):
    """SmolLM2's stream entering block 15: an orthogonal 576 x 576 R whose subspaces tile
    the space, and the MI of the trained and of a random basis with the same sizes."""
    results = ci_profile_run / "results/partition/smollm2-135m/generated-4"
    store = open_store(results / "L15.zarr", ["R", "sizes", "mi_trained", "mi_random"])
    R, sizes = store["R"][:], store["sizes"][:]
    np.testing.assert_allclose(R.T @ R, np.eye(576), atol=1e-4)
    assert sizes.sum() == 576 and np.all(sizes % 32 == 0) and list(sizes) == sorted(sizes)[::-1]
    assert store.attrs["layer"] == 15 and store.attrs["model"] == "smollm2-135m"
    assert store.attrs["mean_mi_random"] is not None
    page = (ci_profile_run / "results/summary.md").read_text()
    assert "mean pairwise MI, trained R" in page
    toy = ci_profile_run / "results/partition/toy-copy/toy-copy-sequences"
    assert (toy / "probes_L1.stop2.csv").is_file() and (toy / "circuit_B1.stop2.zarr").is_dir()
    assert "the desired subspaces" in page  # judged: the site names its induction block


def test_steering_on_smollm2(ci_profile_run):
    """The CI run's MELBO vectors sit on the sphere, mutually orthogonal, and each beats the
    random vectors' objective; the orthogonal set stays orthogonal to theta_0; a stored
    generation is reproduced by ``actspace steer``."""
    from actspace.methods.steering.command import steer_text

    run = ci_profile_run / "results/steering/smollm2-135m/requests"
    melbo = open_store(run / "melbo.zarr", ["vectors", "objective", "random_objective"])
    vectors = melbo["vectors"][:]
    assert vectors.shape == (4, 576) and melbo.attrs["target_block"] == 21
    radius = melbo.attrs["settings"]["radius"]
    assert np.allclose(np.linalg.norm(vectors, axis=1), radius, atol=1e-4)
    assert melbo.attrs["target_positions"] == [-3, None]  # ci.yaml: the last 3 tokens
    assert melbo.attrs["max_abs_cosine"] < 1e-6
    assert melbo["objective"][:].min() > melbo["random_objective"][:].max()
    ortho = open_store(run / "vectors.zarr", ["vectors", "kept", "kl_i_to_0"])
    assert ortho.attrs["max_abs_cosine"] < 1e-6 and ortho["vectors"].shape == (4, 576)
    records = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    record = next(r for r in records if (r["set"], r["index"], r["mode"]) == ("ortho", 1, "greedy"))
    text = steer_text(
        str(run / "vectors.safetensors"),
        str(ci_profile_run / "results/models/smollm2-135m"),
        "ortho",
        1,
        record["prompt"],
        record["tokens"],
    )
    assert text == record["completion"]


def test_stable_regions_on_smollm2(ci_profile_run):
    """The known pattern on a handful of pairs: SmolLM2's random initialisation gives
    near-linear curves, the trained model sharper boundaries; the toy's checkpoints are all
    measured, step 0 first."""
    from actspace.methods.regions.read import read_regions

    results = ci_profile_run / "results/regions"
    smol = read_regions(results / "smollm2-135m/seed-continued.zarr")
    trained, random = smol.of_kind("trained"), smol.of_kind("random init")
    assert trained.sharpness.shape == (8,) and trained.curves.shape == (8, 30)
    assert random.quartiles[1] < 1.3  # close to a linear curve
    assert trained.quartiles[1] > random.quartiles[1] + 0.5
    assert trained.n_params == random.n_params > 134_000_000
    toy = read_regions(results / "toy-copy/toy-copy-sequences.zarr")
    assert [v.step for v in toy.variants] == [0, 1, 14, 200]  # the CI toy's checkpoints
    for figure in ("training", "sizes"):
        assert (results / f"figures/{figure}.png").stat().st_size > 10_000
    page = (ci_profile_run / "results/summary.md").read_text()
    assert "## Stable regions" in page and "Janiak" in page


def test_ci_profile_figures_summary_and_report(ci_profile_run):
    """Every declared figure of the CI profile is a PNG and a PDF; the summary names every
    method; the report builds offline and opens in headless Chromium (screenshot under
    results/)."""
    from browser import inspect_report

    from actspace.registry import METHODS

    ci = ("--configfile", str(REPO / "config" / "ci.yaml"))
    declared = declared_figures(ci_profile_run, None, *ci)
    figures = [p for p in declared if not p.endswith(".pdf")]
    assert len(check_figure_files(ci_profile_run, declared)) >= 25
    summary = json.loads((ci_profile_run / "results/summary.json").read_text())
    assert [m["method"] for m in summary["methods"]] == [m.name for m in METHODS]
    rows = [row for m in summary["methods"] for row in m["rows"]]
    assert all(row["published"] and row["reason"] for row in rows)
    # the CI profile's regions run already shows the random init's near-linear curves
    regions = next(m for m in summary["methods"] if m["method"] == "regions")
    assert any(r["verdict"] == "reproduced" for r in regions["rows"])
    report = ci_profile_run / "results/report.html"
    result = run_workflow(ci_profile_run, None, *ci, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = inspect_report(report, ci_profile_run / "results/report.png", ["Stable regions"])
    assert not seen["errors"] and not seen["undecoded"] and seen["images_shown"] >= 1
    assert sorted(p for p in seen["results"] if "/figures/" in p) == sorted(figures)
    assert all(len(seen["results"][p]["caption"]) > 80 for p in figures)
    assert "smollm2-135m" in seen["menus"]["Stable regions"]
