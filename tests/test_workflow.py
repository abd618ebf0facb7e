"""The Snakemake DAG on a tiny local model: outputs, staleness and bad inputs.

Each bad input must fail with one clear message naming the problem and leave every earlier
result untouched.
"""

import json
import shutil

import numpy as np
import yaml

from actspace.store import open_store, read_csv
from conftest import (
    REPO,
    check_figure_files,
    declared_figures,
    jobs_planned,
    run_workflow,
    snapshot,
    tiny_workflow_config,
)

# jobs downstream of every change: the text-subspace analyses of both corpora, the report
TEXT_SUBSPACE_JOBS = {
    "find_text_subspaces": 2,
    "text_subspaces_figures": 2,
    "text_subspaces_summary": 1,
}
REPORT_JOBS = {"summary_report": 1, "all": 1}


def test_outputs_of_the_tiny_run(tiny_workflow):
    results = tiny_workflow / "results"
    manifest = json.loads((results / "models/tiny/manifest.json").read_text())
    assert manifest["n_layers"] == 2 and manifest["n_kv_heads"] == 2
    assert len(manifest["weights_sha256"]) == 64
    for corpus in ("tiny-prompts", "tiny-generated"):
        store = open_store(results / f"activations/tiny/{corpus}.zarr", ["resid", "tokens"])
        assert store["resid"].shape == (store["tokens"].shape[0], 3, 32)
        assert (
            store.attrs["model"] == "tiny"
            and store.attrs["weights_sha256"] == manifest["weights_sha256"]
        )
        assert store.attrs["corpus"] == corpus
    summary = json.loads((results / "summary/capture.json").read_text())
    assert {row["quantity"] for row in summary["rows"]} == {
        "capture throughput",
        "storage per activation",
        "equivalence check: worst relative error, hook sites vs transformers",
    }
    assert "| capture throughput |" in (results / "summary.md").read_text()
    for log in ("materialise_model/tiny.log", "capture_residuals/tiny/tiny-prompts.log"):
        assert (results / "logs" / log).stat().st_size > 0
    subspaces = open_store(
        results / "text_subspaces/tiny/tiny-continued.zarr", ["k_star", "overlap"]
    )
    assert subspaces["k_star"].shape == (2,) and subspaces["overlap"].shape == (2, 2)
    assert (results / "text_subspaces/tiny/figures/tiny-generated.usage.png").stat().st_size > 0
    assert "## Text subspaces" in (results / "summary.md").read_text()
    svd = open_store(results / "weights_svd/tiny/svd.zarr", ["ov_S", "mlp_gate_S", "mlp_out_S"])
    assert svd["ov_S"].shape == (2, 4, 8) and svd["mlp_up_S"].shape == (2, 32)
    for kind in ("ov", "mlp_gate", "mlp_up", "mlp_out"):
        header = (results / f"weights_svd/tiny/tokens/{kind}.csv").read_text().splitlines()[0]
        assert header == "layer,head,direction,sign,coherence_z,tokens"
    assert (results / "weights_svd/tiny/figures/edits.png").stat().st_size > 0
    assert "## Weight SVD" in (results / "summary.md").read_text()


