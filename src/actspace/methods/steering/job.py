"""Rules of the steering method: MELBO vectors, the radius sweep, MELBO-ortho with its
evaluation, the generations and the vectors as a safetensors file.

Stores (``results/steering/{model}/{run}/``):

``melbo.zarr``
    ``vectors`` (n, d) learned MELBO vectors (norm R, mutually orthogonal), ``objective``
    (n,) and ``objective_history`` (n, steps); ``random_vectors`` / ``random_objective``:
    the control, random mutually orthogonal vectors of norm R. Attributes: the blocks and
    their convention, R, p, q, norm convention, prompts.
``vectors.zarr``
    MELBO-ortho: ``base_vector`` theta_0, ``vectors`` (n, d) in order of discovery,
    ``kept`` (finite and norm above the floor), ``norms``, ``loss`` and ``loss_history``;
    per vector the KL at each prompt's last position (mean over prompts) between the next-token
    distributions steered by theta_i and by theta_0, both ways (``kl_i_to_0`` = KL(P_i || P_0),
    the reference code's; ``kl_0_to_i`` = KL(P_0 || P_i), its plot title's); the controls'
    (``control_vectors``: random, orthogonal to theta_0..theta_{i-1}, with theta_i's norm;
    ``rescaled``: theta_i at theta_0's norm) and the combinations' (mean, mean x sqrt(n),
    sum of the first n kept vectors, n in ``combination_ns``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from actspace.checkpoint import Checkpoint, checkpoint_folder, checkpoint_key
from actspace.data.corpora import documents_of
from actspace.data.generation import pad_token_id
from actspace.errors import ActspaceError
from actspace.methods.steering.math import (
    OrthonormalBasis,
    combinations,
    diversity,
    kl_divergences,
    masked_mean,
    max_abs_cosine,
    melbo_objective,
    ortho_loss,
    to_sphere,
)
from actspace.methods.steering.passes import (
    CONVENTION,
    PromptBatch,
    generate_steered,
    steered_last_logprobs,
    steered_target,
)
from actspace.methods.steering.train import learn_melbo, learn_ortho, random_orthogonal
from actspace.models import ModelAdapter, load_model
from actspace.settings import SectionSettings
from actspace.store import atomic_store, open_store, provenance, write_csv

log = logging.getLogger(__name__)

EVAL_BLOCK = 16  # vectors per batched evaluation pass


@dataclass(frozen=True)
class MelboSettings(SectionSettings):
    """``config.steering.melbo`` (defaults: the schema)."""

    source_block: int
    target_block: int | None
    target_positions: list[int | None]
    radius: float
    p: float
    q: float | None
    norm: str
    n_vectors: int
    steps: int
    lr: float
    block: int
    seed: int
    OPTIONAL = ("target_block", "q")

    def blocks(self, n_layers: int) -> tuple[int, int]:
        """(source, target) block indices; the target defaults to the reference code's
        ``hidden_states[n_layers - 8]``, the output of block ``n_layers - 9``."""
        target = n_layers - 9 if self.target_block is None else self.target_block
        if not 0 <= self.source_block <= target < n_layers:
            raise ActspaceError(
                f"steering: need 0 <= source_block ({self.source_block}) <= target block "
                f"({target}) < n_layers ({n_layers})"
            )
        return self.source_block, target

    @property
    def q_value(self) -> float:
        return self.p if self.q is None else self.q

    def position_mask(self, prompts: PromptBatch) -> torch.Tensor:
        """The positions of each prompt whose target activations count (``target_positions``
        as a slice of the prompt's tokens)."""
        try:
            return prompts.positions(*self.target_positions)
        except ValueError as error:
            raise ActspaceError(f"steering.melbo.{error}") from None


@dataclass(frozen=True)
class OrthoSettings(SectionSettings):
    """``config.steering.ortho``."""

    base: int
    base_file: str | None
    base_set: str
    n_max: int
    steps: int
    lr: float
    block: int
    min_norm: float
    collapse_blocks: int
    seed: int
    combination_ns: list[int]
    OPTIONAL = ("base_file",)


@dataclass(frozen=True)
class SweepSettings(SectionSettings):
    """``config.steering.sweep``."""

    radii: list[float]
    n_vectors: int
    steps: int
    tokens: int


@dataclass(frozen=True)
class GenerationSettings(SectionSettings):
    """``config.steering.generate``."""

    tokens: int
    indices: list[int]
    combination_ns: list[int]
    sample_seed: int


# ---------------------------------------------------------------------- shared pieces
def frozen_model(model_dir: str, device: str) -> ModelAdapter:
    """The model with its weights excluded from autograd (only theta is learned)."""
    adapter = load_model(model_dir, device)
    for param in adapter.model.parameters():
        param.requires_grad_(False)
    return adapter


def read_prompts(corpus_store: str) -> tuple[list[list[int]], list[str] | None]:
    """Token ids of every document of a corpus store, and the prompt strings when the
    corpus is a ``prompts`` list without continuation (what ``actspace steer`` takes)."""
    corpus = open_store(corpus_store, ["tokens", "doc_offsets"])
    docs = [d.tolist() for d in documents_of(corpus["tokens"][:], corpus["doc_offsets"][:])]
    spec = corpus.attrs.get("spec", {})
    texts = None
    if spec.get("type") == "prompts" and not spec.get("continue_tokens"):
        texts = list(spec["prompts"])
    return docs, texts


def batch_of(adapter: ModelAdapter, docs: Sequence[Sequence[int]]) -> PromptBatch:
    return PromptBatch.of(docs, pad_token_id(adapter.tokenizer), adapter.device)


def objective_fn(adapter: ModelAdapter, prompts: PromptBatch, cfg: MelboSettings):
    """thetas -> MELBO objective per vector, against the unsteered target activations."""
    source, target = cfg.blocks(adapter.n_layers)
    positions = cfg.position_mask(prompts)
    with torch.no_grad():
        unsteered = steered_target(adapter, prompts, None, source, target)

    def objective(thetas: torch.Tensor) -> torch.Tensor:
        steered = steered_target(adapter, prompts, thetas, source, target)
        return melbo_objective(steered - unsteered, positions, cfg.p, cfg.q_value, cfg.norm)

    return objective


@torch.no_grad()
def evaluate_in_blocks(fn, vectors: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to ``vectors`` in blocks of :data:`EVAL_BLOCK` rows, concatenated."""
    return torch.cat([fn(vectors[i : i + EVAL_BLOCK]) for i in range(0, len(vectors), EVAL_BLOCK)])


def steering_attrs(adapter: ModelAdapter, source: int, target: int, **fields: Any) -> dict:
    return provenance(
        source_block=source,
        target_block=target,
        convention=CONVENTION,
        d_model=adapter.d_model,
        n_layers=adapter.n_layers,
        **fields,
    )


def resumable(out: str, adapter: ModelAdapter, settings: dict, *inputs: str) -> Checkpoint:
    """Where a killed optimisation writing ``out`` saves its blocks and continues from
    (:mod:`actspace.checkpoint`): only for the same settings, weights, input stores (their
    creation time) or files (their sha256) and steering code."""
    identity = []
    for path in inputs:
        if Path(path).is_dir():
            identity.append(open_store(path).attrs.get("created"))
        else:
            identity.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
    key = checkpoint_key(
        {"settings": settings, "weights": adapter.manifest["weights_sha256"], "inputs": identity},
        "actspace.methods.steering.job",
    )
    return Checkpoint(checkpoint_folder(out), key)


# ---------------------------------------------------------------------- MELBO
def melbo_job(
    model_dir: str, corpus_store: str, out: str, device: str, run: str, settings: dict
) -> None:
    """Learn a run's MELBO vectors and score the same number of random vectors of norm R."""
    cfg = MelboSettings.from_config(settings)
    adapter = frozen_model(model_dir, device)
    docs, texts = read_prompts(corpus_store)
    prompts = batch_of(adapter, docs)
    source, target = cfg.blocks(adapter.n_layers)
    objective = objective_fn(adapter, prompts, cfg)
    checkpoint = resumable(out, adapter, settings, corpus_store)
    result = learn_melbo(
        objective,
        adapter.d_model,
        cfg.n_vectors,
        cfg.radius,
        cfg.steps,
        cfg.lr,
        cfg.block,
        cfg.seed,
        checkpoint=checkpoint,
    )
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    random = random_orthogonal(
        cfg.n_vectors, adapter.d_model, cfg.radius, OrthonormalBasis(adapter.d_model), generator
    ).float()
    random_objective = evaluate_in_blocks(objective, random).numpy()
    attrs = steering_attrs(
        adapter,
        source,
        target,
        kind="melbo",
        run=run,
        settings=settings,
        target_positions=list(cfg.target_positions),
        prompts=texts,
        max_abs_cosine=max_abs_cosine(result.vectors),
    )
    with atomic_store(out, attrs) as group:
        group.create_array("vectors", data=result.vectors.numpy())
        group.create_array("objective", data=result.objective)
        group.create_array("objective_history", data=result.history)
        group.create_array("random_vectors", data=random.numpy())
        group.create_array("random_objective", data=random_objective)
    checkpoint.clear()
    log.info(
        "MELBO %s: objective learned %.3g-%.3g, random %.3g-%.3g",
        run,
        result.objective.min(),
        result.objective.max(),
        random_objective.min(),
        random_objective.max(),
    )


def batched_greedy(
    adapter: ModelAdapter, prompt: Sequence[int], vectors: torch.Tensor, source: int, n_new: int
) -> list[list[int]]:
    """Greedy completions of one prompt under each vector, :data:`EVAL_BLOCK` vectors per
    batch (equal to one-at-a-time generation up to floating-point near-ties)."""
    return [
        completion
        for i in range(0, len(vectors), EVAL_BLOCK)
        for completion in generate_steered(
            adapter, prompt, vectors[i : i + EVAL_BLOCK], source, n_new
        )
    ]


def radius_sweep_job(
    model_dir: str, corpus_store: str, out: str, device: str, melbo: dict, sweep: dict
) -> None:
    """For each R of the grid: a few MELBO vectors and as many random ones of norm R, their
    objectives, how many distinct greedy completions each set gives per prompt (whole, and
    their first tokens) and where they leave the unsteered completion
    (:func:`~actspace.methods.steering.math.diversity`)."""
    cfg, grid = MelboSettings.from_config(melbo), SweepSettings.from_config(sweep)
    adapter = frozen_model(model_dir, device)
    docs, _ = read_prompts(corpus_store)
    prompts = batch_of(adapter, docs)
    source, _ = cfg.blocks(adapter.n_layers)
    objective = objective_fn(adapter, prompts, cfg)
    d = adapter.d_model
    unsteered = [generate_steered(adapter, doc, None, source, grid.tokens)[0] for doc in docs]
    rows = []
    for radius in grid.radii:
        learned = learn_melbo(
            objective, d, grid.n_vectors, radius, grid.steps, cfg.lr, cfg.block, cfg.seed
        )
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        random = random_orthogonal(grid.n_vectors, d, radius, OrthonormalBasis(d), generator)
        random = random.float()
        random_objective = evaluate_in_blocks(objective, random).numpy()
        row = {
            "radius": radius,
            "objective_learned_min": float(learned.objective.min()),
            "objective_learned_mean": float(learned.objective.mean()),
            "objective_random_max": float(random_objective.max()),
        }
        for name, vectors in (("learned", learned.vectors), ("random", random)):
            completions = [
                batched_greedy(adapter, doc, vectors, source, grid.tokens) for doc in docs
            ]
            for key, value in diversity(completions, unsteered).items():
                row[f"{key}_{name}"] = value
        row["n_vectors"] = grid.n_vectors
        rows.append(row)
        log.info("radius sweep: %s", row)
    write_csv(out, rows, float_format=".6g")


# ---------------------------------------------------------------------- MELBO-ortho
def controls_for(vectors: torch.Tensor, theta0: torch.Tensor, seed: int) -> torch.Tensor:
    """Per vector i a random direction orthogonal to theta_0..theta_{i-1}, at theta_i's norm."""
    generator = torch.Generator().manual_seed(seed)
    basis = OrthonormalBasis(vectors.shape[1])
    basis.add(theta0)
    rows = []
    for vector in vectors:
        draw = basis.project_off(
            torch.randn(1, vectors.shape[1], generator=generator, dtype=torch.float64)
        )
        rows.append(to_sphere(draw, 1.0)[0] * float(vector.norm()))
        basis.add(vector)
    return torch.stack(rows).float()


def kl_to_base(
    adapter: ModelAdapter,
    prompts: PromptBatch,
    vectors: torch.Tensor,
    base_logp: torch.Tensor,
    source: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per vector (KL(P_i || P_0), KL(P_0 || P_i)) at the prompts' last positions, mean over
    prompts, where P_0 (``base_logp``, (P, vocab)) is theta_0's steered distribution."""
    forward, backward = [], []
    for i in tqdm(range(0, len(vectors), EVAL_BLOCK), desc="KL to theta_0", mininterval=5):
        with torch.no_grad():
            logp = steered_last_logprobs(adapter, prompts, vectors[i : i + EVAL_BLOCK], source)
        f, b = kl_divergences(logp, base_logp[None])
        forward.append(f.mean(-1))
        backward.append(b.mean(-1))
    if not forward:
        return np.zeros(0), np.zeros(0)
    return torch.cat(forward).numpy(), torch.cat(backward).numpy()


def read_vector_set(path: str, name: str) -> tuple[torch.Tensor, dict[str, str]]:
    """One set of vectors (rows) of a safetensors file, e.g. a run's export, and the file's
    metadata."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise ActspaceError(f"vectors file {path} does not exist")
    with safe_open(path, framework="pt") as handle:
        if name not in handle.keys():
            raise ActspaceError(
                f"{path} has no set {name!r}; sets: {', '.join(sorted(handle.keys()))}"
            )
        return handle.get_tensor(name).float(), handle.metadata() or {}


def ortho_job(
    model_dir: str, corpus_store: str, melbo_store: str, out: str, device: str, settings: dict
) -> None:
    """MELBO-ortho from one of the run's MELBO vectors, and its evaluation (module docstring)."""
    cfg = OrthoSettings.from_config(settings)
    melbo = open_store(melbo_store, ["vectors"])
    source, target = int(melbo.attrs["source_block"]), int(melbo.attrs["target_block"])
    if cfg.base_file:
        vectors, origin = read_vector_set(cfg.base_file, cfg.base_set)[0], cfg.base_file
    else:
        vectors, origin = torch.as_tensor(melbo["vectors"][:]), melbo_store
    if not 0 <= cfg.base < len(vectors) or vectors.shape[1] != int(melbo.attrs["d_model"]):
        raise ActspaceError(
            f"steering.ortho.base {cfg.base}: {origin} holds {len(vectors)} vectors of size "
            f"{vectors.shape[1]}; need a row of size d_model = {melbo.attrs['d_model']}"
        )
    theta0 = vectors[cfg.base]
    adapter = frozen_model(model_dir, device)
    docs, _ = read_prompts(corpus_store)
    prompts = batch_of(adapter, docs)
    # the MELBO run's target positions (stores written before the setting: every position)
    target_positions = list(melbo.attrs.get("target_positions", [None, None]))
    positions = prompts.positions(*target_positions)
    with torch.no_grad():
        base_mean = masked_mean(
            steered_target(adapter, prompts, theta0[None], source, target), positions
        )[0]

    def loss_fn(thetas: torch.Tensor) -> torch.Tensor:
        acts = steered_target(adapter, prompts, thetas, source, target)
        return ortho_loss(masked_mean(acts, positions), base_mean)

    inputs = [corpus_store, melbo_store] + ([cfg.base_file] if cfg.base_file else [])
    checkpoint = resumable(out, adapter, settings, *inputs)
    result = learn_ortho(
        loss_fn,
        theta0,
        cfg.n_max,
        cfg.steps,
        cfg.lr,
        cfg.block,
        cfg.min_norm,
        cfg.collapse_blocks,
        cfg.seed,
        checkpoint=checkpoint,
    )
    found = result.vectors
    finite = torch.isfinite(found).all(1)
    found = torch.where(finite[:, None], found, torch.zeros_like(found))
    kept = torch.as_tensor(result.kept)
    with torch.no_grad():
        base_logp = steered_last_logprobs(adapter, prompts, theta0[None], source)[0]
    controls = controls_for(found, theta0, cfg.seed + 1)
    rescaled = to_sphere(found, float(theta0.norm()))
    kl = {
        "": kl_to_base(adapter, prompts, found, base_logp, source),
        "control_": kl_to_base(adapter, prompts, controls, base_logp, source),
        "rescaled_": kl_to_base(adapter, prompts, rescaled, base_logp, source),
    }
    good = found[kept]
    ns = [n for n in cfg.combination_ns if n <= len(good)]
    combos = combinations(good, ns) if ns else {}
    below = kl[""][0] < kl["control_"][0]
    attrs = steering_attrs(
        adapter,
        source,
        target,
        kind="melbo-ortho",
        run=melbo.attrs["run"],
        settings=settings,
        target_positions=target_positions,
        base_index=cfg.base,
        base_source=(
            f"{cfg.base_file}:{cfg.base_set}" if cfg.base_file else "this run's MELBO vectors"
        ),
        base_norm=float(theta0.norm()),
        stopped=result.stopped,
        n_vectors=len(found),
        n_kept=int(kept.sum()),
        n_below_control=int((below & result.kept).sum()),
        max_abs_cosine=max_abs_cosine(torch.cat([theta0[None], good]).double()),
        vector_dtype="float32",
    )
    with atomic_store(out, attrs) as group:
        group.create_array("base_vector", data=theta0.numpy())
        group.create_array("vectors", data=found.numpy())
        group.create_array("kept", data=result.kept)
        group.create_array("norms", data=found.norm(dim=1).numpy())
        group.create_array("loss", data=result.loss)
        group.create_array("loss_history", data=result.history)
        group.create_array("control_vectors", data=controls.numpy())
        for prefix, (forward, backward) in kl.items():
            group.create_array(f"{prefix}kl_i_to_0", data=forward)
            group.create_array(f"{prefix}kl_0_to_i", data=backward)
        group.create_array("combination_ns", data=np.asarray(ns, dtype=np.int64))
        for name, combo in combos.items():
            forward, backward = kl_to_base(adapter, prompts, combo, base_logp, source)
            group.create_array(f"combination_{name}", data=combo.numpy())
            group.create_array(f"combination_{name}_kl_i_to_0", data=forward)
            group.create_array(f"combination_{name}_kl_0_to_i", data=backward)
    checkpoint.clear()
    log.info("MELBO-ortho: %s", {k: attrs[k] for k in ("stopped", "n_kept", "n_below_control")})


# ---------------------------------------------------------------------- generations
def generation_plan(
    ortho: Any, cfg: GenerationSettings
) -> list[tuple[dict[str, Any], torch.Tensor | None, bool]]:
    """(record fields, vector, also sampled) of every one-vector-at-a-time generation: the
    unsteered text, theta_0, the selected orthogonal vectors with their controls, the
    combinations (the MELBO and random sets are generated batched by the job)."""
    plan: list[tuple[dict[str, Any], torch.Tensor | None, bool]] = [
        ({"set": "unsteered", "index": None}, None, True)
    ]
    plan.append(({"set": "ortho_base", "index": 0}, torch.as_tensor(ortho["base_vector"][:]), True))
    kept = ortho["kept"][:]
    vectors, controls = ortho["vectors"][:][kept], ortho["control_vectors"][:][kept]
    theta0_norm = float(np.linalg.norm(ortho["base_vector"][:]))
    for i in cfg.indices:  # i-th kept orthogonal vector: row i of the exported "ortho" set
        if 1 <= i <= len(vectors):
            v = torch.as_tensor(vectors[i - 1])
            plan.append(({"set": "ortho", "index": i}, v, True))
            control = torch.as_tensor(controls[i - 1])
            plan.append(({"set": "ortho_random_control", "index": i}, control, False))
            plan.append(({"set": "ortho_rescaled", "index": i}, to_sphere(v, theta0_norm), False))
    ns = list(ortho["combination_ns"][:])
    for n in cfg.combination_ns:
        if n in ns:
            row = ns.index(n)
            for name in ("mean", "scaled_mean", "sum"):
                v = torch.as_tensor(ortho[f"combination_{name}"][row])
                plan.append(({"set": f"ortho_{name}", "index": int(n)}, v, True))
    return plan


def generations_job(
    model_dir: str,
    corpus_store: str,
    melbo_store: str,
    ortho_store: str,
    jsonl: str,
    markdown: str,
    device: str,
    settings: dict,
) -> None:
    """Greedy (and, for the base, the orthogonal vectors and their combinations, sampled)
    completions of every prompt under every vector of the plan, one vector at a time so that
    ``actspace steer`` reproduces each record exactly; the MELBO and random sets (the
    diversity count) greedy and batched, reproduced up to floating-point near-ties."""
    cfg = GenerationSettings.from_config(settings)
    melbo = open_store(melbo_store, ["vectors", "random_vectors"])
    ortho = open_store(ortho_store, ["base_vector", "vectors", "kept", "control_vectors"])
    source = int(melbo.attrs["source_block"])
    adapter = frozen_model(model_dir, device)
    tokenizer = adapter.tokenizer
    docs, texts = read_prompts(corpus_store)
    plan = generation_plan(ortho, cfg)
    batched_sets = {"melbo": melbo["vectors"][:], "melbo_random": melbo["random_vectors"][:]}
    records = []
    total = len(docs) * sum(2 if sampled else 1 for *_, sampled in plan)
    bar = tqdm(total=total, desc="steered generations", unit="text", mininterval=5)
    for p, doc in enumerate(docs):
        prompt = texts[p] if texts else tokenizer.decode(doc)

        def record(fields, vector, new, mode="greedy", batched=False, seed=None):
            return {
                "prompt_index": p,
                "prompt": prompt,
                **fields,
                "norm": None if vector is None else float(vector.norm()),
                "mode": mode,
                "batched": batched,
                "seed": seed,
                "tokens": cfg.tokens,
                "completion": tokenizer.decode(new),
                "completion_ids": list(new),
            }

        for name, vectors in batched_sets.items():
            thetas = torch.as_tensor(vectors).float()
            for i, new in enumerate(batched_greedy(adapter, doc, thetas, source, cfg.tokens)):
                records.append(record({"set": name, "index": i}, thetas[i], new, batched=True))
        for fields, vector, sampled in plan:
            modes = [("greedy", None)] + ([("sampled", cfg.sample_seed)] if sampled else [])
            for mode, seed in modes:
                thetas = None if vector is None else vector.float()[None]
                new = generate_steered(adapter, doc, thetas, source, cfg.tokens, seed)[0]
                records.append(record(fields, vector, new, mode, seed=seed))
                bar.update()
    bar.close()
    Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(jsonl).with_name(f".{Path(jsonl).name}.tmp")
    tmp.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    Path(markdown).write_text(generations_markdown(records), encoding="utf-8")
    os.replace(tmp, jsonl)


def generations_markdown(records: Sequence[dict[str, Any]]) -> str:
    """The generations as a readable page: one section per prompt, one line per vector."""
    lines = ["# Steered generations", ""]
    for p in sorted({r["prompt_index"] for r in records}):
        rows = [r for r in records if r["prompt_index"] == p]
        lines += [f"## prompt {p}", "", "```", rows[0]["prompt"], "```", ""]
        for r in rows:
            norm = "" if r["norm"] is None else f", norm {r['norm']:.2f}"
            index = "" if r["index"] is None else f" {r['index']}"
            completion = r["completion"].replace("\n", " ⏎ ")
            lines.append(f"- **{r['set']}{index}** ({r['mode']}{norm}): {completion}")
        lines.append("")
    return "\n".join(lines)


def export_vectors_job(melbo_store: str, ortho_store: str, model: str, out: str) -> None:
    """Every vector of a run as one safetensors file (``melbo``, ``melbo_random``, ``ortho``:
    theta_0 then the kept orthogonal vectors, as the reference's ``.pt`` files), with the
    source block in the metadata, for ``actspace steer``."""
    melbo = open_store(melbo_store, ["vectors", "random_vectors"])
    ortho = open_store(ortho_store, ["base_vector", "vectors", "kept"])
    kept = ortho["kept"][:]
    tensors = {
        "melbo": torch.as_tensor(melbo["vectors"][:]).contiguous(),
        "melbo_random": torch.as_tensor(melbo["random_vectors"][:]).contiguous(),
        "ortho": torch.cat(
            [
                torch.as_tensor(ortho["base_vector"][:])[None],
                torch.as_tensor(ortho["vectors"][:][kept]),
            ]
        ).contiguous(),
    }
    metadata = {
        "model": model,
        "run": str(melbo.attrs["run"]),
        "source_block": str(melbo.attrs["source_block"]),
        "convention": CONVENTION,
        "ortho_index": "row 0 = theta_0; row i = the i-th kept orthogonal vector",
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(out).with_name(f".{Path(out).name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, out)
