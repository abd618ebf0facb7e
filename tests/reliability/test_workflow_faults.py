"""Faults and bad inputs on the Snakemake DAG of a tiny local model: each fails with one
clear message naming the problem, leaves every earlier result untouched, and a killed or
repeated run ends with the same stores (the README's "Faults and bad inputs" table)."""

import json
import os
import shutil
import signal

import zarr

from conftest import (
    frozen,
    jobs_planned,
    run_workflow,
    snapshot,
    start_workflow,
    tiny_workflow_config,
)


def _fails_cleanly(workdir, config, message, env=None):
    before = snapshot(workdir / "results")
    result = run_workflow(workdir, config, env=env)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]
    after = snapshot(workdir / "results")
    assert {k: v for k, v in after.items() if k in before and "logs" not in k} == {
        k: v for k, v in before.items() if "logs" not in k
    }
    return result


def test_unknown_model_name(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["capture"]["models"] = ["tiny", "no-such-model"]
    _fails_cleanly(workdir, config, "config capture.models names 'no-such-model'")


def test_config_key_of_the_wrong_type(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir, batch_tokens="lots")
    result = _fails_cleanly(workdir, config, "'lots' is not of type 'integer'")
    assert "batch_tokens" in result.stderr


def test_a_config_typo_names_the_key_and_the_allowed_keys(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["capture"]["dtyp"] = "float16"
    result = _fails_cleanly(workdir, config, "unknown key 'dtyp' in capture; allowed: ")
    assert "dtype" in result.stderr and "residual-stream capture" in result.stderr
    assert "additionalProperties" not in result.stderr  # not the schema printed whole
    assert "'type': 'object'" not in result.stderr


def test_empty_prompt_list(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["corpora"]["tiny-prompts"]["prompts"] = []
    result = _fails_cleanly(workdir, config, "[] should be non-empty")
    assert "tiny-prompts" in result.stderr


def _with_extra_model(tiny_llama_dir, name, spec):
    """The tiny config, capturing also model ``name`` defined by ``spec``."""
    config = tiny_workflow_config(tiny_llama_dir)
    config["models"][name] = spec
    config["capture"]["models"] = ["tiny", name]
    return config


def test_missing_gguf_package(workdir, tiny_llama_dir):
    spec = {"source": "package-gguf", "package": "actspace-no-such-package"}
    _fails_cleanly(
        workdir,
        _with_extra_model(tiny_llama_dir, "ghost", spec),
        "the package 'actspace-no-such-package' that ships the model's GGUF file is not installed",
    )


def test_offline_hub_id(workdir, tiny_llama_dir, tmp_path):
    spec = {"source": "hub", "repo_id": "openai-community/gpt2"}
    _fails_cleanly(
        workdir,
        _with_extra_model(tiny_llama_dir, "hubbed", spec),
        "cannot fetch model 'hubbed' (openai-community/gpt2@main) from the Hugging Face hub",
        env={"HF_HOME": str(tmp_path / "empty-hf-home")},
    )


def test_prompt_longer_than_the_context(workdir, tiny_llama_dir):
    config = tiny_workflow_config(tiny_llama_dir)
    config["corpora"]["too-long"] = {"type": "prompts", "prompts": ["the " * 80]}
    config["capture"]["corpora"] = ["tiny-prompts", "too-long"]
    _fails_cleanly(
        workdir,
        config,
        "corpus 'too-long': document 0 has 81 tokens, more than the model's context of 64",
    )


def test_a_second_run_on_the_same_results_refuses_cleanly(tmp_path, tiny_llama_dir):
    """Snakemake's lock: while one run works on a directory, a second one stops with a
    clear message and changes nothing; the first finishes normally."""
    import time

    config = tiny_workflow_config(tiny_llama_dir)
    first = start_workflow(tmp_path, config, "--keep-going", "weights_svd")
    # wait until the first run holds its lock and has a job running (an output marked
    # incomplete)
    marks = [tmp_path / ".snakemake" / name for name in ("locks", "incomplete")]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(m.exists() and any(m.iterdir()) for m in marks):
        time.sleep(0.2)
    # the first run frozen while the second one tries (a fast machine once finished it in
    # between: a flaky failure)
    with frozen(first):
        assert first.poll() is None, "the first run ended before the second could start"
        # Snakemake sees the first run's outputs as incomplete (or, between two of its jobs,
        # meets its lock) and stops; told to rerun incomplete outputs (as the profiles do),
        # it meets the first run's lock and stops
        second = run_workflow(tmp_path, config, "--keep-going", "weights_svd")
        assert second.returncode != 0
        assert "Incomplete files" in second.stderr or "cannot be locked" in second.stderr
        second = run_workflow(tmp_path, config, "--rerun-incomplete", "weights_svd")
        assert second.returncode != 0 and "cannot be locked" in second.stderr
    assert first.wait(timeout=900) == 0


def test_a_failing_model_check_stops_only_that_models_jobs(tmp_path, tiny_llama_dir):
    """A model whose hooked forward differs from transformers' (here: a NaN weight) fails its
    check with the site and block named; its captures never run, the other model's do."""
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_llama_dir, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in weights if k.endswith("layers.1.mlp.down_proj.weight"))
    weights[name][0, 0] = float("nan")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    config = _with_extra_model(tiny_llama_dir, "broken", {"source": "local", "path": str(broken)})
    targets = [f"results/activations/{m}/tiny-prompts.zarr" for m in ("tiny", "broken")]
    result = run_workflow(tmp_path / "run", config, "--keep-going", *targets)
    assert result.returncode != 0
    assert "error in rule check_model" in result.stderr
    assert (
        "differs from transformers' own: resid_pre + attn_out + mlp_out of block 1" in result.stderr
    )
    activations = tmp_path / "run" / "results" / "activations"
    assert (activations / "tiny" / "tiny-prompts.zarr").is_dir()
    assert not (activations / "broken").exists()
    good = json.loads((tmp_path / "run" / "results" / "checks" / "tiny.json").read_text())
    assert good["passed"] and good["max_error"] <= good["tolerance"]


def test_a_job_killed_mid_run_is_rerun_and_resumes(tmp_path, tiny_llama_dir):
    """SIGKILL to a running toy-training job: snakemake reports it failed and keeps nothing
    partial as complete; the next run reruns exactly that job, which resumes from its saved
    state, and no temporary folder is left behind."""
    import subprocess
    import time

    config = tiny_workflow_config(tiny_llama_dir)
    config["toys"]["train"] = ["tiny-copy"]
    config["toys"]["specs"]["tiny-copy"]["train"]["steps"] = 1500
    first = start_workflow(tmp_path, config, "--keep-going", "toys")
    state = tmp_path / "results/toys/tiny-copy/.resume/state/state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    assert state.exists(), "no training state was saved before the deadline"
    with frozen(first):  # nothing finishes while we look for the job
        jobs = subprocess.run(
            ["pgrep", "-s", str(first.pid), "-f", "train_toy.py"], capture_output=True, text=True
        ).stdout.split()
        assert jobs, "the training job's process was not found"
        for pid in jobs:
            os.kill(int(pid), signal.SIGKILL)
    assert first.wait(timeout=120) != 0
    toys = tmp_path / "results/toys/tiny-copy"
    assert not (toys / "metrics.csv").exists() and not (toys / "model").exists()
    result = run_workflow(tmp_path, config, "--dry-run", "toys")
    assert jobs_planned(result) == {"train_toy": 1, "toy_figures": 1, "toys_summary": 1, "toys": 1}
    result = run_workflow(tmp_path, config, "--keep-going", "toys")
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "results/logs/train_toy/tiny-copy.log").read_text()
    assert "resumed from the state saved at step" in log
    assert not (toys / ".resume").exists()
    assert not list((tmp_path / "results").rglob(".*.tmp-*"))
    rows = (toys / "metrics.csv").read_text().splitlines()
    assert rows[-1].startswith("1500,")


def test_the_same_config_writes_identical_stores(tiny_workflow, tmp_path, tiny_llama_dir):
    """Determinism: the tiny config run again in a fresh directory writes the same content,
    every array bit for bit and every attribute but the volatile ones (when, how fast, which
    versions), for capture, weight SVD, toy training, partition and MELBO."""
    from actspace.store import store_differences

    stores = [
        "results/activations/tiny/tiny-prompts.zarr",
        "results/weights_svd/tiny/svd.zarr",
        "results/partition/tiny-toy/tiny-copy-sequences/L1.stop2.zarr",
        "results/steering/tiny/tiny-run/melbo.zarr",
    ]
    files = ["results/toys/tiny-copy/model/model.safetensors"]
    config = tiny_workflow_config(tiny_llama_dir)
    targets = [*stores, "results/toys/tiny-copy/model"]
    result = run_workflow(tmp_path, config, "--keep-going", *targets)
    assert result.returncode == 0, result.stderr[-2000:]
    for store in stores:
        assert store_differences(tiny_workflow / store, tmp_path / store) == [], store
    for name in files:
        assert (tiny_workflow / name).read_bytes() == (tmp_path / name).read_bytes(), name
    # and the comparison is not blind: a changed attribute and a changed value are found
    other = tmp_path / stores[0]
    group = zarr.open_group(other, mode="r+")
    group.attrs["corpus"] = "something else"
    group["resid"][0, 0, 0] = group["resid"][0, 0, 0] + 1
    assert store_differences(tiny_workflow / stores[0], other) == [
        "/ attribute 'corpus'",
        "array 'resid': values differ",
    ]


def test_out_of_range_layers_and_sizes_stop_at_the_jobs_start(workdir, tiny_llama_dir):
    """Known only once the model is loaded: a partition layer beyond the residual stream, a
    unit size that does not divide d_model, a steering block beyond the model. Each job
    stops at its start naming the value and the allowed range; nothing computed changes."""
    config = tiny_workflow_config(tiny_llama_dir)
    site = config["partition"]["sites"][0]
    site["layers"] = [1, 2, 9]
    config["partition"]["sites"].append(
        {
            "model": site["model"],
            "corpus": site["corpus"],
            "layers": [0],
            "settings": {"unit_size": 5},
        }
    )
    config["steering"]["runs"]["far-block"] = {
        "model": "tiny",
        "corpus": "tiny-requests",
        "melbo": {"source_block": 5, "target_block": 6},
    }
    partitions = f"results/partition/{site['model']}/{site['corpus']}"
    targets = [
        f"{partitions}/L9.zarr",
        f"{partitions}/L0.zarr",
        "results/steering/tiny/far-block/melbo.zarr",
    ]
    before = snapshot(workdir / "results")
    result = run_workflow(workdir, config, "--keep-going", *targets)
    assert result.returncode != 0
    for message in (
        "layer 9 is not a site of",
        "residual positions run 0..2",
        "unit_size 5 does not divide d_model 16",
        "need 0 <= source_block (5) <= target block (6) < n_layers (2)",
    ):
        assert message in result.stderr, result.stderr[-3000:]
    after = snapshot(workdir / "results")
    assert {k: v for k, v in after.items() if k in before and "logs" not in k} == {
        k: v for k, v in before.items() if "logs" not in k
    }
    assert not any((workdir / target).exists() for target in targets)