def test_second_run_does_nothing(workdir, tiny_llama_dir):
    result = run_workflow(workdir, tiny_workflow_config(tiny_llama_dir), "--dry-run")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_restating_a_default_in_a_users_config_reruns_nothing(workdir, tiny_llama_dir):
    """Snakemake's merge puts a user file's keys first; restating a default value changes no
    job's settings (:func:`actspace.config.order_like`)."""
    config = tiny_workflow_config(tiny_llama_dir)
    defaults = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["steering"]["ortho"]["lr"] = defaults["steering"]["ortho"]["lr"]
    config["steering"]["ortho"]["seed"] = defaults["steering"]["ortho"]["seed"]
    result = run_workflow(workdir, config, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    config["steering"]["ortho"]["lr"] = 0.02  # a changed value still reruns its jobs
    assert "learn_orthogonal_vectors" in jobs_planned(run_workflow(workdir, config, "--dry-run"))


def test_changing_an_analysis_setting_reruns_that_analysis_only(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["text_subspaces"]["grid_points"] = 5
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    assert planned == TEXT_SUBSPACE_JOBS | REPORT_JOBS


# every figure and summary job of the tiny run: what an edit of their code may rerun
PRESENTATION_JOBS = {
    "capture_summary": 1,
    "text_subspaces_figures": 2,
    "text_subspaces_summary": 1,
    "weights_svd_figures": 1,
    "weights_svd_summary": 1,
    "toy_figures": 2,
    "toys_summary": 1,
    "partition_figures": 2,
    "circuit_figure": 1,
    "probe_figure": 2,
    "partition_summary": 1,
    "steering_figures": 1,
    "steering_summary": 1,
    "regions_figures": 2,
    "regions_overview": 1,
    "regions_summary": 1,
}
# every stable-regions job of the tiny run (the tiny model and the toy)
REGIONS_JOBS = {
    "find_stable_regions": 2,
    "regions_figures": 2,
    "regions_overview": 1,
    "regions_summary": 1,
}
# every partition job of the tiny run: the toy's two sites stopped at 2 subspaces, the block
# between them, the probes, and their figures
PARTITION_JOBS = {
    "partition_site": 2,
    "subspace_circuit": 1,
    "probe_partition": 2,
    "partition_figures": 2,
    "circuit_figure": 1,
    "probe_figure": 2,
    "partition_summary": 1,
}


def _edited_package(tmp_path, *modules: str) -> dict[str, str]:
    """A copy of the package with a comment appended to each of ``modules`` (paths below
    src/actspace), and the environment that makes the workflow import it."""
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "actspace", src / "actspace", ignore=shutil.ignore_patterns("__pycache__")
    )
    for module in modules:
        path = src / "actspace" / module
        path.write_text(path.read_text() + "\n# an edit\n")
    return {"PYTHONPATH": str(src)}


def test_editing_summaries_figures_and_reports_reruns_no_computation(
    workdir, tiny_llama_dir, tmp_path
):
    package = REPO / "src" / "actspace"
    edited = [
        str(path.relative_to(package))
        for path in [*package.glob("methods/*/summary.py"), *package.glob("methods/*/figures.py")]
        + [package / "plotting.py", *package.glob("reporting/*.py")]
    ]
    env = _edited_package(tmp_path, *edited)
    planned = jobs_planned(
        run_workflow(workdir, tiny_workflow_config(tiny_llama_dir), "--dry-run", env=env)
    )
    assert planned == PRESENTATION_JOBS | REPORT_JOBS


def test_editing_one_methods_math_reruns_that_method_only(workdir, tiny_llama_dir, tmp_path):
    env = _edited_package(tmp_path, "methods/text_subspaces/math.py")
    planned = jobs_planned(
        run_workflow(workdir, tiny_workflow_config(tiny_llama_dir), "--dry-run", env=env)
    )
    assert planned == TEXT_SUBSPACE_JOBS | REPORT_JOBS


def test_a_method_target_plans_that_method_only(tmp_path, tiny_llama_dir):
    planned = jobs_planned(
        run_workflow(
            tmp_path / "fresh", tiny_workflow_config(tiny_llama_dir), "--dry-run", "weights_svd"
        )
    )
    assert planned == {
        "materialise_model": 1,
        "check_model": 1,
        "decompose_weights": 1,
        "weights_svd_figures": 1,
        "weights_svd_summary": 1,
        "weights_svd": 1,
    }


def test_changing_the_capture_dtype_reruns_capture_and_dependents_only(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir, dtype="float16")
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    # the two captured corpora, the continued texts the text subspaces need, the toy's task
    # sequences the partition needs, and dependents
    assert (
        planned
        == {"capture_residuals": 4, "capture_summary": 1}
        | TEXT_SUBSPACE_JOBS
        | PARTITION_JOBS
        | REPORT_JOBS
    )
    upstream = snapshot(workdir / "results/models") | snapshot(workdir / "results/corpora")
    # one recapture run for real (the planned dependents rerun like any other job)
    result = run_workflow(
        workdir, config, "--keep-going", "results/activations/tiny/tiny-prompts.zarr"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert snapshot(workdir / "results/models") | snapshot(workdir / "results/corpora") == upstream
    store = open_store(workdir / "results/activations/tiny/tiny-prompts.zarr", ["resid"])
    assert store["resid"].dtype == np.float16


def test_changing_a_corpus_reruns_that_corpus_only(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["corpora"]["tiny-prompts"]["prompts"].append("green blue red")  # not in text_subspaces
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    assert (
        planned
        == {"tokenize_corpus": 1, "capture_residuals": 1, "capture_summary": 1} | REPORT_JOBS
    )


def test_changing_a_steering_part_reruns_only_its_jobs(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["steering"]["generate"]["tokens"] = 5
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    assert planned == {"steering_generations": 1, "steering_summary": 1} | REPORT_JOBS
    config = tiny_workflow_config(tiny_llama_dir)
    config["steering"]["ortho"]["steps"] = 5
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    assert (
        planned
        == {
            "learn_orthogonal_vectors": 1,
            "steering_unsteered_kl": 1,
            "steering_generations": 1,
            "export_steering_vectors": 1,
            "steering_figures": 1,
            "steering_summary": 1,
        }
        | REPORT_JOBS
    )


def test_toy_outputs_of_the_tiny_run(tiny_workflow):
    toys = tiny_workflow / "results/toys"
    rows = (toys / "tiny-copy/metrics.csv").read_text().splitlines()
    assert (
        rows[0]
        == "step,loss,accuracy,accuracy_long,train_loss,seconds,induction_score,prev_token_score"
    )
    assert [int(r.split(",")[0]) for r in rows[1:]] == [0, 1, 20]  # log-spaced, 0 and last
    steps = sorted(p.name for p in (toys / "tiny-copy/checkpoints").glob("step-*"))
    assert steps == ["step-000000", "step-000001", "step-000020"]
    manifest = json.loads((toys / "tiny-copy/checkpoints/step-000001/manifest.json").read_text())
    assert manifest["attn_only"] and manifest["source"]["step"] == 1
    header = (toys / "tiny-bigram/metrics.csv").read_text().splitlines()[0]
    assert header.endswith("induction_score,prev_token_score,bigram_score,decoy_mass")
    search = (toys / "tiny-bigram/search.csv").read_text().splitlines()
    assert len(search) == 3 and search[0].startswith("n_layers,n_heads,d_model,params")
    for toy in ("tiny-copy", "tiny-bigram"):
        for figure in ("training", "attention"):
            assert (toys / f"{toy}/figures/{figure}.png").stat().st_size > 0
    assert "## Toy copy transformers" in (tiny_workflow / "results/summary.md").read_text()


def test_a_toy_is_an_ordinary_model_of_the_pipeline(workdir, tiny_llama_dir):
    """The trained toy materialises, samples a corpus and has its residuals captured."""
    target = "results/activations/tiny-toy/tiny-generated.zarr"
    result = run_workflow(workdir, tiny_workflow_config(tiny_llama_dir), "--cores", "2", target)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((workdir / "results/models/tiny-toy/manifest.json").read_text())
    assert manifest["attn_only"] and manifest["architecture"] == "GPT2LMHeadModel"
    store = open_store(workdir / target, ["resid", "tokens"])
    assert store["resid"].shape == (store["tokens"].shape[0], 3, 16)
    assert int(store["tokens"][:].max()) < 16  # 12 data tokens + 4 specials


def test_changing_a_toy_retrains_that_toy_only(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["toys"]["specs"]["tiny-bigram"]["train"]["steps"] = 12
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    toy_jobs = {"train_toy": 1, "toy_figures": 1, "toys_summary": 1}
    assert planned == toy_jobs | REPORT_JOBS
    # the architecture search is its own target, outside `rule all`
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run", "toy_searches"))
    assert planned == {"toy_search": 1, "toy_searches": 1}


def test_partition_outputs_of_the_tiny_run(tiny_workflow):
    """Every partition job's output: an orthogonal R whose subspaces tile the space, the MI
    of trained and random bases, probes per subspace and basis, circuits of the block."""
    folder = tiny_workflow / "results/partition/tiny-toy/tiny-copy-sequences"
    for name in ("L1.stop2", "L2.stop2"):
        store = open_store(folder / f"{name}.zarr", ["R", "sizes", "mi_trained", "mi_random"])
        R, sizes = store["R"][:], store["sizes"][:]
        np.testing.assert_allclose(R.T @ R, np.eye(16), atol=1e-5)
        assert sizes.sum() == 16 and store.attrs["layer"] == int(name[1])
        assert store["mi_trained"].shape == (len(sizes), len(sizes)) and len(sizes) >= 2
        units = open_store(folder / f"{name}.zarr", ["units_R", "unit_sizes"])
        np.testing.assert_allclose(
            units["units_R"][:].T @ units["units_R"][:], np.eye(16), atol=1e-5
        )
        assert units["unit_sizes"][:].sum() == 16
    probes = (folder / "probes_L1.stop2.csv").read_text().splitlines()
    assert probes[0] == (
        "basis,subspace,size,current_token_share,previous_token_share,position_share,"
        "current_token,previous_token"
    )
    n_units = len(open_store(folder / "L1.stop2.zarr")["unit_sizes"][:])
    assert sum(line.startswith("units,") for line in probes) == n_units
    circuit = open_store(folder / "circuit_B1.stop2.zarr", ["ov", "qk", "skip"])
    n_in = open_store(folder / "L1.stop2.zarr")["sizes"].shape[0]
    n_out = open_store(folder / "L2.stop2.zarr")["sizes"].shape[0]
    assert circuit["ov"].shape == (2, n_in, n_out) and circuit["qk"].shape == (2, n_in, n_in)
    for figure in ("L1.stop2.png", "circuit_B1.stop2.png", "probes_L1.stop2.png"):
        assert (folder / "figures" / figure).stat().st_size > 0
    page = (tiny_workflow / "results/summary.md").read_text()
    assert "## Subspace partition" in page and "known-circuit split" in page


def test_steering_outputs_of_the_tiny_run(tiny_workflow, tiny_llama_dir):
    from actspace.methods.steering.command import steer_text

    run = tiny_workflow / "results/steering/tiny/tiny-run"
    melbo = open_store(run / "melbo.zarr", ["vectors", "objective_history", "random_vectors"])
    assert melbo["vectors"].shape == (3, 32) and melbo["objective_history"].shape == (3, 4)
    assert (melbo.attrs["source_block"], melbo.attrs["target_block"]) == (0, 1)
    assert melbo.attrs["target_positions"] == [1, None]  # the schema's default: no first token
    assert np.allclose(np.linalg.norm(melbo["vectors"][:], axis=1), 1.0, atol=1e-5)
    vectors = open_store(run / "vectors.zarr", ["vectors", "kl_i_to_0", "control_kl_0_to_i"])
    assert vectors["vectors"].shape == (5, 32) and vectors["kl_i_to_0"].shape == (5,)
    assert vectors.attrs["max_abs_cosine"] < 1e-6
    unsteered = open_store(run / "unsteered_kl.zarr", ["kl_i_to_0", "kl_0_to_i"])
    assert unsteered["kl_i_to_0"].shape == (2,)  # one per prompt of tiny-requests
    assert (unsteered["kl_i_to_0"][:] > 0).all() and (unsteered["kl_0_to_i"][:] > 0).all()
    base_norm = np.linalg.norm(vectors["base_vector"][:])
    assert np.isclose(unsteered.attrs["base_norm"], base_norm)  # theta_0 of the ortho run
    for figure in ("kl", "norms", "combinations", "melbo"):
        assert (run / f"figures/{figure}.png").stat().st_size > 0
    sweep = (run / "radius_sweep.csv").read_text().splitlines()
    assert sweep[0].startswith("radius,") and len(sweep) == 3
    records = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    sets = {r["set"] for r in records}
    assert {"unsteered", "melbo", "melbo_random", "ortho_base", "ortho", "ortho_sum"} <= sets
    # the steer command reproduces stored generations, greedy and sampled
    model = tiny_workflow / "results/models/tiny"
    for wanted in (("ortho", 2, "greedy"), ("ortho", 1, "sampled"), ("melbo", 1, "greedy")):
        record = next(r for r in records if (r["set"], r["index"], r["mode"]) == wanted)
        vector_set = "ortho" if record["set"] == "ortho" else "melbo"
        text = steer_text(
            str(run / "vectors.safetensors"),
            str(model),
            vector_set,
            record["index"],
            record["prompt"],
            record["tokens"],
            record["seed"],
        )
        assert text == record["completion"]
    # the margins follow each prompt's unsteered greedy completion (3 sweep tokens: the first
    # 3 of the generations' 4), each token the argmax of its position
    margins = read_csv(run / "unsteered_margins.csv")
    for record in (r for r in records if r["set"] == "unsteered" and r["mode"] == "greedy"):
        mine = [m for m in margins if m["prompt_index"] == record["prompt_index"]]
        assert [m["token"] for m in mine] == record["completion_ids"][:3]
        assert [m["position"] for m in mine] == list(range(len(mine)))
        assert all(m["margin"] > -1e-4 for m in mine)
    summary = json.loads((tiny_workflow / "results/summary/steering.json").read_text())
    assert any("distinct greedy" in row["quantity"] for row in summary["rows"])
    assert any("runner-up" in row["quantity"] for row in summary["rows"])


def test_the_whole_complement_of_the_tiny_run(tiny_workflow):
    """steering_complement searches all d_model - 1 directions; its first full blocks are the
    default search's vectors (same theta_0, seed and blocks) and its summary counts what the
    store holds."""
    run = tiny_workflow / "results/steering/tiny/tiny-run"
    complement = open_store(run / "complement.zarr", ["vectors", "kept", "kl_i_to_0"])
    vectors = open_store(run / "vectors.zarr", ["vectors"])["vectors"][:]
    found = complement["vectors"][:]
    assert found.shape == (31, 32)  # d_model - 1: the norms never collapse in 4 steps
    assert complement.attrs["max_abs_cosine"] < 1e-6
    np.testing.assert_array_equal(found[:4], vectors[:4])  # blocks of 2: the first two agree
    summary = json.loads((run / "complement.json").read_text())
    kept = complement["kept"][:]
    below = complement["kl_i_to_0"][:] < complement["control_kl_i_to_0"][:]
    assert summary["searched"] == 31 and summary["complement"] == 31
    assert summary["non_zero"] == int(kept.sum())
    assert summary["below_control"] == int((below & kept).sum())
    assert 0 <= summary["low_kl_prefix"] <= summary["non_zero"]
    level = open_store(run / "unsteered_kl.zarr", ["kl_i_to_0"])["kl_i_to_0"][:].mean()
    assert np.isclose(summary["unsteered_kl"], level)
    assert summary["below_unsteered"] == int((complement["kl_i_to_0"][:][kept] < level).sum())
    assert 0 <= summary["unsteered_prefix"] <= summary["non_zero"]
    assert "1558" in summary["published"]["ortho_below_control"]["value"]  # published.yaml's
    for figure in ("complement_kl", "complement_norms", "complement_combinations"):
        assert (run / f"figures/{figure}.png").stat().st_size > 5_000


def test_regions_outputs_of_the_tiny_run(tiny_workflow):
    from actspace.methods.regions.read import read_regions

    results = tiny_workflow / "results/regions"
    tiny = read_regions(results / "tiny/tiny-continued.zarr")
    assert [v.kind for v in tiny.variants] == ["trained", "random init"]
    toy = read_regions(results / "tiny-toy/tiny-copy-sequences.zarr")
    # every stored checkpoint of the toy, its step 0 the random init
    assert [(v.kind, v.step) for v in toy.variants] == [
        ("random init", 0),
        ("checkpoint", 1),
        ("trained", 20),
    ]
    for result in (tiny, toy):
        assert result.alphas.shape == (6,) and result.same_last_token.shape == (4,)
        for variant in result.variants:
            assert variant.curves.shape == (4, 6) and variant.slice.shape == (4, 4, 3)
            curves = variant.curves.astype(np.float64)
            assert np.allclose(curves[:, -1], 1.0) and np.allclose(curves[:, 0], 0.0, atol=1e-4)
            slopes = np.diff(curves, axis=1).max(axis=1) * 5  # independent of the package
            assert np.allclose(variant.sharpness, slopes, rtol=1e-5)
            assert np.allclose(variant.quartiles, np.percentile(variant.sharpness, [25, 50, 75]))
    store = open_store(results / "tiny/tiny-continued.zarr", ["prompts"])
    assert store["prompts"].shape == (5, 3) and "last position" in store.attrs["convention"]
    for run in ("tiny/tiny-continued", "tiny-toy/tiny-copy-sequences"):
        for figure in ("curves.png", "sharpness.png", "slices.png", "slices.gif"):
            assert (results / run / "figures" / figure).stat().st_size > 0
    for figure in ("training.png", "sizes.png"):
        assert (results / "figures" / figure).stat().st_size > 0
    summary = json.loads((tiny_workflow / "results/summary/regions.json").read_text())
    quantities = [row["quantity"] for row in summary["rows"]]
    assert sum("random initialisation" in q for q in quantities) == 2
    assert any("over training checkpoints" in q for q in quantities)
    assert "## Stable regions" in (tiny_workflow / "results/summary.md").read_text()


def test_changing_a_regions_setting_reruns_regions_only(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["regions"]["steps"] = 7
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run"))
    assert planned == REGIONS_JOBS | REPORT_JOBS


def test_every_figure_is_a_png_and_a_pdf_and_the_figures_target_recomputes_nothing(
    workdir, tiny_llama_dir
):
    config = tiny_workflow_config(tiny_llama_dir)
    declared = declared_figures(workdir, config)
    assert len(check_figure_files(workdir, declared)) >= 20
    # delete every figure: the figures target redraws them from the finished stores
    for path in declared:
        (workdir / path).unlink()
    planned = jobs_planned(run_workflow(workdir, config, "--dry-run", "figures"))
    assert planned == {
        name: count for name, count in PRESENTATION_JOBS.items() if not name.endswith("summary")
    } | {"figures": 1}


def test_the_summary_has_every_method_with_published_or_none(tiny_workflow):
    from actspace.registry import METHODS
    from actspace.reporting.rows import VERDICTS

    summary = json.loads((tiny_workflow / "results/summary.json").read_text())
    titles = [method["method"] for method in summary["methods"]]
    assert titles == [method.name for method in METHODS]
    for method in summary["methods"]:
        assert method["rows"], method["method"]
        for row in method["rows"]:
            assert row["value"] not in (None, "") and row["published"] not in (None, "")
            assert row["verdict"] in VERDICTS and row["reason"]
    page = (tiny_workflow / "results/summary.html").read_text()
    assert page.count("<table>") == len(METHODS) and "none published" in page


def test_the_report_builds_offline_and_opens_in_a_browser(workdir, tiny_llama_dir):
    from browser import inspect_report

    from actspace.registry import METHODS

    config = tiny_workflow_config(tiny_llama_dir)
    report = workdir / "results/report.html"
    result = run_workflow(workdir, config, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = inspect_report(report, workdir / "results/report.png", [m.title for m in METHODS[1:]])
    assert not seen["errors"] and not seen["undecoded"]
    figures = [p for p in declared_figures(workdir, config) if not p.endswith(".pdf")]
    assert sorted(p for p in seen["results"] if "/figures/" in p) == sorted(figures)
    for path in figures:  # a caption naming what the figure shows, wildcards filled in
        caption = seen["results"][path]["caption"]
        assert len(caption) > 80 and "{{" not in caption and "snakemake." not in caption, path
    assert "results/summary.html" in seen["results"]
    assert (
        "tiny" in seen["menus"]["Stable regions"]
        and "tiny-copy" in seen["menus"]["Toy transformers"]
    )
    assert seen["images_shown"] >= 1  # a figure opened from the menu is displayed
    assert (workdir / "results/report.png").stat().st_size > 10_000
